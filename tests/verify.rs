//! `--verify`: against moto (the AWS emulator) for real signatures, and a canned STS for the
//! answers moto cannot give. Every server runs on a free loopback port and stops on drop.

// AWS calls: only in a build with the `aws` feature (the default).
#![cfg(feature = "aws")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::servers::{Canned, Moto, Reply};
use common::*;
use serde_json::Value;

fn ini(k: &str, s: &str) -> String {
    format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n")
}

/// Runs `keyhound scan --verify` with the STS endpoint at `endpoint`.
fn verify(dir: &Path, endpoint: &str, args: &[&str]) -> (i32, Value, String) {
    let mut a = vec![
        "scan",
        "--format",
        "json",
        "--show-secrets",
        "--verify",
        "--verify-recheck-ms",
        "300",
        "--verify-backoff-ms",
        "50",
    ];
    a.extend_from_slice(args);
    let out = bin()
        .args(&a)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env_remove("AWS_ENDPOINT_URL_STS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{err}"));
    (out.status.code().unwrap(), v, err)
}

fn state_of<'a>(v: &'a Value, key_id: &str) -> &'a Value {
    &creds(v)
        .iter()
        .find(|c| c["parts"]["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not reported: {v:#}"))["verification"]
}

/// A key id whose offline-decoded account is `account` (the AWS key-id layout).
fn key_id_for_account(account: u64, rng: &mut fastrand::Rng) -> String {
    let z: u64 = (1 << 47) | (account << 7) | rng.u64(..128);
    let mut bytes = z.to_be_bytes()[2..8].to_vec();
    bytes.extend((0..4).map(|_| rng.u8(..)));
    let (mut bits, mut n, mut out) = (0u32, 0, String::from("AKIA"));
    for b in bytes {
        bits = (bits << 8) | b as u32;
        n += 8;
        while n >= 5 {
            n -= 5;
            out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[((bits >> n) & 31) as usize] as char);
        }
    }
    out
}

#[test]
fn moto_live_wrong_secret_invalid_and_deleted() {
    let moto = Moto::start();
    let alice = &moto.setup["alice"];
    let deleted = &moto.setup["deleted"];
    let (id, secret) = (
        alice["key_id"].as_str().unwrap(),
        alice["secret"].as_str().unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(51);
    let other_secret = keys.secret();
    let (made_up_id, made_up_secret) = keys.pair();
    write(tmp.path(), "live/.env", ini(id, secret));
    write(tmp.path(), "wrong/.env", ini(id, &other_secret));
    write(
        tmp.path(),
        "made-up/.env",
        ini(&made_up_id, &made_up_secret),
    );
    write(
        tmp.path(),
        "deleted/.env",
        ini(
            deleted["key_id"].as_str().unwrap(),
            deleted["secret"].as_str().unwrap(),
        ),
    );
    let (code, v, err) = verify(tmp.path(), &moto.endpoint, &["."]);
    assert_eq!(code, 1, "{err}");
    let found = creds(&v);
    let live = found
        .iter()
        .find(|c| c["parts"]["secret"] == secret)
        .unwrap();
    assert_eq!(live["verification"]["state"], "live", "{err}");
    assert_eq!(live["verification"]["arn"], alice["arn"]);
    assert_eq!(live["verification"]["account"], alice["account"]);
    // The account decoded offline from the key id agrees with STS.
    assert_eq!(live["account_id"], alice["account"]);
    assert_eq!(
        found[0]["verification"]["state"], "live",
        "live keys come first"
    );
    let wrong = found
        .iter()
        .find(|c| c["parts"]["secret"] == other_secret.as_str())
        .unwrap();
    assert_eq!(wrong["verification"]["state"], "wrong-secret");
    assert_eq!(state_of(&v, &made_up_id)["state"], "invalid");
    assert_eq!(
        state_of(&v, deleted["key_id"].as_str().unwrap())["state"],
        "invalid"
    );

    // --only-verified keeps the live one; SARIF ranks it highest.
    let (_, v, _) = verify(tmp.path(), &moto.endpoint, &["--only-verified", "."]);
    assert_eq!(creds(&v).len(), 1);
    let out = bin()
        .args(["scan", "--format", "sarif", "--verify", "live"])
        .current_dir(tmp.path())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .unwrap();
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    validate_sarif(&sarif);
    let run = &sarif["runs"][0];
    assert_eq!(run["results"][0]["ruleId"], "aws-access-key/live");
    let rule = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "aws-access-key/live")
        .unwrap();
    assert_eq!(rule["properties"]["security-severity"], "10.0");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(secret),
        "redacted"
    );
}

