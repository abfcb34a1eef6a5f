//! The GitHub Action: action.yml and the example workflow validate against GitHub's schemas,
//! the README shows the tested workflow, and the action's scan script behaves on real repos.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_jsonschema(schema: &str, file: &str) {
    let tool = manifest().join(".venv/bin/check-jsonschema");
    assert!(
        tool.exists(),
        "{} is missing; run scripts/test",
        tool.display()
    );
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
