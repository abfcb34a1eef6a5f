#![no_main]
//! The detection engine on arbitrary bytes: no panic, and every part reported lies inside them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for d in keyhound::fuzzing::detect(data) {
        for p in &d.parts {
            assert!(
                p.start <= p.end && p.end <= data.len(),
                "{}..{} of {}",
                p.start,
                p.end,
                data.len()
            );
        }
    }
});
