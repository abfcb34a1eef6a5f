//! Acceptance: a tree of realistic files (made by fixtures/tree/make_tree.py with seeded keys)
//! is scanned; every planted credential is reported where expected and nothing else is.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

struct Tree {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    keys: BTreeMap<String, BTreeMap<String, String>>,
    expected: Value,
}

fn make_tree() -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    let keys_path = tmp.path().join("keys.json");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("python3")
        .arg(manifest.join("fixtures/tree/make_tree.py"))
        .arg(&root)
        .arg(&keys_path)
        .status()
        .expect("python3 runs the fixture generator");
    assert!(st.success());
    let keys = serde_json::from_str(&std::fs::read_to_string(keys_path).unwrap()).unwrap();
    let expected = serde_json::from_str(
        &std::fs::read_to_string(manifest.join("fixtures/tree/expected.json")).unwrap(),
    )
    .unwrap();
    Tree {
        _tmp: tmp,
        root,
        keys,
        expected,
    }
}

#[test]
fn every_planted_key_is_found_and_nothing_else() {
    let t = make_tree();
    let (code, v) = json(&t.root, &["--show-secrets", "."]);
    assert_eq!(code, 1, "findings exit 1");
    let found = creds(&v);
    let expected = t.expected["credentials"].as_array().unwrap();
    let mut matched = vec![false; found.len()];
    for e in expected {
        let name = e["name"].as_str().unwrap();
        let want_parts = &t.keys[name];
        let i = found
            .iter()
            .position(|c| {
                let parts: BTreeMap<String, String> =
                    serde_json::from_value(c["parts"].clone()).unwrap();
                &parts == want_parts
            })
            .unwrap_or_else(|| panic!("{name} not found: {want_parts:?}"));
        matched[i] = true;
        let c = &found[i];
        assert_eq!(c["rule"], e["rule"], "{name}");
        assert_eq!(c["class"], "secret", "{name}");
        let place = c["places"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == e["path"])
            .unwrap_or_else(|| panic!("{name}: not at {}: {c}", e["path"]));
        if !e["line"].is_null() {
            assert_eq!(place["line"], e["line"], "{name}");
        }
        let decoded = place
            .get("decoded")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        assert_eq!(decoded, e["decoded"], "{name}");
        assert!(place["column"].as_u64().unwrap() >= 1);
    }
    let extra: Vec<&Value> = found
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(c, _)| c)
        .collect();
    assert!(extra.is_empty(), "unexpected findings: {extra:#?}");
    assert_eq!(
        v["summary"]["examples_hidden"],
        t.expected["examples_hidden"]
    );
    assert_eq!(v["summary"]["incomplete"], false);
}

#[test]
fn key_id_and_pair_details() {
    let t = make_tree();
    let (_, v) = json(&t.root, &["--show-secrets", "."]);
    let by_id = |id: &str| {
        creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == id)
            .cloned()
            .unwrap()
    };
    // The ASIA pair carries its session token.
    let s = by_id(&t.keys["ini-session"]["key_id"]);
    assert_eq!(
        s["parts"]["session_token"],
        t.keys["ini-session"]["session_token"]
    );
    // The SQLite row holds the credential twice (source and source_raw): one credential.
    let q = by_id(&t.keys["sqlite-history"]["key_id"]);
    assert_eq!(q["places"].as_array().unwrap().len(), 2);
    // The account id is decoded offline wherever the key id's format carries it.
    for c in creds(&v) {
        if let Some(id) = c["parts"]["key_id"].as_str() {
            assert_eq!(
                c["account_id"].as_str().map(str::to_string),
                keyhound::aws::offline::account_id(id)
            );
        }
    }
}

#[test]
fn examples_are_shown_only_when_asked() {
    let t = make_tree();
    let (_, v) = json(&t.root, &["--include-examples", "--show-secrets", "docs"]);
    let ex: Vec<&Value> = creds(&v)
        .iter()
        .filter(|c| c["class"] == "example")
        .collect();
    assert_eq!(ex.len(), 2, "{v:#}");
    assert!(ex
        .iter()
        .any(|c| c["rule"] == "aws-access-key" && c["parts"]["key_id"] == "AKIAIOSFODNN7EXAMPLE"));
    assert!(ex
        .iter()
        .any(|c| c["parts"]["key_id"] == "AKIAXXXXXXXXXXXXXXXX"));
    let (code, v) = json(&t.root, &["docs"]);
    assert_eq!(code, 0, "examples alone are not findings");
    assert!(creds(&v).is_empty());
}

