//! `keyhound merge`: the JSON reports of a sharded scan's parts joined into the report one
//! machine would have written, in any format. Each part records its plan (the command line
//! less what only changes the report's look, the rules' digest, and its shard): parts of
//! different plans are refused; a missing part, or one that did not finish, is named and makes
//! the exit status 2. Credentials are joined by fingerprint with every place of every part
//! (what STS said, when a part verified, carried over); counts are summed.
//!
//! Action reports (`--report part-{shard}.json` of a sharded scan or `audit`) are parts too:
//! joined by key id with every place, each key's action decided again on the joined facts,
//! and written where this run's `--report` says (owner facts carried over, IAM not asked). With
//! `--owners` (or `--report` and no action parts), IAM is asked once, on the joined
//! credentials, as a single scan would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::aws::actions::KeyRecord;
use crate::detect::{Confidence, Role, RuleMeta, Severity};
use crate::finding::{Credential, Place, Verification};
use crate::pipeline::{
    deliver, enrich, exit_code, open_session, write_report, ActionPlan, DetectPlan, Detector,
    OutputPlan,
};
use crate::report::actions::ActionReport;
use crate::report::{PlanId, Report, Summary};
use crate::source::Skip;
use crate::suppress::Reason;

pub struct MergePlan {
    /// Report files, or directories of them (`*.json`).
    pub inputs: Vec<PathBuf>,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// One input: a part's scan report, or a part's action report.
enum Input {
    Scan(Part),
    Actions(ActionPart),
}

/// A part's action report (`--report part-{shard}.json`).
struct ActionPart {
    file: String,
    plan: PlanId,
    report: ActionReport,
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

#[cfg(not(feature = "aws"))]
fn s3_reports(
    session: &crate::aws::iam::Session,
    _: &crate::source::s3::Location,
) -> Result<Vec<(String, String)>> {
    session.never()
}

#[cfg(feature = "aws")]
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

fn read(file: String, text: &str) -> Result<Input> {
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("{file}: not a JSON report (write parts with --format json)"))?;
    let no_plan = || format!("{file}: the report names no plan (written by an older keyhound?)");
    if v["schema"] == crate::report::actions::SCHEMA {
        let report: ActionReport = serde_json::from_value(v)
            .with_context(|| format!("{file}: not a keyhound action report"))?;
        if report.version != crate::report::actions::VERSION {
            bail!("{file}: action report version {}", report.version);
        }
        let plan = report.plan.clone().with_context(no_plan)?;
        return Ok(Input::Actions(ActionPart { file, plan, report }));
    }
    if v["schema"] != crate::report::json::SCHEMA {
        bail!("{file}: not a keyhound report");
    }
    let plan: PlanId = serde_json::from_value(v["plan"].clone())
        .ok()
        .with_context(no_plan)?;
    Ok(Input::Scan(Part {
        file,
        plan,
        kind: v["scan"]["kind"].as_str().unwrap_or("worktree").to_string(),
        roots: serde_json::from_value(v["scan"]["roots"].clone()).unwrap_or_default(),
        credentials: v["credentials"].as_array().cloned().unwrap_or_default(),
        summary: v["summary"].clone(),
    }))
}

/// Checks that `parts` (of one kind: `what`) are of `first`'s plan, each shard once; the
/// shards missing are returned.
fn check<'a>(
    parts: impl Iterator<Item = (&'a str, &'a PlanId)>,
    first: (&str, &PlanId),
    what: &str,
) -> Result<Vec<String>> {
    let (first_file, first) = first;
    let count = first.shard.map_or(1, |s| s.count);
    let mut have: BTreeMap<u32, &str> = BTreeMap::new();
    for (file, p) in parts {
        if p.args != first.args || p.rules != first.rules {
            bail!(
                "{file} is a part of another plan than {first_file} (`{}` with rules {} against \
                 `{}` with rules {}): refused",
                p.args.join(" "),
                p.rules,
                first.args.join(" "),
                first.rules
            );
        }
        let s = p.shard.map_or((0, 1), |s| (s.index, s.count));
        if s.1 != count {
            bail!(
                "{file} is a part of {} shards, {first_file} of {count}: refused",
                s.1
            );
        }
        if let Some(other) = have.insert(s.0, file) {
            bail!("{file} and {other} are both shard {}/{count}", s.0 + 1);
        }
    }
    Ok((0..count)
        .filter(|k| !have.contains_key(k))
        .map(|k| {
            format!(
                "shard {}/{count} is missing: its part of the {what} is not in this report",
                k + 1
            )
        })
        .collect())
}

