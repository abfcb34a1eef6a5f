#![no_main]
//! `.keyhound.toml`, as every scan reads it.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        keyhound::fuzzing::config(text);
    }
});
