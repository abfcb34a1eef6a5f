//! Helpers for tests that drive the `keyhound` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyhound::detect::examples::expand;

pub mod precommit;
pub mod servers;

/// Runs the git CLI in `dir` with a fixed identity, no system or global config; panics on
/// failure and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dev One")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev One")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyhound"));
    c.env("NO_COLOR", "1");
    c
}

/// Runs any command, which must succeed; returns its stdout (the panic shows both streams).
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs keyhound with `args` in `dir`; returns (exit code, stdout, stderr).
pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    outcome(bin().args(args).current_dir(dir))
}

/// Runs a prepared keyhound command; returns (exit code, stdout, stderr).
pub fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().expect("run keyhound");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// keyhound with `args` in `dir`, reaching AWS at `endpoint` (a moto server) as `creds`.
pub fn run_aws(
    dir: &Path,
    endpoint: &str,
    creds: (&str, &str),
    args: &[&str],
) -> (i32, String, String) {
    outcome(
        bin()
            .args(args)
            .current_dir(dir)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", creds.0)
            .env("AWS_SECRET_ACCESS_KEY", creds.1)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE"),
    )
}

/// Runs a command as 4 parts through `run_part` (keyhound with the arguments it is given),
/// `--shard K/4` each, each writing its JSON report (secrets shown) into `parts`; returns how
/// many times the parts' standard error says `needle`.
pub fn four_parts(
    parts: &Path,
    args: &[&str],
    needle: &str,
    run_part: impl Fn(&[&str]) -> (i32, String, String),
) -> usize {
    std::fs::create_dir_all(parts).unwrap();
    (1..=4)
        .map(|k| {
            let (shard, file) = (format!("{k}/4"), parts.join(format!("{k}.json")));
            let flags = [
                "--shard",
                &shard,
                "--format",
                "json",
                "--show-secrets",
                "-o",
            ];
            let (_, _, err) = run_part(&[args, &flags, &[file.to_str().unwrap()]].concat());
            err.matches(needle).count()
        })
        .sum()
}

