//! The real pre-commit framework (installed into ./.venv by scripts/test) runs this checkout's
//! hooks: a staged key makes `git commit` fail, a clean change commits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pre_commit() -> PathBuf {
    let p = manifest().join(".venv/bin/pre-commit");
    assert!(
        p.exists(),
        "{} is missing; run scripts/test, which installs it",
        p.display()
    );
    p
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    path: String,
}

impl Sandbox {
    /// A repository whose .pre-commit-config.yaml points at this checkout's HEAD.
    fn new(hook_id: &str) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_keyhound")).parent().unwrap();
        let venv_bin = pre_commit().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}:{}",
            venv_bin.display(),
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let rev = String::from_utf8(
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(manifest())
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let s = Sandbox {
            _tmp: tmp,
            repo,
            home,
            path,
        };
        s.git(&["init", "-q"]);
        write(
            &s.repo,
            ".pre-commit-config.yaml",
            format!(
                "repos:\n  - repo: {}\n    rev: {}\n    hooks:\n      - id: {hook_id}\n",
                manifest().display(),
                rev.trim()
            ),
        );
        s
    }

    fn cmd(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(&self.repo)
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("PRE_COMMIT_HOME", self.home.join("pre-commit"))
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // The rust hook builds keyhound with cargo: share one target directory, and skip
            // link-time optimisation (the same code, built in a third of the time).
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pre-commit"),
            )
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .output()
            .expect("command runs")
    }

    fn git(&self, args: &[&str]) -> Output {
        let mut a = vec![
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ];
        a.extend_from_slice(args);
        self.cmd(Path::new("git"), &a)
    }

    /// Installs the hook, then checks a key is blocked and a clean change goes through.
    fn check(&self) {
        let out = self.cmd(&pre_commit(), &["install"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        write(&self.repo, "README.md", "hello\n");
        self.git(&["add", "."]);
        let out = self.git(&["commit", "-m", "clean start"]);
        assert!(
            out.status.success(),
            "a clean commit passes: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let (k, s) = Keys::new(21).pair();
        write(
            &self.repo,
            "deploy.env",
            format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
        );
        self.git(&["add", "deploy.env"]);
        let out = self.git(&["commit", "-m", "add deploy settings"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "a staged key blocks the commit: {text}"
        );
        assert!(text.contains("AWS access key pair"), "{text}");
        assert!(text.contains("deploy.env:1:"), "{text}");
        assert!(!text.contains(&s), "the secret is redacted: {text}");
        let log = self.git(&["log", "--oneline"]);
        assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);

        self.git(&["restore", "--staged", "deploy.env"]);
        std::fs::remove_file(self.repo.join("deploy.env")).unwrap();
        write(&self.repo, "app.py", "print('ok')\n");
        self.git(&["add", "app.py"]);
        let out = self.git(&["commit", "-m", "clean change"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn pre_commit_framework_system_hook() {
    Sandbox::new("keyhound-system").check();
}

#[test]
fn pre_commit_framework_rust_hook_builds_and_blocks() {
    // `language: rust`: pre-commit clones this checkout and builds keyhound with cargo.
    Sandbox::new("keyhound").check();
}
