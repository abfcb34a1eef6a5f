#![no_main]
//! IAM's credential report (CSV), as `audit` reads it.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keyhound::fuzzing::credential_report(data);
});
