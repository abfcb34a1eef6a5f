//! `keyhound git`: history, ranges, unreachable objects, staged changes and the hook, on
//! repositories built with the git CLI.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn ini((k, s): &(String, String)) -> String {
    format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n")
}

fn git_json(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["git", "--format", "json", "--show-secrets"];
    a.extend_from_slice(args);
    let (code, out, err) = run(dir, &a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, err)
}

fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    creds(v).iter().find(|c| c["parts"]["key_id"] == key)
}

struct Repo {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    keys: Vec<(String, String)>,
    add_commit: String,
    remove_commit: String,
}

/// main: add a key, then delete it; feature: a key only there; a key only in the stash; a key
/// only in an unreachable commit.
fn history_repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    std::fs::create_dir(&dir).unwrap();
    let mut g = Keys::new(11);
    let keys: Vec<(String, String)> = (0..4).map(|_| g.pair()).collect();
    git(&dir, &["init", "-q"]);
    write(&dir, "README.md", "demo\n");
    write(&dir, "config/creds.ini", ini(&keys[0]));
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "add config"]);
    let add_commit = git(&dir, &["rev-parse", "HEAD"]);
    git(&dir, &["rm", "-q", "config/creds.ini"]);
    git(&dir, &["commit", "-qm", "remove credentials"]);
    let remove_commit = git(&dir, &["rev-parse", "HEAD"]);

    git(&dir, &["checkout", "-qb", "feature"]);
    write(&dir, "feature.env", ini(&keys[1]));
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "feature work"]);
    git(&dir, &["checkout", "-q", "main"]);

    write(&dir, "README.md", format!("demo\n{}", ini(&keys[2])));
    git(&dir, &["stash", "-q"]);

    git(&dir, &["checkout", "-qb", "tmp"]);
    write(&dir, "lost.ini", ini(&keys[3]));
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "to be lost"]);
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["branch", "-qD", "tmp"]);
    git(&dir, &["reflog", "expire", "--expire=now", "--all"]);
    Repo {
        _tmp: tmp,
        dir,
        keys,
        add_commit,
        remove_commit,
    }
}

#[test]
fn history_finds_deleted_branch_and_stash_keys_with_their_commits() {
    let r = history_repo();
    let (code, v, err) = git_json(&r.dir, &[]);
    assert_eq!(code, 1, "{err}");
    let c = find_key(&v, &r.keys[0].0).expect("deleted key found");
    assert_eq!(c["rule"], "aws-access-key");
    let p = &c["places"][0];
    assert_eq!(p["path"], "config/creds.ini");
    assert_eq!(p["line"], 2);
    let g = &p["git"];
    assert_eq!(g["commit"]["id"], r.add_commit.as_str());
    assert_eq!(g["commit"]["author"], "Dev One");
    assert_eq!(g["commit"]["email"], "dev@example.com");
    assert_eq!(g["commit"]["summary"], "add config");
    assert!(g["commit"]["date"].as_str().unwrap().len() >= 20);
    assert_eq!(g["at_head"], false);
    assert_eq!(g["removed_in"]["id"], r.remove_commit.as_str());

    let f = find_key(&v, &r.keys[1].0).expect("branch-only key found");
    assert_eq!(f["places"][0]["git"]["commit"]["summary"], "feature work");
    let s = find_key(&v, &r.keys[2].0).expect("stash-only key found");
    assert_eq!(s["places"][0]["path"], "README.md");
    assert!(
        find_key(&v, &r.keys[3].0).is_none(),
        "unreachable key needs --all-objects"
    );
    assert_eq!(creds(&v).len(), 3);

    let (_, v, _) = git_json(&r.dir, &["--all-objects"]);
    let u = find_key(&v, &r.keys[3].0).expect("unreachable key found with --all-objects");
    assert_eq!(u["places"][0]["git"]["commit"]["summary"], "to be lost");
    assert_eq!(creds(&v).len(), 4);
}

