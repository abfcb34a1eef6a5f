#![no_main]
//! The snapshot reader's handling of EBS's answers: ListSnapshotBlocks' layout, then a
//! GetSnapshotBlock answer's length and checksum checks.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Answer {
    block_size: Option<i32>,
    volume_gib: Option<i64>,
    blocks: Vec<(Option<i32>, Option<String>)>,
    body: Vec<u8>,
    data_length: Option<i32>,
    checksum: Option<String>,
    right_checksum: bool,
    algorithm: Option<String>,
}

fuzz_target!(|a: Answer| {
    let _ = keyhound::fuzzing::ebs(keyhound::fuzzing::EbsAnswer {
        block_size: a.block_size,
        volume_gib: a.volume_gib,
        blocks: a.blocks,
        body: &a.body,
        data_length: a.data_length,
        checksum: a.checksum,
        right_checksum: a.right_checksum,
        algorithm: a.algorithm,
    });
});
