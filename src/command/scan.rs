//! `keyhound scan`: the working tree.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

use crate::blob::Blob;
use crate::command::git::{copied_histories, history_findings, RepoName};
use crate::finding::Finding;
use crate::pipeline::{collect, finish, progress, DetectPlan, Detector, OutputPlan};
use crate::source::git::HistoryOptions;
use crate::source::gitcopy::GitCollector;
use crate::source::image::GIT_BUDGET;
use crate::source::tree::{display_path, WalkOptions};
use crate::source::{Skip, Stats};

pub struct ScanPlan {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    /// The history of the git repositories under the roots too (`--git-history`).
    pub history: Option<crate::source::git::HistoryOptions>,
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
    plan.walk.find_repos = plan.history.is_some();
    // Repositories inside archives (a home directory's tarball) are copied for their history.
    if plan.history.is_some() {
        plan.walk.git = match GitCollector::new(GIT_BUDGET) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                eprintln!("keyhound: warning: no temporary directory for git histories: {e}");
                None
            }
        };
    }
    let repos = crate::source::tree::walk(
        &plan.roots,
        &plan.walk,
        &stats,
        &|p: &str| exclude.as_ref().is_some_and(|s| s.is_match(p)),
        &|| move |blob: Blob| collect(engine, &blob, found_ref),
    );
    let mut found = found.into_inner().unwrap();
    if let Some(opts) = &plan.history {
        // Each blob and commit once across every repository found.
        let mut seen = HashSet::new();
        for r in repos {
            let label = display_path(&r);
            // A `.git` directory or file is found from its work tree; a bare one is itself.
            let at = if r.file_name().is_some_and(|n| n == ".git") {
                r.parent().map_or(r.clone(), |p| p.to_path_buf())
            } else {
                r.clone()
            };
            // `[allowlist] paths` as in the tree: the repository's paths under its place.
            let opts = HistoryOptions {
                exclude: exclude.clone(),
                exclude_under: display_path(&at),
                ..opts.clone()
            };
            let res = crate::source::git::open(&at).and_then(|repo| {
                history_findings(
                    engine,
                    repo,
                    &opts,
                    plan.walk.archives,
                    &stats,
                    &mut seen,
                    RepoName::Found(&label),
                )
            });
            match res {
                Ok(f) => found.extend(f),
                Err(e) => stats.skip(Skip::Unreadable, Some(format!("{label}: {e:#}"))),
            }
        }
        if let Some(g) = &plan.walk.git {
            let limits = plan.walk.archives;
            found.extend(copied_histories(engine, g, opts, limits, &stats, &mut seen));
        }
    }
    progress.finish();
    let roots: Vec<String> = plan
        .roots
        .iter()
        .map(|r| crate::source::tree::display_path(r))
        .map(|r| if r.is_empty() { ".".into() } else { r })
        .collect();
    finish(&det, found, &stats, start, "worktree", roots, &plan.output)
}
