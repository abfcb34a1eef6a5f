//! JSON and JSON Lines. The schema is versioned (`schema_version`) and documented in the README;
//! fields are only ever added within a version.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::Report;
use crate::finding::Credential;

pub const SCHEMA: &str = "keyhound-report";
pub const SCHEMA_VERSION: u32 = 1;

pub fn credential(r: &Report, c: &Credential) -> Value {
    let mut parts = Map::new();
    for (role, v) in &c.parts {
        let key = serde_json::to_value(role).unwrap();
        parts.insert(
            key.as_str().unwrap().to_string(),
            Value::String(r.value(*role, v)),
        );
    }
    let places: Vec<Value> = c
        .places
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap();
            v["snippet"] = Value::String(r.snippet(c, p.snippet.trim()));
            v
        })
        .collect();
    json!({
        "fingerprint": c.fingerprint,
        "rule": c.rule.id,
        "name": c.rule.name,
        "severity": c.rule.severity,
        "family": c.rule.family,
        "confidence": c.rule.confidence,
        "class": c.class,
        "account_id": c.account_id,
        "parts": parts,
        "verification": c.verification,
        "places": places,
    })
}

pub fn summary(r: &Report) -> Value {
    let s = &r.summary;
    let skipped: Map<String, Value> = s
        .skipped
        .iter()
        .map(|(k, n)| (k.as_str().to_string(), json!(n)))
        .collect();
    let suppressed: Map<String, Value> = s
        .suppressed
        .iter()
        .map(|(k, n)| (k.as_str().to_string(), json!(n)))
        .collect();
    let mut v = json!({
        "files": s.files,
        "commits": s.commits,
        "bytes": s.bytes,
        "duration_ms": s.elapsed.as_millis() as u64,
        "throughput_mib_s": (s.throughput_mib_s() * 10.0).round() / 10.0,
        "credentials": r.credentials.len(),
        "places": r.places(),
        "by_rule": r.by_rule(),
        "examples": s.examples,
        "examples_hidden": s.examples_hidden,
        "skipped": skipped,
        "suppressed": suppressed,
        "baseline_missing": s.baseline_missing,
        "warnings": s.warnings,
        "incomplete": s.incomplete,
    });
    if !s.shards.is_empty() {
        let bytes = s.shards.iter().map(|l| l.bytes);
        let time = s.shards.iter().map(|l| l.duration_ms);
        v["shards"] = json!({
            "parts": s.shards,
            "bytes_min": bytes.clone().min(), "bytes_max": bytes.max(),
            "duration_ms_min": time.clone().min(), "duration_ms_max": time.max(),
        });
    }
    v
}

fn header(r: &Report) -> Value {
    json!({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "keyhound", "version": env!("CARGO_PKG_VERSION")},
        "scan": {"kind": r.kind, "roots": r.roots},
        "plan": r.plan,
    })
}

pub fn write(r: &Report, out: &mut dyn Write) -> Result<()> {
    let mut v = header(r);
    v["credentials"] = Value::Array(r.credentials.iter().map(|c| credential(r, c)).collect());
    v["summary"] = summary(r);
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)?;
    Ok(())
}

/// One `{"type":"credential",…}` line per credential, then one `{"type":"summary",…}` line.
pub fn write_lines(r: &Report, out: &mut dyn Write) -> Result<()> {
    let h = header(r);
    for c in r.credentials {
        let mut v = credential(r, c);
        v["type"] = json!("credential");
        v["schema_version"] = h["schema_version"].clone();
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)?;
    }
    let mut s = h;
    s["type"] = json!("summary");
    s["summary"] = summary(r);
    serde_json::to_writer(&mut *out, &s)?;
    writeln!(out)?;
    Ok(())
}
