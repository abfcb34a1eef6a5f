//! `keyhound snapshot`: EBS snapshots read in place through the EBS direct APIs, across
//! accounts and regions, and scanned as `image` scans a disk: partitions, filesystems with
//! paths, archives, and the raw pass over every written block, each block fetched once.
//!
//! Discovery (`source::snapshot`) → the cost of reading (`--plan`, `--max-gib`) → each
//! snapshot as a remote disk (`block::ebs` behind `block::remote`) → `image::disk_findings`.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::aws::iam::{Access, Session, Unreachable};
use crate::blob::Origin;
use crate::command::image::disk_findings;
use crate::finding::Finding;
use crate::pipeline::{finish, progress, DetectPlan, Detector, OutputPlan, EXIT_CLEAN, EXIT_ERROR};
use crate::report::Format;
use crate::source::block::{ebs, remote, Disk, Format as DiskFormat};
use crate::source::image::ImageOptions;
use crate::source::snapshot::{self, Query, SnapshotInfo};
use crate::source::{Skip, Stats};

/// List prices of the EBS direct APIs (US East), per 1,000 requests.
pub const GET_BLOCK_PRICE: f64 = 0.003;
pub const LIST_PRICE: f64 = 0.0006;

pub struct SnapshotPlan {
    pub query: Query,
    /// `None`: the configured region; `["all"]`: every region enabled for each account.
    pub regions: Option<Vec<String>>,
    pub accounts: Vec<String>,
    pub organization: bool,
    pub access: Access,
    /// Print the snapshots that would be scanned, and stop.
    pub list: bool,
    /// Print what reading would cost, and stop.
    pub plan_only: bool,
    pub max_gib: Option<f64>,
    /// GetSnapshotBlock requests a second per account.
    pub get_rate: u32,
    pub remote: remote::Options,
    pub options: ImageOptions,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// What reading the snapshots costs.
#[derive(Debug, Default, Serialize)]
pub struct Cost {
    pub snapshots: usize,
    pub written_blocks: u64,
    pub bytes: u64,
    pub get_calls: u64,
    pub list_calls: u64,
    /// US dollars at list price.
    pub usd: f64,
    /// Per snapshot: id, written blocks, block size.
    pub per_snapshot: Vec<(String, u64, u64)>,
}

impl ReadCost for Cost {
    fn gib(&self) -> f64 {
        self.bytes as f64 / (1u64 << 30) as f64
    }

    fn line(&self) -> String {
        format!(
            "{} snapshot{}, {} written blocks, {:.2} GiB to read: {} GetSnapshotBlock and {} \
             ListSnapshotBlocks calls, ${:.4} at list price",
            self.snapshots,
            if self.snapshots == 1 { "" } else { "s" },
            self.written_blocks,
            self.gib(),
            self.get_calls,
            self.list_calls,
            self.usd
        )
    }
}

/// After `--list` or `--plan`: the errors named, and the exit code they make.
pub(crate) fn stopped(errors: &[String]) -> u8 {
    for e in errors {
        eprintln!("keyhound: error: {e}");
    }
    if errors.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_ERROR
    }
}

/// What a read costs, said before it is made (`snapshot`'s and `s3`'s).
pub(crate) trait ReadCost {
    /// One line: what will be read and what the requests cost.
    fn line(&self) -> String;
    fn gib(&self) -> f64;
}

/// What reading will cost, before anything is read: with `--plan`, printed (text or JSON) and
/// the run stops (`Some(exit code)`); past `--max-gib`, refused; otherwise said on stderr.
pub(crate) fn cost_gate<C: Serialize + ReadCost>(
    cost: &C,
    plan_only: bool,
    max_gib: Option<f64>,
    output: &OutputPlan,
    errors: &[String],
) -> Result<Option<u8>> {
    let (line, gib) = (cost.line(), cost.gib());
    if plan_only {
        let mut out = std::io::stdout().lock();
        match output.format {
            Format::Json | Format::Jsonl => {
                serde_json::to_writer_pretty(&mut out, cost)?;
                writeln!(out)?;
            }
            _ => writeln!(out, "{line}")?,
        }
        return Ok(Some(stopped(errors)));
    }
    if let Some(max) = max_gib {
        if gib > max {
            bail!("{line}: more than --max-gib {max}; nothing was read");
        }
    }
    if !output.quiet {
        eprintln!("keyhound: {line}");
    }
    Ok(None)
}

