//! SARIF 2.1.0, as GitHub code scanning ingests it: one result per place, rules with help and a
//! numeric-string `security-severity`, relative URIs under `%SRCROOT%`, full regions, and
//! partial fingerprints from the secret's hash so alerts survive line moves.

use std::io::Write;

use anyhow::Result;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Report;
use crate::detect::{RuleMeta, Severity};
use crate::finding::{Credential, Place, State};

const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Characters kept as they are in a path segment of a URI (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// `aws-access-key` → `AwsAccessKey`.
fn pascal(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            let first = c.next().unwrap().to_ascii_uppercase();
            std::iter::once(first).chain(c).collect::<String>()
        })
        .collect()
}

/// The rule a live (verified) credential is reported under: the same rule at the highest
/// severity, since GitHub reads `security-severity` from rules only.
fn live_rule(m: &RuleMeta) -> Value {
    let mut r = rule(m);
    r["id"] = json!(format!("{}/live", m.id));
    r["name"] = json!(format!("{}Live", pascal(&m.id)));
    r["shortDescription"]["text"] = json!(format!("{} (verified live)", m.name));
    r["fullDescription"]["text"] = json!(format!(
        "{} AWS STS confirmed the key works: treat it as an incident.",
        m.description
    ));
    r["defaultConfiguration"]["level"] = json!("error");
    r["properties"]["security-severity"] = json!("10.0");
    r
}

fn rule(m: &RuleMeta) -> Value {
    let mut markdown = format!("**{}**\n\n{}\n", m.name, m.description);
    if !m.help.is_empty() {
        markdown.push_str(&format!("\n{}\n", m.help));
    }
    if !m.references.is_empty() {
        markdown.push_str("\nReferences:\n");
        for r in &m.references {
            markdown.push_str(&format!("- <{r}>\n"));
        }
    }
    let text = if m.help.is_empty() {
        m.description.clone()
    } else {
        format!("{}\n\n{}", m.description, m.help)
    };
    json!({
        "id": m.id,
        "name": pascal(&m.id),
        "shortDescription": {"text": m.name},
        "fullDescription": {"text": m.description},
        "help": {"text": text, "markdown": markdown},
        "defaultConfiguration": {"level": level(m.severity)},
        "properties": {
            "tags": ["security", "secret", "external/cwe/cwe-798", m.family],
            "security-severity": security_severity(m.severity),
            "precision": m.confidence.as_str(),
        },
    })
}

/// A `/`-separated path with each segment percent-encoded.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A relative path as a URI reference; `None` for absolute paths (Unix, or a Windows drive).
fn relative_uri(path: &str) -> Option<String> {
    let absolute = path.starts_with('/') || path.chars().nth(1) == Some(':');
    (!absolute).then(|| encode_path(path))
}

/// `file:///…` for an absolute path.
fn file_uri(path: &str) -> String {
    format!("file:///{}", encode_path(path.trim_start_matches('/')))
}

/// An object in S3: `s3://bucket/key`, with `?versionId=` for a noncurrent version.
fn object_uri(o: &crate::blob::ObjectInfo) -> String {
    let mut u = format!("s3://{}/{}", o.bucket, encode_path(&o.key));
    if let (Some(v), false) = (&o.version_id, o.latest) {
        u.push_str(&format!("?versionId={}", utf8_percent_encode(v, SEGMENT)));
    }
    u
}

/// How places become artifact URIs: relative to `base` (`%SRCROOT%`), the root of the
/// repository that holds the first scanned path, else that path (a directory, or a file's
/// directory), else the current directory; so that GitHub maps them to the repository's files
/// wherever keyhound ran. Paths of git history are already relative to their repository.
struct Uris {
    base: std::path::PathBuf,
    cwd: std::path::PathBuf,
    repo_relative: bool,
}

