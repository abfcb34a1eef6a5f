//! Suppression, between findings and reports: `keyhound:allow` on the line (counted where
//! findings are made), fingerprints in `.keyhoundignore`, a baseline (an earlier JSON report),
//! and the allowlists of `.keyhound.toml`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::finding::Credential;

/// `.keyhound.toml`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub allowlist: Allowlist,
    #[serde(default)]
    pub detect: DetectConfig,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    /// Regexes over the path (as shown in reports, `/`-separated); matching files are not read.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Regexes over a secret's values; a credential any of whose values match is suppressed.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// Fingerprints, as in `.keyhoundignore`.
    #[serde(default)]
    pub fingerprints: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Pair window: a secret pairs with a key id within this many lines…
    pub pair_lines: Option<usize>,
    /// …and this many bytes.
    pub pair_bytes: Option<usize>,
    /// Rules or families turned on (those off by default, such as `generic`)…
    #[serde(default)]
    pub enable_rules: Vec<String>,
    /// …and off.
    #[serde(default)]
    pub disable_rules: Vec<String>,
    /// Only rules at least this sure (`low`, `medium`, `high`).
    pub min_confidence: Option<crate::detect::Confidence>,
}

impl Config {
    /// The rules to use: the command line's choice added to the config's (a minimum
    /// confidence given on the command line wins).
    pub fn selection(&self, cli: &crate::detect::Selection) -> crate::detect::Selection {
        let d = &self.detect;
        crate::detect::Selection {
            enable: d.enable_rules.iter().chain(&cli.enable).cloned().collect(),
            disable: d
                .disable_rules
                .iter()
                .chain(&cli.disable)
                .cloned()
                .collect(),
            min_confidence: cli.min_confidence.or(d.min_confidence),
            all: cli.all,
        }
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// A config's text; `name` says where it came from in errors.
    pub fn parse(text: &str, name: &str) -> Result<Config> {
        toml::from_str(text).with_context(|| format!("invalid config {name}"))
    }

    pub fn path_filter(&self) -> Result<Option<RegexSet>> {
        if self.allowlist.paths.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            RegexSet::new(&self.allowlist.paths).context("invalid allowlist.paths regex")?,
        ))
    }
}

/// Why a credential was not reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Inline,
    IgnoreFile,
    Baseline,
    Allowlist,
}

impl Reason {
    pub fn all() -> &'static [Reason] {
        &[
            Reason::Inline,
            Reason::IgnoreFile,
            Reason::Baseline,
            Reason::Allowlist,
        ]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Inline => "keyhound:allow",
            Reason::IgnoreFile => ".keyhoundignore",
            Reason::Baseline => "baseline",
            Reason::Allowlist => "allowlist",
        }
    }
}

#[derive(Default)]
pub struct Suppressor {
    ignored: HashSet<String>,
    baseline: HashSet<String>,
    regexes: Vec<Regex>,
}

#[derive(Default, Debug)]
pub struct Outcome {
    pub suppressed: BTreeMap<Reason, u64>,
    /// Baseline fingerprints this scan did not see again.
    pub baseline_missing: Vec<String>,
}

impl Suppressor {
    pub fn new(config: &Config, ignore_files: &[PathBuf], baseline: Option<&Path>) -> Result<Self> {
        let mut s = Suppressor::default();
        s.ignored
            .extend(config.allowlist.fingerprints.iter().cloned());
        for f in ignore_files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read ignore file {}", f.display()))?;
            s.ignored.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        for r in &config.allowlist.regexes {
            s.regexes
                .push(Regex::new(r).with_context(|| format!("invalid allowlist regex {r:?}"))?);
        }
        if let Some(b) = baseline {
            s.baseline = read_baseline(b)?;
        }
        Ok(s)
    }

    pub fn apply(&self, creds: Vec<Credential>, out: &mut Outcome) -> Vec<Credential> {
        let seen: HashSet<&str> = creds.iter().map(|c| c.fingerprint.as_str()).collect();
        out.baseline_missing = self
            .baseline
            .iter()
            .filter(|f| !seen.contains(f.as_str()))
            .cloned()
            .collect();
        out.baseline_missing.sort();
        creds
            .into_iter()
            .filter(|c| {
                let why = if self.ignored.contains(&c.fingerprint) {
                    Some(Reason::IgnoreFile)
                } else if self.baseline.contains(&c.fingerprint) {
                    Some(Reason::Baseline)
                } else if c
                    .parts
                    .iter()
                    .any(|(_, v)| self.regexes.iter().any(|r| r.is_match(v)))
                {
                    Some(Reason::Allowlist)
                } else {
                    None
                };
                match why {
                    Some(r) => {
                        *out.suppressed.entry(r).or_default() += 1;
                        false
                    }
                    None => true,
                }
            })
            .collect()
    }
}

/// Fingerprints of the credentials in an earlier JSON report (`--format json`).
fn read_baseline(path: &Path) -> Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read baseline {}", path.display()))?;
    parse_baseline(&text, &path.display().to_string())
}

/// The fingerprints of a baseline's text (an earlier JSON report); `name` says where it came
/// from in errors.
pub fn parse_baseline(text: &str, name: &str) -> Result<HashSet<String>> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("baseline {name} is not JSON"))?;
    let creds = v
        .get("credentials")
        .and_then(|c| c.as_array())
        .with_context(|| {
            format!("baseline {name} is not a keyhound JSON report (no \"credentials\" list)")
        })?;
    Ok(creds
        .iter()
        .filter_map(|c| c.get("fingerprint").and_then(|f| f.as_str()))
        .map(str::to_string)
        .collect())
}