/// The whole history is read from the packs while the trees are walked, and objects outside
/// them (loose) by id: packed, loose, or both, the same credentials with the same places; an
/// unreachable blob kept in the pack is still left to `--all-objects`; and the blobs, commit
/// messages and bytes counted are those history reaches.
#[test]
fn packed_and_loose_history_give_the_same_report() {
    let r = history_repo();
    let report = |args: &[&str]| {
        let (code, v, err) = git_json(&r.dir, args);
        assert_eq!(code, 1, "{err}");
        let s = &v["summary"];
        (
            creds(&v).clone(),
            (s["files"].clone(), s["bytes"].clone(), s["commits"].clone()),
        )
    };
    let loose = report(&[]);
    let loose_all = report(&["--all-objects"]);
    assert_eq!(loose.0.len(), 3);
    assert_eq!(loose_all.0.len(), 4);
    // Reachable objects in one pack, the unreachable commit, its tree and blob in a second.
    git(&r.dir, &["repack", "-a", "-d", "-q"]);
    let objects = r.dir.join(".git/objects");
    let mut ids = String::new();
    for d in std::fs::read_dir(&objects).unwrap().flatten() {
        let name = d.file_name().to_string_lossy().to_string();
        if name.len() == 2 {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                ids += &format!("{name}{}\n", f.file_name().to_string_lossy());
            }
        }
    }
    assert_eq!(ids.lines().count(), 3, "the lost commit's objects: {ids}");
    let mut pack = std::process::Command::new("git")
        .args(["pack-objects", "-q", ".git/objects/pack/pack"])
        .current_dir(&r.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    pack.stdin
        .take()
        .unwrap()
        .write_all(ids.as_bytes())
        .unwrap();
    assert!(pack.wait().unwrap().success());
    git(&r.dir, &["prune-packed"]);
    let counts = git(&r.dir, &["count-objects", "-v"]);
    assert!(counts.starts_with("count: 0\n"), "{counts}");
    assert!(counts.contains("packs: 2"), "{counts}");
    assert_eq!(report(&[]), loose, "everything packed");
    assert_eq!(report(&["--all-objects"]), loose_all, "everything packed");

    // Loose objects on top of the pack: a key in a file and one in a commit message.
    let mut g = Keys::new(12);
    let (in_file, in_message) = (g.pair(), g.pair());
    write(&r.dir, "later.ini", ini(&in_file));
    git(&r.dir, &["add", "."]);
    git(
        &r.dir,
        &["commit", "-qm", &format!("later\n\n{}", ini(&in_message))],
    );
    let later = git(&r.dir, &["rev-parse", "HEAD"]);
    let (code, v, err) = git_json(&r.dir, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(creds(&v).len(), 5);
    let f = find_key(&v, &in_file.0).expect("the loose blob's key");
    assert_eq!(f["places"][0]["git"]["commit"]["id"], later.as_str());
    let m = find_key(&v, &in_message.0).expect("the loose commit's message");
    assert_eq!(m["places"][0]["path"], format!("commit {later}"));
    assert_eq!(m["places"][0]["git"]["commit"]["summary"], "later");
    let d = find_key(&v, &r.keys[0].0).expect("the packed key");
    assert_eq!(
        d["places"][0]["git"]["removed_in"]["id"],
        r.remove_commit.as_str()
    );

    // And packed again: the same.
    git(&r.dir, &["gc", "-q"]);
    let (_, w, _) = git_json(&r.dir, &[]);
    assert_eq!(creds(&w), creds(&v));
    assert_eq!(w["summary"]["files"], v["summary"]["files"]);
    assert_eq!(w["summary"]["bytes"], v["summary"]["bytes"]);
    // Two shards of the packed history: each blob and message in one of them.
    let ids = |v: &Value| -> Vec<String> {
        creds(v)
            .iter()
            .map(|c| c["parts"]["key_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (mut keys, mut files) = (Vec::new(), 0);
    for k in ["1/2", "2/2"] {
        let (_, s, err) = git_json(&r.dir, &["--shard", k]);
        assert!(s["summary"]["files"].as_u64().is_some(), "{err}");
        keys.extend(ids(&s));
        files += s["summary"]["files"].as_u64().unwrap();
    }
    keys.sort();
    let mut whole = ids(&w);
    whole.sort();
    assert_eq!(keys, whole);
    assert_eq!(files, w["summary"]["files"].as_u64().unwrap());
}

#[test]
fn branch_and_range_limit_the_history() {
    let r = history_repo();
    let (_, v, _) = git_json(&r.dir, &["--branch", "main"]);
    let keys: Vec<&str> = creds(&v)
        .iter()
        .map(|c| c["parts"]["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![r.keys[0].0.as_str()]);

    let (code, v, _) = git_json(&r.dir, &["--range", "main..feature"]);
    assert_eq!(code, 1);
    let keys: Vec<&str> = creds(&v)
        .iter()
        .map(|c| c["parts"]["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![r.keys[1].0.as_str()]);
    assert_eq!(v["scan"]["kind"], "pull-request");

    let (code, v, _) = git_json(
        &r.dir,
        &["--since-commit", &r.remove_commit, "--branch", "main"],
    );
    assert_eq!(code, 0, "nothing after the removal on main: {v:#}");

    let (code, _, err) = run(&r.dir, &["git", "--range", "main..nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn history_in_every_format() {
    let r = history_repo();
    let (code, out, _) = run(&r.dir, &["git", "--format", "sarif"]);
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&sarif);
    let run0 = &sarif["runs"][0];
    assert_eq!(run0["automationDetails"]["id"], "keyhound/history/");
    let res = run0["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["properties"]["commit"] == r.add_commit.as_str())
        .expect("a result names the commit");
    assert_eq!(res["properties"]["author"], "Dev One");
    assert!(res["message"]["text"]
        .as_str()
        .unwrap()
        .contains(&r.add_commit[..12]));
    assert_eq!(
        res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "config/creds.ini"
    );

    // A pull-request range is its own category: it never closes the history scan's alerts.
    let (code, out, _) = run(
        &r.dir,
        &["git", "--range", "main..feature", "--format", "sarif"],
    );
    assert_eq!(code, 1);
    let pr: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&pr);
    assert_eq!(
        pr["runs"][0]["automationDetails"]["id"],
        "keyhound/pull-request/"
    );
    assert_eq!(pr["runs"][0]["results"].as_array().unwrap().len(), 1);

    let (_, text, _) = run(&r.dir, &["git"]);
    assert!(
        text.contains(&format!("commit {}", &r.add_commit[..12])),
        "{text}"
    );
    assert!(text.contains("history only: removed in"), "{text}");
    assert!(
        text.contains("Dev One <dev@example.com>: add config"),
        "{text}"
    );
    assert!(text.contains("from "), "{text}");
}

#[test]
fn the_same_secret_in_a_thousand_commits_is_one_credential_scanned_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    git(dir, &["init", "-q"]);
    let pair = Keys::new(12).pair();
    let secret_file = ini(&pair);
    // 1,000 commits through fast-import: each changes counter.txt; creds.ini never changes.
    let mut stream = String::new();
    for i in 1..=1000 {
        let counter = format!("{i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{i}\ncommitter Dev One <dev@example.com> {} +0000\ndata 6\nc{:04}\n",
            1_700_000_000 + i,
            i
        ));
        if i > 1 {
            stream.push_str(&format!("from :{}\n", i - 1));
        }
        stream.push_str(&format!(
            "M 100644 inline counter.txt\ndata {}\n{counter}\nM 100644 inline creds.ini\ndata {}\n{secret_file}\n",
            counter.len(),
            secret_file.len()
        ));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let (code, v, _) = git_json(dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(creds(&v).len(), 1);
    assert_eq!(creds(&v)[0]["places"].as_array().unwrap().len(), 1);
    assert_eq!(v["summary"]["commits"], 1000);
    // 1,000 counter versions and one credentials file: every blob read once.
    assert_eq!(v["summary"]["files"], 1001);
}

#[test]
fn staged_scans_the_index_and_only_added_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut g = Keys::new(13);
    let old = g.pair();
    let new = g.pair();
    git(dir, &["init", "-q"]);
    // A key committed long ago (allowed then); this commit must not be blamed for it.
    write(
        dir,
        "legacy.ini",
        format!("{}# keyhound:allow\n", ini(&old)),
    );
    write(dir, "app.py", "print('hi')\n");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "init"]);
    write(dir, "legacy.ini", ini(&old));
    git(dir, &["add", "legacy.ini"]);
    let (code, out, _) = run(dir, &["git", "--staged"]);
    assert_eq!(code, 0, "lines HEAD already had are not new: {out}");

    // Staged content counts, not the working file.
    write(
        dir,
        "app.py",
        format!("print('hi')\nKEY = '{}'\nSECRET = '{}'\n", new.0, new.1),
    );
    git(dir, &["add", "app.py"]);
    write(dir, "app.py", "print('hi')\n");
    let (code, out, err) = run(dir, &["git", "--staged"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("app.py:2:"), "{out}");
    assert!(err.contains("git restore --staged"), "{err}");
    assert!(err.contains("keyhound:allow"), "{err}");
    let (code, _, _) = run(dir, &["protect"]);
    assert_eq!(code, 1, "protect is git --staged");

    // Unstaged, the working file's key is not the commit's business.
    git(dir, &["restore", "--staged", "app.py"]);
    write(
        dir,
        "app.py",
        format!("KEY = '{}'\nSECRET = '{}'\n", new.0, new.1),
    );
    let (code, _, _) = run(dir, &["git", "--staged"]);
    assert_eq!(code, 0);
}

#[test]
fn install_hook_blocks_commits_that_add_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    git(dir, &["init", "-q"]);
    write(dir, "a.txt", "a\n");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "init"]);
    let (code, out, err) = run(dir, &["install-hook"]);
    assert_eq!(code, 0, "{err}");
    let hook = dir.join(".git/hooks/pre-commit");
    assert!(out.contains("pre-commit"));
    use std::os::unix::fs::PermissionsExt;
    assert!(std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111 != 0);

    let key = Keys::new(14).pair();
    write(dir, "creds.ini", ini(&key));
    git(dir, &["add", "creds.ini"]);
    let out = Command::new("git")
        .args(["-c", "commit.gpgsign=false", "commit", "-qm", "oops"])
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "D")
        .env("GIT_AUTHOR_EMAIL", "d@example.com")
        .env("GIT_COMMITTER_NAME", "D")
        .env("GIT_COMMITTER_EMAIL", "d@example.com")
        .env("PATH", path_with_keyhound())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook blocks the commit");
    assert!(String::from_utf8_lossy(&out.stderr).contains("commit blocked"));
    git(dir, &["restore", "--staged", "creds.ini"]);
    std::fs::remove_file(dir.join("creds.ini")).unwrap();
    write(dir, "b.txt", "b\n");
    git(dir, &["add", "b.txt"]);
    git(dir, &["commit", "-qm", "clean"]);

    // A foreign hook is kept unless --force; core.hooksPath is honoured.
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let (code, _, err) = run(dir, &["install-hook"]);
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    let (code, _, _) = run(dir, &["install-hook", "--force"]);
    assert_eq!(code, 0);
    assert!(std::fs::read_to_string(&hook).unwrap().contains("keyhound"));
    git(dir, &["config", "core.hooksPath", "githooks"]);
    let (code, _, _) = run(dir, &["install-hook"]);
    assert_eq!(code, 0);
    assert!(dir.join("githooks/pre-commit").exists());
}

/// PATH with the keyhound under test first.
fn path_with_keyhound() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_keyhound"))
        .parent()
        .unwrap()
        .to_path_buf();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn bare_shallow_and_bad_repositories() {
    let r = history_repo();
    let parent = r.dir.parent().unwrap();
    git(parent, &["clone", "-q", "--bare", "repo", "bare.git"]);
    let (code, v, _) = git_json(parent, &["bare.git"]);
    assert_eq!(code, 1);
    assert!(
        find_key(&v, &r.keys[1].0).is_some(),
        "bare clone has the feature branch"
    );

    git(&r.dir, &["worktree", "add", "-q", "../wt", "feature"]);
    let (code, v, _) = git_json(parent, &["wt"]);
    assert_eq!(code, 1);
    assert!(
        find_key(&v, &r.keys[0].0).is_some(),
        "a linked worktree sees all refs"
    );
    let (code, out, _) = run(&parent.join("wt"), &["git", "--staged"]);
    assert_eq!(code, 0, "{out}");

    let url = format!("file://{}", r.dir.display());
    git(
        parent,
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            &url,
            "shallow",
        ],
    );
    let (_, _, err) = run(parent, &["git", "shallow"]);
    assert!(err.contains("shallow clone"), "{err}");

    let (code, _, err) = run(parent, &["git", "/nonexistent/repo"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/repo"), "{err}");

    // A missing object: named, the rest still scanned, exit 2.
    let blob = git(&r.dir, &["rev-parse", "feature:feature.env"]);
    let obj = r.dir.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
    std::fs::remove_file(obj).unwrap();
    let (code, v, err) = git_json(&r.dir, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&blob), "{err}");
    assert!(find_key(&v, &r.keys[0].0).is_some());
    assert_eq!(v["summary"]["incomplete"], true);
}

#[test]
fn this_repository_history_is_clean() {
    // Dogfood: no key-shaped string was ever committed here.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join(".git").exists() {
        panic!("run the tests from a git checkout");
    }
    let (code, out, err) = run(root, &["git", "."]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Keys only in a commit message and only in an annotated tag's message are found, each once,
/// with their commit or tag as the place (text, JSON and SARIF name them as messages).
#[test]
fn commit_and_tag_messages_are_scanned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut g = Keys::new(2000);
    let (in_commit, in_tag) = (g.pair(), g.pair());
    git(dir, &["init", "-q"]);
    write(dir, "README.md", "demo\n");
    git(dir, &["add", "."]);
    let msg = format!("deploy fix\n\nused these to test:\n{}", ini(&in_commit));
    git(dir, &["commit", "-qm", &msg]);
    let commit = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "later"]);
    git(
        dir,
        &[
            "tag",
            "-a",
            "v1.0",
            "-m",
            &format!("release\n{}", ini(&in_tag)),
        ],
    );
    let tag = git(dir, &["rev-parse", "v1.0"]);
    let head = git(dir, &["rev-parse", "HEAD"]);

    let (code, v, err) = git_json(dir, &[]);
    assert_eq!(code, 1, "{err}");
    let c = find_key(&v, &in_commit.0).expect("the commit message's key");
    assert_eq!(c["parts"]["secret"], in_commit.1.as_str(), "a pair");
    let places = c["places"].as_array().unwrap();
    assert_eq!(places.len(), 1, "{places:#?}");
    assert_eq!(places[0]["path"], format!("commit {commit}"));
    assert_eq!(places[0]["inner"], serde_json::json!(["message"]));
    assert_eq!(places[0]["git"]["message"], "commit");
    assert_eq!(places[0]["git"]["commit"]["id"], commit.as_str());
    let t = find_key(&v, &in_tag.0).expect("the tag message's key");
    let places = t["places"].as_array().unwrap();
    assert_eq!(places.len(), 1);
    assert_eq!(places[0]["path"], format!("tag v1.0 ({tag})"));
    assert_eq!(places[0]["git"]["message"], "tag v1.0");
    assert_eq!(
        places[0]["git"]["commit"]["id"],
        head.as_str(),
        "what the tag points at"
    );

    let (_, text, _) = run(dir, &["git"]);
    assert!(text.contains("(in the commit message)"), "{text}");
    assert!(text.contains("(in the tag v1.0 message)"), "{text}");
    let (_, out, _) = run(dir, &["git", "--format", "sarif"]);
    let s: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&s);
    let kinds: Vec<&str> = s["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["properties"]["gitMessage"].as_str())
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

/// `git --repos FILE`: repositories served by `git daemon` on loopback (cloned bare with gix
/// into --clone-dir) and a local path, as one scan, each with its keys only in history and its
/// places prefixed by the repository as listed; the same clone reused by a second run; in 2
/// shards (whole repositories each) merged, the single report; split by the sizes given.
#[test]
fn many_repositories_cloned_over_git_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2104);
    let mut keys = Vec::new();
    for name in ["api", "web", "local"] {
        let w = d.join("work").join(name);
        std::fs::create_dir_all(&w).unwrap();
        git(&w, &["init", "-q"]);
        let k = g.pair();
        write(
            &w,
            "deploy.env",
            format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", k.0, k.1),
        );
        git(&w, &["add", "."]);
        git(&w, &["commit", "-qm", "deploy"]);
        git(&w, &["rm", "-q", "deploy.env"]);
        git(&w, &["commit", "-qm", "no keys in git"]);
        keys.push(k);
        if name != "local" {
            let srv = d.join("srv");
            std::fs::create_dir_all(&srv).unwrap();
            let st = Command::new("git")
                .args(["clone", "-q", "--bare", w.to_str().unwrap()])
                .arg(srv.join(format!("{name}.git")))
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    /// Stops the daemon however the test ends.
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _daemon = Daemon(
        Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", d.join("srv").display()))
            .arg(d.join("srv"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "git daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = |n: &str| format!("git://127.0.0.1:{port}/{n}.git");
    let local = d.join("work/local");
    write(
        d,
        "repos.txt",
        format!(
            "# the services\n{}\n{}\n\n{}\n",
            url("api"),
            url("web"),
            local.display()
        ),
    );
    let args = ["--repos", "repos.txt", "--clone-dir", "clones"];
    let (code, v, err) = git_json(d, &args);
    assert_eq!(code, 1, "{err}");
    assert_eq!(creds(&v).len(), 3, "{v:#}");
    for (k, place) in keys
        .iter()
        .zip([url("api"), url("web"), local.display().to_string()])
    {
        let c = find_key(&v, &k.0).unwrap_or_else(|| panic!("{place}: {v:#}"));
        let p = &c["places"][0];
        assert!(
            p["path"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{place} @ ")),
            "{p}"
        );
        assert_eq!(p["inner"], serde_json::json!(["deploy.env"]));
    }
    // The clones are reused.
    let clones = std::fs::read_dir(d.join("clones")).unwrap().count();
    assert_eq!(clones, 2);
    let (code, again, _) = git_json(d, &args);
    assert_eq!(code, 1);
    assert_eq!(place_keys(&again), place_keys(&v));

    // Two parts, whole repositories each, merged.
    let parts = tempfile::tempdir().unwrap();
    for k in 1..=2 {
        let f = parts.path().join(format!("{k}.json"));
        let shard = format!("{k}/2");
        let mut a = vec![
            "git",
            "--format",
            "json",
            "--show-secrets",
            "--shard",
            &shard,
            "-o",
        ];
        a.push(f.to_str().unwrap());
        a.extend(args);
        let (code, _, err) = run(d, &a);
        assert!(code <= 1, "{err}");
    }
    let merged = merged(d, parts.path());
    assert_eq!(place_keys(&merged), place_keys(&v));

    // Split by size: api said to be big takes a part alone; web (said small) and the local
    // repository (measured) share the other.
    write(
        d,
        "sized.txt",
        format!(
            "{} 5g\n{} 1k\n{}\n",
            url("api"),
            url("web"),
            local.display()
        ),
    );
    let holds = |k: u32| {
        let shard = format!("{k}/2");
        let a = [
            "git",
            "--format",
            "json",
            "--shard",
            &shard,
            "--repos",
            "sized.txt",
            "--clone-dir",
            "clones",
        ];
        let (code, out, err) = run(d, &a);
        assert!(code <= 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut roots: Vec<String> = creds(&v)
            .iter()
            .map(|c| {
                let p = c["places"][0]["path"].as_str().unwrap();
                p.split(" @ ").next().unwrap().to_string()
            })
            .collect();
        roots.sort();
        roots
    };
    assert_eq!(holds(1), [url("api")]);
    let mut rest = vec![url("web"), local.display().to_string()];
    rest.sort();
    assert_eq!(holds(2), rest);
}

/// `.keyhound.toml`'s `[allowlist] paths` hold for history as for the tree (gitleaks' rule files
/// say so too): a blob every path of which is allowlisted is not read, whether the pack pass
/// met it or it is read by id (loose), and a corrupt archive there is not opened; a blob also
/// at a path not allowlisted is read. A repository found inside `scan --git-history` matches
/// its paths under its place in the tree.
#[test]
fn allowlisted_paths_hold_for_history() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path();
    let dir = top.join("vendor/lib");
    std::fs::create_dir_all(&dir).unwrap();
    let mut g = Keys::new(21);
    let keys: Vec<(String, String)> = (0..4).map(|_| g.pair()).collect();
    git(&dir, &["init", "-q"]);
    write(&dir, "fixtures/demo.env", ini(&keys[0]));
    write(&dir, "src/app.env", ini(&keys[1]));
    write(&dir, "fixtures/copy.env", ini(&keys[2]));
    write(&dir, "src/copy.env", ini(&keys[2]));
    // A zip whose central directory is gone: opened, it would be named as unreadable.
    write(
        &dir,
        "fixtures/broken.zip",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00broken",
    );
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "fixtures and app"]);
    git(&dir, &["rm", "-rq", "fixtures", "src"]);
    git(&dir, &["commit", "-qm", "remove"]);
    git(&dir, &["gc", "-q"]);
    // Loose objects after the pack: read by id.
    write(&dir, "fixtures/late.env", ini(&keys[3]));
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "late fixture"]);
    git(&dir, &["rm", "-rq", "fixtures"]);
    git(&dir, &["commit", "-qm", "remove it"]);

    let found =
        |v: &Value| -> Vec<bool> { keys.iter().map(|(k, _)| find_key(v, k).is_some()).collect() };
    let (_, v, _) = git_json(&dir, &["."]);
    assert_eq!(found(&v), [true, true, true, true], "{v:#}");

    write(
        &dir,
        ".keyhound.toml",
        "[allowlist]\npaths = ['^fixtures/']\n",
    );
    let (code, v, err) = git_json(&dir, &["."]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(found(&v), [false, true, true, false], "{v:#}");
    // demo.env, broken.zip and late.env; copy.env's blob is also src/copy.env.
    assert_eq!(v["summary"]["skipped"]["allowlisted path"], 3, "{v:#}");
    assert!(
        !v["summary"].to_string().contains("broken.zip"),
        "{:#}",
        v["summary"]
    );

    // From the tree above it, the same repository's paths read `vendor/lib/…`.
    std::fs::remove_file(dir.join(".keyhound.toml")).unwrap();
    write(
        top,
        ".keyhound.toml",
        "[allowlist]\npaths = ['^vendor/lib/fixtures/']\n",
    );
    let (code, out, err) = run(
        top,
        &[
            "scan",
            "--git-history",
            "--format",
            "json",
            "--show-secrets",
            ".",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found(&v), [false, true, true, false], "{v:#}");
}
