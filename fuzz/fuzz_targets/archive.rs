#![no_main]
//! Archive sniffing and expansion (zip, tar, gzip, bzip2, xz, zstd, nested) with budgets.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyhound::fuzzing::archive(data);
});