impl Uris {
    fn new(r: &Report) -> Result<Uris> {
        let cwd = std::env::current_dir()?;
        let repo_relative = matches!(r.kind, "history" | "pull-request" | "staged");
        let scanned = r
            .roots
            .first()
            .map(|p| cwd.join(p))
            .and_then(|p| std::fs::canonicalize(p).ok());
        let base = match scanned {
            Some(p) => {
                let dir = if p.is_dir() {
                    p.clone()
                } else {
                    p.parent().map_or(p.clone(), |d| d.to_path_buf())
                };
                let repo = dir
                    .ancestors()
                    .find(|a| a.join(".git").exists())
                    .map(|a| a.to_path_buf());
                repo.unwrap_or(dir)
            }
            None => cwd.clone(),
        };
        Ok(Uris {
            base,
            cwd,
            repo_relative,
        })
    }

    fn artifact(&self, origin: &crate::blob::Origin) -> Value {
        if let Some(o) = &origin.object {
            return json!({"uri": object_uri(o)});
        }
        let path = origin.path.as_str();
        if self.repo_relative {
            if let Some(u) = relative_uri(path) {
                return json!({"uri": u, "uriBaseId": "%SRCROOT%"});
            }
        }
        // The file's absolute path (lexically: no symlinks resolved but the base's), made
        // relative to the base.
        let abs = self.cwd.join(path);
        let abs = normalize(&abs);
        let canon_cwd = std::fs::canonicalize(&self.cwd).unwrap_or_else(|_| self.cwd.clone());
        let rel = abs
            .strip_prefix(&self.base)
            .ok()
            .map(|p| p.to_path_buf())
            .or_else(|| {
                // A relative path under a cwd reached through a symlink.
                let alt = normalize(&canon_cwd.join(path));
                alt.strip_prefix(&self.base).ok().map(|p| p.to_path_buf())
            })
            .and_then(|p| p.to_str().map(|s| s.replace('\\', "/")));
        match rel {
            Some(rel) if !rel.is_empty() => {
                json!({"uri": encode_path(&rel), "uriBaseId": "%SRCROOT%"})
            }
            _ => json!({"uri": file_uri(&abs.to_string_lossy())}),
        }
    }
}

/// `a/./b/../c` as `a/c`, without touching the filesystem.
fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Stable across line moves: rule, path and secret hash.
fn line_hash(c: &Credential, p: &Place) -> String {
    let mut h = Sha256::new();
    h.update(c.rule.id.as_bytes());
    h.update([0]);
    h.update(p.origin.to_string().as_bytes());
    h.update([0]);
    h.update(c.fingerprint.as_bytes());
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}:1")
}

/// GitHub code scanning's ingestion limits (docs: "SARIF support for code scanning").
pub const MAX_RESULTS: usize = 25_000;
pub const MAX_LOCATIONS: usize = 1_000;
pub const MAX_GZIP_BYTES: usize = 10 * 1024 * 1024;

fn location(r: &Report, u: &Uris, c: &Credential, p: &Place, snippets: bool) -> Value {
    let l = &p.location;
    // The raw bytes of a disk image have no lines: a byte region only.
    let mut region = if p.origin.raw {
        json!({
            "byteOffset": l.offset,
            "byteLength": l.end_offset - l.offset,
        })
    } else {
        json!({
            "startLine": l.line,
            "startColumn": l.column,
            "endLine": l.end_line,
            "endColumn": l.end_column.max(if l.end_line == l.line { l.column + 1 } else { 1 }),
            "byteOffset": l.offset,
            "byteLength": l.end_offset - l.offset,
        })
    };
    let snippet = r.snippet(c, p.snippet.trim());
    if snippets && !snippet.is_empty() {
        region["snippet"] = json!({"text": snippet});
    }
    json!({
        "physicalLocation": {
            "artifactLocation": u.artifact(&p.origin),
            "region": region,
        }
    })
}

