//! The `scan` command's behaviour: exit codes, suppression, walking rules, big and odd inputs.

mod common;

use std::process::Command;

use common::*;

fn pair_file(keys: &mut Keys) -> (String, String, String) {
    let (k, s) = keys.pair();
    let text = format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n");
    (k, s, text)
}

#[test]
fn exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "clean/readme.txt", "nothing here\n");
    let (code, out, _) = run(tmp.path(), &["scan", "clean"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No secrets found."));

    let (_, _, text) = pair_file(&mut Keys::new(1));
    write(tmp.path(), "dirty/creds", &text);
    let (code, out, _) = run(tmp.path(), &["scan", "dirty"]);
    assert_eq!(code, 1);
    assert!(out.contains("dirty/creds:2:21"), "{out}");

    // A missing input makes the scan incomplete: named, exit 2, the rest still scanned.
    let (code, out, err) = run(tmp.path(), &["scan", "dirty", "no-such-dir"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(out.contains("dirty/creds:2:21"), "{out}");
    assert!(out.contains("Skipped: 1 unreadable"), "{out}");

    // A file that exists but cannot be read (EIO; as root, permission bits would not stop us).
    let (code, _, err) = run(tmp.path(), &["scan", "dirty", "/proc/self/mem"]);
    assert_eq!(code, 2);
    assert!(err.contains("/proc/self/mem"), "{err}");

    // Bad arguments are errors too.
    let (code, _, _) = run(tmp.path(), &["scan", "--format", "xml"]);
    assert_eq!(code, 2);
}

#[test]
fn inline_allow_ignore_file_and_config_allowlists() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(2);
    let (k1, s1) = keys.pair();
    let (k2, s2) = keys.pair();
    let (k3, s3) = keys.pair();
    let (k4, s4) = keys.pair();
    write(
        d,
        "a.env",
        format!("AWS_ACCESS_KEY_ID={k1} # keyhound:allow\nAWS_SECRET_ACCESS_KEY={s1}\n"),
    );
    write(
        d,
        "b.env",
        format!("AWS_ACCESS_KEY_ID={k2}\nAWS_SECRET_ACCESS_KEY={s2}\n"),
    );
    write(
        d,
        "vendor/c.env",
        format!("AWS_ACCESS_KEY_ID={k3}\nAWS_SECRET_ACCESS_KEY={s3}\n"),
    );
    write(
        d,
        "d.env",
        format!("AWS_ACCESS_KEY_ID={k4}\nAWS_SECRET_ACCESS_KEY={s4}\n"),
    );
    let (code, v) = json(d, &["--show-secrets", "."]);
    assert_eq!(code, 1);
    assert_eq!(creds(&v).len(), 3, "inline allow drops a.env");
    assert_eq!(v["summary"]["suppressed"]["keyhound:allow"], 1);
    let fp_b = creds(&v)
        .iter()
        .find(|c| c["parts"]["key_id"] == k2.as_str())
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    write(
        d,
        ".keyhoundignore",
        format!("# reviewed: test account\n{fp_b}\n"),
    );
    write(
        d,
        ".keyhound.toml",
        format!(
            "[allowlist]\npaths = ['^vendor/']\nregexes = ['^{}$']\n",
            &k4[..]
        ),
    );
    let (code, v) = json(d, &["."]);
    assert_eq!(code, 0, "{v:#}");
    assert!(creds(&v).is_empty());
    let sup = &v["summary"]["suppressed"];
    assert_eq!(sup[".keyhoundignore"], 1);
    assert_eq!(sup["allowlist"], 1);
    assert_eq!(v["summary"]["skipped"]["allowlisted path"], 1);
}

#[test]
fn baseline_suppresses_known_and_names_the_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(3);
    let (_, _, t1) = pair_file(&mut keys);
    let (_, _, t2) = pair_file(&mut keys);
    write(d, "src/one.ini", &t1);
    write(d, "src/two.ini", &t2);
    let (code, out, _) = run(
        d,
        &["scan", "--format", "json", "--output", "base.json", "src"],
    );
    assert_eq!(code, 1, "{out}");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("base.json")).unwrap()).unwrap();
    assert_eq!(creds(&base).len(), 2);

    // Known credentials are suppressed: clean exit.
    let (code, v) = json(d, &["--baseline", "base.json", "src"]);
    assert_eq!(code, 0);
    assert_eq!(v["summary"]["suppressed"]["baseline"], 2);

    // One removed, one new: the new one is reported, the removed one named.
    std::fs::remove_file(d.join("src/two.ini")).unwrap();
    let (_, _, t3) = pair_file(&mut keys);
    write(d, "src/three.ini", &t3);
    let (code, v) = json(d, &["--baseline", "base.json", "src"]);
    assert_eq!(code, 1);
    assert_eq!(creds(&v).len(), 1);
    assert_eq!(creds(&v)[0]["places"][0]["path"], "src/three.ini");
    assert_eq!(
        v["summary"]["baseline_missing"].as_array().unwrap().len(),
        1
    );

    // A baseline that is not a report is an error that names it.
    write(d, "bad.json", "[]");
    let (code, _, err) = run(d, &["scan", "--baseline", "bad.json", "src"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.json"), "{err}");
}

#[test]
fn gitignore_git_dir_and_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(4);
    let (_, _, t1) = pair_file(&mut keys);
    let (_, _, t2) = pair_file(&mut keys);
    let (_, _, t3) = pair_file(&mut keys);
    let st = Command::new("git")
        .args(["init", "-q"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(st.success());
    write(d, ".gitignore", "build/\n");
    write(d, "build/out.ini", &t1);
    write(d, ".git/config.bak", &t2);
    write(d, "outside/real.ini", &t3);
    std::os::unix::fs::symlink(d.join("outside"), d.join("repo-link")).unwrap();

    let (code, v) = json(d, &["--show-secrets", "."]);
    let paths: Vec<String> = creds(&v)
        .iter()
        .map(|c| c["places"][0]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, vec!["outside/real.ini"], "{v:#}");
    assert_eq!(code, 1);
    assert_eq!(v["summary"]["skipped"]["symlink not followed"], 1);

    let (_, v) = json(d, &["--no-ignore", "."]);
    let mut paths: Vec<String> = creds(&v)
        .iter()
        .map(|c| c["places"][0]["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, vec!["build/out.ini", "outside/real.ini"]);

    let (_, v) = json(d, &["-L", "."]);
    let places: usize = creds(&v)
        .iter()
        .map(|c| c["places"].as_array().unwrap().len())
        .sum();
    assert_eq!(places, 2, "followed link: same file twice, {v:#}");
}

#[test]
fn big_files_stream_in_windows_without_losing_or_doubling() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(5);
    // 5 MiB of one huge line and lines around it, with pairs planted near every MiB
    // boundary, read through 1 MiB windows.
    let mut data = Vec::new();
    let mut planted = Vec::new();
    let filler = "lorem ipsum dolor sit amet consectetur ".repeat(64);
    for mib in 1..=4usize {
        while data.len() < mib * (1 << 20) - 40 - (mib % 2) * 5000 {
            data.extend_from_slice(filler.as_bytes());
            if mib != 2 {
                data.push(b'\n');
            }
        }
        let (k, s) = keys.pair();
        data.extend_from_slice(
            format!(" aws_access_key_id={k} aws_secret_access_key={s} ").as_bytes(),
        );
        planted.push(k);
    }
    data.extend_from_slice(b"\xff\xfe invalid utf-8 \xc3\x28 tail\n");
    write(d, "big.log", &data);
    // The same after a gzip header that no deflate stream follows: sniffed as an archive from
    // the bytes read first, then scanned raw from its start (not those bytes twice).
    let mut fake = b"\x1f\x8b\x08\x00 not a deflate stream\n".to_vec();
    fake.extend_from_slice(&data);
    write(d, "fake.gz", &fake);
    for (name, data) in [("big.log", &data), ("fake.gz", &fake)] {
        let (code, v) = json(d, &["--buffer-mib", "1", "--show-secrets", name]);
        assert_eq!(code, 1, "{name}");
        let found: Vec<&str> = creds(&v)
            .iter()
            .map(|c| c["parts"]["key_id"].as_str().unwrap())
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        for k in &planted {
            assert!(found.contains(&k.as_str()), "{k} missing");
        }
        for c in creds(&v) {
            assert_eq!(
                c["places"].as_array().unwrap().len(),
                1,
                "reported once: {c}"
            );
            assert_eq!(c["parts"].as_object().unwrap().len(), 2, "paired: {c}");
            // Offsets and lines are those of the whole file.
            let p = &c["places"][0];
            let off = p["offset"].as_u64().unwrap() as usize;
            let k = c["parts"]["key_id"].as_str().unwrap();
            assert_eq!(&data[off..off + 20], k.as_bytes());
            let line = data[..off].iter().filter(|&&b| b == b'\n').count() + 1;
            assert_eq!(p["line"].as_u64().unwrap() as usize, line);
        }
        assert_eq!(
            v["summary"]["bytes"].as_u64().unwrap() as usize,
            data.len(),
            "{name}"
        );
    }
}

#[test]
fn jsonl_output_file_and_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_, _, t) = pair_file(&mut Keys::new(6));
    write(d, "x/creds.ini", &t);
    let (code, out, _) = run(d, &["scan", "--format", "jsonl", "x"]);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "credential");
    assert_eq!(lines[1]["type"], "summary");
    assert_eq!(lines[1]["summary"]["credentials"], 1);

    let (code, out, err) = run(d, &["scan", "--format", "sarif", "-o", "r.sarif", "x"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("1 credential in 1 place"), "{err}");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.sarif")).unwrap()).unwrap();
    validate_sarif(&sarif);

    let (code, out, _) = run(d, &["scan", "-q", "x"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("AWS access key pair") && !out.contains("Scanned"),
        "{out}"
    );
}

#[test]
fn pair_window_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(7);
    let (k, s) = keys.pair();
    write(d, "f.txt", format!("{k}\n\n\n\n\n\n\n{s}\n"));
    let (_, v) = json(d, &["f.txt"]);
    assert_eq!(
        creds(&v)[0]["rule"],
        "aws-access-key-id",
        "7 lines apart: not paired"
    );
    let (_, v) = json(d, &["--pair-window-lines", "8", "f.txt"]);
    assert_eq!(creds(&v)[0]["rule"], "aws-access-key");
    write(d, ".keyhound.toml", "[detect]\npair_lines = 8\n");
    let (_, v) = json(d, &["."]);
    assert_eq!(creds(&v)[0]["rule"], "aws-access-key");
}

#[test]
fn special_files_are_skipped_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let st = Command::new("mkfifo").arg(d.join("pipe")).status().unwrap();
    assert!(st.success());
    write(d, "ok.txt", "fine\n");
    let (code, v) = json(d, &["."]);
    assert_eq!(code, 0);
    assert_eq!(v["summary"]["skipped"]["not a regular file"], 1);
}

