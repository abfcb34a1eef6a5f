//! Sharded scans: N parts run as separate processes and `keyhound merge` of their JSON reports
//! give the report one process writes (the same credentials, places and counts); a missing
//! part is named, parts of different plans are refused.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// What must be equal between a merged report and a single run's.
fn essence(v: &Value) -> Value {
    let mut creds: Vec<Value> = creds(v)
        .iter()
        .map(|c| {
            let mut places: Vec<String> = c["places"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    format!(
                        "{} {} {} {} {}",
                        p["path"], p["inner"], p["offset"], p["end_offset"], p["line"]
                    )
                })
                .collect();
            places.sort();
            json!({"fingerprint": c["fingerprint"], "rule": c["rule"], "parts": c["parts"],
                   "class": c["class"], "places": places})
        })
        .collect();
    creds.sort_by_key(|c| c["fingerprint"].to_string());
    let s = &v["summary"];
    json!({"credentials": creds, "files": s["files"], "bytes": s["bytes"],
           "places": s["places"], "skipped": s["skipped"], "incomplete": s["incomplete"]})
}

/// Runs `args` as 4 shards into `out/`, each with `shard(k)` as its shard flags or
/// environment; returns how many credentials each part found.
fn parts(dir: &Path, out: &Path, args: &[&str], env: bool) -> Vec<usize> {
    std::fs::create_dir_all(out).unwrap();
    (0..4)
        .map(|k| {
            let file = out.join(format!("part-{k}.json"));
            let mut cmd = bin();
            cmd.args(args)
                .args(["--format", "json", "--show-secrets", "-o"])
                .arg(&file)
                .current_dir(dir);
            if env {
                cmd.env("JOB_COMPLETION_INDEX", k.to_string())
                    .env("KEYHOUND_SHARDS", "4");
            } else {
                cmd.arg("--shard").arg(format!("{}/4", k + 1));
            }
            let o = cmd.output().unwrap();
            let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap())
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
            assert_eq!(v["plan"]["shard"], json!({"index": k, "count": 4}));
            creds(&v).len()
        })
        .collect()
}

fn merge(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["merge", "--format", "json", "--show-secrets"];
    a.extend_from_slice(args);
    let (code, out, err) = run(dir, &a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, err)
}

