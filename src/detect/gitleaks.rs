//! Teams migrating from gitleaks keep their custom rules: a gitleaks config (`[[rules]]` with
//! `id`, `regex`, `keywords`, `entropy`, `secretGroup`, allowlists) passed to `--rules` is
//! translated into keyhound's rule format. What has no keyhound equivalent is refused, every
//! such part named at once, so the user can edit the file in one go.
//!
//! How the parts map:
//! - `keywords` are case-insensitive in gitleaks and exact literals in keyhound: each becomes
//!   its lower-case, upper-case and capitalised forms.
//! - `regex` is RE2 syntax, which the `regex` crate reads (with Unicode classes off: `\w`, `\d`,
//!   `\s` and `(?i)` are ASCII; `\p{…}` is refused by the compiler with the rule's name).
//! - The regex is searched 512 bytes either side of each keyword hit (gitleaks searches the
//!   whole file once a keyword is in it).
//! - An allowlist's `regexes` (target `secret`, the default) and `stopwords` become `reject`
//!   patterns; `regexTarget = "match"` or `"line"`, `paths`, `commits`, an `AND` condition and
//!   a rule's `path` do not map.
//! - `[extend] useDefault = true` is accepted: keyhound's own rules play the part of gitleaks'
//!   defaults. `extend.path` and `disabledRules` name gitleaks rules and are refused.
//! - `.gitleaksignore` fingerprints (`commit:file:rule:line`) name gitleaks rules and cannot be
//!   mapped either; keyhound says so when it sees one (see `pipeline.rs`).

use anyhow::{bail, Result};
use toml::{Table, Value};

/// The bytes searched before and after each keyword hit of a translated rule.
const WINDOW: i64 = 512;