/// The accounts to look in: the organization's, those named, or the operator's own.
pub(crate) fn accounts(
    session: &Session,
    organization: bool,
    named: &[String],
) -> Result<Vec<String>> {
    Ok(if organization {
        crate::aws::org::accounts(session)?
    } else if named.is_empty() {
        vec![session.operator_account.clone()]
    } else {
        named.to_vec()
    })
}

/// The SDK configuration for `account`, or an error naming why it cannot be reached.
pub(crate) fn account_config(
    session: &Session,
    account: &str,
    errors: &mut Vec<String>,
) -> Option<aws_config::SdkConfig> {
    match session.rt.block_on(session.config(account)) {
        Ok(c) => Some(c),
        Err(Unreachable::Foreign) => {
            errors.push(format!(
                "account {account}: not the operator's account; pass --assume-role NAME to \
                 reach it"
            ));
            None
        }
        Err(Unreachable::Failed(m)) => {
            errors.push(format!("account {account}: {m}"));
            None
        }
    }
}

pub fn run(plan: SnapshotPlan) -> Result<u8> {
    let start = Instant::now();
    let session = Session::open(plan.access.clone())?;
    let accounts = accounts(&session, plan.organization, &plan.accounts)?;
    let mut errors: Vec<String> = Vec::new();
    let mut snaps = discover(&session, &plan, &accounts, &mut errors);
    // A shard reads its share of the snapshots.
    if let Some(s) = plan.output.shard {
        snaps.retain(|i| s.owns(i.snapshot_id.as_bytes()));
    }
    if plan.list {
        list(&snaps, plan.output.format)?;
        return Ok(stopped(&errors));
    }
    // Every shard discovers every snapshot and meets the same errors doing it: the first names
    // them in its report, so the parts count them once, as the single run does.
    if plan.output.shard.is_some_and(|s| s.index != 0) {
        errors.clear();
    }
    // What will be read: the written blocks of each completed snapshot.
    let limits = ebs::Limits::new(plan.get_rate);
    let mut opened = Vec::new();
    for info in snaps {
        if info.state != "completed" {
            errors.push(format!(
                "{}: the snapshot is {}, not completed: only completed snapshots can be read",
                info.place(),
                info.state
            ));
            continue;
        }
        let Some(conf) = account_config(&session, &info.account, &mut errors) else {
            continue;
        };
        let client = ebs::client(&conf, &info.region);
        let rates = limits.account(&info.account);
        let id = info.snapshot_id.clone();
        match session.rt.block_on(ebs::Snapshot::open(client, &id, rates)) {
            Ok(s) => opened.push((info, s)),
            Err(e) => errors.push(format!("{}: {e}", info.place())),
        }
    }
    let cost = cost(&opened);
    if let Some(code) = cost_gate(&cost, plan.plan_only, plan.max_gib, &plan.output, &errors)? {
        return Ok(code);
    }
    let det = Detector::new(&plan.detect, &[])?;
    let stats = Arc::new(Stats::default());
    for e in errors {
        stats.skip(Skip::Unreadable, Some(e));
    }
    let mut options = plan.options;
    options.overlap = options.overlap.max(det.engine.max_span);
    let progress = progress(&stats, &plan.output);
    let mut found: Vec<Finding> = Vec::new();
    let roots: Vec<String> = opened.iter().map(|(i, _)| i.snapshot_id.clone()).collect();
    let rp = &stats.remote;
    rp.disks.store(opened.len() as u64, Ordering::Relaxed);
    rp.blocks.store(cost.written_blocks, Ordering::Relaxed);
    for (info, snap) in opened {
        let place = info.place();
        let r = remote::Remote::new(Arc::new(snap), session.rt.handle().clone(), plan.remote)
            .reporting(stats.clone());
        let disk = Arc::new(Disk::new(place.clone(), DiskFormat::Ebs, Box::new(r)));
        let mut base = Origin::file(place.clone());
        base.snapshot = Some(Arc::new(info));
        found.extend(disk_findings(&det.engine, &disk, &base, &options, &stats));
        rp.disks_done.fetch_add(1, Ordering::Relaxed);
        if let (Some(r), false) = (disk.remote(), plan.output.quiet) {
            let c = &r.counters;
            eprintln!(
                "keyhound: {place}: {} blocks fetched ({:.1} MiB), {} of them again",
                c.fetched.load(Ordering::Relaxed),
                c.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                c.refetched.load(Ordering::Relaxed),
            );
        }
    }
    progress.finish();
    finish(&det, found, &stats, start, "snapshot", roots, &plan.output)
}