/// `keyhound merge` of the parts in `parts` (secrets shown) as JSON: its exit status and
/// report.
pub fn merge_parts(dir: &Path, parts: &Path) -> (i32, serde_json::Value) {
    let p = parts.to_str().unwrap();
    let (code, out, err) = run(dir, &["merge", "--format", "json", "--show-secrets", p]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// `keyhound merge` of the parts in `parts` (secrets shown) as JSON, which must have found
/// secrets (exit 1).
pub fn merged(dir: &Path, parts: &Path) -> serde_json::Value {
    let p = parts.to_str().unwrap();
    let (code, out, err) = run(dir, &["merge", "--format", "json", "--show-secrets", p]);
    assert_eq!(code, 1, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

pub fn json(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = vec!["scan", "--format", "json"];
    a.extend_from_slice(args);
    let (code, out, err) = run(dir, &a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// Test keys come from a seeded generator, never from the repository.
pub struct Keys(fastrand::Rng);

impl Keys {
    pub fn new(seed: u64) -> Keys {
        Keys(fastrand::Rng::with_seed(seed))
    }
    pub fn gen(&mut self, template: &str) -> String {
        expand(template, &mut self.0).unwrap()
    }
    pub fn key_id(&mut self) -> String {
        self.gen("AKIA{{b32:16}}")
    }
    /// A secret with both letter cases (as every real one has).
    pub fn secret(&mut self) -> String {
        loop {
            let s = self.gen("{{b64:40}}");
            if s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase())
            {
                return s;
            }
        }
    }
    pub fn pair(&mut self) -> (String, String) {
        (self.key_id(), self.secret())
    }
}

pub fn write(dir: &Path, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    p
}

pub fn creds(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["credentials"].as_array().expect("credentials")
}

/// The official SARIF 2.1.0 schema, shipped in Microsoft's SARIF Multitool npm package
/// (installed by scripts/test), or the file `KEYHOUND_SARIF_SCHEMA` names.
pub fn sarif_schema_path() -> PathBuf {
    let path = std::env::var_os("KEYHOUND_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("node_modules/@microsoft/sarif-multitool-linux/sarif-2.1.0.json")
        });
    assert!(
        path.is_file(),
        "the SARIF 2.1.0 schema is not at {}; run scripts/test, which installs it",
        path.display()
    );
    path
}

/// The official 2.1.0 schema, then GitHub code scanning's ingestion rules.
pub fn validate_sarif(sarif: &serde_json::Value) {
    let errors = schema_errors(&sarif_schema_path(), sarif);
    assert!(errors.is_empty(), "SARIF does not validate:\n{errors}");
    check_github_rules(sarif);
}

/// A tool scripts/test installs into the checkout (`.venv/bin/…`, `node_modules/…`), by its path
/// there; a clear failure when it is not installed.
pub fn installed(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(p.exists(), "{} is missing; run scripts/test", p.display());
    p
}

/// What check-jsonschema (the Python validator scripts/test installs into ./.venv) says of
/// `doc` against the schema file: empty when it validates. (A validator of the registries
/// rather than a crate: the `jsonschema` crate as a dev-dependency changed the features of
/// regex and others, so a plain `cargo build` (the wheel's) rebuilt every dependency a second
/// time: minutes and gigabytes of CI.)
pub fn schema_errors(schema: &Path, doc: &serde_json::Value) -> String {
    let tool = installed(".venv/bin/check-jsonschema");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("doc.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = Command::new(&tool)
        .arg("--schemafile")
        .arg(schema)
        .arg(&file)
        .output()
        .expect("run check-jsonschema");
    if out.status.success() {
        return String::new();
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Schema validation errors"),
        "check-jsonschema did not run: {text}"
    );
    text
}

/// Microsoft's SARIF Multitool `validate` (schema plus its own rules); no error may be reported.
pub fn multitool_validate(sarif: &str) {
    let tool = installed("node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("out.sarif");
    std::fs::write(&file, sarif).unwrap();
    let out = Command::new(&tool)
        .arg("validate")
        .arg(&file)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .expect("run Sarif.Multitool");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "Multitool failed: {text}");
    assert!(
        !text.contains(": error "),
        "Multitool reports errors:\n{text}"
    );
    assert!(text.contains("Analysis completed successfully"), "{text}");
}

/// GitHub code scanning's documented rules for uploaded SARIF (docs: "SARIF support for code
/// scanning"): what the schema does not say but an upload needs.
pub fn check_github_rules(sarif: &serde_json::Value) {
    use std::collections::HashSet;
    use std::io::Write;
    let text = serde_json::to_vec(sarif).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    assert!(gz.finish().unwrap().len() <= 10 << 20, "over 10 MB gzipped");
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "one run per file");
    for run in runs {
        let driver = &run["tool"]["driver"];
        assert!(driver["name"].is_string());
        assert!(driver["semanticVersion"].is_string());
        // The category: distinct per kind of scan, so one never closes another's alerts.
        let cat = run["automationDetails"]["id"]
            .as_str()
            .expect("automationDetails.id");
        assert!(cat.starts_with("keyhound/") && cat.ends_with('/'), "{cat}");
        assert!(run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
            .as_str()
            .unwrap()
            .ends_with('/'));
        let rules = driver["rules"].as_array().expect("rules");
        let mut ids = HashSet::new();
        for r in rules {
            let id = r["id"].as_str().unwrap();
            assert!(ids.insert(id), "duplicate rule {id}");
            for k in ["shortDescription", "fullDescription"] {
                assert!(!r[k]["text"].as_str().unwrap_or("").is_empty(), "{id}: {k}");
            }
            assert!(
                !r["help"]["text"].as_str().unwrap_or("").is_empty(),
                "{id}: help.text"
            );
            assert!(
                !r["help"]["markdown"].as_str().unwrap_or("").is_empty(),
                "{id}: help.markdown"
            );
            let tags = r["properties"]["tags"].as_array().expect("tags");
            assert!(tags.iter().any(|t| t == "security"), "{id}: tags");
            let sev = r["properties"]["security-severity"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: security-severity must be a string"));
            let v: f64 = sev
                .parse()
                .unwrap_or_else(|_| panic!("{id}: {sev} is not a number"));
            assert!(v > 0.0 && v <= 10.0, "{id}: {v} not in (0, 10]");
        }
        let results = run["results"].as_array().expect("results");
        assert!(results.len() <= 25_000, "{} results", results.len());
        for res in results {
            let rid = res["ruleId"].as_str().unwrap();
            assert!(ids.contains(rid), "unknown rule {rid}");
            assert!(!res["message"]["text"].as_str().unwrap_or("").is_empty());
            let fp = res["partialFingerprints"]["primaryLocationLineHash"].as_str();
            assert!(fp.is_some_and(|f| !f.is_empty()), "primaryLocationLineHash");
            let locs = res["locations"].as_array().expect("locations");
            assert!(
                !locs.is_empty() && locs.len() <= 1000,
                "{} locations",
                locs.len()
            );
            for l in locs {
                let a = &l["physicalLocation"]["artifactLocation"];
                let uri = a["uri"].as_str().unwrap();
                if a["uriBaseId"] == "%SRCROOT%" {
                    assert!(
                        !uri.starts_with('/') && !uri.contains("://"),
                        "relative: {uri}"
                    );
                } else {
                    // A file outside the scanned tree, or an object in S3.
                    assert!(
                        uri.starts_with("file:///") || uri.starts_with("s3://"),
                        "absolute: {uri}"
                    );
                }
                let g = &l["physicalLocation"]["region"];
                let n = |k: &str| g[k].as_u64().unwrap_or_else(|| panic!("region.{k}"));
                if g.get("startLine").is_none() {
                    // The raw bytes of a disk image have no lines: a byte region.
                    assert!(n("byteLength") >= 1, "{g}");
                    n("byteOffset");
                    continue;
                }
                assert!(n("startLine") >= 1 && n("startColumn") >= 1);
                assert!(n("endLine") >= n("startLine") && n("endColumn") >= 1);
                if n("endLine") == n("startLine") {
                    assert!(n("endColumn") > n("startColumn"));
                }
            }
        }
    }
}

/// Every place of every credential of a JSON report, as sortable lines (fingerprint, path,
/// inner places, offset): what a merged report and a single run's must share.
pub fn place_keys(v: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = creds(v)
        .iter()
        .flat_map(|c| {
            c["places"].as_array().unwrap().iter().map(move |p| {
                format!(
                    "{} {} {} {}",
                    c["fingerprint"], p["path"], p["inner"], p["offset"]
                )
            })
        })
        .collect();
    p.sort();
    p
}

/// The line a test writes where a key pair sits in a settings file.
pub fn settings(k: &(String, String)) -> String {
    format!("KEY = '{}'\nSECRET = '{}'\n", k.0, k.1)
}

/// A repository at `app` whose keys are only in its history, in both of git's storages:
/// `packed` committed, removed, and packed by `git gc`; `loose` committed and removed after
/// (loose objects). Returns the commit that added `loose`.
pub fn repo_with_removed_keys(
    app: &Path,
    packed: &(String, String),
    loose: &(String, String),
) -> String {
    std::fs::create_dir_all(app).unwrap();
    git(app, &["init", "-q"]);
    write(app, "settings.py", settings(packed));
    git(app, &["add", "."]);
    git(app, &["commit", "-qm", "settings"]);
    write(app, "settings.py", "KEY = os.environ['KEY']\n");
    git(app, &["commit", "-qam", "from the environment"]);
    git(app, &["gc", "-q"]);
    write(app, "settings.py", settings(loose));
    git(app, &["commit", "-qam", "hotfix"]);
    let loose_commit = git(app, &["rev-parse", "HEAD"]);
    write(app, "settings.py", "KEY = os.environ['KEY']\n");
    git(app, &["commit", "-qam", "undo the hotfix"]);
    loose_commit
}

/// A repository at `dir` where `file` held `text`, committed and then removed.
pub fn repo_with_removed_file(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
    write(dir, file, text);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "config"]);
    git(dir, &["rm", "-q", file]);
    git(dir, &["commit", "-qm", "the secret goes to a vault"]);
}