/// A gitleaks config as a keyhound rule file (a table of `rule = [...]`).
pub fn translate(config: &Table) -> Result<Table> {
    let mut problems: Vec<String> = Vec::new();
    for (k, v) in config {
        match k.as_str() {
            "title" | "description" | "rules" => {}
            "extend" => {
                let t = v.as_table().cloned().unwrap_or_default();
                for (ek, ev) in &t {
                    match ek.as_str() {
                        "useDefault"
                            if ev.as_bool() == Some(true) || ev.as_bool() == Some(false) => {}
                        "path" | "url" => problems.push(format!(
                            "[extend] {ek}: keyhound cannot read another gitleaks config; pass it \
                             to --rules as well"
                        )),
                        "disabledRules" => problems.push(
                            "[extend] disabledRules: these name gitleaks' own rules; turn off \
                             keyhound's with --disable-rule"
                                .into(),
                        ),
                        other => problems.push(format!("[extend] {other}: not understood")),
                    }
                }
            }
            "allowlist" | "allowlists" => problems.push(format!(
                "[{k}]: a global allowlist belongs in .keyhound.toml ([allowlist] paths, regexes)"
            )),
            other => problems.push(format!("{other}: not understood")),
        }
    }
    let mut out = Vec::new();
    let rules = config
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, r) in rules.iter().enumerate() {
        let Some(r) = r.as_table() else {
            problems.push(format!("rules[{i}]: not a table"));
            continue;
        };
        match rule(r) {
            Ok(t) => out.push(Value::Table(t)),
            Err(p) => {
                let id = r.get("id").and_then(Value::as_str).unwrap_or("?");
                problems.extend(p.into_iter().map(|p| format!("rule {id}: {p}")));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} part(s) cannot be translated:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    let mut t = Table::new();
    t.insert("rule".into(), Value::Array(out));
    Ok(t)
}

/// One `[[rules]]` entry, or everything in it that does not map.
fn rule(r: &Table) -> std::result::Result<Table, Vec<String>> {
    let mut problems = Vec::new();
    let mut t = Table::new();
    let str_of = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let id = str_of("id").unwrap_or_default();
    if id.is_empty() {
        problems.push("no id".into());
    }
    let description = str_of("description").unwrap_or_else(|| id.clone());
    let mut keywords: Vec<String> = Vec::new();
    for k in items(r, "keywords") {
        let Some(k) = k.as_str() else { continue };
        if k.len() < 3 {
            problems.push(format!(
                "keyword {k:?} is shorter than 3 bytes (keyhound's prefilter needs 3)"
            ));
        }
        for form in case_forms(k) {
            if !keywords.contains(&form) {
                keywords.push(form);
            }
        }
    }
    if keywords.is_empty() && r.contains_key("regex") {
        problems.push(
            "no keywords: keyhound runs a rule's regex only around its keywords (literals every \
             match contains); add `keywords`"
                .into(),
        );
    }
    match str_of("regex") {
        Some(re) => {
            t.insert("regex".into(), Value::String(re));
        }
        None => problems.push("no regex (path-only rules do not map)".into()),
    }
    if r.contains_key("path") {
        problems.push(
            "path: keyhound rules match content only; limit where they run with \
             .keyhound.toml [allowlist] paths"
                .into(),
        );
    }
    if let Some(g) = r.get("secretGroup").and_then(Value::as_integer) {
        t.insert("secret_group".into(), Value::Integer(g));
    }
    if let Some(e) = r.get("entropy") {
        let e = e.as_float().or_else(|| e.as_integer().map(|i| i as f64));
        if let Some(e) = e {
            t.insert("entropy".into(), Value::Float(e));
        }
    }
    let mut reject: Vec<Value> = Vec::new();
    let mut lists: Vec<&Table> = Vec::new();
    if let Some(a) = r.get("allowlist").and_then(Value::as_table) {
        lists.push(a);
    }
    for a in items(r, "allowlists") {
        if let Some(a) = a.as_table() {
            lists.push(a);
        }
    }
    for a in lists {
        let target = a
            .get("regexTarget")
            .and_then(Value::as_str)
            .unwrap_or("secret");
        let has = |k: &str| {
            a.get(k)
                .and_then(Value::as_array)
                .is_some_and(|v| !v.is_empty())
        };
        let kinds = ["regexes", "stopwords", "paths", "commits"]
            .iter()
            .filter(|k| has(k))
            .count();
        if a.get("condition").and_then(Value::as_str) == Some("AND") && kinds > 1 {
            problems.push("an allowlist with condition AND does not map".into());
        }
        for k in ["paths", "commits"] {
            if has(k) {
                problems.push(format!(
                    "allowlist {k}: not per rule in keyhound (.keyhound.toml [allowlist] paths, \
                     .keyhoundignore fingerprints)"
                ));
            }
        }
        for re in items(a, "regexes") {
            if target != "secret" {
                problems.push(format!(
                    "allowlist regexTarget {target:?}: keyhound's reject patterns see the secret only"
                ));
                break;
            }
            if let Some(re) = re.as_str() {
                reject.push(Value::String(re.to_string()));
            }
        }
        for w in items(a, "stopwords") {
            if let Some(w) = w.as_str() {
                reject.push(Value::String(format!("(?i){}", regex::escape(w))));
            }
        }
    }
    for k in r.keys() {
        let known = [
            "id",
            "description",
            "regex",
            "secretGroup",
            "entropy",
            "keywords",
            "path",
            "tags",
            "allowlist",
            "allowlists",
        ];
        if !known.contains(&k.as_str()) {
            problems.push(format!("{k}: not understood"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    t.insert("id".into(), Value::String(id));
    t.insert("family".into(), Value::String("gitleaks".into()));
    t.insert("name".into(), Value::String(description.clone()));
    t.insert("description".into(), Value::String(description));
    t.insert("severity".into(), Value::String("high".into()));
    t.insert("confidence".into(), Value::String("medium".into()));
    t.insert(
        "keywords".into(),
        Value::Array(keywords.into_iter().map(Value::String).collect()),
    );
    t.insert(
        "window".into(),
        Value::Array(vec![Value::Integer(WINDOW), Value::Integer(WINDOW)]),
    );
    if !reject.is_empty() {
        t.insert("reject".into(), Value::Array(reject));
    }
    Ok(t)
}

/// The elements of the array `t[k]` (none if it is missing or not an array).
fn items<'a>(t: &'a Table, k: &str) -> impl Iterator<Item = &'a Value> {
    t.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// A case-insensitive keyword as the exact literals keyhound looks for: as written, lower,
/// upper and capitalised.
fn case_forms(k: &str) -> Vec<String> {
    let lower = k.to_ascii_lowercase();
    let mut cap = lower.clone();
    if let Some(f) = cap.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    let mut v = vec![k.to_string()];
    for f in [lower, k.to_ascii_uppercase(), cap] {
        if !v.contains(&f) {
            v.push(f);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(text: &str) -> Result<Table> {
        translate(&toml::from_str(text).unwrap())
    }

    #[test]
    fn a_custom_rule_translates() {
        let t = tr(r#"
title = "team rules"
[extend]
useDefault = true
[[rules]]
id = "acme-key"
description = "ACME API key"
regex = '''(?i)acme[_-]?key\s*=\s*"([a-z0-9]{32})"'''
secretGroup = 1
entropy = 3.0
keywords = ["acme"]
[[rules.allowlists]]
regexes = ['^0+$']
stopwords = ["sample"]
"#)
        .unwrap();
        let r = &t["rule"][0];
        assert_eq!(r["id"].as_str(), Some("acme-key"));
        assert_eq!(r["secret_group"].as_integer(), Some(1));
        let kw: Vec<&str> = r["keywords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(kw, ["acme", "ACME", "Acme"]);
        assert_eq!(r["reject"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn what_does_not_map_is_named_all_at_once() {
        let err = tr(r#"
[allowlist]
paths = ['vendor/']
[[rules]]
id = "a"
regex = 'x{3}'
[[rules]]
id = "b"
regex = 'bbb[0-9]+'
keywords = ["bbb"]
path = '''\.env$'''
[[rules.allowlists]]
regexTarget = "line"
regexes = ['foo']
"#)
        .unwrap_err()
        .to_string();
        for want in [
            "[allowlist]",
            "rule a: no keywords",
            "rule b: path",
            "regexTarget \"line\"",
        ] {
            assert!(err.contains(want), "{want} not in {err}");
        }
    }
}