/// The snapshots the plan names, in every account and region asked; errors name what could
/// not be looked at and the ids found nowhere.
fn discover(
    session: &Session,
    plan: &SnapshotPlan,
    accounts: &[String],
    errors: &mut Vec<String>,
) -> Vec<SnapshotInfo> {
    let mut snaps: Vec<SnapshotInfo> = Vec::new();
    let mut missing: Option<BTreeSet<String>> = None;
    let mut searched = Vec::new();
    for account in accounts {
        let Some(conf) = account_config(session, account, errors) else {
            continue;
        };
        let home = conf
            .region()
            .map_or("us-east-1".to_string(), |r| r.to_string());
        let regions = match &plan.regions {
            None => vec![home],
            Some(r) if r.iter().any(|r| r == "all") => {
                match session
                    .rt
                    .block_on(snapshot::regions(&snapshot::ec2(&conf, &home), &home))
                {
                    Ok(r) => r,
                    Err(e) => {
                        errors.push(format!("account {account}: {e}"));
                        continue;
                    }
                }
            }
            Some(r) => r.clone(),
        };
        for region in regions {
            let ec2 = snapshot::ec2(&conf, &region);
            searched.push(format!("{account}/{region}"));
            match session
                .rt
                .block_on(snapshot::find(&ec2, account, &region, &plan.query))
            {
                Ok((found, miss)) => {
                    snaps.extend(found);
                    missing = Some(match missing {
                        None => miss,
                        Some(m) => m.intersection(&miss).cloned().collect(),
                    });
                }
                Err(e) => errors.push(format!("account {account}, {region}: {e}")),
            }
        }
    }
    for id in missing.unwrap_or_default() {
        let what = if id.starts_with("vol-") {
            "no completed snapshot of this volume"
        } else {
            "not found"
        };
        errors.push(format!(
            "{id}: {what} in {} (account/region)",
            searched.join(", ")
        ));
    }
    snaps.sort();
    snaps.dedup_by(|a, b| a.snapshot_id == b.snapshot_id);
    snaps
}

/// `--list`: the work list a fan-out hands out, one snapshot per job.
fn list(snaps: &[SnapshotInfo], format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, snaps)?;
            writeln!(out)?;
        }
        Format::Jsonl => {
            for s in snaps {
                serde_json::to_writer(&mut out, s)?;
                writeln!(out)?;
            }
        }
        _ => {
            for s in snaps {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{} GiB",
                    s.snapshot_id,
                    s.account,
                    s.region,
                    s.volume_id.as_deref().unwrap_or("-"),
                    s.instance_id.as_deref().unwrap_or("-"),
                    s.size_gib
                )?;
            }
        }
    }
    Ok(())
}

fn cost(opened: &[(SnapshotInfo, ebs::Snapshot)]) -> Cost {
    use crate::source::block::remote::Fetch;
    let mut c = Cost {
        snapshots: opened.len(),
        ..Default::default()
    };
    for (info, s) in opened {
        let n = s.written().len() as u64;
        c.written_blocks += n;
        c.bytes += n * s.block_size();
        c.get_calls += n;
        c.list_calls += n.div_ceil(10_000).max(1);
        c.per_snapshot
            .push((info.snapshot_id.clone(), n, s.block_size()));
    }
    c.usd =
        c.get_calls as f64 * GET_BLOCK_PRICE / 1000.0 + c.list_calls as f64 * LIST_PRICE / 1000.0;
    c
}
