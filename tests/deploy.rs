//! The deployment manifests in deploy/, checked by real validators from the registries: the
//! Kubernetes objects against the Kubernetes OpenAPI schemas (kubernetes-validate, strict), the
//! Dockerfile with hadolint, the GitHub workflow with check-jsonschema's vendored schema, the
//! AWS Batch and EventBridge Scheduler documents against botocore's API models; and every
//! keyhound command line in them parses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv(tool: &str) -> PathBuf {
    common::installed(&format!(".venv/bin/{tool}"))
}

/// `common::ok`, run from the checkout's root.
fn ok(cmd: &mut Command) -> String {
    common::ok(cmd.current_dir(root()))
}

/// A keyhound command line of a manifest parses (`--help` after it: clap checks every flag
/// before it, and prints help instead of running).
fn parses(args: &[String]) {
    let out = bin().args(args).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "keyhound {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `args:` lists of the containers of a Kubernetes manifest (simple YAML: `- item` lines).
fn container_args(yaml: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim() == "args:" {
            let indent = l.len() - l.trim_start().len();
            let mut args = Vec::new();
            while let Some(n) = lines.peek() {
                let t = n.trim_start();
                if n.len() - t.len() <= indent || !t.starts_with("- ") {
                    break;
                }
                args.push(t[2..].trim_matches('"').to_string());
                lines.next();
            }
            out.push(args);
        }
    }
    out
}

#[test]
fn kubernetes_manifests_validate_and_their_commands_parse() {
    for f in [
        "deploy/kubernetes/s3-scan.yaml",
        "deploy/kubernetes/audit-cronjob.yaml",
    ] {
        ok(Command::new(venv("kubernetes-validate")).args(["--strict", f]));
        let yaml = std::fs::read_to_string(root().join(f)).unwrap();
        let all = container_args(&yaml);
        assert!(!all.is_empty(), "{f}");
        for args in all {
            parses(&args);
        }
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    ok(Command::new(venv("hadolint")).arg("deploy/Dockerfile"));
}

#[test]
fn fan_out_workflow_validates() {
    ok(Command::new(venv("check-jsonschema")).args([
        "--builtin-schema",
        "vendor.github-workflows",
        "deploy/github/fan-out.yml",
    ]));
    let wf = std::fs::read_to_string(root().join("deploy/github/fan-out.yml")).unwrap();
    assert!(
        wf.contains("--shard-index ${{ strategy.job-index }} --shards ${{ strategy.job-total }}")
    );
    parses(
        &[
            "scan",
            "repos",
            "--git-history",
            "--shard-index",
            "0",
            "--shards",
            "4",
        ]
        .map(String::from),
    );
    parses(&["merge", "parts", "--format", "sarif"].map(String::from));
}

#[test]
fn aws_batch_and_scheduler_documents_validate_and_their_commands_parse() {
    let script = root().join("tests/deploy/validate_aws.py");
    for (service, op, f) in [
        (
            "batch",
            "RegisterJobDefinition",
            "deploy/aws-batch/scan-job-definition.json",
        ),
        (
            "batch",
            "RegisterJobDefinition",
            "deploy/aws-batch/merge-job-definition.json",
        ),
        ("batch", "SubmitJob", "deploy/aws-batch/submit-scan.json"),
        ("batch", "SubmitJob", "deploy/aws-batch/submit-merge.json"),
        (
            "scheduler",
            "CreateSchedule",
            "deploy/aws-batch/audit-schedule.json",
        ),
    ] {
        let out = ok(Command::new(venv("python"))
            .arg(&script)
            .args([service, op, f]));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(f)).unwrap()).unwrap();
        let command = if op == "CreateSchedule" {
            serde_json::from_str(&out).unwrap()
        } else {
            doc["containerProperties"]["command"].clone()
        };
        if let Some(c) = command.as_array() {
            let args: Vec<String> = c.iter().map(|a| a.as_str().unwrap().to_string()).collect();
            parses(&args);
        }
    }
}

/// `--output part-{shard}.json` names each part's file by its shard (1-based), for engines
/// without a shell to expand an index (AWS Batch).
#[test]
fn output_names_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "a.txt", "nothing\n");
    let out = bin()
        .args([
            "scan",
            ".",
            "--format",
            "json",
            "--output",
            "../part-{shard}.json",
        ])
        .env("AWS_BATCH_JOB_ARRAY_INDEX", "2")
        .env("KEYHOUND_SHARDS", "8")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let part = d.join("../part-3.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&part).unwrap()).unwrap();
    std::fs::remove_file(&part).unwrap();
    assert_eq!(
        v["plan"]["shard"],
        serde_json::json!({"index": 2, "count": 8})
    );
}
