//! SARIF within GitHub code scanning's limits, whatever the scan finds.

mod common;

use common::*;
use serde_json::Value;

fn sarif(dir: &std::path::Path, args: &[&str]) -> Value {
    let mut a = vec!["scan", "--format", "sarif"];
    a.extend_from_slice(args);
    let (code, out, err) = run(dir, &a);
    assert_eq!(code, 1, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn thirty_thousand_findings_aggregate_by_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(31);
    let pairs: Vec<(String, String)> = (0..60).map(|_| keys.pair()).collect();
    // 10 files of 3,000 lines: each of the 60 pairs at 500 places.
    for f in 0..10 {
        let mut text = String::new();
        for l in 0..3000 {
            let (k, s) = &pairs[(f * 3000 + l) % 60];
            text.push_str(&format!("id={k} secret={s}\n"));
        }
        write(tmp.path(), &format!("logs/{f}.log"), text);
    }
    let s = sarif(tmp.path(), &["logs"]);
    validate_sarif(&s);
    let run = &s["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 60, "one result per credential");
    assert_eq!(run["properties"]["places"], 30_000);
    assert_eq!(run["properties"]["aggregated"], true);
    for r in results {
        assert_eq!(r["locations"].as_array().unwrap().len(), 500);
        assert_eq!(r["properties"]["places"], 500);
        assert!(r["message"]["text"]
            .as_str()
            .unwrap()
            .contains("Seen at 500 places"));
    }
    let notes = run["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    assert!(notes.iter().any(|n| n["message"]["text"]
        .as_str()
        .unwrap()
        .contains("one result per credential")));
}

#[test]
fn more_credentials_than_results_keeps_the_most_severe() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(32);
    let mut text = String::new();
    // 25,100 lone key ids (medium) and 10 pairs (critical) at the end.
    for _ in 0..25_100 {
        text.push_str(&format!("{}\n\n\n\n\n\n\n", keys.key_id()));
    }
    let pairs: Vec<(String, String)> = (0..10).map(|_| keys.pair()).collect();
    for (k, s) in &pairs {
        text.push_str(&format!("{k} {s}\n"));
    }
    write(tmp.path(), "dump.txt", text);
    let s = sarif(tmp.path(), &["dump.txt"]);
    validate_sarif(&s);
    let run = &s["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 25_000);
    let pairs_in = results
        .iter()
        .filter(|r| r["ruleId"] == "aws-access-key")
        .count();
    assert_eq!(pairs_in, 10, "the critical ones are kept");
    let notes: Vec<&str> = run["properties"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("25110 credentials")),
        "{notes:?}"
    );
}

/// SARIF of `keyhound scan /abs/path/to/repo/sub` run in `/`: every URI relative to the
/// repository's root, with `%SRCROOT%` pointing there.
#[test]
fn uris_are_relative_to_the_repository_wherever_keyhound_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = std::fs::canonicalize(tmp.path()).unwrap().join("repo");
    std::fs::create_dir_all(repo.join("sub/dir")).unwrap();
    common::git(&repo, &["init", "-q"]);
    let (k, s) = common::Keys::new(2003).pair();
    common::write(
        &repo,
        "sub/dir/app.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    let target = repo.join("sub");
    let out = common::bin()
        .args(["scan", target.to_str().unwrap(), "--format", "sarif"])
        .current_dir("/")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::validate_sarif(&v);
    let run = &v["runs"][0];
    assert_eq!(
        run["originalUriBaseIds"]["%SRCROOT%"]["uri"],
        format!("file://{}/", repo.display())
    );
    let uris: Vec<&str> = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(uris, ["sub/dir/app.env"]);
}

/// The schema check means something: what keyhound writes passes, and the same log with a
/// level the schema does not have, or without its version, fails.
#[test]
fn the_schema_validator_rejects_what_the_schema_forbids() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(33);
    let (k, s) = keys.pair();
    write(tmp.path(), "a.env", format!("id={k}\nsecret={s}\n"));
    let good = sarif(tmp.path(), &["a.env"]);
    let schema = sarif_schema_path();
    assert_eq!(schema_errors(&schema, &good), "");
    let mut bad = good.clone();
    bad["runs"][0]["results"][0]["level"] = "severe".into();
    assert!(schema_errors(&schema, &bad).contains("severe"));
    let mut bad = good;
    bad.as_object_mut().unwrap().remove("version");
    assert!(schema_errors(&schema, &bad).contains("version"));
}
