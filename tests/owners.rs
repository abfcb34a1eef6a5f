//! `--owners`, the action report, `remediate`, `audit` and `--notify-sns`, against moto (on a
//! free loopback port, auth on) set up by tests/aws/moto_org.py: two accounts, a role into the
//! second, users with owner tags, an SNS topic with an SQS queue subscribed.

// AWS calls: only in a build with the `aws` feature (the default).
#![cfg(feature = "aws")]

mod common;

use std::path::Path;
use std::process::Command;

use common::servers::{python, Moto};
use common::*;
use serde_json::Value;

/// keyhound as the operator `admin` of moto's main account, and nothing else of this machine's
/// AWS configuration.
fn operator(moto: &Moto, dir: &Path) -> Command {
    let admin = &moto.setup["admin"];
    let mut c = bin();
    c.current_dir(dir)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", admin["key_id"].as_str().unwrap())
        .env("AWS_SECRET_ACCESS_KEY", admin["secret"].as_str().unwrap())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for v in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_IAM",
        "AWS_ENDPOINT_URL_SNS",
    ] {
        c.env_remove(v);
    }
    c
}

fn exec(mut c: Command, args: &[&str]) -> (i32, String, String) {
    let out = c.args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn query(moto: &Moto, args: &[&str]) -> String {
    let admin = &moto.setup["admin"];
    let mut a = vec![
        moto.endpoint.as_str(),
        admin["key_id"].as_str().unwrap(),
        admin["secret"].as_str().unwrap(),
    ];
    a.extend_from_slice(args);
    python("moto_query.py", &a).trim().to_string()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn key_row<'a>(report: &'a Value, key_id: &str) -> &'a Value {
    report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not in {report:#}"))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn scan_owners_report_remediate_and_notify() {
    let moto = Moto::start_with("moto_org.py", &[]);
    let (alice, mallory) = (&moto.setup["alice"], &moto.setup["mallory"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (name, u) in [("app", alice), ("vendor", mallory)] {
        write(
            dir,
            &format!("{name}/.env"),
            format!(
                "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
                s(u, "key_id"),
                s(u, "secret")
            ),
        );
    }
    let args = [
        "scan",
        "app",
        "vendor",
        "--format",
        "json",
        "--verify",
        "--verify-recheck-ms",
        "300",
        "--owners",
        "--report",
        "r.md",
        "--report",
        "r.json",
        "--report",
        "r.csv",
    ];
    let (code, out, err) = exec(operator(&moto, dir), &args);
    assert_eq!(code, 1, "{err}\n{out}");
    let report = read_json(&dir.join("r.json"));
    assert_eq!(report["schema"], "keyhound-actions");
    assert_eq!(report["version"], 1);
    assert_eq!(report["source"], "scan");
    let a = key_row(&report, s(alice, "key_id"));
    assert_eq!(a["user"], "alice");
    assert_eq!(a["owner"], "alice@example.com");
    assert_eq!(a["account"], alice["account"]);
    assert_eq!(a["status"], "Active");
    assert_eq!(a["age_days"], 0);
    assert_eq!(a["verification"], "live");
    assert_eq!(a["exposed"], true);
    assert_eq!(a["places"][0], "app/.env:1");
    // Last use was read before STS verification, which moto (like AWS) counts as a use.
    assert!(a["last_used"]["date"].is_null(), "{a:#}");
    assert_eq!(a["action"], "DEACTIVATE_NOW");
    let deactivate = format!(
        "aws iam update-access-key --user-name alice --access-key-id {} --status Inactive",
        s(alice, "key_id")
    );
    assert_eq!(a["steps"][0]["command"], deactivate.as_str());
    // mallory's key is live but in another account, with no role to reach it.
    let m = key_row(&report, s(mallory, "key_id"));
    assert_eq!(m["foreign"], true);
    assert_eq!(m["account"], moto.setup["member_account"]);
    assert_eq!(m["action"], "REPORT");
    // The secret is in no action report.
    for f in ["r.md", "r.json", "r.csv"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(!text.contains(s(alice, "secret")), "{f} shows a secret");
    }
    let md = std::fs::read_to_string(dir.join("r.md")).unwrap();
    for want in [
        "## alice@example.com",
        "— DEACTIVATE NOW",
        "- **user:** alice",
        "- **age:** 0 days",
        "- **last used:** never",
        "`app/.env:1`",
        &deactivate,
    ] {
        assert!(md.contains(want), "{want:?} not in\n{md}");
    }
    // CSV: one record per key (commands are one multi-line cell).
    let mut csv = csv::Reader::from_path(dir.join("r.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = rows
        .iter()
        .find(|r| &r[col("key_id")] == s(alice, "key_id"))
        .unwrap();
    assert_eq!(&row[col("owner")], "alice@example.com");
    assert_eq!(&row[col("action")], "DEACTIVATE NOW");
    assert!(row[col("commands")].lines().any(|c| c == deactivate));

    // A second lookup, without verification, now sees the use the verification made.
    let (_, _, err) = exec(
        operator(&moto, dir),
        &["scan", "app", "--owners", "--report", "again.json"],
    );
    let again = read_json(&dir.join("again.json"));
    assert!(
        key_row(&again, s(alice, "key_id"))["last_used"]["date"].is_string(),
        "{err}"
    );

    // remediate: a dry run changes nothing and makes no call.
    let mut dry = bin();
    dry.current_dir(dir);
    let (code, out, err) = exec(dry, &["remediate", "r.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "would UpdateAccessKey UserName=alice AccessKeyId={} Status=Inactive",
            s(alice, "key_id")
        )),
        "{out}"
    );
    assert!(
        !out.contains("mallory"),
        "REPORT is not ours to change: {out}"
    );
    assert_eq!(
        query(&moto, &["key-status", "alice", s(alice, "key_id")]),
        "Active"
    );
    assert!(!dir.join("keyhound-remediate.jsonl").exists());

    // --apply deactivates and logs every call.
    let apply = [
        "remediate",
        "r.json",
        "--apply",
        "--audit-log",
        "audit.jsonl",
    ];
    let (code, out, err) = exec(operator(&moto, dir), &apply);
    assert_eq!(code, 0, "{err}\n{out}");
    assert_eq!(
        query(&moto, &["key-status", "alice", s(alice, "key_id")]),
        "Inactive"
    );
    assert_eq!(
        query(&moto, &["key-status", "mallory", s(mallory, "key_id")]),
        "absent",
        "mallory's key lives in the other account, untouched"
    );
    let log = |dir: &Path| -> Vec<Value> {
        std::fs::read_to_string(dir.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let first = log(dir);
    assert!(
        first.iter().any(|e| e["call"] == "UpdateAccessKey"
            && e["result"] == "ok"
            && e["key_id"] == alice["key_id"]
            && e["user"] == "alice"),
        "{first:#?}"
    );
    // A second --apply is a no-op, and says so in the log.
    let (code, out, err) = exec(operator(&moto, dir), &apply);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already Inactive"), "{out}");
    let second = &log(dir)[first.len()..];
    assert!(
        second
            .iter()
            .all(|e| !(e["call"] == "UpdateAccessKey" && e["result"] == "ok")),
        "{second:#?}"
    );
    assert!(second
        .iter()
        .any(|e| e["call"] == "UpdateAccessKey" && e["result"] == "no-op"));
    assert_eq!(
        query(&moto, &["key-status", "alice", s(alice, "key_id")]),
        "Inactive"
    );
}

#[test]
fn audit_lists_every_key_with_its_action() {
    let moto = Moto::start_with("moto_org.py", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Everyone but carol is still here.
    write(
        dir,
        "people.csv",
        "email,status\nadmin@example.com,ACTIVE\nalice@example.com,ACTIVE\n\
         dave@example.com,ACTIVE\nerin@example.com,ACTIVE\nmallory@example.com,ACTIVE\n\
         carol@example.com,DEPROVISIONED\n",
    );
    let member = s(&moto.setup, "member_account");
    let main = s(&moto.setup["admin"], "account");
    let accounts = format!("{main},{member},222222222222");
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "audit",
            "--assume-role",
            "KeyhoundAudit",
            "--accounts",
            &accounts,
            "--directory",
            "people.csv",
            "--max-age",
            "0",
            "--max-unused",
            "30",
            "--report",
            "a.json",
            "--report",
            "a.md",
        ],
    );
    // One account failed: reported for that account, the others audited.
    assert_eq!(code, 2, "{err}\n{out}");
    assert!(err.contains("account 222222222222"), "{err}");
    let r = read_json(&dir.join("a.json"));
    assert_eq!(r["source"], "audit");
    assert_eq!(r["accounts_failed"][0]["account"], "222222222222");
    let want = [
        ("admin", "ROTATE"),
        ("alice", "ROTATE"),
        ("carol", "DEACTIVATE_OWNER_LEFT"),
        ("dave", "DELETE"),
        ("erin", "REMOVE_USER"),
        ("mallory", "ROTATE"),
    ];
    for (user, action) in want {
        let k = key_row(&r, s(&moto.setup[user], "key_id"));
        assert_eq!(k["user"], user);
        assert_eq!(k["action"], action, "{user}: {k:#}");
        assert_eq!(k["exposed"], false);
    }
    assert_eq!(
        key_row(&r, s(&moto.setup["mallory"], "key_id"))["account"],
        member,
        "the member account's keys come through the role"
    );
    assert_eq!(
        key_row(&r, s(&moto.setup["carol"], "key_id"))["owner_in_directory"],
        false
    );
    // frank has no key and no password: a user row.
    let frank = r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user"] == "frank")
        .expect("frank's row");
    assert_eq!(frank["action"], "REMOVE_USER");
    assert!(frank["key_id"].is_null());
    assert_eq!(r["keys"].as_array().unwrap().len(), want.len() + 1);
    let md = std::fs::read_to_string(dir.join("a.md")).unwrap();
    assert!(
        md.contains("**Account 222222222222 was not audited:**"),
        "{md}"
    );
    assert!(md.contains("DEACTIVATE (owner left)"), "{md}");

    // remediate --apply --delete carries the audit out: carol's key (owner left) deactivated,
    // dave's Inactive key deleted; REMOVE USER and ROTATE stay with the people.
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "remediate",
            "a.json",
            "--apply",
            "--delete",
            "--audit-log",
            "del.jsonl",
        ],
    );
    assert_eq!(code, 0, "{err}\n{out}");
    let status = |user: &str| query(&moto, &["key-status", user, s(&moto.setup[user], "key_id")]);
    assert_eq!(status("carol"), "Inactive");
    assert_eq!(status("dave"), "absent");
    assert_eq!(status("erin"), "Inactive", "REMOVE USER is not automated");
    assert_eq!(status("alice"), "Active", "ROTATE is not automated");
    let log = std::fs::read_to_string(dir.join("del.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(r#""call":"DeleteAccessKey""#)
                && l.contains(r#""result":"ok""#)
                && l.contains(s(&moto.setup["dave"], "key_id"))),
        "{log}"
    );

    // Without a role, another account is out of reach, and said so.
    let (code, _, err) = exec(operator(&moto, dir), &["audit", "--accounts", member]);
    assert_eq!(code, 2);
    assert!(err.contains("--assume-role"), "{err}");
    // Without --report the action report goes to standard output; keys to act on: exit 1.
    let (code, out, _) = exec(operator(&moto, dir), &["audit"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("# keyhound action report"), "{out}");
}

#[test]
fn sns_message_per_owner_read_back_from_sqs() {
    let moto = Moto::start_with("moto_org.py", &["--no-auth"]);
    let alice = &moto.setup["alice"];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "app/.env",
        format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            s(alice, "key_id"),
            s(alice, "secret")
        ),
    );
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "scan",
            "app",
            "--owners",
            "--notify-sns",
            s(&moto.setup, "topic_arn"),
        ],
    );
    assert_eq!(code, 1, "{err}\n{out}");
    assert!(err.contains("published 1 message"), "{err}");
    let deactivate = format!(
        "aws iam update-access-key --user-name alice --access-key-id {} --status Inactive",
        s(alice, "key_id")
    );
    let messages: Value =
        serde_json::from_str(&query(&moto, &["sqs-read", s(&moto.setup, "queue_url")])).unwrap();
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!(
        m["MessageAttributes"]["owner"]["Value"],
        "alice@example.com"
    );
    let body = s(m, "Message");
    assert!(body.starts_with("## alice@example.com"), "{body}");
    assert!(
        body.contains("DEACTIVATE NOW") && body.contains(&deactivate),
        "{body}"
    );
    assert!(!body.contains(s(alice, "secret")));
    assert!(s(m, "Subject").contains("1 AWS key to act on (DEACTIVATE NOW)"));

    // audit: one message per owner with something to do.
    let (_, _, err) = exec(
        operator(&moto, dir),
        &["audit", "--notify-sns", s(&moto.setup, "topic_arn")],
    );
    let messages: Value =
        serde_json::from_str(&query(&moto, &["sqs-read", s(&moto.setup, "queue_url")])).unwrap();
    let owners: std::collections::BTreeSet<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["MessageAttributes"]["owner"]["Value"].as_str().unwrap())
        .collect();
    // dave's inactive key (DELETE), erin (REMOVE USER), frank (no owner, REMOVE USER); the
    // others' new keys need nothing at the default thresholds.
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        ["(no owner)", "dave@example.com", "erin@example.com"],
        "{err}"
    );

    // A sharded audit: the parts send nothing; their merge sends the same messages, once.
    let topic = s(&moto.setup, "topic_arn");
    for k in ["1/2", "2/2"] {
        let (code, _, err) = exec(
            operator(&moto, dir),
            &[
                "audit",
                "--notify-sns",
                topic,
                "--shard",
                k,
                "--report",
                "p/{shard}.json",
            ],
        );
        assert!(code <= 1, "{err}");
        assert!(err.contains("does not notify"), "{err}");
    }
    let none: Value =
        serde_json::from_str(&query(&moto, &["sqs-read", s(&moto.setup, "queue_url")])).unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0, "{none:#}");
    let (code, out, err) = exec(operator(&moto, dir), &["merge", "p", "--notify-sns", topic]);
    assert_eq!(code, 1, "{err}\n{out}");
    assert!(out.contains("# keyhound action report"), "{out}");
    let messages: Value =
        serde_json::from_str(&query(&moto, &["sqs-read", s(&moto.setup, "queue_url")])).unwrap();
    assert_eq!(messages.as_array().unwrap().len(), 3, "{messages:#}");
}