/// The working tree in 4 shards (`--shard K/4`) merged: the single run's report; a key in
/// several files falls in several shards and is one credential with every place. Then the
/// refusals: a missing part is named (exit 2), a part of another plan is refused, a part given
/// twice too.
#[test]
fn tree_in_four_shards_merges_to_the_single_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2100);
    let shared = g.pair();
    for i in 0..24 {
        let own = g.pair();
        write(
            d,
            &format!("app{i}/config.env"),
            format!(
                "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
                own.0, own.1
            ),
        );
        write(
            d,
            &format!("app{i}/shared.ini"),
            format!(
                "aws_access_key_id = {}\naws_secret_access_key = {}\n",
                shared.0, shared.1
            ),
        );
        write(d, &format!("app{i}/README.md"), "nothing here\n");
    }
    let (code, single, _) = {
        let (c, o, e) = run(d, &["scan", ".", "--format", "json", "--show-secrets"]);
        (c, serde_json::from_str::<Value>(&o).unwrap(), e)
    };
    assert_eq!(code, 1);
    assert_eq!(creds(&single).len(), 25);
    // The parts' reports (secrets shown) go outside the scanned tree.
    let out = tempfile::tempdir().unwrap();
    let parts_dir = out.path().join("parts");
    let found = parts(d, &parts_dir, &["scan", "."], false);
    assert!(
        found.iter().filter(|&&n| n > 0).count() > 1,
        "findings in more than one shard: {found:?}"
    );
    let (code, merged, err) = merge(d, &[parts_dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(essence(&merged), essence(&single));
    assert_eq!(merged["plan"]["shard"], Value::Null);
    let shared_places = creds(&merged)
        .iter()
        .find(|c| c["parts"]["key_id"] == shared.0.as_str())
        .unwrap()["places"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        shared_places, 24,
        "every place of the shared key, from every shard"
    );

    // Files named on the command line (roots, which the walker does not filter) are split
    // too: each found by one part.
    let roots: Vec<String> = (0..8).map(|i| format!("app{i}/config.env")).collect();
    let mut seen = Vec::new();
    for k in 1..=4 {
        let shard = format!("{k}/4");
        let mut args = vec![
            "scan",
            "--shard",
            &shard,
            "--format",
            "json",
            "--show-secrets",
        ];
        args.extend(roots.iter().map(String::as_str));
        let (_, o, e) = run(d, &args);
        let v: Value = serde_json::from_str(&o).unwrap_or_else(|_| panic!("{e}"));
        seen.extend(creds(&v).iter().map(|c| c["parts"]["key_id"].to_string()));
    }
    seen.sort();
    let n = seen.len();
    seen.dedup();
    assert_eq!(
        (n, seen.len()),
        (8, 8),
        "each root file in one part: {seen:?}"
    );

    // The same in SARIF: a result for each place.
    let (_, sarif, _) = run(
        d,
        &["merge", "--format", "sarif", parts_dir.to_str().unwrap()],
    );
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    validate_sarif(&sarif);
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len(),
        24 + 24
    );

    // A part missing: named, exit 2, the rest merged.
    let three: Vec<String> = (0..4)
        .filter(|&k| k != 1)
        .map(|k| {
            parts_dir
                .join(format!("part-{k}.json"))
                .display()
                .to_string()
        })
        .collect();
    let mut a: Vec<&str> = three.iter().map(String::as_str).collect();
    let (code, v, err) = merge(d, &a);
    assert_eq!(code, 2);
    assert!(err.contains("shard 2/4 is missing"), "{err}");
    assert_eq!(v["summary"]["incomplete"], true);
    // A part twice: refused.
    a.push(&three[0]);
    let (code, _, err) = run(d, &[&["merge"], &a[..]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("are both shard 1/4"), "{err}");
    // A part of another plan (another option that changes results): refused.
    let other = parts_dir.join("other.json");
    let (code, _, _) = run(
        d,
        &[
            "scan",
            ".",
            "--no-ignore",
            "--shard",
            "2/4",
            "--format",
            "json",
            "-o",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let (code, _, err) = run(d, &["merge", parts_dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is a part of another plan"), "{err}");
}

/// Git history in 4 shards given as fan-out engines give them (`JOB_COMPLETION_INDEX` with
/// `KEYHOUND_SHARDS`, and `--shard-index I --shards N`): every shard walks history, each scans
/// its blobs and messages; merged, the single run's report, attribution included.
#[test]
fn git_history_in_four_shards_merges_to_the_single_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir(&dir).unwrap();
    let mut g = Keys::new(2101);
    git(&dir, &["init", "-q"]);
    for i in 0..12 {
        let k = g.pair();
        write(
            &dir,
            &format!("svc{i}.env"),
            format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", k.0, k.1),
        );
        git(&dir, &["add", "."]);
        git(&dir, &["commit", "-qm", &format!("service {i}")]);
        if i % 3 == 0 {
            git(&dir, &["rm", "-q", &format!("svc{i}.env")]);
            let m = g.pair();
            let msg = format!(
                "remove\n\naws_access_key_id={}\naws_secret_access_key={}\n",
                m.0, m.1
            );
            git(&dir, &["commit", "-qm", &msg]);
        }
    }
    let (code, out, _) = run(&dir, &["git", "--format", "json", "--show-secrets"]);
    assert_eq!(code, 1);
    let single: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(creds(&single).len(), 16);
    let out_dir = tmp.path().join("parts");
    let found = parts(&dir, &out_dir, &["git"], true);
    assert!(found.iter().filter(|&&n| n > 0).count() > 1, "{found:?}");
    let (code, merged, err) = merge(&dir, &[out_dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(essence(&merged), essence(&single));
    // Attribution came along: the commit of each place.
    let commits = |v: &Value| -> Vec<String> {
        let mut c: Vec<String> = creds(v)
            .iter()
            .flat_map(|c| c["places"].as_array().unwrap())
            .map(|p| p["git"]["commit"]["id"].to_string())
            .collect();
        c.sort();
        c
    };
    assert_eq!(commits(&merged), commits(&single));
    assert_eq!(merged["summary"]["commits"], single["summary"]["commits"]);

    // The 0-based form is the same split.
    let (_, a, _) = run(&dir, &["git", "--format", "json", "--shard", "3/4"]);
    let (_, b, _) = run(
        &dir,
        &[
            "git",
            "--format",
            "json",
            "--shard-index",
            "2",
            "--shards",
            "4",
        ],
    );
    let (a, b): (Value, Value) = (
        serde_json::from_str(&a).unwrap(),
        serde_json::from_str(&b).unwrap(),
    );
    assert_eq!(essence(&a), essence(&b));
    assert_eq!(a["plan"], b["plan"]);
}

/// `--verify` on merge: STS is asked once per key for the whole scan (a canned STS counts the
/// requests), though several parts found each key; the merged summary says how even the parts
/// were. Parts written without --show-secrets cannot be verified: refused, said why.
#[test]
#[cfg(feature = "aws")]
fn verify_on_merge_asks_once_per_key() {
    use common::servers::{Canned, Reply};
    let sts = Canned::start(
        Reply::Ok {
            account: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:user/ci".into(),
        },
        std::time::Duration::ZERO,
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2102);
    let keys: Vec<(String, String)> = (0..6).map(|_| g.pair()).collect();
    for (i, k) in keys.iter().enumerate() {
        for copy in 0..4 {
            write(
                d,
                &format!("svc{i}/copy{copy}.env"),
                format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", k.0, k.1),
            );
        }
    }
    let out = tempfile::tempdir().unwrap();
    let found = parts(d, out.path(), &["scan", "."], false);
    assert!(
        found.iter().sum::<usize>() > keys.len(),
        "keys in several parts: {found:?}"
    );
    let merged = bin()
        .args(["merge", "--verify", "--format", "json", "--show-secrets"])
        .arg(out.path())
        .env("AWS_ENDPOINT_URL", &sts.endpoint)
        .env_remove("AWS_ENDPOINT_URL_STS")
        .current_dir(d)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&merged.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&merged.stderr)));
    assert_eq!(creds(&v).len(), keys.len());
    for k in &keys {
        assert_eq!(sts.calls(&k.0), 1, "{} asked once", k.0);
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.0.as_str())
            .unwrap();
        assert_eq!(c["verification"]["state"], "live");
        assert_eq!(c["places"].as_array().unwrap().len(), 4);
    }
    assert_eq!(sts.total_calls(), keys.len());
    let shards = &v["summary"]["shards"];
    assert_eq!(shards["parts"].as_array().unwrap().len(), 4, "{shards}");
    assert!(shards["bytes_min"].as_u64() <= shards["bytes_max"].as_u64());

    // Redacted parts: nothing to sign with.
    let red = tempfile::tempdir().unwrap();
    for k in 1..=4 {
        let f = red.path().join(format!("{k}.json"));
        let (code, _, _) = run(
            d,
            &[
                "scan",
                ".",
                "--shard",
                &format!("{k}/4"),
                "--format",
                "json",
                "-o",
                f.to_str().unwrap(),
            ],
        );
        assert!(code <= 1);
    }
    let o = bin()
        .args(["merge", "--verify"])
        .arg(red.path())
        .env("AWS_ENDPOINT_URL", &sts.endpoint)
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run the parts with --show-secrets"));
    assert_eq!(sts.total_calls(), keys.len(), "nothing more was asked");
}

/// An input every shard meets and none can read (a missing root, as an unreadable directory):
/// the shard its path falls in names it, so the merge counts it once, as the single run does.
#[test]
fn an_unreadable_input_is_named_by_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(2141).pair();
    write(
        d,
        "dirty/creds",
        format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n"),
    );
    let (code, single) = json(d, &["dirty", "no-such-dir"]);
    assert_eq!(code, 2);
    assert_eq!(single["summary"]["skipped"]["unreadable"], 1, "{single:#}");
    let out = d.join("parts");
    let args = ["scan", "dirty", "no-such-dir"];
    assert_eq!(four_parts(&out, &args, "no-such-dir", |a| run(d, a)), 1);
    let (code, merged) = merge_parts(d, &out);
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(merged["summary"]["incomplete"], true);
    assert_eq!(place_keys(&merged), place_keys(&single));
}

/// A tree object missing from a repository: every shard walks the history and meets it; the
/// shard its id falls in names it, and the merge counts it once, as the single run does.
#[test]
fn a_missing_tree_of_history_is_named_by_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "-q", "-b", "main"]);
    let mut keys = Keys::new(2143);
    for i in 0..3 {
        let (k, s) = keys.pair();
        write(
            d,
            &format!("sub{i}/app.env"),
            format!("KEY={k}\nSECRET={s}\n"),
        );
        write(d, &format!("top{i}.txt"), "plain\n");
        git(d, &["add", "."]);
        git(d, &["commit", "-qm", &format!("commit {i}")]);
    }
    let tree = git(d, &["rev-parse", "HEAD~1:sub1"]);
    let tree = tree.trim();
    std::fs::remove_file(d.join(".git/objects").join(&tree[..2]).join(&tree[2..])).unwrap();
    let (code, single) = {
        let (code, out, err) = run(d, &["git", ".", "--format", "json", "--show-secrets"]);
        assert!(err.contains(tree), "{err}");
        (code, serde_json::from_str::<Value>(&out).unwrap())
    };
    assert_eq!(code, 2);
    let out = d.join("parts");
    let needle = format!("tree {tree} (");
    assert_eq!(four_parts(&out, &["git", "."], &needle, |a| run(d, a)), 1);
    let (code, merged) = merge_parts(d, &out);
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(place_keys(&merged), place_keys(&single));
}
