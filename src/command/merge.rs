//! `keyhound merge`: the JSON reports of a sharded scan's parts joined into the report one
//! machine would have written, in any format. Each part records its plan (the command line
//! less what only changes the report's look, the rules' digest, and its shard): parts of
//! different plans are refused; a missing part, or one that did not finish, is named and makes
//! the exit status 2. Credentials are joined by fingerprint with every place of every part
//! (what STS said, when a part verified, carried over); counts are summed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::detect::{Role, RuleMeta, Severity};
use crate::finding::{Credential, Place, Verification};
use crate::pipeline::{exit_code, write_report, DetectPlan, Detector, OutputPlan};
use crate::report::{PlanId, Report, Summary};
use crate::source::Skip;
use crate::suppress::Reason;

pub struct MergePlan {
    /// Report files, or directories of them (`*.json`).
    pub inputs: Vec<PathBuf>,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// One part's report, read.
struct Part {
    file: String,
    plan: PlanId,
    kind: String,
    roots: Vec<String>,
    credentials: Vec<Value>,
    summary: Value,
}

/// The parts' reports: (name, text) of each file, each `*.json` of a directory, each `*.json`
/// object under an `s3://bucket/prefix/` (read with the operator's credentials).
fn sources(inputs: &[PathBuf], access: &crate::aws::iam::Access) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut session = None;
    for i in inputs {
        let name = i.to_string_lossy();
        if name.starts_with("s3://") {
            let loc: crate::source::s3::Location = name.parse().map_err(anyhow::Error::msg)?;
            if session.is_none() {
                session = Some(crate::aws::iam::Session::open(access.clone())?);
            }
            out.extend(s3_reports(session.as_ref().unwrap(), &loc)?);
        } else if i.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(i)
                .with_context(|| format!("cannot read {}", i.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            for p in v {
                out.push((p.display().to_string(), read_text(&p)?));
            }
        } else {
            out.push((i.display().to_string(), read_text(i)?));
        }
    }
    if out.is_empty() {
        bail!("no reports to merge (JSON files written with --format json --shard K/N)");
    }
    Ok(out)
}

fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

/// The `*.json` objects under an S3 prefix (where the parts of a fan-out wrote their reports).
fn s3_reports(
    session: &crate::aws::iam::Session,
    loc: &crate::source::s3::Location,
) -> Result<Vec<(String, String)>> {
    use crate::source::block::s3 as s3block;
    let conf = &session.base;
    let home = conf
        .region()
        .map_or("us-east-1".to_string(), |r| r.to_string());
    let region = session
        .rt
        .block_on(crate::source::s3::bucket_region(
            &s3block::client(conf, &home),
            &loc.bucket,
        ))
        .map_err(anyhow::Error::msg)?;
    let client = s3block::client(conf, &region);
    let keys: Vec<String> = session.rt.block_on(async {
        let mut keys = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&loc.bucket)
            .prefix(&loc.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!(
                    "s3://{}/{}: ListObjectsV2: {}",
                    loc.bucket,
                    loc.prefix,
                    crate::source::block::ebs::describe(&e)
                )
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(".json"))
                    .map(str::to_string),
            );
        }
        anyhow::Ok(keys)
    })?;
    let mut out = Vec::new();
    for key in keys {
        let name = format!("s3://{}/{key}", loc.bucket);
        let body = session.rt.block_on(async {
            let o = client
                .get_object()
                .bucket(&loc.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{name}: GetObject: {}",
                        crate::source::block::ebs::describe(&e)
                    )
                })?;
            let b = o
                .body
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            anyhow::Ok(b.into_bytes())
        })?;
        out.push((
            name.clone(),
            String::from_utf8(body.to_vec()).with_context(|| format!("{name}: not UTF-8"))?,
        ));
    }
    Ok(out)
}

fn read(file: String, text: &str) -> Result<Part> {
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("{file}: not a JSON report (write parts with --format json)"))?;
    if v["schema"] != crate::report::json::SCHEMA {
        bail!("{file}: not a keyhound report");
    }
    let plan: PlanId = serde_json::from_value(v["plan"].clone()).with_context(|| {
        format!("{file}: the report names no plan (written by an older keyhound?)")
    })?;
    Ok(Part {
        file,
        plan,
        kind: v["scan"]["kind"].as_str().unwrap_or("worktree").to_string(),
        roots: serde_json::from_value(v["scan"]["roots"].clone()).unwrap_or_default(),
        credentials: v["credentials"].as_array().cloned().unwrap_or_default(),
        summary: v["summary"].clone(),
    })
}

