#![no_main]
//! A rule file (`--rules`) compiled with the built-in rules and run.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        keyhound::fuzzing::rules(text);
    }
});
