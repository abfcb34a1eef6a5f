#![no_main]
//! The vhdx container reader over bytes in memory, read where it says data is.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyhound::fuzzing::container(keyhound::source::block::Format::Vhdx, data);
});
