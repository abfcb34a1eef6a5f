#![no_main]
//! Partition tables (GPT, MBR with extended partitions) and LVM2 volumes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyhound::fuzzing::partitions(data);
});