#[test]
fn canaries_and_examples_are_never_called() {
    let sts = Canned::start(
        Reply::Ok {
            account: "052310077262".into(),
            arn: "arn:aws:iam::052310077262:user/canary".into(),
        },
        Duration::ZERO,
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(52);
    let canary = key_id_for_account(52310077262, &mut rng);
    let secret = Keys::new(52).secret();
    write(tmp.path(), "canary.ini", ini(&canary, &secret));
    write(
        tmp.path(),
        "docs.ini",
        ini(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    );
    let (_, v, _) = verify(tmp.path(), &sts.endpoint, &["--include-examples", "."]);
    let c = state_of(&v, &canary);
    assert_eq!(c["state"], "canary");
    assert_eq!(c["account"], "052310077262");
    assert_eq!(state_of(&v, "AKIAIOSFODNN7EXAMPLE")["state"], "skipped");
    assert_eq!(sts.total_calls(), 0, "no request reached the server");

    // Without --verify nothing is sent either, whatever the environment says.
    let (code, _, _) = run(tmp.path(), &["scan", "."]);
    assert_eq!(code, 1);
    assert_eq!(sts.total_calls(), 0);

    // --verify-canaries asks anyway, with a warning; --verify-accounts limits the calls.
    let (_, v, err) = verify(tmp.path(), &sts.endpoint, &["--verify-canaries", "."]);
    assert_eq!(state_of(&v, &canary)["state"], "live");
    assert!(err.contains("canary"), "{err}");
    assert_eq!(sts.calls(&canary), 1);
    let (_, v, _) = verify(
        tmp.path(),
        &sts.endpoint,
        &["--verify-accounts", "111122223333", "."],
    );
    assert_eq!(state_of(&v, &canary)["state"], "canary");
    let (_, v, _) = verify(
        tmp.path(),
        &sts.endpoint,
        &[
            "--verify-canaries",
            "--verify-accounts",
            "111122223333",
            ".",
        ],
    );
    assert_eq!(state_of(&v, &canary)["state"], "skipped");
    assert_eq!(sts.calls(&canary), 1);
}

#[test]
fn canned_expired_throttled_errors_and_slow() {
    let sts = Canned::start(
        Reply::Ok {
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/ok".into(),
        },
        Duration::ZERO,
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(53);
    let ids: Vec<(String, String)> = (0..5).map(|_| keys.pair()).collect();
    for (i, (k, s)) in ids.iter().enumerate() {
        write(tmp.path(), &format!("k{i}.ini"), ini(k, s));
    }
    let err = |status: u16, code: &str| Reply::Error {
        status,
        code: Some(code.to_string()),
    };
    sts.script(&ids[0].0, vec![err(403, "ExpiredToken")]);
    sts.script(&ids[1].0, vec![err(400, "Throttling"); 3]);
    sts.script(&ids[2].0, vec![err(500, "InternalFailure"); 10]);
    sts.script(
        &ids[3].0,
        vec![
            Reply::Error {
                status: 403,
                code: None
            };
            10
        ],
    );
    sts.script(&ids[4].0, vec![Reply::Slow(Duration::from_secs(5)); 10]);
    let (_, v, _) = verify(tmp.path(), &sts.endpoint, &["--verify-timeout", "2", "."]);
    assert_eq!(state_of(&v, &ids[0].0)["state"], "expired");
    let t = state_of(&v, &ids[1].0);
    assert_eq!(
        t["state"], "live",
        "throttled three times, then answered: {t}"
    );
    assert_eq!(sts.calls(&ids[1].0), 4);
    let e = state_of(&v, &ids[2].0);
    assert_eq!(e["state"], "unknown");
    assert!(
        e["reason"].as_str().unwrap().contains("InternalFailure"),
        "{e}"
    );
    assert_eq!(sts.calls(&ids[2].0), 5, "retried up to the attempt limit");
    let n = state_of(&v, &ids[3].0);
    assert_eq!(n["state"], "unknown");
    assert!(
        n["reason"].as_str().unwrap().contains("no error code"),
        "{n}"
    );
    let s = state_of(&v, &ids[4].0);
    assert_eq!(s["state"], "unknown");
    assert!(s["reason"].as_str().unwrap().contains("timed out"), "{s}");
}

#[test]
fn a_thousand_pairs_respect_the_concurrency_limit() {
    let sts = Canned::start(
        Reply::Error {
            status: 403,
            code: Some("InvalidClientTokenId".into()),
        },
        Duration::from_millis(20),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(54);
    let mut text = String::new();
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let (k, s) = keys.pair();
        text.push_str(&format!("{k} {s}\n\n\n\n\n\n\n"));
        ids.push(k);
    }
    write(tmp.path(), "dump.txt", text);
    let (_, v, _) = verify(tmp.path(), &sts.endpoint, &["dump.txt"]);
    assert_eq!(creds(&v).len(), 1000);
    assert!(creds(&v)
        .iter()
        .all(|c| c["verification"]["state"] == "invalid"));
    let calls = sts.all_calls();
    assert_eq!(calls.len(), 1000);
    assert!(ids.iter().all(|k| calls[k] == 1), "each key called once");
    let max = sts.max_in_flight();
    assert!((2..=8).contains(&max), "in flight at most 8 (saw {max})");
}