/// One result for `places` of a credential (one place, or up to 1,000 when aggregating);
/// `total` is how many places the credential has in all.
fn result(
    r: &Report,
    u: &Uris,
    c: &Credential,
    places: &[Place],
    total: usize,
    rule_index: usize,
    snippets: bool,
) -> Value {
    let p = &places[0];
    let mut msg = format!("{} found", c.rule.name);
    let shown: Vec<String> = c
        .parts
        .iter()
        .filter(|(role, _)| p.parts.contains(role))
        .map(|(role, v)| r.value(*role, v))
        .collect();
    msg.push_str(&format!(": {}", shown.join(" / ")));
    if let Some(a) = &c.account_id {
        msg.push_str(&format!(" (AWS account {a})"));
    }
    if !p.origin.inner.is_empty() {
        msg.push_str(&format!(" in {}", p.origin));
    }
    if let Some(g) = &p.origin.git {
        msg.push_str(&format!(" ({})", super::text::history_line(g)));
    }
    if !p.decoded.is_empty() {
        let d: Vec<&str> = p.decoded.iter().map(|d| d.as_str()).collect();
        msg.push_str(&format!(" (decoded from {})", d.join(" › ")));
    }
    msg.push('.');
    if total > 1 {
        msg.push_str(&format!(" Seen at {total} places"));
        if total > places.len() {
            msg.push_str(&format!("; the first {} are listed", places.len()));
        }
        msg.push('.');
    }
    let mut properties = json!({
        "fingerprint": c.fingerprint,
        "class": c.class,
        "accountId": c.account_id,
        "inner": p.origin.inner,
        "decoded": p.decoded.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "security-severity": security_severity(c.rule.severity),
        "places": total,
    });
    if let Some(g) = &p.origin.git {
        properties["blob"] = json!(g.blob);
        properties["paths"] = json!(g.paths);
        properties["atHead"] = json!(g.at_head);
        if let Some(m) = &g.message {
            properties["gitMessage"] = json!(m);
        }
        if let Some(c) = &g.commit {
            properties["commit"] = json!(c.id);
            properties["author"] = json!(c.author);
            properties["email"] = json!(c.email);
            properties["date"] = json!(c.date);
            properties["commitSummary"] = json!(c.summary);
        }
        if let Some(r) = &g.removed_in {
            properties["removedIn"] = json!(r.id);
        }
    }
    if let Some(s) = &p.origin.snapshot {
        properties["snapshot"] = json!(s);
    }
    if let Some(o) = &p.origin.object {
        properties["s3"] = json!(o);
    }
    if let Some(v) = &c.verification {
        properties["verification"] = json!(v);
        if v.state == State::Live {
            properties["security-severity"] = json!("10.0");
        }
    }
    let rule_id = if c.is_live() {
        format!("{}/live", c.rule.id)
    } else {
        c.rule.id.clone()
    };
    json!({
        "ruleId": rule_id,
        "ruleIndex": rule_index,
        "level": if c.is_live() { "error" } else { level(c.rule.severity) },
        "message": {"text": msg},
        "locations": places.iter().map(|p| location(r, u, c, p, snippets)).collect::<Vec<_>>(),
        "partialFingerprints": {
            "secretHash/v1": c.fingerprint,
            "primaryLocationLineHash": line_hash(c, p),
        },
        "properties": properties,
    })
}

/// The results, within GitHub's limits: one per place; past 25,000 places one per credential
/// (listing up to 1,000 places each); past 25,000 credentials the most severe 25,000. Notes say
/// what was aggregated or left out.
/// The rule table: every rule, then a `/live` twin of each rule that has live credentials.
fn rule_table(r: &Report) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = r.rules.iter().map(|m| (m.id.clone(), rule(m))).collect();
    for m in &r.rules {
        if r.credentials
            .iter()
            .any(|c| c.is_live() && c.rule.id == m.id)
        {
            v.push((format!("{}/live", m.id), live_rule(m)));
        }
    }
    v
}

