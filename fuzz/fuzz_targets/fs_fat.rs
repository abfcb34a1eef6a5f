#![no_main]
//! The fat walk, every file read, as `image` walks a volume.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyhound::fuzzing::filesystem(keyhound::source::fs::FsKind::Fat, data);
});
