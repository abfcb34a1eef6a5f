//! Rules as data: the TOML files of `patterns/` (embedded at build time) and any `--rules DIR`.
//!
//! A file holds `[[rule]]` tables (one regex each) and `[[pair]]` tables (a key id rule, the
//! secret rules it pairs with and an optional session token rule). The format is documented in
//! the README; `keyhound rules check` and `cargo test` run every rule's examples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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

/// How sure a match of the rule is to be the secret it names: `high` for prefixed or
/// checksummed tokens, `medium` where a keyword near a generic-looking value is needed, `low`
/// for guesses (the generic rule).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

impl std::str::FromStr for Confidence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(Confidence::Low),
            "medium" => Ok(Confidence::Medium),
            "high" => Ok(Confidence::High),
            _ => Err(format!("{s:?} is not a confidence: low, medium or high")),
        }
    }
}

/// What every reportable rule (a `[[rule]]` or a `[[pair]]`) tells the reports.
#[derive(Debug, Serialize)]
pub struct RuleMeta {
    pub id: String,
    /// The provider (or kind of secret) the rule belongs to: its file's name unless it says.
    pub family: String,
    pub confidence: Confidence,
    /// `false`: the rule runs only when asked for (`--enable-rule`, `--generic`).
    pub default_on: bool,
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
pub(crate) struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    pair: Vec<PairSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    #[serde(default)]
    family: Option<String>,
    name: String,
    description: String,
    severity: Severity,
    #[serde(default = "medium")]
    confidence: Confidence,
    /// `false`: off unless enabled (`--enable-rule ID|FAMILY`, `--generic`).
    #[serde(default = "yes")]
    enabled: bool,
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
    /// The capture group that is the secret, by number (gitleaks' `secretGroup`); default: the
    /// group named `secret`, else group 1 if there is one, else the whole match.
    #[serde(default)]
    secret_group: Option<usize>,
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
    /// A checksum the secret carries (`crc32-base62`): a match whose checksum fails is no
    /// secret.
    #[serde(default)]
    checksum: Option<Checksum>,
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
    #[serde(default)]
    family: Option<String>,
    name: String,
    description: String,
    severity: Severity,
    #[serde(default = "medium")]
    confidence: Confidence,
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
fn medium() -> Confidence {
    Confidence::Medium
}

/// A loaded `[[rule]]`. Its patterns are compiled when its keywords first hit (`compiled`):
/// a scan that never sees a rule's keywords never pays for its regex, so start-up stays short
/// with hundreds of rules. Rules of `--rules` files are compiled at load, to report errors.
pub struct Rule {
    pub meta: Arc<RuleMeta>,
    pub keywords: Vec<String>,
    pub base64_keywords: Vec<String>,
    pub near: Option<usize>,
    pub window: (usize, usize),
    pub entropy: Option<f64>,
    pub checksum: Option<Checksum>,
    pub standalone: bool,
    pub url_decode: bool,
    pub examples: Vec<String>,
    pub negative_examples: Vec<String>,
    patterns: Patterns,
    compiled: OnceLock<Compiled>,
}

/// A rule's patterns as written.
struct Patterns {
    regex: String,
    secret_group: Option<usize>,
    follows: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    reject: Vec<String>,
    require: Vec<String>,
}

/// A rule's patterns, compiled.
pub struct Compiled {
    pub regex: Regex,
    /// `follows`, anchored at its start.
    pub follows: Option<Regex>,
    pub secret_group: usize,
    pub not_before: Option<ByteClass>,
    pub not_after: Option<ByteClass>,
    pub reject: Vec<Regex>,
    pub require: Vec<Regex>,
}

impl Patterns {
    fn compile(&self) -> Result<Compiled> {
        // Rules run on bytes, and secrets are ASCII: with Unicode off, `\s`, `(?i)` and
        // classes are byte classes, and every rule compiles to a far smaller automaton.
        // Starting a scan took 28–31 ms, of which compiling Unicode classes (`[^\s…]`,
        // `(?i)`) was most; then 16 ms with 19 rules, all compiled at start.
        let compile = |pattern: &str, what: &str| -> Result<Regex> {
            let relaxed = unbounded_from(pattern, UNBOUNDED_FROM);
            RegexBuilder::new(relaxed.as_deref().unwrap_or(pattern))
                .unicode(false)
                .size_limit(1 << 24)
                .build()
                .with_context(|| format!("invalid {what}"))
        };
        let regex = compile(&self.regex, "regex")?;
        let secret_group = match self.secret_group {
            Some(g) if g >= regex.captures_len() => {
                bail!("secret group {g} is not a group of the regex")
            }
            Some(g) => g,
            None => regex
                .capture_names()
                .position(|n| n == Some("secret"))
                .unwrap_or(if regex.captures_len() > 1 { 1 } else { 0 }),
        };
        let compile_all = |v: &[String], what: &str| -> Result<Vec<Regex>> {
            v.iter().map(|r| compile(r, what)).collect()
        };
        Ok(Compiled {
            secret_group,
            regex,
            follows: self
                .follows
                .as_deref()
                .map(|f| compile(&format!("^(?:{f})"), "follows"))
                .transpose()?,
            not_before: self
                .not_before
                .as_deref()
                .map(ByteClass::parse)
                .transpose()?,
            not_after: self
                .not_after
                .as_deref()
                .map(ByteClass::parse)
                .transpose()?,
            reject: compile_all(&self.reject, "reject")?,
            require: compile_all(&self.require, "require")?,
        })
    }
}

/// A counted repetition whose upper bound is at least this is compiled without the bound
/// (`[A-Za-z0-9+/]{100,4000}` as `{100,}`). The scan window bounds every match anyway (a rule's
/// `window`, stretched to the token's edges), and the automaton of a big bound is a copy of
/// the repeated part per count: compiling the 847 regexes of `patterns/` took 150–170 ms with
/// the bounds, 75–85 ms without those of 1,000 and more (one core; one kubeconfig rule with
/// six lines of up to 8,000 bytes alone took 25 ms). Every shard of a scan, and every
/// pre-commit run, compiles the rules its keywords hit.
const UNBOUNDED_FROM: u32 = 1000;

/// `pattern` with every counted repetition bounded at `limit` or more made unbounded, if it has
/// one (else `None`, and the pattern is compiled as written).
fn unbounded_from(pattern: &str, limit: u32) -> Option<String> {
    use regex_syntax::hir::{Hir, HirKind};
    fn relax(h: Hir, limit: u32, changed: &mut bool) -> Hir {
        match h.into_kind() {
            HirKind::Repetition(mut r) => {
                if r.max.is_some_and(|m| m >= limit) {
                    r.max = None;
                    *changed = true;
                }
                r.sub = Box::new(relax(*r.sub, limit, changed));
                Hir::repetition(r)
            }
            HirKind::Capture(mut c) => {
                c.sub = Box::new(relax(*c.sub, limit, changed));
                Hir::capture(c)
            }
            HirKind::Concat(v) => {
                Hir::concat(v.into_iter().map(|h| relax(h, limit, changed)).collect())
            }
            HirKind::Alternation(v) => {
                Hir::alternation(v.into_iter().map(|h| relax(h, limit, changed)).collect())
            }
            HirKind::Empty => Hir::empty(),
            HirKind::Literal(l) => Hir::literal(l.0),
            HirKind::Class(c) => Hir::class(c),
            HirKind::Look(l) => Hir::look(l),
        }
    }
    let hir = byte_parser().parse(pattern).ok()?;
    let mut changed = false;
    let hir = relax(hir, limit, &mut changed);
    changed.then(|| hir.to_string())
}

/// The bytes a match of `pattern` can start with, or `None` where it can match the empty
/// string (or does not parse): read from its syntax tree, without compiling it.
fn first_bytes(pattern: &str) -> Option<[bool; 256]> {
    use regex_syntax::hir::{Class, Hir, HirKind};
    /// Adds the bytes a match of `h` can start with; returns whether it can match empty.
    fn add(h: &Hir, set: &mut [bool; 256]) -> bool {
        match h.kind() {
            // A look-around only narrows where a match is: taken as matching empty here.
            HirKind::Empty | HirKind::Look(_) => true,
            HirKind::Literal(l) => {
                set[usize::from(l.0[0])] = true;
                false
            }
            HirKind::Class(Class::Bytes(c)) => {
                for r in c.iter() {
                    (r.start()..=r.end()).for_each(|b| set[usize::from(b)] = true);
                }
                false
            }
            HirKind::Class(Class::Unicode(c)) => {
                for r in c.iter() {
                    let (a, b) = (u32::from(r.start()), u32::from(r.end()));
                    if a <= 0x7F {
                        (a..=b.min(0x7F)).for_each(|x| set[x as usize] = true);
                    }
                    if b > 0x7F {
                        // Any leading byte of a longer UTF-8 sequence.
                        set[0x80..].iter_mut().for_each(|x| *x = true);
                    }
                }
                false
            }
            HirKind::Repetition(r) => add(&r.sub, set) || r.min == 0,
            HirKind::Capture(c) => add(&c.sub, set),
            // The first items up to one that cannot match empty.
            HirKind::Concat(v) => v.iter().all(|h| add(h, set)),
            HirKind::Alternation(v) => v.iter().fold(false, |empty, h| add(h, set) | empty),
        }
    }
    let hir = byte_parser().parse(pattern).ok()?;
    let mut set = [false; 256];
    (!add(&hir, &mut set)).then_some(set)
}

/// The parser the rules' regexes are compiled with: bytes, Unicode off (as `RegexBuilder`
/// with `unicode(false)`).
fn byte_parser() -> regex_syntax::Parser {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
}

impl Rule {
    /// The bytes that may come right after one of the rule's keywords in a match (the first
    /// bytes of `follows`), if the rule says: `None` where any may, or none.
    pub fn next_bytes(&self) -> Option<[bool; 256]> {
        first_bytes(self.patterns.follows.as_deref()?)
    }