#[test]
fn no_output_format_leaks_a_secret() {
    let t = make_tree();
    let secrets: Vec<&String> = t
        .keys
        .values()
        .flat_map(|parts| parts.iter().filter(|(k, _)| *k != "key_id").map(|(_, v)| v))
        .collect();
    for format in ["text", "json", "jsonl", "sarif"] {
        let (code, out, err) = run(&t.root, &["scan", "--format", format, "."]);
        assert_eq!(code, 1);
        for s in &secrets {
            // Every secret's recognisable middle must be absent.
            let probe = &s[s.len() / 4..s.len() / 4 + 12.min(s.len() / 2)];
            assert!(!out.contains(probe), "{format} leaks {probe}");
            assert!(!err.contains(probe), "{format} stderr leaks {probe}");
        }
    }
    // And --show-secrets does show them.
    let (_, out, _) = run(&t.root, &["scan", "--show-secrets", "."]);
    assert!(out.contains(&t.keys["terraform"]["secret"]));
}

#[test]
fn sarif_of_the_tree_validates() {
    let t = make_tree();
    let (code, out, _) = run(&t.root, &["scan", "--format", "sarif", "."]);
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&sarif);
    multitool_validate(&out);
    let run0 = &sarif["runs"][0];
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), 27, "one result per place");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    for r in rules {
        let sev: f64 = r["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(sev > 0.0 && sev <= 10.0);
        assert!(r["help"]["text"].as_str().unwrap().len() > 20, "{r}");
    }
    for res in results {
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains("://"), "{uri}");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
        assert!(res["partialFingerprints"]["primaryLocationLineHash"].is_string());
        let rid = res["ruleId"].as_str().unwrap();
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], rid);
    }
}

