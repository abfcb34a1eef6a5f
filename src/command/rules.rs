//! `keyhound rules`: list the rules, or run every rule's examples.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use crate::blob::{Blob, Origin};
use crate::detect::{examples, Engine, RuleSet, Selection};
use crate::finding::{self, Class, Credential};
use crate::pipeline::scan_blob;
use crate::suppress::Config;

/// Scans a text the way a file is scanned, for rule examples.
pub fn scan_text(engine: &Engine, text: &[u8]) -> Vec<Credential> {
    let blob = Blob::whole(text, Arc::new(Origin::file("example")));
    let f = scan_blob(engine, &blob);
    let mut creds = finding::group(f);
    crate::aws::enrich_offline(&mut creds);
    creds.retain(|c| c.class == Class::Secret);
    creds
}

/// Runs every rule's positive and negative examples (each expanded with several seeds);
/// returns one line per failure.
pub fn check_rules(engine: &Engine) -> Vec<String> {
    let rules = &engine.rules;
    // Which reportable ids show that a rule matched: itself, and the pairs it is part of.
    let mut covers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &rules.rules {
        covers.entry(&r.meta.id).or_default().push(&r.meta.id);
    }
    for p in &rules.pairs {
        covers.entry(&p.meta.id).or_default().push(&p.meta.id);
        let members = p.secrets.iter().chain(p.token.iter()).chain([&p.key]);
        for &m in members {
            covers
                .entry(&rules.rules[m].meta.id)
                .or_default()
                .push(&p.meta.id);
        }
    }
    let mut failures = Vec::new();
    let cases = rules
        .rules
        .iter()
        .map(|r| (&r.meta, r.standalone, &r.examples, &r.negative_examples))
        .chain(
            rules
                .pairs
                .iter()
                .map(|p| (&p.meta, true, &p.examples, &p.negative_examples)),
        );
    for (meta, standalone, pos, neg) in cases {
        // Rules translated from a gitleaks config come without examples.
        if standalone && pos.is_empty() && meta.family != "gitleaks" {
            failures.push(format!("{}: no examples", meta.id));
        }
        let ids = &covers[meta.id.as_str()];
        for (want, list) in [(true, pos), (false, neg)] {
            for ex in list.iter() {
                for seed in 0..3 {
                    let text = match examples::expand(ex, &mut fastrand::Rng::with_seed(seed)) {
                        Ok(t) => t,
                        Err(e) => {
                            failures.push(format!("{}: {e}", meta.id));
                            break;
                        }
                    };
                    // A positive example is also looked for in UTF-16 (little-endian, and
                    // big-endian with and without its byte order mark), where the prefilter
                    // sees only a short hint of each keyword.
                    let units: Vec<u16> = text.encode_utf16().collect();
                    let encodings = [
                        ("", text.as_bytes().to_vec()),
                        (
                            " in UTF-16LE",
                            units.iter().flat_map(|u| u.to_le_bytes()).collect(),
                        ),
                        (
                            " in UTF-16BE",
                            [0xfe, 0xff]
                                .into_iter()
                                .chain(units.iter().flat_map(|u| u.to_be_bytes()))
                                .collect(),
                        ),
                        (
                            " in UTF-16BE without a byte order mark",
                            units.iter().flat_map(|u| u.to_be_bytes()).collect(),
                        ),
                    ];
                    let tried = if want {
                        &encodings[..]
                    } else {
                        &encodings[..1]
                    };
                    let before = failures.len();
                    for (how, bytes) in tried {
                        let creds = scan_text(engine, bytes);
                        let hit = creds.iter().any(|c| ids.contains(&c.rule.id.as_str()));
                        if hit != want {
                            failures.push(format!(
                                "{}: {} example (seed {seed}){how} {}: {:?}",
                                meta.id,
                                if want { "positive" } else { "negative" },
                                if want { "not found" } else { "reported" },
                                text
                            ));
                        }
                    }
                    if failures.len() > before {
                        break;
                    }
                }
            }
        }
    }
    failures
}

/// Used by `keyhound rules`: the loaded rule set with any `--rules` dirs.
pub fn load_engine(rules: &[PathBuf], sel: &Selection, config: Option<&Path>) -> Result<Engine> {
    let mut set = RuleSet::load_selected(rules, sel)?;
    if let Some(c) = config {
        let c = Config::load(c)?;
        set.set_pair_window(c.detect.pair_lines, c.detect.pair_bytes);
    }
    Engine::new(set)
}

/// `keyhound rules [list|check]`. In `list`, `--enable-rule` names the rules to show.
pub fn run(rules: &[PathBuf], sel: &Selection, check: bool) -> Result<u8> {
    let mut sel = sel.clone();
    sel.all = true;
    let engine = load_engine(rules, &sel, None)?;
    let set = &engine.rules;
    if !check {
        // What opens each rule's windows: its keywords, or the rule it is searched near.
        let mut keywords: HashMap<&str, String> = HashMap::new();
        for r in &set.rules {
            let k = match r.near {
                Some(n) => format!("near {}", set.rules[n].meta.id),
                None => r.keywords.join(" "),
            };
            keywords.insert(&r.meta.id, k);
        }
        let shown = |m: &crate::detect::RuleMeta| {
            sel.enable.is_empty() || sel.enable.iter().any(|n| *n == m.id || *n == m.family)
        };
        println!(
            "{:<40} {:<20} {:<10} {:<8} {:<3} KEYWORDS",
            "RULE", "FAMILY", "CONFIDENCE", "SEVERITY", "ON"
        );
        let mut families = std::collections::BTreeSet::new();
        for m in set.metas().filter(|m| shown(m)) {
            families.insert(m.family.as_str());
            println!(
                "{:<40} {:<20} {:<10} {:<8} {:<3} {}",
                m.id,
                m.family,
                m.confidence.as_str(),
                m.severity.as_str(),
                if m.default_on { "on" } else { "off" },
                keywords.get(m.id.as_str()).map_or("(pair)", String::as_str)
            );
        }
        let n = set.metas().filter(|m| shown(m)).count();
        eprintln!("{n} rules in {} families", families.len());
        return Ok(0);
    }
    set.compile_all()?;
    let failures = check_rules(&engine);
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    let n = set.rules.len() + set.pairs.len();
    println!("{} rules checked, {} failures", n, failures.len());
    Ok(if failures.is_empty() { 0 } else { 1 })
}
