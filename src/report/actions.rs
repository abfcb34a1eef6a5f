//! The action report: what each owner must do with each key. Markdown (grouped by owner, then
//! key), JSON (schema `keyhound-actions`, version 1; `keyhound remediate` reads it back) and CSV
//! (one row per key). The format follows the file's extension.
//!
//! Key ids are shown redacted in headings and whole in commands and in the JSON/CSV rows: an
//! access key id is an identifier (CloudTrail logs it), the commands must run, and `remediate`
//! must name the key. Secrets are never part of this report.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::aws::actions::{Action, KeyRecord};
use crate::detect::Role;

pub const SCHEMA: &str = "keyhound-actions";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountError {
    pub account: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionReport {
    pub schema: String,
    pub version: u32,
    pub generated: String,
    /// `scan` (keys found exposed) or `audit` (an account's whole inventory).
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub max_age_days: i64,
    pub max_unused_days: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts_failed: Vec<AccountError>,
    pub keys: Vec<KeyRecord>,
    /// The run's plan (as in the JSON scan report): what `keyhound merge` checks the parts of a
    /// sharded scan or audit by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::report::PlanId>,
}

impl ActionReport {
    pub fn read(path: &Path) -> Result<ActionReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let r: ActionReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a keyhound action report", path.display()))?;
        if r.schema != SCHEMA || r.version != VERSION {
            bail!(
                "{}: schema {} v{} (expected {SCHEMA} v{VERSION})",
                path.display(),
                r.schema,
                r.version
            );
        }
        Ok(r)
    }

    /// Keys by owner (`(no owner)` last), the most urgent action first within each.
    pub fn by_owner(&self) -> Vec<(String, Vec<&KeyRecord>)> {
        let mut m: BTreeMap<(bool, String), Vec<&KeyRecord>> = BTreeMap::new();
        for k in &self.keys {
            let owner = k.owner.clone();
            m.entry((
                owner.is_none(),
                owner.unwrap_or_else(|| "(no owner)".into()),
            ))
            .or_default()
            .push(k);
        }
        m.into_iter()
            .map(|((_, o), mut ks)| {
                ks.sort_by(|a, b| (a.action, &a.key_id).cmp(&(b.action, &b.key_id)));
                (o, ks)
            })
            .collect()
    }

    /// `DEACTIVATE NOW 1, ROTATE 3`, most urgent first; `none` for an empty report.
    pub fn counts(&self) -> String {
        let mut m: BTreeMap<Action, usize> = BTreeMap::new();
        for k in &self.keys {
            *m.entry(k.action).or_insert(0) += 1;
        }
        if m.is_empty() {
            return "none".into();
        }
        m.iter()
            .map(|(a, n)| format!("{} {n}", a.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Writes the report in the format its extension names (`.md`, `.json`, `.csv`).
pub fn write_file(r: &ActionReport, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut buf = Vec::new();
    match ext.as_str() {
        "md" | "markdown" => markdown(r, &mut buf)?,
        "json" => {
            serde_json::to_writer_pretty(&mut buf, r)?;
            buf.push(b'\n');
        }
        "csv" => csv(r, &mut buf)?,
        _ => bail!(
            "--report {}: say the format with the extension: .md, .json or .csv",
            path.display()
        ),
    }
    crate::report::create_file(path)?
        .write_all(&buf)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn key_label(k: &KeyRecord) -> String {
    match &k.key_id {
        Some(id) => crate::report::redact(Role::KeyId, id),
        None if k.root => "root access key".into(),
        None => format!("user {}", k.user.as_deref().unwrap_or("?")),
    }
}

fn days(n: Option<i64>) -> String {
    match n {
        Some(1) => "1 day".into(),
        Some(n) => format!("{n} days"),
        None => "unknown".into(),
    }
}

fn last_used(k: &KeyRecord) -> String {
    match &k.last_used {
        None => "unknown".into(),
        Some(l) => match &l.date {
            None => "never".into(),
            Some(d) => {
                let mut s = d.clone();
                let extra: Vec<&str> = [l.service.as_deref(), l.region.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if !extra.is_empty() {
                    s.push_str(&format!(" ({})", extra.join(", ")));
                }
                s
            }
        },
    }
}

/// One owner's part of the Markdown report (also the body of their SNS message).
pub fn markdown_owner(owner: &str, keys: &[&KeyRecord], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "## {owner}\n")?;
    for k in keys {
        writeln!(out, "### {} — {}\n", key_label(k), k.action.label())?;
        let mut row = |name: &str, v: String| writeln!(out, "- **{name}:** {v}");
        row(
            "account",
            k.account.clone().unwrap_or_else(|| "unknown".into()),
        )?;
        row("user", k.user.clone().unwrap_or_else(|| "unknown".into()))?;
        if let Some(arn) = &k.arn {
            row("arn", format!("`{arn}`"))?;
        }
        row(
            "owner",
            k.owner
                .clone()
                .unwrap_or_else(|| "none (no owner tag)".into()),
        )?;
        if let Some(false) = k.owner_in_directory {
            row("owner in directory", "no".into())?;
        }
        row(
            "status",
            k.status.clone().unwrap_or_else(|| "unknown".into()),
        )?;
        let created = k
            .created
            .as_ref()
            .map(|c| format!(" (created {c})"))
            .unwrap_or_default();
        row("age", format!("{}{created}", days(k.age_days)))?;
        row("last used", last_used(k))?;
        if let Some(v) = &k.verification {
            row("verification", v.clone())?;
        }
        if let Some(e) = &k.lookup_error {
            row("IAM lookup", format!("failed: {e}"))?;
        }
        if k.exposed {
            writeln!(out, "- **exposed at:**")?;
            for p in &k.places {
                writeln!(out, "  - `{p}`")?;
            }
        }
        if !k.machine_owners.is_empty() {
            writeln!(out, "- **machine owners:** {}", k.machine_owners.join("; "))?;
        }
        writeln!(out, "\n**{}**: {}.\n", k.action.label(), k.reason)?;
        for (i, s) in k.steps.iter().enumerate() {
            writeln!(out, "{}. {}", i + 1, s.what)?;
            if let Some(c) = &s.command {
                writeln!(out, "   ```sh\n   {c}\n   ```")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

pub fn markdown(r: &ActionReport, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "# keyhound action report\n")?;
    writeln!(
        out,
        "Generated {} from {}{}. Rotate at {} days, retire after {} days unused.\n",
        r.generated,
        if r.source == "audit" {
            "an account audit"
        } else {
            "a scan"
        },
        r.operator
            .as_ref()
            .map(|o| format!(" as `{o}`"))
            .unwrap_or_default(),
        r.max_age_days,
        r.max_unused_days
    )?;
    writeln!(
        out,
        "{} key{}: {}.\n",
        r.keys.len(),
        if r.keys.len() == 1 { "" } else { "s" },
        r.counts()
    )?;
    for e in &r.accounts_failed {
        writeln!(
            out,
            "> **Account {} was not audited:** {}\n",
            e.account, e.error
        )?;
    }
    for (owner, keys) in r.by_owner() {
        markdown_owner(&owner, &keys, out)?;
    }
    Ok(())
}

pub fn csv(r: &ActionReport, out: &mut dyn Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record([
        "key_id",
        "account",
        "user",
        "root",
        "owner",
        "owner_in_directory",
        "status",
        "created",
        "age_days",
        "last_used",
        "last_used_service",
        "last_used_region",
        "days_unused",
        "exposed",
        "verification",
        "places",
        "machine_owners",
        "action",
        "reason",
        "commands",
    ])?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    for k in &r.keys {
        let lu = k.last_used.clone().unwrap_or_default();
        let commands: Vec<String> = k.steps.iter().filter_map(|s| s.command.clone()).collect();
        w.write_record([
            opt(&k.key_id),
            opt(&k.account),
            opt(&k.user),
            k.root.to_string(),
            opt(&k.owner),
            k.owner_in_directory
                .map(|b| b.to_string())
                .unwrap_or_default(),
            opt(&k.status),
            opt(&k.created),
            num(k.age_days),
            opt(&lu.date),
            opt(&lu.service),
            opt(&lu.region),
            num(k.days_unused),
            k.exposed.to_string(),
            opt(&k.verification),
            k.places.join("; "),
            k.machine_owners.join("; "),
            k.action.label().to_string(),
            k.reason.clone(),
            commands.join("\n"),
        ])?;
    }
    w.flush()?;
    Ok(())
}
