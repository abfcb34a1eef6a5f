//! `keyhound image`: disk images and block devices: each volume's files walked with their
//! paths, and the raw pass over every byte that may hold data.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

use crate::blob::{Blob, Origin};
use crate::command::git::copied_histories;
use crate::detect::Engine;
use crate::finding::Finding;
use crate::pipeline::{collect, finish, progress, DetectPlan, Detector, OutputPlan};
use crate::source::block::Disk;
use crate::source::git::HistoryOptions;
use crate::source::gitcopy::GitCollector;
use crate::source::image::{self, ImageOptions};
use crate::source::partition::Part;
use crate::source::tree::display_path;
use crate::source::{Skip, Stats};

pub struct ImagePlan {
    pub images: Vec<PathBuf>,
    pub options: ImageOptions,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// `keyhound image`: the raw pass over disk images and block devices.
pub fn run(plan: ImagePlan) -> Result<u8> {
    let start = Instant::now();
    let det = Detector::new(&plan.detect, &[])?;
    let stats = Arc::new(Stats::default());
    let mut found: Vec<Finding> = Vec::new();
    let progress = progress(&stats, &plan.output);
    for path in &plan.images {
        let disk = match Disk::open(path) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                stats.skip(Skip::Unreadable, Some(format!("{}: {e}", path.display())));
                continue;
            }
        };
        let base = Origin::file(disk.name.clone());
        found.extend(disk_findings(
            &det.engine,
            &disk,
            &base,
            &plan.options,
            &stats,
        ));
    }
    progress.finish();
    let roots = plan.images.iter().map(|p| display_path(p)).collect();
    finish(&det, found, &stats, start, "image", roots, &plan.output)
}

/// The findings of a whole disk (an image, a device, a snapshot) under `base`: its files with
/// their paths, and what only the raw pass found, placed in its partition.
pub(crate) fn disk_findings(
    engine: &Engine,
    disk: &Arc<Disk>,
    base: &Origin,
    options: &ImageOptions,
    stats: &Stats,
) -> Vec<Finding> {
    let raw: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let files: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let (raw_ref, files_ref) = (&raw, &files);
    let git = options.git_budget.and_then(|b| match GitCollector::new(b) {
        Ok(g) => Some(Arc::new(g)),
        Err(e) => {
            eprintln!("keyhound: warning: no temporary directory for git histories: {e}");
            None
        }
    });
    let parts = image::scan(
        disk,
        base,
        options,
        git.clone(),
        stats,
        &|| move |blob: Blob| collect(engine, &blob, raw_ref),
        &|| move |blob: Blob| collect(engine, &blob, files_ref),
    );
    let mut files = files.into_inner().unwrap();
    if let Some(g) = git {
        let history = HistoryOptions {
            threads: options.threads,
            shard: options.shard,
            ..Default::default()
        };
        let mut seen = HashSet::new();
        let limits = options.archives;
        files.extend(copied_histories(
            engine, &g, &history, limits, stats, &mut seen,
        ));
    }
    let mut found = place_raw(raw.into_inner().unwrap(), &files, &parts, base);
    found.extend(files);
    found
}

/// Raw-pass findings, each placed in its partition (origin `image › p1 (ext4)`, offset from the
/// partition's start), and dropped when the same secret was found in a file: a key found by
/// both passes is reported once, with its path.
fn place_raw(raw: Vec<Finding>, files: &[Finding], parts: &[Part], base: &Origin) -> Vec<Finding> {
    let key = |f: &Finding| {
        let mut k = vec![f.rule.id.clone()];
        k.extend(f.parts.iter().map(|p| p.value.clone()));
        k
    };
    let in_files: std::collections::HashSet<Vec<String>> = files.iter().map(key).collect();
    let origins: Vec<Arc<Origin>> = parts
        .iter()
        .map(|p| {
            let mut o = base.clone();
            o.inner.push(p.label());
            o.raw = true;
            Arc::new(o)
        })
        .collect();
    raw.into_iter()
        .filter(|f| !in_files.contains(&key(f)))
        .map(|mut f| {
            let at = f.parts.first().map_or(0, |p| p.location.offset);
            if let Some(i) = parts
                .iter()
                .position(|p| at >= p.start && at < p.start + p.len)
            {
                f.origin = origins[i].clone();
                for p in &mut f.parts {
                    p.location.offset -= parts[i].start.min(p.location.offset);
                    p.location.end_offset -= parts[i].start.min(p.location.end_offset);
                }
            }
            f
        })
        .collect()
}
