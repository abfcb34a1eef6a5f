//! Reports: human text, JSON/JSONL (versioned schema) and SARIF 2.1.0. Every secret passes
//! through `redact` unless the user asked for `--show-secrets`.

pub mod actions;
pub mod json;
pub mod progress;
pub mod sarif;
pub mod text;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::detect::{Role, RuleMeta};
use crate::finding::Credential;
use crate::source::Skip;
use crate::suppress::Reason;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Sarif,
}

/// Everything a report shows.
pub struct Report<'a> {
    /// `worktree` for now; `history`, `image`… as sources are added.
    pub kind: &'static str,
    pub roots: Vec<String>,
    /// The credentials to report (examples included only when asked for).
    pub credentials: &'a [Credential],
    /// Every reportable rule, for SARIF's rule table.
    pub rules: Vec<Arc<RuleMeta>>,
    pub summary: Summary,
    pub show_secrets: bool,
    /// What was run: shards of one plan share it, but for the shard (`keyhound merge`).
    pub plan: Option<PlanId>,
}

/// A scan's identity in its JSON report: the command line (less what only changes the
/// report's look), the rules' digest, and which shard of how many this run was.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanId {
    pub args: Vec<String>,
    pub rules: String,
    pub shard: Option<crate::shard::Shard>,
}

#[derive(Default)]
pub struct Summary {
    /// Files, or blobs for git.
    pub files: u64,
    /// Git history: commits walked.
    pub commits: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub skipped: BTreeMap<Skip, u64>,
    pub warnings: Vec<String>,
    pub suppressed: BTreeMap<Reason, u64>,
    /// Examples and placeholders found; `examples_hidden` of them not shown.
    pub examples: u64,
    pub examples_hidden: u64,
    pub baseline_missing: Vec<String>,
    pub incomplete: bool,
    /// A merged report: what each part read and how long it took.
    pub shards: Vec<ShardLoad>,
}

/// One part of a merged scan: what it read and how long it took (1-based shard number).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShardLoad {
    pub shard: u32,
    pub files: u64,
    pub bytes: u64,
    pub duration_ms: u64,
}

impl Summary {
    pub fn throughput_mib_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.bytes as f64 / (1024.0 * 1024.0) / s
        } else {
            0.0
        }
    }
}

impl Report<'_> {
    pub fn places(&self) -> usize {
        self.credentials.iter().map(|c| c.places.len()).sum()
    }

    /// Credentials per rule id.
    pub fn by_rule(&self) -> BTreeMap<&str, u64> {
        let mut m = BTreeMap::new();
        for c in self.credentials {
            *m.entry(c.rule.id.as_str()).or_default() += 1;
        }
        m
    }

    pub fn value(&self, role: Role, v: &str) -> String {
        if self.show_secrets {
            v.to_string()
        } else {
            redact(role, v)
        }
    }

    /// The snippet of a place, with every part of the credential redacted.
    pub fn snippet(&self, c: &Credential, snippet: &str) -> String {
        let s = if self.show_secrets {
            snippet.to_string()
        } else {
            redact_snippet(snippet, &c.parts)
        };
        s.chars()
            .map(|ch| {
                if ch.is_control() && ch != '\t' {
                    ' '
                } else {
                    ch
                }
            })
            .collect()
    }
}

pub fn write(report: &Report, format: Format, color: bool, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Text => text::write(report, color, out),
        Format::Json => json::write(report, out),
        Format::Jsonl => json::write_lines(report, out),
        Format::Sarif => sarif::write(report, out),
    }
}

/// A value as it may be shown: key ids keep their 4-letter prefix and last 4 characters (enough
/// to find the key in IAM); other values keep a vendor prefix (`ghp_`, `sk_live_`, a PEM header)
/// or their first 4 characters.
/// A report file created, with its folder (a part of a fan-out writes `reports/part-3.json`
/// into a fresh volume).
pub fn create_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn redact(role: Role, v: &str) -> String {
    let n = v.chars().count();
    if role == Role::KeyId && n >= 12 {
        let head: String = v.chars().take(4).collect();
        let tail: String = v.chars().skip(n - 4).collect();
        return format!("{head}…{tail}");
    }
    if v.starts_with("-----BEGIN") {
        let header = v.split(['\n', '\\']).next().unwrap_or("");
        return format!("{header}…");
    }
    if n < 12 {
        return "*".repeat(n.clamp(3, 8));
    }
    let keep = v
        .char_indices()
        .take(12)
        .filter(|(_, c)| *c == '_' || *c == '-')
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(4)
        .max(4);
    format!("{}…", &v[..keep])
}

/// Replaces each value in `s` by its redaction, and masks a value cut at either edge.
fn redact_snippet(s: &str, parts: &[(Role, String)]) -> String {
    let mut s = s.to_string();
    for (role, v) in parts {
        if v.is_empty() {
            continue;
        }
        let r = redact(*role, v);
        s = s.replace(v.as_str(), &r);
        // A long value may run past the snippet's ends.
        if let Some(k) = (4..v.len().min(s.len()))
            .rev()
            .find(|&k| v.is_char_boundary(k) && s.ends_with(&v[..k]))
        {
            s.truncate(s.len() - k);
            s.push_str(&r);
        }
        if let Some(k) = (4..v.len().min(s.len()))
            .rev()
            .find(|&k| v.is_char_boundary(v.len() - k) && s.starts_with(&v[v.len() - k..]))
        {
            s = format!("…{}", &s[k..]);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_prefixes() {
        assert_eq!(redact(Role::KeyId, "AKIAABCDEFGHIJKLWXYZ"), "AKIA…WXYZ");
        assert_eq!(
            redact(Role::Secret, "abcdEFGHijklMNOPqrstUVWXyz0123456789/+ab"),
            "abcd…"
        );
        assert_eq!(
            redact(Role::Value, "ghp_0123456789abcdefghij0123456789abcdef"),
            "ghp_…"
        );
        assert_eq!(
            redact(Role::Value, "sk_live_0123456789abcdefghij"),
            "sk_live_…"
        );
        assert_eq!(redact(Role::Secret, "hunter2"), "*******");
        assert_eq!(
            redact(
                Role::Value,
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END"
            ),
            "-----BEGIN RSA PRIVATE KEY-----…"
        );
    }

    #[test]
    fn snippets_lose_whole_and_cut_values() {
        let secret = "abcdEFGHijklMNOPqrstUVWXyz0123456789/+ab".to_string();
        let parts = vec![(Role::Secret, secret.clone())];
        let s = redact_snippet(&format!("key = \"{secret}\""), &parts);
        assert_eq!(s, "key = \"abcd…\"");
        let s = redact_snippet(&format!("key = {}", &secret[..30]), &parts);
        assert!(!s.contains(&secret[4..30]), "{s}");
        let s = redact_snippet(&format!("{} tail", &secret[10..]), &parts);
        assert!(!s.contains(&secret[10..]), "{s}");
    }
}
