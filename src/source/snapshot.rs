//! Which EBS snapshots to read, and what is known of each: EC2's DescribeSnapshots,
//! DescribeVolumes and DescribeInstances in each account and region asked, read-only.
//!
//! A target is a snapshot id; a volume id (its latest completed snapshot); an instance id (the
//! latest completed snapshot of each volume attached to it); or, with `all`, every completed
//! snapshot the account owns (the latest per volume unless `every_snapshot`), narrowed by tag
//! filters and a creation date. Ids are looked up with filters, so an id that is not in one
//! account or region is simply not there, and one found nowhere is named.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::blob::SnapshotInfo;
use aws_sdk_ec2::types::Filter;

use super::block::ebs::describe;

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `snap-…`, `vol-…`, `i-…`.
    pub ids: Vec<String>,
    pub all: bool,
    pub every_snapshot: bool,
    /// `tag:KEY=VALUE` filters, as (KEY, VALUE).
    pub tags: Vec<(String, String)>,
    /// Only snapshots started at or after this time.
    pub created_after: Option<jiff::Timestamp>,
}

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn tags(t: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    t.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

/// The snapshots `q` names in one account and region, and the ids not found there (snapshots,
/// instances, and volumes, given or attached to a given instance, without a completed
/// snapshot). Snapshots are sorted by id.
pub async fn find(
    ec2: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    q: &Query,
) -> Result<(Vec<SnapshotInfo>, BTreeSet<String>), String> {
    let mut missing: BTreeSet<String> = q.ids.iter().cloned().collect();
    let by =
        |p: &str| -> Vec<String> { q.ids.iter().filter(|i| i.starts_with(p)).cloned().collect() };
    let (snap_ids, mut vol_ids, inst_ids) = (by("snap-"), by("vol-"), by("i-"));
    // Instances: their attached volumes.
    let mut instances: HashMap<String, (Option<String>, BTreeMap<String, String>)> = HashMap::new();
    if !inst_ids.is_empty() {
        let mut pages = ec2
            .describe_instances()
            .filters(filter("instance-id", inst_ids.clone()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("DescribeInstances: {}", describe(&e)))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                missing.remove(id);
                let t = tags(i.tags());
                instances.insert(id.to_string(), (t.get("Name").cloned(), t));
                for m in i.block_device_mappings() {
                    if let Some(v) = m.ebs().and_then(|e| e.volume_id()) {
                        // Each attached volume needs a snapshot too, or is named.
                        missing.insert(v.to_string());
                        vol_ids.push(v.to_string());
                    }
                }
            }
        }
    }
    let mut found: Vec<aws_sdk_ec2::types::Snapshot> = Vec::new();
    let describe_snapshots = |filters: Vec<Filter>| {
        let req = ec2
            .describe_snapshots()
            .owner_ids(account)
            .set_filters(Some(filters));
        async move {
            let mut out = Vec::new();
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| format!("DescribeSnapshots: {}", describe(&e)))?;
                out.extend(page.snapshots().iter().cloned());
            }
            Ok::<_, String>(out)
        }
    };
    let tag_filters: Vec<Filter> = q
        .tags
        .iter()
        .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
        .collect();
    if !snap_ids.is_empty() {
        let s = describe_snapshots(vec![filter("snapshot-id", snap_ids.clone())]).await?;
        found.extend(s);
    }
    // Volumes (given, or attached to a given instance): the latest completed snapshot each.
    let mut from_volumes = Vec::new();
    if !vol_ids.is_empty() {
        let mut f = vec![filter("volume-id", vol_ids.clone())];
        f.extend(tag_filters.iter().cloned());
        from_volumes = describe_snapshots(f).await?;
    }
    if q.all {
        let mut f = tag_filters.clone();
        f.push(filter("status", ["completed".to_string()]));
        from_volumes.extend(describe_snapshots(f).await?);
    }
    let after = |s: &aws_sdk_ec2::types::Snapshot| match (&q.created_after, s.start_time()) {
        (Some(a), Some(t)) => t.secs() >= a.as_second(),
        _ => true,
    };
    from_volumes.retain(after);
    let completed =
        |s: &aws_sdk_ec2::types::Snapshot| s.state().is_some_and(|st| st.as_str() == "completed");
    // A volume is found when it has a completed snapshot to read.
    for s in from_volumes.iter().filter(|s| completed(s)) {
        if let Some(v) = s.volume_id() {
            missing.remove(v);
        }
    }
    if q.every_snapshot {
        found.extend(from_volumes);
    } else {
        // The latest completed snapshot of each volume.
        let mut latest: HashMap<String, aws_sdk_ec2::types::Snapshot> = HashMap::new();
        for s in from_volumes.into_iter().filter(|s| completed(s)) {
            let vol = s.volume_id().unwrap_or("").to_string();
            let newer = latest.get(&vol).is_none_or(|l| {
                (s.start_time().map(|t| t.as_nanos()), s.snapshot_id())
                    > (l.start_time().map(|t| t.as_nanos()), l.snapshot_id())
            });
            if newer {
                latest.insert(vol, s);
            }
        }
        found.extend(latest.into_values());
    }
    let mut out: BTreeMap<String, SnapshotInfo> = BTreeMap::new();
    for s in found {
        let Some(id) = s.snapshot_id() else { continue };
        missing.remove(id);
        out.insert(
            id.to_string(),
            SnapshotInfo {
                snapshot_id: id.to_string(),
                account: s.owner_id().unwrap_or(account).to_string(),
                region: region.to_string(),
                volume_id: s.volume_id().map(str::to_string),
                instance_id: None,
                instance_name: None,
                size_gib: s.volume_size().unwrap_or(0).max(0) as u64,
                start_time: time(s.start_time()),
                state: s.state().map_or("unknown", |st| st.as_str()).to_string(),
                encrypted: s.encrypted().unwrap_or(false),
                tags: tags(s.tags()),
                volume_tags: BTreeMap::new(),
                instance_tags: BTreeMap::new(),
            },
        );
    }
    attach_owners(ec2, &mut out, &mut instances).await;
    Ok((out.into_values().collect(), missing))
}