pub fn run(plan: MergePlan) -> Result<u8> {
    let mut parts: Vec<Part> = Vec::new();
    let mut action_parts: Vec<ActionPart> = Vec::new();
    for (name, text) in sources(&plan.inputs, &plan.detect.actions.access)? {
        match read(name, &text)? {
            Input::Scan(p) => parts.push(p),
            Input::Actions(a) => action_parts.push(a),
        }
    }
    // One plan, every shard once (scan reports and action reports alike).
    let first = parts
        .first()
        .map(|p| (p.file.as_str(), &p.plan))
        .or(action_parts.first().map(|a| (a.file.as_str(), &a.plan)))
        .context("no reports to merge")?;
    let mut errors = if parts.is_empty() {
        Vec::new()
    } else {
        check(
            parts.iter().map(|p| (p.file.as_str(), &p.plan)),
            first,
            "scan",
        )?
    };
    let first = (first.0.to_string(), first.1.clone());
    if !action_parts.is_empty() {
        let missing = check(
            action_parts.iter().map(|a| (a.file.as_str(), &a.plan)),
            (&first.0, &first.1),
            "action report",
        )?;
        errors.extend(missing);
    }
    if parts.is_empty() {
        return actions_only(&plan, &first.1, &action_parts, errors);
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
    // --verify on merge: each key asked once for the whole scan, not once a part; the same
    // for IAM with --owners. The action report is the parts' own, joined, when they wrote one.
    let carry = !action_parts.is_empty() && !plan.detect.actions.owners;
    let actions = Some(&plan.detect.actions).filter(|a| a.wanted() && !carry);
    let redacted = |role: Role| {
        creds
            .iter()
            .any(|c| c.part(Role::KeyId).is_some() && c.part(role).is_some_and(|s| s.contains('…')))
    };
    if plan.detect.verify.options.is_some() && redacted(Role::Secret) {
        bail!(
            "the parts' secrets are redacted: run the parts with --show-secrets to verify \
             on merge (or --verify on each part)"
        );
    }
    if actions.is_some() && redacted(Role::KeyId) {
        bail!(
            "the parts' key ids are redacted: give merge the parts' action reports (--report \
             part-{{shard}}.json on each part), or run the parts with --show-secrets"
        );
    }
    let merged = PlanId {
        shard: None,
        ..first.1.clone()
    };
    let mut incomplete = enrich(actions, &plan.detect.verify, &mut creds, &merged)?;
    if carry {
        let a = &plan.detect.actions;
        if a.reports.is_empty() && a.notify_sns.is_none() {
            eprintln!(
                "keyhound: warning: the parts' action reports are joined only with --report FILE"
            );
        } else {
            let report = join_actions(a, &merged, &action_parts);
            let session = open_session(a)?;
            incomplete |= !deliver(&report, session.as_ref(), a)?;
        }
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
    summary.incomplete |= !errors.is_empty() || incomplete;
    let report = Report {
        kind: kind_name(&parts[0].kind),
        roots: parts[0].roots.clone(),
        credentials: &creds,
        rules: metas.values().cloned().collect(),
        summary,
        show_secrets: plan.output.show_secrets,
        plan: Some(merged),
    };
    write_report(&report, &plan.output)?;
    Ok(exit_code(&report))
}

/// Only action reports (a sharded `audit`'s parts): joined, written, and the exit status an
/// audit gives.
fn actions_only(
    plan: &MergePlan,
    first: &PlanId,
    parts: &[ActionPart],
    errors: Vec<String>,
) -> Result<u8> {
    for e in &errors {
        eprintln!("keyhound: error: {e}");
    }
    let merged = PlanId {
        shard: None,
        ..first.clone()
    };
    let report = join_actions(&plan.detect.actions, &merged, parts);
    let session = open_session(&plan.detect.actions)?;
    let line = format!("{} keys", report.keys.len());
    crate::command::audit::conclude(
        &report,
        session.as_ref(),
        &plan.detect.actions,
        &line,
        !errors.is_empty(),
    )
}

/// The parts' action reports as one: rows joined by key id (every place, every machine owner;
/// the action decided again on the joined facts), failed accounts once each, rows in the order
/// one run writes them (an audit's by account, a scan's by key id).
fn join_actions(a: &ActionPlan, plan: &PlanId, parts: &[ActionPart]) -> ActionReport {
    let mut parts: Vec<&ActionPart> = parts.iter().collect();
    parts.sort_by_key(|p| p.plan.shard.map_or(0, |s| s.index));
    let first = &parts[0].report;
    let policy = crate::aws::actions::Policy {
        max_age_days: first.max_age_days,
        max_unused_days: first.max_unused_days,
    };
    let mut keys: Vec<KeyRecord> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut joined: BTreeSet<usize> = BTreeSet::new();
    let mut failed: Vec<crate::report::actions::AccountError> = Vec::new();
    for p in &parts {
        for f in &p.report.accounts_failed {
            if !failed.iter().any(|x| x.account == f.account) {
                failed.push(f.clone());
            }
        }
        for k in &p.report.keys {
            match k.key_id.as_ref().and_then(|id| at.get(id)) {
                Some(&i) => {
                    join_key(&mut keys[i], k);
                    joined.insert(i);
                }
                None => {
                    if let Some(id) = &k.key_id {
                        at.insert(id.clone(), keys.len());
                    }
                    keys.push(k.clone());
                }
            }
        }
    }
    for i in joined {
        crate::aws::actions::apply(&mut keys[i], &policy, a.access.profile.as_deref());
    }
    if first.source == "audit" {
        keys.sort_by(|x, y| x.account.cmp(&y.account));
    } else {
        keys.sort_by(|x, y| x.key_id.cmp(&y.key_id));
    }
    ActionReport {
        schema: crate::report::actions::SCHEMA.into(),
        version: crate::report::actions::VERSION,
        generated: jiff::Timestamp::now().to_string(),
        source: first.source.clone(),
        operator: first.operator.clone(),
        max_age_days: first.max_age_days,
        max_unused_days: first.max_unused_days,
        accounts_failed: failed,
        keys,
        plan: Some(plan.clone()),
    }
}

/// What another part knew of the same key, added to a row.
fn join_key(r: &mut KeyRecord, k: &KeyRecord) {
    for p in &k.places {
        if !r.places.contains(p) {
            r.places.push(p.clone());
        }
    }
    for m in &k.machine_owners {
        if !r.machine_owners.contains(m) {
            r.machine_owners.push(m.clone());
        }
    }
    r.exposed |= k.exposed;
    r.secret_found |= k.secret_found;
    r.canary |= k.canary;
    r.root |= k.root;
    if r.verification.is_none() || k.verification.as_deref() == Some("live") {
        r.verification.clone_from(&k.verification);
    }
    if r.arn.is_none() {
        r.arn.clone_from(&k.arn);
    }
    if r.account.is_none() {
        r.account.clone_from(&k.account);
    }
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
            family: v["family"].as_str().unwrap_or(id).to_string(),
            confidence: serde_json::from_value(v["confidence"].clone())
                .unwrap_or(Confidence::Medium),
            default_on: true,
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
