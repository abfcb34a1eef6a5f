#![no_main]
//! The detection engine's properties, structure-aware: a key pair planted at any offset of
//! arbitrary bytes is found there; every reported part lies inside the input; the redacted
//! reports (text, JSON, SARIF) never hold a secret the engine found.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    noise: Vec<u8>,
    at: u16,
    seed: u64,
    /// How the pair is written.
    form: u8,
}

fuzz_target!(|i: Input| {
    let (id, secret) = keyhound::fuzzing::key_pair(i.seed);
    let text = match i.form % 4 {
        0 => format!("\nAWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        1 => {
            format!("\n\"aws_access_key_id\": \"{id}\",\n\"aws_secret_access_key\": \"{secret}\"\n")
        }
        2 => format!("\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
        _ => format!("\nexport AWS_ACCESS_KEY_ID='{id}' AWS_SECRET_ACCESS_KEY='{secret}'\n"),
    };
    let at = i.at as usize % (i.noise.len() + 1);
    let mut data = i.noise[..at].to_vec();
    data.extend_from_slice(text.as_bytes());
    data.extend_from_slice(&i.noise[at..]);

    let found = keyhound::fuzzing::detect(&data);
    for d in &found {
        for p in &d.parts {
            assert!(
                p.start <= p.end && p.end <= data.len(),
                "part {}..{} of {}",
                p.start,
                p.end,
                data.len()
            );
        }
    }
    for (what, v) in [("key id", &id), ("secret", &secret)] {
        let v_at = at + text.find(v.as_str()).unwrap();
        assert!(
            found.iter().any(|d| d
                .parts
                .iter()
                .any(|p| p.value == v.as_bytes() && p.start == v_at)),
            "the {what} planted at {v_at} was not found"
        );
    }
    let secrets = keyhound::fuzzing::secrets(&data);
    for format in [
        keyhound::report::Format::Text,
        keyhound::report::Format::Json,
        keyhound::report::Format::Sarif,
    ] {
        let out = keyhound::fuzzing::report(&data, format);
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(
                !out.windows(s.len()).any(|w| w == &s[..]),
                "{format:?} report shows a secret"
            );
        }
    }
});