    /// The rule's compiled patterns, compiled on first use. Embedded rules are known to compile
    /// (`cargo test`); a rule that did not would match nothing and say so once.
    pub fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| match self.patterns.compile() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("keyhound: rule {}: {e:#}; it is skipped", self.meta.id);
                Compiled {
                    regex: Regex::new("a^").expect("never matches"),
                    follows: None,
                    secret_group: 0,
                    not_before: None,
                    not_after: None,
                    reject: Vec::new(),
                    require: Vec::new(),
                }
            }
        })
    }
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
    /// A class as a regex writes it (`[A-Za-z0-9_\-]`, `\s`, one byte), read from its syntax
    /// tree. (Compiling it as a regex and matching each of the 256 bytes took 9% of a run that
    /// compiled every rule.)
    fn parse(class: &str) -> Result<Self> {
        use regex_syntax::hir::{Class, HirKind};
        let hir = byte_parser()
            .parse(class)
            .with_context(|| format!("invalid byte class {class:?}"))?;
        let mut set = [false; 256];
        match hir.kind() {
            HirKind::Class(Class::Bytes(c)) => {
                for r in c.iter() {
                    for b in r.start()..=r.end() {
                        set[usize::from(b)] = true;
                    }
                }
            }
            HirKind::Literal(l) if l.0.len() == 1 => set[usize::from(l.0[0])] = true,
            _ => bail!("{class:?} is not a class of single bytes"),
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

/// Which rules a run uses: `--enable-rule`, `--disable-rule`, `--min-confidence`, `--generic`
/// and their `.keyhound.toml` forms. Each name is a rule id, a pair id or a family.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Turns on rules that are off by default (`enabled = false`, such as the generic rule).
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    pub min_confidence: Option<Confidence>,
    /// Rules that are off by default too (`rules list`).
    pub all: bool,
}

impl Selection {
    fn wants(&self, id: &str, family: &str, confidence: Confidence, enabled: bool) -> bool {
        let named = |list: &[String]| list.iter().any(|n| n == id || n == family);
        (enabled || self.all || named(&self.enable))
            && !named(&self.disable)
            && self.min_confidence.is_none_or(|m| confidence >= m)
    }
}

impl RuleSet {
    /// The embedded rules plus every `*.toml` in `extra_dirs` (or named file).
    pub fn load(extra: &[PathBuf]) -> Result<RuleSet> {
        Self::load_selected(extra, &Selection::default())
    }

    /// `load`, keeping the rules `sel` wants. The embedded files come first, compiled when
    /// first needed; the user's after them, compiled now.
    pub fn load_selected(extra: &[PathBuf], sel: &Selection) -> Result<RuleSet> {
        let mut files: Vec<(String, String)> = EMBEDDED_RULE_FILES
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let lazy = files.len();
        for p in extra {
            for f in toml_files(p)? {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read rule file {}", f.display()))?;
                files.push((f.display().to_string(), text));
            }
        }
        Self::build(&files, lazy, sel)
    }

    /// Rule files given as (name, text), compiled at once.
    pub fn from_sources(files: &[(String, String)]) -> Result<RuleSet> {
        Self::build(files, 0, &Selection::default())
    }

    /// The first `lazy` files are compiled when first needed, the rest now.
    fn build(files: &[(String, String)], lazy: usize, sel: &Selection) -> Result<RuleSet> {
        let mut specs = Vec::new();
        let mut pair_specs = Vec::new();
        for (i, (name, text)) in files.iter().enumerate() {
            // Embedded files come as JSON (build.rs), the user's as TOML.
            let f = if i < lazy {
                serde_json::from_str(text).with_context(|| format!("invalid rule file {name}"))?
            } else {
                parse_rule_file(name, text)?
            };
            let stem = Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone());
            let eager = i >= lazy;
            specs.extend(f.rule.into_iter().map(|mut r| {
                let fam = r.family.get_or_insert_with(|| stem.clone()).clone();
                (name.clone(), fam, eager, r)
            }));
            pair_specs.extend(f.pair.into_iter().map(|mut p| {
                let fam = p.family.get_or_insert_with(|| stem.clone()).clone();
                (name.clone(), fam, p)
            }));
        }
        let mut ids: HashMap<String, String> = HashMap::new();
        for (src, id) in specs
            .iter()
            .map(|(s, _, _, r)| (s, &r.id))
            .chain(pair_specs.iter().map(|(s, _, p)| (s, &p.id)))
        {
            if let Some(prev) = ids.insert(id.clone(), src.clone()) {
                bail!("rule id {id:?} is defined in both {prev} and {src}");
            }
        }
        for name in sel.enable.iter().chain(&sel.disable) {
            let known = ids.contains_key(name)
                || specs.iter().any(|(_, f, _, _)| f == name)
                || pair_specs.iter().any(|(_, f, _)| f == name);
            if !known {
                bail!("no rule or family is named {name:?} (`keyhound rules list` shows them)");
            }
        }
        // Every rule is checked (the lookups below), then the selection drops rules and pairs:
        // a pair goes with its key rule; a rule that only serves dropped pairs goes too.
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, (_, _, _, r))| (r.id.as_str(), i))
            .collect();
        let lookup = |id: &str, what: &str, owner: &str| -> Result<usize> {
            index
                .get(id)
                .copied()
                .with_context(|| format!("{owner}: {what} names unknown rule {id:?}"))
        };
        for (src, _, _, s) in &specs {
            if let Some(n) = &s.near {
                lookup(n, "near", &s.id)?;
            }
            if s.keywords.is_empty() == s.near.is_none() {
                bail!("rule {} ({src}) needs keywords or near (one of them)", s.id);
            }
            if s.follows.is_some() && s.keywords.is_empty() {
                bail!("rule {} ({src}): follows needs keywords", s.id);
            }
            if let Some(k) = s.keywords.iter().find(|k| k.len() < 3) {
                bail!(
                    "rule {} ({src}): keyword {k:?} is shorter than 3 bytes",
                    s.id
                );
            }
        }
        for (_, _, p) in &pair_specs {
            lookup(&p.key, "key", &p.id)?;
            for x in p.secrets.iter().chain(&p.token) {
                lookup(x, "secrets", &p.id)?;
            }
        }
        let mut keep: Vec<bool> = specs
            .iter()
            .map(|(_, fam, _, r)| {
                if r.standalone {
                    sel.wants(&r.id, fam, r.confidence, r.enabled)
                } else {
                    // Reported only in pairs: the pairs decide (below), unless named.
                    !sel.disable.contains(&r.id)
                }
            })
            .collect();
        // `near` rules follow the rule they search around.
        for i in 0..specs.len() {
            if let Some(n) = &specs[i].3.near {
                keep[i] = keep[i] && keep[index[n.as_str()]];
            }
        }
        let pair_specs: Vec<_> = pair_specs
            .into_iter()
            .filter(|(_, fam, p)| {
                sel.wants(&p.id, fam, p.confidence, true)
                    && keep[index[p.key.as_str()]]
                    && p.secrets.iter().any(|s| keep[index[s.as_str()]])
            })
            .collect();
        for (i, (_, _, _, r)) in specs.iter().enumerate() {
            let serves = pair_specs.iter().any(|(_, _, p)| {
                [&p.key]
                    .into_iter()
                    .chain(&p.secrets)
                    .chain(&p.token)
                    .any(|m| m == &r.id)
            });
            if !r.standalone && !serves {
                keep[i] = false;
            }
        }
        let specs: Vec<_> = specs
            .into_iter()
            .zip(keep)
            .filter_map(|(s, k)| k.then_some(s))
            .collect();
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, (_, _, _, r))| (r.id.as_str(), i))
            .collect();

        let mut rules = Vec::with_capacity(specs.len());
        for (src, family, eager, s) in &specs {
            let patterns = Patterns {
                regex: s.regex.clone(),
                secret_group: s.secret_group,
                follows: s.follows.clone(),
                not_before: s.not_before.clone(),
                not_after: s.not_after.clone(),
                reject: s.reject.clone(),
                require: s.require.clone(),
            };
            let compiled = OnceLock::new();
            if *eager {
                let c = patterns
                    .compile()
                    .with_context(|| format!("rule {} ({src})", s.id))?;
                let _ = compiled.set(c);
            }
            rules.push(Rule {
                meta: Arc::new(RuleMeta {
                    id: s.id.clone(),
                    family: family.clone(),
                    confidence: s.confidence,
                    default_on: s.enabled,
                    name: s.name.clone(),
                    description: s.description.clone(),
                    severity: s.severity,
                    help: s.help.clone(),
                    references: s.references.clone(),
                    source: src.clone(),
                }),
                keywords: s.keywords.clone(),
                base64_keywords: s.base64_keywords.clone(),
                near: s.near.as_ref().map(|n| index[n.as_str()]),
                window: (s.window[0], s.window[1]),
                entropy: s.entropy,
                checksum: s.checksum,
                standalone: s.standalone,
                url_decode: s.url_decode,
                examples: s.examples.clone(),
                negative_examples: s.negative_examples.clone(),
                patterns,
                compiled,
            });
        }

        let mut pairs = Vec::new();
        for (src, family, p) in &pair_specs {
            pairs.push(Pair {
                meta: Arc::new(RuleMeta {
                    id: p.id.clone(),
                    family: family.clone(),
                    confidence: p.confidence,
                    default_on: true,
                    name: p.name.clone(),
                    description: p.description.clone(),
                    severity: p.severity,
                    help: p.help.clone(),
                    references: p.references.clone(),
                    source: src.clone(),
                }),
                key: index[p.key.as_str()],
                secrets: p
                    .secrets
                    .iter()
                    .filter_map(|s| index.get(s.as_str()).copied())
                    .collect(),
                token: p
                    .token
                    .as_ref()
                    .and_then(|t| index.get(t.as_str()).copied()),
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

    /// Compiles every rule now (`rules check`, tests).
    pub fn compile_all(&self) -> Result<()> {
        for r in &self.rules {
            r.patterns
                .compile()
                .with_context(|| format!("rule {} ({})", r.meta.id, r.meta.source))?;
        }
        Ok(())
    }

    /// A digest of what the rules find: each rule's id, regex and checks, each pair's parts.
    /// Shards of one plan must have the same (`keyhound merge`).
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for r in &self.rules {
            h.update(r.meta.id.as_bytes());
            h.update([0]);
            let p = &r.patterns;
            h.update(p.regex.as_bytes());
            h.update([0]);
            for x in p.reject.iter().chain(&p.require).chain(&p.follows) {
                h.update(x.as_bytes());
                h.update([1]);
            }
            h.update(
                format!(
                    "{:?}{:?}{:?}{:?}{:?}",
                    r.entropy, r.window, p.not_before, p.not_after, r.checksum
                )
                .as_bytes(),
            );
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

/// A rule file: keyhound's format (`[[rule]]`, `[[pair]]`) or a gitleaks config (`[[rules]]`).
fn parse_rule_file(name: &str, text: &str) -> Result<RuleFile> {
    let value: toml::Table =
        toml::from_str(text).with_context(|| format!("invalid rule file {name}"))?;
    if value.contains_key("rules") {
        let ours = crate::detect::gitleaks::translate(&value)
            .with_context(|| format!("cannot use the gitleaks config {name}"))?;
        return ours
            .try_into()
            .with_context(|| format!("the gitleaks config {name}, translated"));
    }
    value
        .try_into()
        .with_context(|| format!("invalid rule file {name}"))
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

/// A checksum a token format carries, checked on the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksum {
    /// GitHub's and npm's token format: the last 6 characters are the CRC-32 (IEEE) of the 30
    /// before them, in base62 (digits, then upper case, then lower case), left-padded with `0`.
    /// The prefix (`ghp_`, `npm_`) is not summed.
    Crc32Base62,
}

/// The base62 digits of `Checksum::Crc32Base62`.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Checksum {
    /// Whether `secret` ends with a checksum that holds.
    pub fn holds(self, secret: &[u8]) -> bool {
        match self {
            Checksum::Crc32Base62 => {
                let Some(at) = secret.len().checked_sub(36) else {
                    return false;
                };
                let (body, sum) = secret[at..].split_at(30);
                let mut v: u64 = 0;
                for &c in sum {
                    let Some(d) = BASE62.iter().position(|&b| b == c) else {
                        return false;
                    };
                    v = v * 62 + d as u64;
                }
                v == u64::from(crc32fast::hash(body))
            }
        }
    }

    /// The checksum of `body` (30 characters), as the format writes it.
    pub fn of(self, body: &[u8]) -> String {
        match self {
            Checksum::Crc32Base62 => {
                let mut v = crc32fast::hash(body);
                let mut out = [b'0'; 6];
                for d in out.iter_mut().rev() {
                    *d = BASE62[(v % 62) as usize];
                    v /= 62;
                }
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }
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
    fn embedded_rules_compile_when_first_needed() {
        let rs = RuleSet::load_selected(
            &[],
            &Selection {
                all: true,
                ..Default::default()
            },
        )
        .unwrap();
        rs.compile_all().unwrap();
        // Nothing is compiled at load; a rule is compiled by its first use, and only it.
        assert!(rs.rules.iter().all(|r| r.compiled.get().is_none()));
        let gh = rs
            .rules
            .iter()
            .find(|r| r.meta.id == "github-token")
            .unwrap();
        assert!(gh
            .compiled()
            .regex
            .is_match(b"ghp_0123456789abcdefghijABCDEFGHIJ012345"));
        let compiled: Vec<&str> = rs
            .rules
            .iter()
            .filter(|r| r.compiled.get().is_some())
            .map(|r| r.meta.id.as_str())
            .collect();
        assert_eq!(compiled, ["github-token"]);
        // Every embedded rule says its confidence and belongs to a family.
        for (name, text) in EMBEDDED_RULE_FILES {
            let f: serde_json::Value = serde_json::from_str(text).unwrap();
            for r in f
                .get("rule")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                assert!(
                    r.get("confidence").is_some(),
                    "{name}: {:?} has no confidence",
                    r.get("id")
                );
            }
        }
    }

    #[test]
    fn a_selection_keeps_pairs_whole() {
        let sel = |enable: &[&str], disable: &[&str], min: Option<Confidence>| Selection {
            enable: enable.iter().map(|s| s.to_string()).collect(),
            disable: disable.iter().map(|s| s.to_string()).collect(),
            min_confidence: min,
            all: false,
        };
        let ids = |s: &Selection| -> Vec<String> {
            let rs = RuleSet::load_selected(&[], s).unwrap();
            rs.metas().map(|m| m.id.clone()).collect()
        };
        let all = ids(&sel(&[], &[], None));
        assert!(all.contains(&"aws-access-key".to_string()));
        assert!(!all.contains(&"generic-secret".to_string()));
        // High confidence keeps the AWS pair with its (medium) secret rules behind it…
        let high = ids(&sel(&[], &[], Some(Confidence::High)));
        assert!(high.contains(&"aws-access-key".to_string()));
        assert!(high.contains(&"aws-secret-access-key-near".to_string()));
        assert!(!high.contains(&"aws-secret-access-key".to_string()));
        assert!(!high.contains(&"url-credentials".to_string()));
        // …and turning off the family removes every part.
        let no_aws = ids(&sel(&[], &["aws"], None));
        assert!(no_aws.iter().all(|i| !i.starts_with("aws-")), "{no_aws:?}");
        // Turning off the pair leaves the key id rule as a lead, without the pair's parts.
        let no_pair = ids(&sel(&[], &["aws-access-key"], None));
        assert!(no_pair.contains(&"aws-access-key-id".to_string()));
        assert!(!no_pair.contains(&"aws-secret-access-key-near".to_string()));
        let generic = ids(&sel(&["generic"], &[], None));
        assert!(generic.contains(&"generic-secret".to_string()));
        let err = RuleSet::load_selected(&[], &sel(&["nope"], &[], None))
            .err()
            .unwrap();
        assert!(err.to_string().contains("nope"));
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

    /// A token built from a body and its checksum holds; one character changed breaks it. (The
    /// alphabet, the padding and the CRC were checked against a published GitHub-format
    /// example, which is not kept here: the repository carries no token-shaped strings.)
    #[test]
    fn crc32_base62_checksum() {
        let c = Checksum::Crc32Base62;
        let body = b"abcdefghijklmnopqrstuvwxyzABCD";
        let token = format!("ghp_{}{}", std::str::from_utf8(body).unwrap(), c.of(body));
        assert_eq!(token.len(), 40);
        assert!(c.holds(token.as_bytes()));
        let mut bad = token.clone().into_bytes();
        bad[10] ^= 0x20;
        assert!(!c.holds(&bad));
        assert!(!c.holds(b"ghp_short"));
        assert!(!c.holds(format!("ghp_{}!!!!!!", std::str::from_utf8(body).unwrap()).as_bytes()));
        // The largest CRC-32 still fits 6 base62 digits (62^6 > 2^32).
        assert!(62u64.pow(6) > u64::from(u32::MAX));
    }

    /// Big counted bounds are dropped before compiling; small ones, groups and their names
    /// stay as written.
    #[test]
    fn big_repetition_bounds_are_compiled_unbounded() {
        assert_eq!(unbounded_from("ab{2,999}", 1000), None);
        assert_eq!(unbounded_from("(", 1000), None);
        let p = unbounded_from(r"^k(?P<secret>[A-Za-z]{3,4000})(9{1,2})?$", 1000).unwrap();
        let re = RegexBuilder::new(&p).unicode(false).build().unwrap();
        let long = format!("k{}9", "Q".repeat(5000));
        let caps = re.captures(long.as_bytes()).unwrap();
        assert_eq!(caps.name("secret").unwrap().len(), 5000);
        assert_eq!(caps.get(2).unwrap().as_bytes(), b"9");
        assert!(!re.is_match(b"kQQ9"), "the lower bound stays");
        // A class as a byte class, `(?i)` as written.
        let p = unbounded_from(r"(?i)ab[^\s]{1,1000}", 1000).unwrap();
        let re = RegexBuilder::new(&p).unicode(false).build().unwrap();
        assert!(re.is_match(b"AB\xFF\xFE") && !re.is_match(b"ab "));
    }

    /// The bytes a `follows` can start with, which the prefilter folds into 4-grams: every
    /// byte a match can start with, none else; `None` where it can match empty.
    #[test]
    fn first_bytes_of_a_pattern() {
        let set = |p: &str| {
            first_bytes(p).map(|s| {
                (0..=255u8)
                    .filter(|&b| s[usize::from(b)])
                    .collect::<Vec<u8>>()
            })
        };
        assert_eq!(set("[a-c]{3}x").unwrap(), b"abc");
        assert_eq!(set("(?:u\\.)?[0-9]{12}").unwrap(), b"0123456789u");
        assert_eq!(set("x?y*(?:z|w)").unwrap(), b"wxyz");
        assert_eq!(set("(?i)k").unwrap(), b"Kk");
        assert_eq!(set("\\bq|(r)").unwrap(), b"qr");
        assert_eq!(set("[^a]").unwrap().len(), 255);
        for empty in ["a?", "(?:a|)", "a*b?", "\\b", "("] {
            assert_eq!(set(empty), None, "{empty}");
        }
    }

    #[test]
    fn byte_class_and_entropy() {
        let c = ByteClass::parse("[A-Z0-9]").unwrap();
        assert!(c.contains(b'Q') && c.contains(b'7') && !c.contains(b'a') && !c.contains(b'/'));
        let c = ByteClass::parse(r"[A-Za-z0-9_\-]").unwrap();
        assert!(c.contains(b'-') && c.contains(b'_') && !c.contains(b'.') && !c.contains(0xFF));
        let c = ByteClass::parse("[^a]").unwrap();
        assert!(!c.contains(b'a') && c.contains(b'b') && c.contains(0xFF) && c.contains(0));
        let c = ByteClass::parse(r"\s").unwrap();
        assert!(c.contains(b' ') && c.contains(b'\t') && !c.contains(b'x'));
        let c = ByteClass::parse("=").unwrap();
        assert!(c.contains(b'=') && !c.contains(b'-'));
        assert!(ByteClass::parse("ab").is_err());
        assert!(ByteClass::parse("[a-").is_err());
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
