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
use crate::finding::{Credential, Place};

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
            "tags": ["security", "secret", "external/cwe/cwe-798"],
            "security-severity": security_severity(m.severity),
            "precision": "high",
        },
    })
}

/// A relative path as a URI reference; `None` for absolute paths.
fn relative_uri(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains(':') && path.chars().nth(1) == Some(':') {
        return None;
    }
    Some(
        path.split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

fn artifact(path: &str) -> Value {
    match relative_uri(path) {
        Some(u) => json!({"uri": u, "uriBaseId": "%SRCROOT%"}),
        None => {
            let abs: Vec<String> = path
                .trim_start_matches('/')
                .split('/')
                .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                .collect();
            json!({"uri": format!("file:///{}", abs.join("/"))})
        }
    }
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

fn result(r: &Report, c: &Credential, p: &Place, rule_index: usize) -> Value {
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
    let l = &p.location;
    let snippet = r.snippet(c, p.snippet.trim());
    let mut region = json!({
        "startLine": l.line,
        "startColumn": l.column,
        "endLine": l.end_line,
        "endColumn": l.end_column.max(if l.end_line == l.line { l.column + 1 } else { 1 }),
        "byteOffset": l.offset,
        "byteLength": l.end_offset - l.offset,
    });
    if !snippet.is_empty() {
        region["snippet"] = json!({"text": snippet});
    }
    let mut properties = json!({
        "fingerprint": c.fingerprint,
        "class": c.class,
        "accountId": c.account_id,
        "inner": p.origin.inner,
        "decoded": p.decoded.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "security-severity": security_severity(c.rule.severity),
    });
    if let Some(g) = &p.origin.git {
        properties["blob"] = json!(g.blob);
        properties["paths"] = json!(g.paths);
        properties["atHead"] = json!(g.at_head);
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
    json!({
        "ruleId": c.rule.id,
        "ruleIndex": rule_index,
        "level": level(c.rule.severity),
        "message": {"text": msg},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact(&p.origin.path),
                "region": region,
            }
        }],
        "partialFingerprints": {
            "secretHash/v1": c.fingerprint,
            "primaryLocationLineHash": line_hash(c, p),
        },
        "properties": properties,
    })
}

pub fn write(r: &Report, out: &mut dyn Write) -> Result<()> {
    let rules: Vec<Value> = r.rules.iter().map(|m| rule(m)).collect();
    let index = |id: &str| r.rules.iter().position(|m| m.id == id).unwrap_or(0);
    let mut results = Vec::new();
    for c in r.credentials {
        let ri = index(&c.rule.id);
        for p in &c.places {
            results.push(result(r, c, p, ri));
        }
    }
    let cwd = std::env::current_dir()?;
    let root = format!(
        "file:///{}/",
        cwd.to_string_lossy()
            .trim_start_matches('/')
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    )
    .replace("file:////", "file:///");
    let notifications: Vec<Value> = r
        .summary
        .warnings
        .iter()
        .map(|w| json!({"level": "warning", "message": {"text": w}}))
        .collect();
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
            },
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(relative_uri("a b/c#d.txt").unwrap(), "a%20b/c%23d.txt");
        assert_eq!(relative_uri("/etc/x"), None);
        assert_eq!(pascal("aws-access-key"), "AwsAccessKey");
    }
}
