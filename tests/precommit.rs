//! The real pre-commit framework (installed into ./.venv by scripts/test) runs this checkout's
//! hooks: a staged key makes `git commit` fail, a clean change commits. (The wheel hook the
//! README shows is checked the same way in tests/release.rs, beside the wheel it installs.)

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::precommit::{pre_commit, Sandbox};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A repository whose .pre-commit-config.yaml points at this checkout's HEAD, hook `hook_id`.
fn sandbox(hook_id: &str) -> Sandbox {
    let rev = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(manifest())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let config = format!(
        "repos:\n  - repo: {}\n    rev: {}\n    hooks:\n      - id: {hook_id}\n",
        manifest().display(),
        rev.trim()
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_keyhound")).parent().unwrap();
    let venv_bin = pre_commit().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        venv_bin.display(),
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The toolchain where it is, though HOME is the sandbox's.
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let from_env = |k: &str, default: PathBuf| {
        (
            k.to_string(),
            std::env::var_os(k).unwrap_or(default.into_os_string()),
        )
    };
    let mut env: Vec<(String, OsString)> = vec![
        ("PATH".into(), path.into()),
        from_env("CARGO_HOME", home.join(".cargo")),
        from_env("RUSTUP_HOME", home.join(".rustup")),
        // The rust hook builds keyhound with cargo: one target directory for every run, and
        // neither optimisation nor link-time optimisation (the same code, built in a fraction of
        // the time and disk; the hook scans a few files).
        (
            "CARGO_TARGET_DIR".into(),
            manifest().join("target/pre-commit").into(),
        ),
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL".into(), "0".into()),
        ("CARGO_PROFILE_RELEASE_LTO".into(), "false".into()),
        ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS".into(), "16".into()),
        ("CARGO_PROFILE_RELEASE_DEBUG".into(), "false".into()),
        // The release profile's per-package `opt-level = 1` for aws-sdk-ec2 and aws-sdk-s3
        // (Cargo.toml) is out of the environment's reach; rustc takes the last `-C opt-level`,
        // and cargo passes RUSTFLAGS after the profile's. In CI on a fresh clone this test took
        // 454 s this way, 734 s with those two optimised.
        ("RUSTFLAGS".into(), "-C opt-level=0".into()),
    ];
    if let Some(t) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        env.push(("RUSTUP_TOOLCHAIN".into(), t));
    }
    Sandbox::new(&config, env)
}

#[test]
fn pre_commit_framework_system_hook() {
    sandbox("keyhound-system").check();
}

#[test]
fn pre_commit_framework_rust_hook_builds_and_blocks() {
    // `language: rust`: pre-commit clones this checkout and builds keyhound with cargo.
    sandbox("keyhound").check();
}
