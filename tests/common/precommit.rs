//! A git repository driven through the real pre-commit framework (installed into ./.venv by
//! scripts/test): a staged key must make `git commit` fail, a clean change commit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{write, Keys};

/// `.venv/bin/pre-commit`.
pub fn pre_commit() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pre-commit");
    assert!(
        p.exists(),
        "{} is missing; run scripts/test, which installs it",
        p.display()
    );
    p
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct Sandbox {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    /// The whole environment of every command: nothing else is inherited.
    env: Vec<(String, OsString)>,
}

impl Sandbox {
    /// A new repository with `config` as its `.pre-commit-config.yaml`; its commands see only
    /// `env`, a fresh HOME (and pre-commit cache) and a fixed git identity.
    pub fn new(config: &str, env: Vec<(String, OsString)>) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let s = Sandbox {
            _tmp: tmp,
            repo,
            home,
            env,
        };
        s.git(&["init", "-q"]);
        write(&s.repo, ".pre-commit-config.yaml", config);
        s
    }

    fn cmd(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(&self.repo)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", &self.home)
            .env("PRE_COMMIT_HOME", self.home.join("pre-commit"))
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
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

    /// Installs the hook, then checks that a clean commit passes, a staged key pair blocks
    /// the commit (named, redacted) and a clean change after it goes through.
    pub fn check(&self) {
        let out = self.cmd(&pre_commit(), &["install"]);
        assert!(out.status.success(), "{}", text(&out));
        write(&self.repo, "README.md", "hello\n");
        self.git(&["add", "."]);
        let out = self.git(&["commit", "-m", "clean start"]);
        assert!(
            out.status.success(),
            "a clean commit passes: {}",
            text(&out)
        );

        let (k, s) = Keys::new(21).pair();
        write(
            &self.repo,
            "deploy.env",
            format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
        );
        self.git(&["add", "deploy.env"]);
        let out = self.git(&["commit", "-m", "add deploy settings"]);
        let t = text(&out);
        assert!(!out.status.success(), "a staged key blocks the commit: {t}");
        assert!(t.contains("AWS access key pair"), "{t}");
        assert!(t.contains("deploy.env:1:"), "{t}");
        assert!(!t.contains(&s), "the secret is redacted: {t}");
        let log = self.git(&["log", "--oneline"]);
        assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);

        self.git(&["restore", "--staged", "deploy.env"]);
        std::fs::remove_file(self.repo.join("deploy.env")).unwrap();
        write(&self.repo, "app.py", "print('ok')\n");
        self.git(&["add", "app.py"]);
        let out = self.git(&["commit", "-m", "clean change"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}