#[test]
fn owners_without_credentials_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(61);
    let (id, secret) = keys.pair();
    write(
        tmp.path(),
        ".env",
        format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    );
    // Nothing listens on this port: the operator's STS call fails fast.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin()
        .args(["scan", ".", "--owners", "--report", "r.json"])
        .current_dir(tmp.path())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_CONFIG_FILE", tmp.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", tmp.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("operator's credentials"), "{err}");
    // The scan itself still reports, and the action report is still written (REVIEW).
    let r = read_json(&tmp.path().join("r.json"));
    assert_eq!(r["keys"][0]["action"], "REVIEW");
}

/// The facts of a row that any run of the same plan gives (not dates of use, which moto moves
/// as the operator's own key is used), with its places in order.
fn essentials(report: &Value) -> Vec<Value> {
    report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let mut places: Vec<&str> = k["places"]
                .as_array()
                .map(|p| p.iter().map(|x| x.as_str().unwrap()).collect())
                .unwrap_or_default();
            places.sort();
            serde_json::json!({
                "key_id": k["key_id"], "user": k["user"], "account": k["account"],
                "owner": k["owner"], "status": k["status"], "action": k["action"],
                "foreign": k["foreign"], "secret_found": k["secret_found"], "places": places,
            })
        })
        .collect()
}