#[test]
fn this_repository_is_clean() {
    // Dogfood: the project carries no key-shaped strings.
    let root = env!("CARGO_MANIFEST_DIR");
    let (code, out, err) = run(std::path::Path::new(root), &["scan", "."]);
    assert_eq!(code, 0, "{out}{err}");
}

/// The scanner-only build (`--no-default-features`, run by scripts/test as
/// `cargo test --no-default-features --test cli`): the same findings offline; every AWS command
/// and flag refused before any work, exit 2, saying how to get the default build.
#[test]
#[cfg(not(feature = "aws"))]
fn scanner_only_build_scans_and_refuses_aws_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, _, text) = pair_file(&mut Keys::new(31));
    write(tmp.path(), "creds", &text);
    let (code, out, _) = run(tmp.path(), &["scan", "."]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&k[k.len() - 4..]) && out.contains("creds:2:21"),
        "{out}"
    );
    for args in [
        &["scan", ".", "--verify"][..],
        &["scan", "--owners", "."],
        &[
            "git",
            ".",
            "--notify-sns=arn:aws:sns:us-east-1:123456789012:t",
        ],
        &["snapshot", "--all"],
        &["s3", "s3://bucket"],
        &["audit"],
    ] {
        let (code, out, err) = run(tmp.path(), args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("built without") && err.contains("pip install keyhound"),
            "{args:?}: {err}"
        );
        assert!(
            !out.contains("creds"),
            "refused before scanning: {args:?}: {out}"
        );
    }
}
