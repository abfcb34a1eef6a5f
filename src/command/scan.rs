//! `keyhound scan`: the working tree.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

use crate::blob::Blob;
use crate::finding::Finding;
use crate::pipeline::{collect, finish, progress, DetectPlan, Detector, OutputPlan};
use crate::source::{tree::WalkOptions, Stats};

pub struct ScanPlan {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// `keyhound scan`: the working tree.
pub fn run(mut plan: ScanPlan) -> Result<u8> {
    let start = Instant::now();
    let det = Detector::new(&plan.detect, &plan.roots)?;
    let exclude = det.config.path_filter()?;
    plan.walk.overlap = plan.walk.overlap.max(det.engine.max_span);
    let stats = Arc::new(Stats::default());
    let found: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let progress = progress(&stats, &plan.output);
    let engine = &det.engine;
    let found_ref = &found;
    crate::source::tree::walk(
        &plan.roots,
        &plan.walk,
        &stats,
        &|p: &str| exclude.as_ref().is_some_and(|s| s.is_match(p)),
        &|| move |blob: Blob| collect(engine, &blob, found_ref),
    );
    progress.finish();
    let roots: Vec<String> = plan
        .roots
        .iter()
        .map(|r| crate::source::tree::display_path(r))
        .map(|r| if r.is_empty() { ".".into() } else { r })
        .collect();
    finish(
        &det,
        found.into_inner().unwrap(),
        &stats,
        start,
        "worktree",
        roots,
        &plan.output,
    )
}