pub fn run(plan: MergePlan) -> Result<u8> {
    let parts: Vec<Part> = sources(&plan.inputs, &plan.detect.actions.access)?
        .into_iter()
        .map(|(name, text)| read(name, &text))
        .collect::<Result<_>>()?;
    // One plan, every shard once.
    let first = &parts[0];
    let count = first.plan.shard.map_or(1, |s| s.count);
    let mut have: BTreeMap<u32, &str> = BTreeMap::new();
    for p in &parts {
        if p.plan.args != first.plan.args || p.plan.rules != first.plan.rules {
            bail!(
                "{} is a part of another plan than {} (`{}` with rules {} against `{}` with rules \
                 {}): refused",
                p.file,
                first.file,
                p.plan.args.join(" "),
                p.plan.rules,
                first.plan.args.join(" "),
                first.plan.rules
            );
        }
        let s = p.plan.shard.map_or((0, 1), |s| (s.index, s.count));
        if s.1 != count {
            bail!(
                "{} is a part of {} shards, {} of {count}: refused",
                p.file,
                s.1,
                first.file
            );
        }
        if let Some(other) = have.insert(s.0, &p.file) {
            bail!("{} and {other} are both shard {}/{count}", p.file, s.0 + 1);
        }
    }
    let mut errors: Vec<String> = Vec::new();
    for k in 0..count {
        if !have.contains_key(&k) {
            errors.push(format!(
                "shard {}/{count} is missing: its part of the scan is not in this report",
                k + 1
            ));
        }
    }
    for p in &parts {
        if p.summary["incomplete"] == true {
            errors.push(format!(
                "{}: that part did not scan everything (see its warnings)",
                p.file
            ));
        }
    }
    let det = Detector::new(&plan.detect, &[])?;
    let metas: HashMap<String, Arc<RuleMeta>> = det
        .engine
        .rules
        .metas()
        .map(|m| (m.id.clone(), m.clone()))
        .collect();
    let mut creds: BTreeMap<String, Credential> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for p in &parts {
        for c in &p.credentials {
            let c = credential(c, &metas).with_context(|| format!("{}: a credential", p.file))?;
            match creds.get_mut(&c.fingerprint) {
                Some(have) => {
                    for place in c.places {
                        let same = |q: &Place| {
                            q.origin == place.origin
                                && q.location.offset == place.location.offset
                                && q.location.end_offset == place.location.end_offset
                        };
                        if !have.places.iter().any(same) {
                            have.places.push(place);
                        }
                    }
                    if have.verification.is_none() {
                        have.verification = c.verification;
                    }
                }
                None => {
                    order.push(c.fingerprint.clone());
                    creds.insert(c.fingerprint.clone(), c);
                }
            }
        }
    }
    // Places in a stable order, whatever the order the parts came in.
    let mut creds: Vec<Credential> = order.iter().filter_map(|f| creds.remove(f)).collect();
    for c in &mut creds {
        // As one process reports a disk: a key found in a file is not also reported where
        // the raw pass saw it on the same disk (the file and the raw bytes may have fallen in
        // different parts).
        let in_files: BTreeSet<String> = c
            .places
            .iter()
            .filter(|p| !p.origin.raw)
            .map(|p| p.origin.path.clone())
            .collect();
        c.places
            .retain(|p| !(p.origin.raw && in_files.contains(&p.origin.path)));
        c.places
            .sort_by(|a, b| (&a.origin, a.location.offset).cmp(&(&b.origin, b.location.offset)));
    }
    // --verify on merge: each key asked once for the whole scan, not once a part.
    if let Some(opts) = &plan.detect.verify.options {
        let redacted = creds.iter().any(|c| {
            c.part(Role::KeyId).is_some() && c.part(Role::Secret).is_some_and(|s| s.contains('…'))
        });
        if redacted {
            bail!(
                "the parts' secrets are redacted: run the parts with --show-secrets to verify \
                 on merge (or --verify on each part)"
            );
        }
        for w in crate::aws::verify::verify(&mut creds, opts)? {
            eprintln!("keyhound: warning: {w}");
        }
    }
    if plan.detect.verify.only_verified {
        creds.retain(Credential::is_live);
    }
    creds.sort_by_key(|c| !c.is_live());
    let mut summary = sum(&parts);
    // Balance: how even the split was.
    summary.shards = parts
        .iter()
        .map(|p| crate::report::ShardLoad {
            shard: p.plan.shard.map_or(1, |s| s.index + 1),
            files: p.summary["files"].as_u64().unwrap_or(0),
            bytes: p.summary["bytes"].as_u64().unwrap_or(0),
            duration_ms: p.summary["duration_ms"].as_u64().unwrap_or(0),
        })
        .collect();
    summary.shards.sort_by_key(|l| l.shard);
    for e in &errors {
        eprintln!("keyhound: error: {e}");
        summary.warnings.push(e.clone());
    }
    summary.incomplete |= !errors.is_empty();
    let report = Report {
        kind: kind_name(&first.kind),
        roots: first.roots.clone(),
        credentials: &creds,
        rules: metas.values().cloned().collect(),
        summary,
        show_secrets: plan.output.show_secrets,
        plan: Some(PlanId {
            shard: None,
            ..first.plan.clone()
        }),
    };
    write_report(&report, &plan.output)?;
    Ok(exit_code(&report))
}