/// The volume each snapshot was taken of, the instance it is attached to, and their tags (who
/// runs the machine). A volume or instance that is gone is left unnamed.
async fn attach_owners(
    ec2: &aws_sdk_ec2::Client,
    snaps: &mut BTreeMap<String, SnapshotInfo>,
    instances: &mut HashMap<String, (Option<String>, BTreeMap<String, String>)>,
) {
    let vols: BTreeSet<String> = snaps.values().filter_map(|s| s.volume_id.clone()).collect();
    if vols.is_empty() {
        return;
    }
    // Volume → (tags, instance)
    let mut volumes: HashMap<String, (BTreeMap<String, String>, Option<String>)> = HashMap::new();
    let mut pages = ec2
        .describe_volumes()
        .filters(filter("volume-id", vols))
        .into_paginator()
        .send();
    while let Some(Ok(page)) = pages.next().await {
        for v in page.volumes() {
            let Some(id) = v.volume_id() else { continue };
            let inst = v
                .attachments()
                .iter()
                .find_map(|a| a.instance_id())
                .map(str::to_string);
            volumes.insert(id.to_string(), (tags(v.tags()), inst));
        }
    }
    let wanted: BTreeSet<String> = volumes
        .values()
        .filter_map(|v| v.1.clone())
        .filter(|i| !instances.contains_key(i))
        .collect();
    if !wanted.is_empty() {
        let mut pages = ec2
            .describe_instances()
            .filters(filter("instance-id", wanted))
            .into_paginator()
            .send();
        while let Some(Ok(page)) = pages.next().await {
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let t = tags(i.tags());
                instances.insert(id.to_string(), (t.get("Name").cloned(), t));
            }
        }
    }
    for s in snaps.values_mut() {
        let Some((vtags, inst)) = s.volume_id.as_ref().and_then(|v| volumes.get(v)) else {
            continue;
        };
        s.volume_tags = vtags.clone();
        if let Some(i) = inst {
            s.instance_id = Some(i.clone());
            if let Some((name, t)) = instances.get(i) {
                s.instance_name = name.clone();
                s.instance_tags = t.clone();
            }
        }
    }
}

/// The partition a region belongs to (`aws`, `aws-cn`, `aws-us-gov`, …): credentials work in
/// one partition only.
fn partition(region: &str) -> &'static str {
    match region {
        r if r.starts_with("cn-") => "aws-cn",
        r if r.starts_with("us-gov-") => "aws-us-gov",
        r if r.starts_with("us-isob-") => "aws-iso-b",
        r if r.starts_with("us-iso-") => "aws-iso",
        r if r.starts_with("eu-isoe-") => "aws-iso-e",
        _ => "aws",
    }
}

/// The regions enabled for the account (DescribeRegions) in `home`'s partition.
pub async fn regions(ec2: &aws_sdk_ec2::Client, home: &str) -> Result<Vec<String>, String> {
    let out = ec2
        .describe_regions()
        .send()
        .await
        .map_err(|e| format!("DescribeRegions: {}", describe(&e)))?;
    let mut v: Vec<String> = out
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .filter(|r| partition(r) == partition(home))
        .collect();
    v.sort();
    Ok(v)
}

/// An EC2 client for `region` on `conf`.
pub fn ec2(conf: &aws_config::SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    let c = aws_sdk_ec2::config::Builder::from(conf)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    aws_sdk_ec2::Client::from_conf(c)
}
