//! The GitHub Action: action.yml and the example workflow validate against GitHub's schemas,
//! the README shows the tested workflow, the action's scan script behaves on real repos, and
//! its install step fetches, checks and caches the release binary or builds from source.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_jsonschema(schema: &str, file: &str) {
    let tool = common::installed(".venv/bin/check-jsonschema");
    let out = Command::new(tool)
        .args(["--builtin-schema", schema, file])
        .current_dir(manifest())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file} against {schema}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn action_and_workflow_validate() {
    check_jsonschema("vendor.github-actions", "action.yml");
    check_jsonschema("vendor.github-workflows", ".github/workflows/keyhound.yml");
}

#[test]
fn readme_shows_the_tested_workflow() {
    let readme = std::fs::read_to_string(manifest().join("README.md")).unwrap();
    let workflow =
        std::fs::read_to_string(manifest().join(".github/workflows/keyhound.yml")).unwrap();
    assert!(
        readme.contains(&format!("```yaml\n{workflow}```")),
        "README.md must carry .github/workflows/keyhound.yml verbatim"
    );
    let action = std::fs::read_to_string(manifest().join("action.yml")).unwrap();
    assert!(
        action.contains("action/run.sh"),
        "the action runs the tested script"
    );
}

/// Runs action/run.sh as the composite action would; returns (exit code, GITHUB_OUTPUT, stdout).
fn run_action(dir: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let outputs: PathBuf = dir.join("github_output");
    let _ = std::fs::remove_file(&outputs);
    let mut c = Command::new(manifest().join("action/run.sh"));
    c.current_dir(dir)
        .env("KEYHOUND", env!("CARGO_BIN_EXE_keyhound"))
        .env("GITHUB_OUTPUT", &outputs);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        std::fs::read_to_string(&outputs).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn action_script_scans_pull_requests_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "-q"]);
    write(d, "README.md", "x\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    let base = git(d, &["rev-parse", "HEAD"]);
    git(d, &["checkout", "-qb", "pr"]);
    let (k, s) = Keys::new(41).pair();
    write(
        d,
        "app.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "add env"]);
    let head = git(d, &["rev-parse", "HEAD"]);

    let pr = [
        ("SCAN_KIND", "pull-request"),
        ("BASE_SHA", base.as_str()),
        ("HEAD_SHA", head.as_str()),
        ("SARIF_FILE", "out.sarif"),
    ];
    let (code, outputs, stdout) = run_action(d, &pr);
    assert_eq!(code, 1, "{stdout}");
    assert!(outputs.contains("findings=1"), "{outputs}");
    assert!(stdout.contains("::error::keyhound found secrets"));
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.sarif")).unwrap()).unwrap();
    validate_sarif(&sarif);
    assert_eq!(
        sarif["runs"][0]["automationDetails"]["id"],
        "keyhound/pull-request/"
    );

    let mut lenient = pr.to_vec();
    lenient.push(("FAIL_ON_FINDINGS", "false"));
    let (code, _, _) = run_action(d, &lenient);
    assert_eq!(code, 0, "findings do not fail the step when asked not to");

    // The base branch alone is clean.
    let (code, outputs, _) = run_action(
        d,
        &[
            ("SCAN_KIND", "history"),
            ("SCAN_PATH", "."),
            ("EXTRA_ARGS", "--branch main"),
        ],
    );
    assert_eq!(code, 0);
    assert!(outputs.contains("findings=0"), "{outputs}");
    assert!(d.join("keyhound.sarif").exists());

    let (code, _, stdout) = run_action(d, &[("SCAN_KIND", "everything")]);
    assert_eq!(code, 2);
    assert!(stdout.contains("worktree, history or pull-request"));
    let (code, _, _) = run_action(d, &[("SCAN_KIND", "pull-request")]);
    assert_eq!(code, 2, "a pull-request scan needs base and head");
}

// The GitHub Action's install step (action/install.sh): the release binary for the action's
// version downloaded from the release (here a loopback `python3 -m http.server` serving an
// archive made as the release workflow makes it), checked against its `.sha256` and cached;
// the cached copy used with the server gone; a tampered checksum refused (exit 2) without
// building instead; no release: the source build. No test here runs cargo: the source build
// is a stand-in that copies this build's binary (KEYHOUND_BUILD_CMD), and every other run has
// a stand-in that fails loudly.

/// The target the fake release is for (the tests name it: KEYHOUND_TARGET).
const TARGET: &str = "x86_64-unknown-linux-musl";

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The archive's name, as the release workflow names it.
fn asset() -> String {
    format!("keyhound-{}-{TARGET}.tar.gz", version())
}

/// `python3 -m http.server` on a free loopback port, serving `dir`; killed on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        // Owned from here: a panic below still kills it.
        let mut server = HttpServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("http.server on port {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "http.server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `<hex>  <name>`, as sha256sum writes it (shasum where there is no sha256sum).
fn sha256_line(dir: &Path, name: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(name)
        .current_dir(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        _ => ok(Command::new("shasum")
            .args(["-a", "256", name])
            .current_dir(dir)),
    }
}

/// A release as the release workflow makes it, in `dir`: the archive (this build's keyhound
/// at its top level, with LICENSE and README.md), made with the tar CLI, and its `.sha256`.
fn make_release(dir: &Path) {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    // fs::copy keeps the permission bits: the copy is executable.
    std::fs::copy(env!("CARGO_BIN_EXE_keyhound"), stage.join("keyhound")).unwrap();
    for f in ["LICENSE", "README.md"] {
        std::fs::copy(manifest().join(f), stage.join(f)).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    ok(Command::new("tar")
        .arg("-czf")
        .arg(dir.join(asset()))
        .arg("-C")
        .arg(&stage)
        .args(["keyhound", "LICENSE", "README.md"]));
    std::fs::remove_dir_all(&stage).unwrap();
    let line = sha256_line(dir, &asset());
    std::fs::write(dir.join(format!("{}.sha256", asset())), line).unwrap();
}

/// What one run of install.sh did.
struct Install {
    code: i32,
    stdout: String,
    stderr: String,
    /// What it wrote to GITHUB_OUTPUT.
    outputs: String,
}

impl Install {
    /// The binary's path: the last line of stdout.
    fn path(&self) -> PathBuf {
        PathBuf::from(self.stdout.lines().last().unwrap_or_default().trim())
    }
}

/// Runs action/install.sh in `dir` as the composite action would, with `env` on top of: a
/// fresh GITHUB_OUTPUT, RUNNER_TEMP in `dir`, KEYHOUND_TARGET=TARGET (`""`: uname's), and a
/// source build that fails loudly (never cargo) unless `env` gives one.
fn install(dir: &Path, env: &[(&str, &str)]) -> Install {
    let outputs = dir.join("github_output");
    let _ = std::fs::remove_file(&outputs);
    let runner_temp = dir.join("runner_temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let mut c = Command::new(manifest().join("action/install.sh"));
    c.current_dir(dir)
        .env("GITHUB_OUTPUT", &outputs)
        .env("RUNNER_TEMP", &runner_temp)
        .env("KEYHOUND_TARGET", TARGET)
        .env(
            "KEYHOUND_BUILD_CMD",
            "echo 'install.sh ran the source build' >&2; exit 97",
        )
        .env_remove("ACTION_REPOSITORY")
        .env_remove("KEYHOUND_RELEASE_URL")
        .env_remove("KEYHOUND_CACHE")
        .env_remove("KEYHOUND_SOURCE_BUILD");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    Install {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
    }
}

#[test]
fn install_downloads_verifies_caches_and_refuses_a_tampered_release() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let release = d.join("release");
    make_release(&release);
    let mut server = HttpServer::start(&release);
    let url = server.url();
    let cache = d.join("cache");
    let env = [
        ("GITHUB_ACTION_PATH", manifest().to_str().unwrap()),
        ("KEYHOUND_RELEASE_URL", url.as_str()),
        ("KEYHOUND_CACHE", cache.to_str().unwrap()),
    ];

    // Downloaded, its SHA-256 checked, put in the cache.
    let first = install(d, &env);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains(&format!("keyhound: using release binary {url}/{}", asset())),
        "{}",
        first.stdout
    );
    let kh = first.path();
    assert_eq!(
        kh,
        std::fs::canonicalize(&cache)
            .unwrap()
            .join(version())
            .join(TARGET)
            .join("keyhound"),
        "{}",
        first.stdout
    );
    assert_eq!(first.outputs, format!("keyhound={}\n", kh.display()));
    assert!(kh.with_file_name(".verified").exists());
    let v = ok(Command::new(&kh).arg("--version"));
    assert_eq!(v.trim(), format!("keyhound {}", version()));

    // The scan step runs it.
    let work = d.join("work");
    let (k, s) = Keys::new(43).pair();
    write(
        &work,
        "app.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    let scan_outputs = d.join("scan_output");
    let out = Command::new(manifest().join("action/run.sh"))
        .current_dir(&work)
        .env("KEYHOUND", &kh)
        .env("SCAN_KIND", "worktree")
        .env("SCAN_PATH", ".")
        .env("SARIF_FILE", d.join("out.sarif"))
        .env("GITHUB_OUTPUT", &scan_outputs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let scanned = std::fs::read_to_string(&scan_outputs).unwrap();
    assert!(scanned.contains("findings=1"), "{scanned}");

    // The server gone, the second run uses the cache.
    server.stop();
    let second = install(d, &env);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains("keyhound: using cached"),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("::notice::"), "{}", second.stdout);
    assert_eq!(second.path(), kh);
    assert_eq!(second.outputs, first.outputs);

    // A .sha256 that does not match the archive: refused, exit 2, and nothing is built
    // instead (a checksum mismatch is a tampering signal, not a missing release).
    let sha_file = release.join(format!("{}.sha256", asset()));
    let good = std::fs::read_to_string(&sha_file).unwrap();
    let good_hex = good.split_whitespace().next().unwrap().to_string();
    assert_eq!(good_hex.len(), 64, "{good}");
    let flipped = if good_hex.starts_with('0') { "1" } else { "0" };
    let bad_hex = format!("{flipped}{}", &good_hex[1..]);
    std::fs::write(&sha_file, format!("{bad_hex}  {}\n", asset())).unwrap();
    let server = HttpServer::start(&release);
    let url = server.url();
    let fresh = d.join("fresh-cache");
    let marker = d.join("built");
    let tampered = install(
        d,
        &[
            ("GITHUB_ACTION_PATH", manifest().to_str().unwrap()),
            ("KEYHOUND_RELEASE_URL", url.as_str()),
            ("KEYHOUND_CACHE", fresh.to_str().unwrap()),
            ("KEYHOUND_BUILD_CMD", r#"touch "$KH_TEST_MARKER""#),
            ("KH_TEST_MARKER", marker.to_str().unwrap()),
        ],
    );
    assert_eq!(tampered.code, 2, "{}{}", tampered.stdout, tampered.stderr);
    assert!(
        tampered
            .stdout
            .contains(&format!("::error::checksum mismatch for {}", asset())),
        "{}",
        tampered.stdout
    );
    assert!(
        tampered.stdout.contains(&bad_hex) && tampered.stdout.contains(&good_hex),
        "the error names both hashes: {}",
        tampered.stdout
    );
    assert!(
        !marker.exists(),
        "no source build after a checksum mismatch"
    );
    assert!(tampered.outputs.is_empty(), "{}", tampered.outputs);
    assert!(!fresh.join(version()).join(TARGET).join("keyhound").exists());
    drop(server);
}

#[test]
fn install_builds_from_source_when_there_is_no_release() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The action's checkout: its Cargo.toml alone (the version); the build is a stand-in.
    let action = d.join("action");
    std::fs::create_dir_all(&action).unwrap();
    std::fs::copy(manifest().join("Cargo.toml"), action.join("Cargo.toml")).unwrap();
    let empty = d.join("no-release");
    std::fs::create_dir_all(&empty).unwrap();
    let server = HttpServer::start(&empty);
    let url = server.url();
    let cache = d.join("cache");
    let env = [
        ("GITHUB_ACTION_PATH", action.to_str().unwrap()),
        ("KEYHOUND_RELEASE_URL", url.as_str()),
        ("KEYHOUND_CACHE", cache.to_str().unwrap()),
        (
            "KEYHOUND_BUILD_CMD",
            r#"cp "$KH_REAL_BINARY" "$GITHUB_ACTION_PATH/target/release/keyhound""#,
        ),
        ("KH_REAL_BINARY", env!("CARGO_BIN_EXE_keyhound")),
    ];

    // The archive 404s: a notice, then the source build.
    let r = install(d, &env);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "::notice::no release binary for keyhound {} ({TARGET}); building from source",
            version()
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("keyhound: built from source"),
        "{}",
        r.stdout
    );
    let kh = std::fs::canonicalize(&action)
        .unwrap()
        .join("target/release/keyhound");
    assert_eq!(r.path(), kh, "{}", r.stdout);
    assert_eq!(r.outputs, format!("keyhound={}\n", kh.display()));
    let v = ok(Command::new(&kh).arg("--version"));
    assert_eq!(v.trim(), format!("keyhound {}", version()));
    assert!(
        !cache.exists(),
        "a source build is not cached as a release binary"
    );

    // KEYHOUND_SOURCE_BUILD=never (action.yml's first step): no binary, no output, exit 0;
    // the build is left to the step after it.
    std::fs::remove_file(&kh).unwrap();
    let mut never = env.to_vec();
    never.push(("KEYHOUND_SOURCE_BUILD", "never"));
    let r = install(d, &never);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.outputs.is_empty(), "{}", r.outputs);
    assert!(!kh.exists());

    // Without KEYHOUND_TARGET the target comes from uname.
    let host = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("x86_64-unknown-linux-musl"),
        ("linux", "aarch64") => Some("aarch64-unknown-linux-musl"),
        ("macos", "x86_64") => Some("x86_64-apple-darwin"),
        ("macos", "aarch64") => Some("aarch64-apple-darwin"),
        _ => None,
    };
    if let Some(t) = host {
        let mut native = never.clone();
        native.push(("KEYHOUND_TARGET", ""));
        let r = install(d, &native);
        assert!(
            r.stdout.contains(&format!("keyhound {} ({t})", version())),
            "{}",
            r.stdout
        );
    }
    drop(server);
}