/// The report kinds keyhound writes (a `&'static str` in `Report`).
fn kind_name(kind: &str) -> &'static str {
    [
        "worktree",
        "history",
        "pull-request",
        "staged",
        "image",
        "snapshot",
        "s3",
        "audit",
    ]
    .into_iter()
    .find(|k| *k == kind)
    .unwrap_or("merged")
}

/// A credential of a part's JSON report.
fn credential(v: &Value, metas: &HashMap<String, Arc<RuleMeta>>) -> Result<Credential> {
    let id = v["rule"].as_str().context("no rule")?;
    let rule = match metas.get(id) {
        Some(m) => m.clone(),
        // A rule of the parts' own (--rules) that this run did not load: what the report says.
        None => Arc::new(RuleMeta {
            id: id.to_string(),
            name: v["name"].as_str().unwrap_or(id).to_string(),
            description: String::new(),
            severity: serde_json::from_value(v["severity"].clone()).unwrap_or(Severity::High),
            help: String::new(),
            references: Vec::new(),
            source: "a merged report".into(),
        }),
    };
    let mut parts: Vec<(Role, String)> = Vec::new();
    if let Some(m) = v["parts"].as_object() {
        for (k, val) in m {
            let role: Role = serde_json::from_value(Value::String(k.clone()))?;
            parts.push((role, val.as_str().unwrap_or_default().to_string()));
        }
    }
    let mut places = Vec::new();
    for p in v["places"].as_array().into_iter().flatten() {
        let mut place: Place = serde_json::from_value(p.clone())?;
        place.snippet = p["snippet"].as_str().unwrap_or_default().to_string();
        places.push(place);
    }
    Ok(Credential {
        fingerprint: v["fingerprint"]
            .as_str()
            .context("no fingerprint")?
            .to_string(),
        rule,
        parts,
        places,
        class: serde_json::from_value(v["class"].clone())?,
        account_id: v["account_id"].as_str().map(str::to_string),
        verification: serde_json::from_value::<Option<Verification>>(v["verification"].clone())?,
    })
}

/// The parts' summaries summed (commits: each part walks the whole history, so the most).
fn sum(parts: &[Part]) -> Summary {
    let skips: HashMap<&str, Skip> = Skip::ALL.iter().map(|s| (s.as_str(), *s)).collect();
    let reasons: HashMap<&str, Reason> = Reason::all().iter().map(|r| (r.as_str(), *r)).collect();
    let mut s = Summary::default();
    let mut warnings = BTreeSet::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    for p in parts {
        let v = &p.summary;
        s.files += n(&v["files"]);
        s.bytes += n(&v["bytes"]);
        s.commits = s.commits.max(n(&v["commits"]));
        s.elapsed = s.elapsed.max(Duration::from_millis(n(&v["duration_ms"])));
        s.examples += n(&v["examples"]);
        s.examples_hidden += n(&v["examples_hidden"]);
        for (k, c) in v["skipped"].as_object().into_iter().flatten() {
            if let Some(skip) = skips.get(k.as_str()) {
                *s.skipped.entry(*skip).or_default() += n(c);
            }
        }
        for (k, c) in v["suppressed"].as_object().into_iter().flatten() {
            if let Some(r) = reasons.get(k.as_str()) {
                *s.suppressed.entry(*r).or_default() += n(c);
            }
        }
        for w in v["warnings"].as_array().into_iter().flatten() {
            if let Some(w) = w.as_str() {
                warnings.insert(w.to_string());
            }
        }
        for b in v["baseline_missing"].as_array().into_iter().flatten() {
            if let Some(b) = b.as_str() {
                if !s.baseline_missing.iter().any(|x| x == b) {
                    s.baseline_missing.push(b.to_string());
                }
            }
        }
        s.incomplete |= v["incomplete"] == true;
    }
    s.warnings = warnings.into_iter().collect();
    s
}