/// `scan --git-history`: a vendored repository whose key is only in its history, a linked
/// worktree's `.git` file, and a bare backup of the same repository: the history key found
/// once (each blob once across every repository), with the repository as its place; without
/// the flag only the working files are scanned.
#[test]
fn git_history_of_nested_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut g = Keys::new(2001);
    let (gone, msg_key) = (g.pair(), g.pair());
    let lib = root.join("vendor/lib");
    std::fs::create_dir_all(&lib).unwrap();
    git(&lib, &["init", "-q"]);
    write(
        &lib,
        "settings.py",
        format!("KEY = '{}'\nSECRET = '{}'\n", gone.0, gone.1),
    );
    git(&lib, &["add", "."]);
    git(&lib, &["commit", "-qm", "settings"]);
    write(&lib, "settings.py", "KEY = os.environ['KEY']\n");
    let msg = format!(
        "rotate\n\naws_access_key_id={}\naws_secret_access_key={}\n",
        msg_key.0, msg_key.1
    );
    git(&lib, &["commit", "-qam", &msg]);
    // A linked worktree (its `.git` is a file) and a bare copy (a backup): the same blobs and
    // commits, not scanned twice.
    git(&lib, &["worktree", "add", "-q", "../wt"]);
    let st = std::process::Command::new("git")
        .args(["clone", "-q", "--bare", lib.to_str().unwrap(), "backup.git"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(st.success());

    let (code, out, err) = run(root, &["scan", ".", "--format", "json", "--show-secrets"]);
    assert_eq!(code, 0, "working files only: {out}\n{err}");
    let (code, out, err) = run(
        root,
        &[
            "scan",
            ".",
            "--git-history",
            "--format",
            "json",
            "--show-secrets",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cs = creds(&v);
    assert_eq!(cs.len(), 2, "{v:#}");
    let c = cs
        .iter()
        .find(|c| c["parts"]["key_id"] == gone.0.as_str())
        .unwrap();
    assert_eq!(c["parts"]["secret"], gone.1.as_str());
    let places = c["places"].as_array().unwrap();
    assert_eq!(
        places.len(),
        1,
        "each blob once across the repositories: {places:#?}"
    );
    let path = places[0]["path"].as_str().unwrap();
    assert!(
        ["backup.git @ ", "vendor/lib/.git @ ", "vendor/wt/.git @ "]
            .iter()
            .any(|p| path.starts_with(p)),
        "{path}"
    );
    assert_eq!(places[0]["inner"], serde_json::json!(["settings.py"]));
    let m = cs
        .iter()
        .find(|c| c["parts"]["key_id"] == msg_key.0.as_str())
        .unwrap();
    assert_eq!(m["places"].as_array().unwrap().len(), 1);
    assert_eq!(m["places"][0]["git"]["message"], "commit");
}

/// `scan --git-history` on backups: a home directory's tarball holding a clone whose keys are
/// only in history (one packed by `git gc`, one loose), and a zip of a bare repository (as a
/// git server keeps them): each key found with the repository inside the archive as its place,
/// `home.tgz › home/dev/app/.git @ commit › settings.py`; without the flag, the compressed
/// objects hide them.
#[test]
fn git_history_of_repositories_inside_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2011);
    let (packed, loose, bare) = (g.pair(), g.pair(), g.pair());
    let loose_commit = repo_with_removed_keys(&d.join("home/dev/app"), &packed, &loose);
    repo_with_removed_file(&d.join("other"), "deploy.env", &settings(&bare));
    let sh = |args: &[&str]| {
        let st = Command::new(args[0])
            .args(&args[1..])
            .current_dir(d)
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    };
    sh(&["git", "clone", "-q", "--bare", "other", "srv/git/other.git"]);
    std::fs::create_dir_all(d.join("backups")).unwrap();
    sh(&["tar", "czf", "backups/home.tgz", "home"]);
    sh(&["zip", "-q", "-r", "backups/git-server.zip", "srv"]);
    let backups = d.join("backups");

    let (code, out, err) = run(&backups, &["scan", ".", "--format", "json"]);
    assert_eq!(code, 0, "compressed objects hide the keys: {out}\n{err}");
    let (code, out, err) = run(
        &backups,
        &[
            "scan",
            ".",
            "--git-history",
            "--format",
            "json",
            "--show-secrets",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(creds(&v).len(), 3, "{v:#}");
    for (k, repo) in [
        (&packed, "home.tgz › home/dev/app/.git @ "),
        (&loose, "home.tgz › home/dev/app/.git @ "),
        (&bare, "git-server.zip › srv/git/other.git @ "),
    ] {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.0.as_str())
            .unwrap_or_else(|| panic!("{repo}: {v:#}"));
        assert_eq!(c["parts"]["secret"], k.1.as_str(), "the pair is whole");
        let places = c["places"].as_array().unwrap();
        assert_eq!(places.len(), 1, "{places:#?}");
        let path = places[0]["path"].as_str().unwrap();
        assert!(path.starts_with(repo), "{path}");
        let file = if repo.contains("srv") {
            "deploy.env"
        } else {
            "settings.py"
        };
        assert_eq!(places[0]["inner"], serde_json::json!([file]));
    }
    let c = creds(&v)
        .iter()
        .find(|c| c["parts"]["key_id"] == loose.0.as_str())
        .unwrap();
    let path = c["places"][0]["path"].as_str().unwrap();
    assert!(path.ends_with(&loose_commit[..12]), "{path}");
}

/// A key pair written by a JSON encoder that escapes `/` as `\/` (PHP's json_encode) or as
/// `\u002f`: one pair, with the same fingerprint as the unescaped pair, at the escaped text's
/// place.
#[test]
fn json_escaped_secrets_pair_with_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2002);
    let mut k = g.pair();
    while !k.1.contains('/') {
        k = g.pair();
    }
    let plain = format!(
        "{{\"aws_access_key_id\": \"{}\", \"aws_secret_access_key\": \"{}\"}}\n",
        k.0, k.1
    );
    write(d, "plain/creds.json", &plain);
    write(d, "php/creds.json", plain.replace('/', "\\/"));
    write(d, "js/creds.json", plain.replace('/', "\\u002f"));
    let (code, out, err) = run(d, &["scan", ".", "--format", "json", "--show-secrets"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cs = creds(&v);
    assert_eq!(cs.len(), 1, "one credential, every encoding: {v:#}");
    assert_eq!(cs[0]["parts"]["secret"], k.1.as_str());
    let places = cs[0]["places"].as_array().unwrap();
    assert_eq!(places.len(), 3, "{places:#?}");
    for p in places {
        let file = p["path"].as_str().unwrap();
        let data = std::fs::read(d.join(file)).unwrap();
        if file.starts_with("plain") {
            assert!(p.get("decoded").is_none());
        } else {
            assert_eq!(p["decoded"], serde_json::json!(["json"]), "{p}");
        }
        // The secret's place is the escaped text in the file.
        let (s, e) = (
            p["offset"].as_u64().unwrap(),
            p["end_offset"].as_u64().unwrap(),
        );
        assert!(e > s && e as usize <= data.len(), "{p}");
    }
}