/// A sharded audit and a sharded scan with --owners: each part writes its action report
/// (`--report …-{shard}.json`) and `merge` joins them into the one a single run writes; with
/// --owners on merge, IAM is asked on the joined credentials, once per key.
#[test]
fn sharded_audit_and_scan_merge_their_action_reports() {
    let moto = Moto::start_with("moto_org.py", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let member = s(&moto.setup, "member_account");
    let main = s(&moto.setup["admin"], "account");
    // As many shards as it takes for the two accounts to fall in different ones.
    let bucket = |a: &str, n| keyhound::shard::bucket(a.as_bytes(), n);
    let n = (2..16)
        .find(|&n| bucket(main, n) != bucket(member, n))
        .unwrap();
    let accounts = format!("{main},{member}");
    let audit = [
        "audit",
        "--assume-role",
        "KeyhoundAudit",
        "--accounts",
        &accounts,
        "--max-age",
        "0",
    ];
    let run = |extra: &[&str]| exec(operator(&moto, dir), &[&audit[..], extra].concat());
    let (code, out, err) = run(&["--report", "whole.json"]);
    assert_eq!(code, 1, "{err}\n{out}");
    for k in 1..=n {
        let shard = format!("{k}/{n}");
        let (code, out, err) = run(&["--shard", &shard, "--report", "audit/part-{shard}.json"]);
        assert!(code <= 1, "{shard}: {err}\n{out}");
        assert!(err.contains(&format!("shard {shard}: ")), "{err}");
    }
    let audited: Vec<usize> = (1..=n)
        .map(|k| {
            read_json(&dir.join(format!("audit/part-{k}.json")))["keys"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert!(
        audited.iter().filter(|&&c| c > 0).count() >= 2,
        "the accounts fall in two parts: {audited:?}"
    );
    let (code, out, err) = exec(
        operator(&moto, dir),
        &["merge", "audit", "--report", "merged.json"],
    );
    assert_eq!(code, 1, "{err}\n{out}");
    let (whole, merged) = (
        read_json(&dir.join("whole.json")),
        read_json(&dir.join("merged.json")),
    );
    assert_eq!(essentials(&merged), essentials(&whole));
    assert_eq!(merged["source"], "audit");
    assert!(merged["plan"]["shard"].is_null(), "{:#}", merged["plan"]);
    // A part missing: named, exit 2.
    std::fs::remove_file(dir.join("audit/part-1.json")).unwrap();
    let (code, _, err) = exec(
        operator(&moto, dir),
        &["merge", "audit", "--report", "m.json"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("shard 1/{n} is missing")), "{err}");

    // A scan: alice's key in several files (so in several parts), mallory's in another account.
    let (alice, mallory) = (&moto.setup["alice"], &moto.setup["mallory"]);
    let pair = |u: &Value| {
        format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            s(u, "key_id"),
            s(u, "secret")
        )
    };
    for f in ["a.env", "b/c.env", "d/e.env", "f.env", "g/h.env", "i.env"] {
        write(dir, &format!("tree/app/{f}"), pair(alice));
    }
    write(dir, "tree/vendor/.env", pair(mallory));
    let scan = [
        "scan",
        "tree",
        "--owners",
        "--format",
        "json",
        "--show-secrets",
    ];
    let run = |extra: &[&str]| exec(operator(&moto, dir), &[&scan[..], extra].concat());
    let (code, out, err) = run(&["--report", "whole-scan.json", "-o", "whole-scan.out"]);
    assert_eq!(code, 1, "{err}\n{out}");
    for k in 1..=n {
        let shard = format!("{k}/{n}");
        let (code, out, err) = run(&[
            "--shard",
            &shard,
            "-o",
            "parts/scan-{shard}.json",
            "--report",
            "parts/actions-{shard}.json",
        ]);
        assert!(code <= 1, "{shard}: {err}\n{out}");
    }
    let holding = (1..=n)
        .filter(|k| {
            let r = read_json(&dir.join(format!("parts/actions-{k}.json")));
            r["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["key_id"] == alice["key_id"])
        })
        .count();
    assert!(holding >= 2, "alice's key is found in {holding} parts");
    // The parts' action reports joined: owner facts carried over, nothing asked.
    moto.record();
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "merge",
            "parts",
            "--report",
            "carried.json",
            "-o",
            "merged.out",
        ],
    );
    assert_eq!(code, 1, "{err}\n{out}");
    let iam = |calls: &[Value], action: &str| {
        calls
            .iter()
            .filter(|r| {
                let body = r["body"].as_str().unwrap_or_default();
                let body = if r["body_encoded"] == true {
                    use base64::Engine;
                    String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(body)
                            .unwrap_or_default(),
                    )
                    .into_owned()
                } else {
                    body.to_string()
                };
                body.contains(&format!("Action={action}"))
            })
            .count()
    };
    assert_eq!(iam(&moto.recorded(), "GetAccessKeyLastUsed"), 0);
    let whole = read_json(&dir.join("whole-scan.json"));
    assert_eq!(
        essentials(&read_json(&dir.join("carried.json"))),
        essentials(&whole)
    );
    assert_eq!(essentials(&whole).len(), 2, "{whole:#}");
    assert_eq!(
        key_row(&whole, s(alice, "key_id"))["places"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    // Only the scan parts, --owners on merge: IAM asked once, for the one key in reach.
    std::fs::create_dir(dir.join("scans")).unwrap();
    for k in 1..=n {
        let f = format!("scan-{k}.json");
        std::fs::copy(dir.join("parts").join(&f), dir.join("scans").join(&f)).unwrap();
    }
    moto.record();
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "merge",
            "scans",
            "--owners",
            "--report",
            "asked.json",
            "-o",
            "m.out",
        ],
    );
    assert_eq!(code, 1, "{err}\n{out}");
    assert_eq!(iam(&moto.recorded(), "GetAccessKeyLastUsed"), 1);
    assert_eq!(
        essentials(&read_json(&dir.join("asked.json"))),
        essentials(&whole)
    );
    // Redacted parts carry no key id to ask about: said, exit 2.
    let (code, out, err) = exec(
        operator(&moto, dir),
        &[
            "scan", "tree", "--owners", "--format", "json", "--shard", "1/1", "-o", "r/1.json",
        ],
    );
    assert_eq!(code, 1, "{err}\n{out}");
    let (code, _, err) = exec(
        operator(&moto, dir),
        &["merge", "r", "--owners", "--report", "x.json"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key ids are redacted"), "{err}");
}
