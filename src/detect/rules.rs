//! Rules as data: the TOML files of `patterns/` (embedded at build time) and any `--rules DIR`.
//!
//! A file holds `[[rule]]` tables (one regex each) and `[[pair]]` tables (a key id rule, the
//! secret rules it pairs with and an optional session token rule). The format is documented in
//! the README; `keyhound rules check` and `cargo test` run every rule's examples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What every reportable rule (a `[[rule]]` or a `[[pair]]`) tells the reports.
#[derive(Debug, Serialize)]
pub struct RuleMeta {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    /// How to respond to a leak of this kind (plain text; shown in SARIF help).
    pub help: String,
    pub references: Vec<String>,
    /// File the rule came from (`aws.toml`, or a user's path).
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    pair: Vec<PairSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    name: String,
    description: String,
    severity: Severity,
    #[serde(default)]
    help: String,
    #[serde(default)]
    references: Vec<String>,
    /// Literals that feed the Aho-Corasick prefilter, matched exactly as written: list the
    /// case variants the secret is written with (`secret`, `Secret`, `SECRET`).
    #[serde(default)]
    keywords: Vec<String>,
    /// Keywords also looked for inside base64 (at each alignment) to find what to decode.
    /// Each costs three prefilter patterns: list only the telling ones.
    #[serde(default)]
    base64_keywords: Vec<String>,
    /// Instead of keywords: look for this rule only near matches of another rule (pair window).
    #[serde(default)]
    near: Option<String>,
    regex: String,
    /// What must come right after a keyword hit (a regex, anchored there) for the window
    /// around the hit to be searched: a cheap test that drops most hits of a common keyword
    /// (`://`, `secret`) before the rule's regex runs. It sees the hit's window (`window[1]`
    /// bytes). It must follow from the regex: a match of the regex that this rejects after its
    /// keyword is not found (unless another hit's window holds it).
    #[serde(default)]
    follows: Option<String>,
    /// Bytes searched before and after each keyword hit.
    #[serde(default = "default_window")]
    window: [usize; 2],
    /// Shannon entropy floor (bits per byte) of the secret.
    #[serde(default)]
    entropy: Option<f64>,
    /// Byte classes that must not touch the secret on either side (a regex character class).
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    /// The secret is dropped if any of these match it.
    #[serde(default)]
    reject: Vec<String>,
    /// The secret is dropped unless all of these match it.
    #[serde(default)]
    require: Vec<String>,
    /// `false`: reported only as part of a pair.
    #[serde(default = "yes")]
    standalone: bool,
    /// `false`: hits of this rule's keywords do not ask for the URL token around them to be
    /// percent-decoded and searched again, because the regex reads escapes as they are (a URL's
    /// own password). A keyword asks if any of its rules does.
    #[serde(default = "yes")]
    url_decode: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairSpec {
    id: String,
    name: String,
    description: String,
    severity: Severity,
    #[serde(default)]
    help: String,
    #[serde(default)]
    references: Vec<String>,
    key: String,
    secrets: Vec<String>,
    #[serde(default)]
    token: Option<String>,
    /// A token attaches only to keys starting with one of these (`ASIA`: temporary keys).
    #[serde(default)]
    token_key_prefixes: Vec<String>,
    #[serde(default = "default_pair_lines")]
    lines: usize,
    #[serde(default = "default_pair_bytes")]
    bytes: usize,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
}

fn default_window() -> [usize; 2] {
    [256, 256]
}
fn default_pair_lines() -> usize {
    5
}
fn default_pair_bytes() -> usize {
    1024
}
fn yes() -> bool {
    true
}

/// A compiled `[[rule]]`.
pub struct Rule {
    pub meta: Arc<RuleMeta>,
    pub keywords: Vec<String>,
    pub base64_keywords: Vec<String>,
    pub near: Option<usize>,
    pub regex: Regex,
    /// `follows`, anchored at its start.
    pub follows: Option<Regex>,
    pub secret_group: usize,
    pub window: (usize, usize),
    pub entropy: Option<f64>,
    pub not_before: Option<ByteClass>,
    pub not_after: Option<ByteClass>,
    pub reject: Vec<Regex>,
    pub require: Vec<Regex>,
    pub standalone: bool,
    pub url_decode: bool,
    pub examples: Vec<String>,
    pub negative_examples: Vec<String>,
}

/// A compiled `[[pair]]`.
pub struct Pair {
    pub meta: Arc<RuleMeta>,
    pub key: usize,
    pub secrets: Vec<usize>,
    pub token: Option<usize>,
    pub token_key_prefixes: Vec<String>,
    pub lines: usize,
    pub bytes: usize,
    pub examples: Vec<String>,
    pub negative_examples: Vec<String>,
}

/// A set of bytes, from a regex character class, looked up in O(1).
#[derive(Clone)]
pub struct ByteClass([bool; 256]);

impl ByteClass {
    fn parse(class: &str) -> Result<Self> {
        let re = Regex::new(&format!("^(?-u:{class})$"))
            .with_context(|| format!("invalid byte class {class:?}"))?;
        let mut set = [false; 256];
        for (b, slot) in set.iter_mut().enumerate() {
            *slot = re.is_match(&[b as u8]);
        }
        Ok(ByteClass(set))
    }
    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        self.0[b as usize]
    }
}

pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub pairs: Vec<Pair>,
}

impl RuleSet {
    /// The embedded rules plus every `*.toml` in `extra_dirs` (or named file).
    pub fn load(extra: &[PathBuf]) -> Result<RuleSet> {
        let mut files = Vec::new();
        for p in extra {
            for f in toml_files(p)? {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read rule file {}", f.display()))?;
                files.push((f.display().to_string(), text));
            }
        }
        Self::with_embedded(files)
    }

    /// The embedded rules plus the rule files given as (name, text).
    pub fn with_embedded(extra: Vec<(String, String)>) -> Result<RuleSet> {
        let mut files: Vec<(String, String)> = EMBEDDED_RULE_FILES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        files.extend(extra);
        Self::from_sources(&files)
    }

    pub fn from_sources(files: &[(String, String)]) -> Result<RuleSet> {
        let mut specs = Vec::new();
        let mut pair_specs = Vec::new();
        for (name, text) in files {
            let f: RuleFile =
                toml::from_str(text).with_context(|| format!("invalid rule file {name}"))?;
            specs.extend(f.rule.into_iter().map(|r| (name.clone(), r)));
            pair_specs.extend(f.pair.into_iter().map(|p| (name.clone(), p)));
        }
        let mut ids: HashMap<String, String> = HashMap::new();
        for (src, id) in specs
            .iter()
            .map(|(s, r)| (s, &r.id))
            .chain(pair_specs.iter().map(|(s, p)| (s, &p.id)))
        {
            if let Some(prev) = ids.insert(id.clone(), src.clone()) {
                bail!("rule id {id:?} is defined in both {prev} and {src}");
            }
        }
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, (_, r))| (r.id.as_str(), i))
            .collect();
        let lookup = |id: &str, what: &str, owner: &str| -> Result<usize> {
            index
                .get(id)
                .copied()
                .with_context(|| format!("{owner}: {what} names unknown rule {id:?}"))
        };

        let mut rules = Vec::with_capacity(specs.len());
        for (src, s) in &specs {
            let ctx = |what: &str| format!("rule {} ({src}): invalid {what}", s.id);
            // Rules run on bytes, and secrets are ASCII: with Unicode off, `\s`, `(?i)` and
            // classes are byte classes, and every rule compiles to a far smaller automaton.
            // Starting a scan took 28–31 ms, of which compiling Unicode classes (`[^\s…]`,
            // `(?i)`) was most; now 16 ms (a pre-commit hook pays it on every commit).
            let compile = |pattern: &str, what: &str| -> Result<Regex> {
                RegexBuilder::new(pattern)
                    .unicode(false)
                    .size_limit(1 << 24)
                    .build()
                    .with_context(|| ctx(what))
            };
            let regex = compile(&s.regex, "regex")?;
            let secret_group = regex
                .capture_names()
                .position(|n| n == Some("secret"))
                .unwrap_or(if regex.captures_len() > 1 { 1 } else { 0 });
            let compile_all = |v: &[String], what: &str| -> Result<Vec<Regex>> {
                v.iter().map(|r| compile(r, what)).collect()
            };
            let near = match &s.near {
                Some(n) => Some(lookup(n, "near", &s.id)?),
                None => None,
            };
            if s.keywords.is_empty() == near.is_none() {
                bail!("rule {} ({src}) needs keywords or near (one of them)", s.id);
            }
            if s.follows.is_some() && s.keywords.is_empty() {
                bail!("rule {} ({src}): follows needs keywords", s.id);
            }
            let follows = s
                .follows
                .as_deref()
                .map(|f| compile(&format!("^(?:{f})"), "follows"))
                .transpose()?;
            if let Some(k) = s.keywords.iter().find(|k| k.len() < 3) {
                bail!(
                    "rule {} ({src}): keyword {k:?} is shorter than 3 bytes",
                    s.id
                );
            }
            rules.push(Rule {
                meta: Arc::new(RuleMeta {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    description: s.description.clone(),
                    severity: s.severity,
                    help: s.help.clone(),
                    references: s.references.clone(),
                    source: src.clone(),
                }),
                keywords: s.keywords.clone(),
                base64_keywords: s.base64_keywords.clone(),
                near,
                regex,
                follows,
                secret_group,
                window: (s.window[0], s.window[1]),
                entropy: s.entropy,
                not_before: s.not_before.as_deref().map(ByteClass::parse).transpose()?,
                not_after: s.not_after.as_deref().map(ByteClass::parse).transpose()?,
                reject: compile_all(&s.reject, "reject")?,
                require: compile_all(&s.require, "require")?,
                standalone: s.standalone,
                url_decode: s.url_decode,
                examples: s.examples.clone(),
                negative_examples: s.negative_examples.clone(),
            });
        }

        let mut pairs = Vec::new();
        for (src, p) in &pair_specs {
            let key = lookup(&p.key, "key", &p.id)?;
            let secrets = p
                .secrets
                .iter()
                .map(|s| lookup(s, "secrets", &p.id))
                .collect::<Result<Vec<_>>>()?;
            let token = match &p.token {
                Some(t) => Some(lookup(t, "token", &p.id)?),
                None => None,
            };
            pairs.push(Pair {
                meta: Arc::new(RuleMeta {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    description: p.description.clone(),
                    severity: p.severity,
                    help: p.help.clone(),
                    references: p.references.clone(),
                    source: src.clone(),
                }),
                key,
                secrets,
                token,
                token_key_prefixes: p.token_key_prefixes.clone(),
                lines: p.lines,
                bytes: p.bytes,
                examples: p.examples.clone(),
                negative_examples: p.negative_examples.clone(),
            });
        }
        // A `near` rule searches the window of the pair whose key it names.
        for r in &rules {
            if let Some(n) = r.near {
                if !pairs.iter().any(|p| p.key == n) {
                    bail!(
                        "rule {}: near {:?} is not the key of any pair",
                        r.meta.id,
                        rules[n].meta.id
                    );
                }
            }
        }
        Ok(RuleSet { rules, pairs })
    }

    /// A digest of what the rules find: each rule's id, regex and checks, each pair's parts.
    /// Shards of one plan must have the same (`keyhound merge`).
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for r in &self.rules {
            h.update(r.meta.id.as_bytes());
            h.update([0]);
            h.update(r.regex.as_str().as_bytes());
            h.update([0]);
            for x in r.reject.iter().chain(&r.require) {
                h.update(x.as_str().as_bytes());
                h.update([1]);
            }
            h.update(format!("{:?}{:?}{}", r.entropy, r.window, r.secret_group).as_bytes());
        }
        for p in &self.pairs {
            h.update(p.meta.id.as_bytes());
            h.update(format!("{}{:?}", p.key, p.secrets).as_bytes());
        }
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Every reportable rule, rules first then pairs, in definition order.
    pub fn metas(&self) -> impl Iterator<Item = &Arc<RuleMeta>> {
        self.rules
            .iter()
            .map(|r| &r.meta)
            .chain(self.pairs.iter().map(|p| &p.meta))
    }

    /// Override every pair's window (from the command line or `.keyhound.toml`).
    pub fn set_pair_window(&mut self, lines: Option<usize>, bytes: Option<usize>) {
        for p in &mut self.pairs {
            if let Some(l) = lines {
                p.lines = l;
            }
            if let Some(b) = bytes {
                p.bytes = b;
            }
        }
    }
}

fn toml_files(p: &Path) -> Result<Vec<PathBuf>> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let rd =
        std::fs::read_dir(p).with_context(|| format!("cannot read rules from {}", p.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

/// Shannon entropy in bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_load() {
        let rs = RuleSet::load(&[]).unwrap();
        assert!(rs.rules.iter().any(|r| r.meta.id == "aws-access-key-id"));
        assert!(rs.pairs.iter().any(|p| p.meta.id == "aws-access-key"));
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let f = r#"
[[rule]]
id = "x"
name = "x"
description = "x"
severity = "low"
keywords = ["abc"]
regex = "abc"
"#;
        let err =
            RuleSet::from_sources(&[("a.toml".into(), f.into()), ("b.toml".into(), f.into())])
                .err()
                .unwrap();
        assert!(err.to_string().contains("a.toml") && err.to_string().contains("b.toml"));
    }

    #[test]
    fn byte_class_and_entropy() {
        let c = ByteClass::parse("[A-Z0-9]").unwrap();
        assert!(c.contains(b'Q') && c.contains(b'7') && !c.contains(b'a') && !c.contains(b'/'));
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