fn results(
    r: &Report,
    u: &Uris,
    table: &[(String, Value)],
    keep: usize,
    snippets: bool,
    notes: &mut Vec<String>,
) -> Vec<Value> {
    let index = |c: &Credential| {
        let id = if c.is_live() {
            format!("{}/live", c.rule.id)
        } else {
            c.rule.id.clone()
        };
        table.iter().position(|(i, _)| *i == id).unwrap_or(0)
    };
    let places = r.places();
    let mut out = Vec::new();
    if places <= MAX_RESULTS.min(keep) {
        for c in r.credentials {
            for p in &c.places {
                out.push(result(
                    r,
                    u,
                    c,
                    std::slice::from_ref(p),
                    1,
                    index(c),
                    snippets,
                ));
            }
        }
        return out;
    }
    let limit = MAX_RESULTS.min(keep);
    notes.push(format!(
        "{places} findings are more than GitHub code scanning takes in one run ({MAX_RESULTS} \
         results): reported one result per credential, each listing up to {MAX_LOCATIONS} places"
    ));
    if r.credentials.len() > limit {
        notes.push(format!(
            "{} credentials: only the {limit} most severe are in this file; the JSON report has all",
            r.credentials.len()
        ));
    }
    for c in r.credentials.iter().take(limit) {
        let n = c.places.len().min(MAX_LOCATIONS);
        out.push(result(
            r,
            u,
            c,
            &c.places[..n],
            c.places.len(),
            index(c),
            snippets,
        ));
    }
    out
}

fn gzip_len(data: &[u8]) -> usize {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip").len()
}

pub fn write(r: &Report, out: &mut dyn Write) -> Result<()> {
    let table = rule_table(r);
    let rules: Vec<&Value> = table.iter().map(|(_, v)| v).collect();
    // %SRCROOT% is where relative paths start: the repository of what was scanned (or the
    // scan root), as a directory URI, wherever keyhound was started.
    let uris = Uris::new(r)?;
    let mut root = file_uri(&uris.base.to_string_lossy());
    if !root.ends_with('/') {
        root.push('/');
    }
    // Shrink until the gzipped file fits: first without snippets, then with fewer results.
    let (mut keep, mut snippets) = (usize::MAX, true);
    loop {
        let mut notes = Vec::new();
        let results = results(r, &uris, &table, keep, snippets, &mut notes);
        if !snippets {
            notes.push(format!(
                "snippets left out to stay under GitHub's {} MB (gzipped) limit",
                MAX_GZIP_BYTES >> 20
            ));
        }
        let n_results = results.len();
        let mut notifications: Vec<Value> = notes
            .iter()
            .map(|n| json!({"level": "note", "message": {"text": n}}))
            .collect();
        notifications.extend(
            r.summary
                .warnings
                .iter()
                .map(|w| json!({"level": "warning", "message": {"text": w}})),
        );
        let log = json!({
            "$schema": SCHEMA_URI,
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "keyhound",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "automationDetails": {"id": format!("keyhound/{}/", r.kind)},
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
                "columnKind": "unicodeCodePoints",
                "invocations": [{
                    "executionSuccessful": !r.summary.incomplete,
                    "toolExecutionNotifications": notifications,
                }],
                "results": results,
                "properties": {
                    "filesScanned": r.summary.files,
                    "bytesScanned": r.summary.bytes,
                    "examplesHidden": r.summary.examples_hidden,
                    "credentials": r.credentials.len(),
                    "places": r.places(),
                    "aggregated": n_results < r.places(),
                    "notes": notes,
                },
            }],
        });
        let mut bytes = serde_json::to_vec_pretty(&log)?;
        bytes.push(b'\n');
        if gzip_len(&bytes) <= MAX_GZIP_BYTES || n_results <= 1 {
            out.write_all(&bytes)?;
            return Ok(());
        }
        if snippets {
            snippets = false;
        } else {
            keep = (n_results / 2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(relative_uri("a b/c#d.txt").unwrap(), "a%20b/c%23d.txt");
        assert_eq!(relative_uri("/etc/x"), None);
        assert_eq!(relative_uri("C:/x"), None);
        assert_eq!(file_uri("/tmp/a b"), "file:///tmp/a%20b");
        assert_eq!(file_uri("/"), "file:///");
        assert_eq!(pascal("aws-access-key"), "AwsAccessKey");
    }
}
