//! Wires the stages together for each command: source → detect → findings → suppress →
//! enrich → report.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::blob::{Blob, Origin};
use crate::detect::{examples, Engine, RuleSet};
use crate::finding::{self, Class, Credential, Finding};
use crate::report::{self, progress::Progress, Format, Report, Summary};
use crate::source::archive;
use crate::source::git::{self, History, HistoryOptions};
use crate::source::{fs::WalkOptions, Stats};
use crate::suppress::{Config, Outcome, Reason, Suppressor};

/// How and where to write the report.
pub struct OutputPlan {
    pub format: Format,
    pub file: Option<PathBuf>,
    pub show_secrets: bool,
    pub include_examples: bool,
    pub quiet: bool,
    /// `None`: colour when writing text to a terminal (honours NO_COLOR / CLICOLOR_FORCE).
    pub color: Option<bool>,
}

/// `--verify` and what to keep after it.
pub struct VerifyPlan {
    /// `None`: no network at all.
    pub options: Option<crate::aws::verify::VerifyOptions>,
    /// Keep only credentials STS confirmed live.
    pub only_verified: bool,
}

/// `--owners`, the action report and notifications.
pub struct ActionPlan {
    pub owners: bool,
    pub access: crate::aws::iam::Access,
    pub owner_tags: Vec<String>,
    pub directory: Option<PathBuf>,
    pub policy: crate::aws::actions::Policy,
    pub reports: Vec<PathBuf>,
    pub notify_sns: Option<String>,
}

impl ActionPlan {
    fn wanted(&self) -> bool {
        self.owners || !self.reports.is_empty() || self.notify_sns.is_some()
    }
}

/// What to find things with.
pub struct DetectPlan {
    pub actions: ActionPlan,
    pub verify: VerifyPlan,
    pub rules: Vec<PathBuf>,
    pub config: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    pub ignore_files: Vec<PathBuf>,
    pub pair_lines: Option<usize>,
    pub pair_bytes: Option<usize>,
}

pub struct ScanPlan {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

pub struct ImagePlan {
    pub images: Vec<PathBuf>,
    pub options: crate::source::image::ImageOptions,
    /// Archives among the files of the image's filesystems.
    pub archives: crate::source::archive::Limits,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

pub struct GitPlan {
    pub repo: PathBuf,
    pub history: HistoryOptions,
    /// Scan what is staged instead of history (the pre-commit check).
    pub staged: bool,
    /// Archives among the blobs.
    pub archives: crate::source::archive::Limits,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// Exit codes.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FOUND: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Loaded once per run: rules compiled into the engine, config, suppressions.
struct Detector<'a> {
    engine: Engine,
    config: Config,
    suppressor: Suppressor,
    verify: &'a VerifyPlan,
    actions: &'a ActionPlan,
}

impl<'a> Detector<'a> {
    fn new(plan: &'a DetectPlan, roots: &[PathBuf]) -> Result<Detector<'a>> {
        let config_path = plan.config.clone().or_else(|| {
            search_dirs(roots)
                .into_iter()
                .map(|d| d.join(".keyhound.toml"))
                .find(|p| p.is_file())
        });
        let config = match config_path {
            Some(p) => Config::load(&p)?,
            None => Config::default(),
        };
        let mut rules = RuleSet::load(&plan.rules)?;
        rules.set_pair_window(
            plan.pair_lines.or(config.detect.pair_lines),
            plan.pair_bytes.or(config.detect.pair_bytes),
        );
        let mut ignore_files = plan.ignore_files.clone();
        for d in search_dirs(roots) {
            let p = d.join(".keyhoundignore");
            if p.is_file() && !ignore_files.contains(&p) {
                ignore_files.push(p);
            }
        }
        let suppressor = Suppressor::new(&config, &ignore_files, plan.baseline.as_deref())?;
        Ok(Detector {
            engine: Engine::new(rules)?,
            config,
            suppressor,
            verify: &plan.verify,
            actions: &plan.actions,
        })
    }
}

/// Where `.keyhound.toml` and `.keyhoundignore` are looked for: each directory given, else the
/// current one.
fn search_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = roots.iter().filter(|r| r.is_dir()).cloned().collect();
    if v.is_empty() {
        v.push(PathBuf::from("."));
    }
    v.dedup();
    v
}

/// `keyhound scan`: the working tree.
pub fn scan(mut plan: ScanPlan) -> Result<u8> {
    let start = Instant::now();
    let det = Detector::new(&plan.detect, &plan.roots)?;
    let exclude = det.config.path_filter()?;
    plan.walk.overlap = plan.walk.overlap.max(det.engine.max_span);
    let stats = Arc::new(Stats::default());
    let found: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let progress = progress(&stats, &plan.output);
    let engine = &det.engine;
    let found_ref = &found;
    crate::source::fs::walk(
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
        .map(|r| crate::source::fs::display_path(r))
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

/// `keyhound git`: history, or with `staged` the index.
pub fn git(plan: GitPlan) -> Result<u8> {
    let start = Instant::now();
    let repo = git::open(&plan.repo)?;
    let root = {
        let r = repo.to_thread_local();
        r.workdir().unwrap_or_else(|| r.git_dir()).to_path_buf()
    };
    let det = Detector::new(&plan.detect, std::slice::from_ref(&root))?;
    let stats = Arc::new(Stats::default());
    let repo_name = crate::source::fs::display_path(&plan.repo);
    let roots = vec![if repo_name.is_empty() {
        ".".into()
    } else {
        repo_name
    }];
    if plan.staged {
        let files = git::staged(&repo, &stats)?;
        let mut found = Vec::new();
        for f in &files {
            let blob = Blob::whole(&f.data, Arc::new(Origin::file(f.path.clone())));
            // Only what this commit adds: a finding on a line HEAD already had is not new.
            found.extend(scan_blob(&det.engine, &blob).into_iter().filter(|fi| {
                fi.parts
                    .iter()
                    .any(|p| !f.old_lines.contains(line_at(&f.data, p.location.line)))
            }));
        }
        let code = finish(&det, found, &stats, start, "staged", roots, &plan.output)?;
        if code == EXIT_FOUND {
            eprintln!(
                "keyhound: commit blocked: the staged changes add secrets.\n  \
                 Unstage a file with `git restore --staged PATH`, remove the secret (use the \
                 environment or a secrets manager) and stage it again.\n  \
                 A false positive? Put `keyhound:allow` on its line, or its fingerprint in \
                 .keyhoundignore.\n  \
                 A secret that was ever pushed must be rotated: history keeps it."
            );
        }
        return Ok(code);
    }
    let history = History::enumerate(repo, &plan.history, &stats)?;

    if history.shallow {
        eprintln!(
            "keyhound: warning: {} is a shallow clone: commits before its shallow boundary \
             are not scanned (fetch with --unshallow for the whole history)",
            plan.repo.display()
        );
    }
    if history.submodules > 0 {
        eprintln!(
            "keyhound: note: {} gitlink (submodule) tree entries were not followed: scan each \
             submodule's own repository",
            history.submodules
        );
    }
    let found: Mutex<Vec<(usize, Finding)>> = Mutex::new(Vec::new());
    let engine = &det.engine;
    let found_ref = &found;
    let progress = progress(&stats, &plan.output);
    let limits = plan.archives;
    let stats_ref = &*stats;
    history.scan(plan.history.threads, &stats, &|| {
        move |i: usize, blob: Blob| {
            let mut emit = |b: Blob| {
                let f = scan_blob(engine, &b);
                if !f.is_empty() {
                    found_ref
                        .lock()
                        .unwrap()
                        .extend(f.into_iter().map(|f| (i, f)));
                }
            };
            let kind = (limits.max_depth > 0)
                .then(|| archive::sniff(blob.data))
                .flatten();
            match kind {
                Some(kind) => {
                    let len = blob.data.len() as u64;
                    let mut ex = archive::Expander::new(limits, stats_ref, len, &mut emit);
                    if !ex.bytes(blob.data, kind, &blob.origin) {
                        emit(blob);
                    }
                }
                None => emit(blob),
            }
        }
    });
    progress.finish();
    let found = found.into_inner().unwrap();
    let mut ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
    ids.sort_unstable();
    ids.dedup();
    let origins = history.attribute(&ids);
    let findings = found
        .into_iter()
        .map(|(i, mut f)| {
            // The commit and paths of the blob, and the chain inside it (archive members).
            let mut o = (*origins[&i]).clone();
            o.inner = f.origin.inner.clone();
            f.origin = Arc::new(o);
            f
        })
        .collect();
    let kind = if plan.history.range.is_some() {
        "pull-request"
    } else {
        "history"
    };
    finish(&det, findings, &stats, start, kind, roots, &plan.output)
}

/// `keyhound image`: the raw pass over disk images and block devices.
pub fn image(plan: ImagePlan) -> Result<u8> {
    let start = Instant::now();
    let det = Detector::new(&plan.detect, &[])?;
    let stats = Arc::new(Stats::default());
    let mut found: Vec<Finding> = Vec::new();
    let progress = progress(&stats, &plan.output);
    let engine = &det.engine;
    for path in &plan.images {
        let base = Origin::file(crate::source::fs::display_path(path));
        let raw_origin = Arc::new(Origin {
            raw: true,
            ..base.clone()
        });
        let disk = match crate::source::disk::Disk::open(path) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                stats.skip(
                    crate::source::Skip::Unreadable,
                    Some(format!("{}: {e}", path.display())),
                );
                continue;
            }
        };
        let raw: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
        let raw_ref = &raw;
        let files: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
        let files_ref = &files;
        let parts = volumes(&disk, &stats);
        let walk = crate::source::volume::WalkOptions {
            chunk: plan.options.chunk,
            overlap: plan.options.overlap,
            archives: plan.archives,
            threads: plan.options.threads,
            queue_bytes: crate::source::volume::QUEUE_BYTES,
        };
        // The raw pass and the walk of the filesystems' files (with their paths) run at once;
        // the walk reads files on one thread and scans them on others (`walk_files`). A 2 GiB
        // ext4 volume of /usr/share on two cores: 1.85 s one after the other, 1.30 s at once
        // with the walk scanning on its own thread, 0.84–0.93 s with its files scanned on
        // other threads.
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::source::image::raw_pass(&disk, &raw_origin, &plan.options, &stats, &|| {
                    move |blob: Blob| collect(engine, &blob, raw_ref)
                })
            });
            for part in &parts {
                crate::source::volume::walk_files(&disk, &base, part, &walk, &stats, &|| {
                    move |blob: Blob| collect(engine, &blob, files_ref)
                });
            }
        });
        let files = files.into_inner().unwrap();
        found.extend(place_raw(raw.into_inner().unwrap(), &files, &parts, &base));
        found.extend(files);
    }
    progress.finish();
    let roots = plan
        .images
        .iter()
        .map(|p| crate::source::fs::display_path(p))
        .collect();
    finish(&det, found, &stats, start, "image", roots, &plan.output)
}

/// The bytes of 1-based line `n` of `data`.
fn line_at(data: &[u8], n: u64) -> &[u8] {
    let mut rest = data;
    for _ in 1..n {
        match memchr::memchr(b'\n', rest) {
            Some(p) => rest = &rest[p + 1..],
            None => return &[],
        }
    }
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end])
}

/// From findings to the written report; returns the exit code.
fn finish(
    det: &Detector,
    findings: Vec<Finding>,
    stats: &Stats,
    start: Instant,
    kind: &'static str,
    roots: Vec<String>,
    out: &OutputPlan,
) -> Result<u8> {
    let (allowed, findings): (Vec<Finding>, Vec<Finding>) =
        findings.into_iter().partition(|f| f.allowed_inline);
    let mut creds = finding::group(findings);
    crate::aws::enrich_offline(&mut creds);
    let mut outcome = Outcome::default();
    let mut creds = det.suppressor.apply(creds, &mut outcome);
    if !allowed.is_empty() {
        outcome
            .suppressed
            .insert(Reason::Inline, allowed.len() as u64);
    }
    let examples = creds.iter().filter(|c| c.class == Class::Example).count() as u64;
    if !out.include_examples {
        creds.retain(|c| c.class != Class::Example);
    }
    let mut incomplete = false;
    // IAM is asked before STS: a verification call would itself count as the key's last use.
    let mut session = None;
    if det.actions.wanted() {
        match open_session(det.actions) {
            Ok(s) => session = s,
            Err(e) => {
                eprintln!("keyhound: error: {e:#}");
                incomplete = true;
            }
        }
    }
    let lookups = session.as_ref().filter(|_| det.actions.owners).map(|s| {
        let (found, warnings) = crate::aws::owners::lookup(s, &creds);
        for w in warnings {
            eprintln!("keyhound: warning: {w}");
        }
        found
    });
    if let Some(opts) = &det.verify.options {
        for w in crate::aws::verify::verify(&mut creds, opts)? {
            eprintln!("keyhound: warning: {w}");
        }
        // Live keys are incidents: they come first.
        creds.sort_by_key(|c| !c.is_live());
    }
    if det.verify.only_verified {
        creds.retain(Credential::is_live);
    }
    if det.actions.wanted() {
        let secrets: Vec<Credential> = creds
            .iter()
            .filter(|c| c.class == Class::Secret)
            .cloned()
            .collect();
        let directory = load_directory(det.actions)?;
        let rows = crate::aws::owners::records(
            &secrets,
            lookups.as_ref(),
            &record_options(det.actions, directory.as_ref()),
        );
        let report = action_report("scan", session.as_ref(), det.actions, rows, Vec::new());
        if !deliver(&report, session.as_ref(), det.actions)? {
            incomplete = true;
        }
    }
    let summary = Summary {
        files: stats.files.load(std::sync::atomic::Ordering::Relaxed),
        commits: stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        bytes: stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: start.elapsed(),
        skipped: stats.skipped(),
        warnings: stats.warnings(),
        suppressed: outcome.suppressed,
        examples,
        examples_hidden: if out.include_examples { 0 } else { examples },
        baseline_missing: outcome.baseline_missing,
        incomplete: stats.incomplete() || incomplete,
    };
    for w in &summary.warnings {
        eprintln!("keyhound: warning: {w}");
    }
    let report = Report {
        kind,
        roots,
        credentials: &creds,
        rules: det
            .engine
            .rules
            .metas()
            .filter(|m| is_reportable(&det.engine.rules, &m.id))
            .cloned()
            .collect(),
        summary,
        show_secrets: out.show_secrets,
    };
    write_report(&report, out)?;
    Ok(if report.summary.incomplete {
        EXIT_ERROR
    } else if creds.iter().any(|c| c.class == Class::Secret) {
        EXIT_FOUND
    } else {
        EXIT_CLEAN
    })
}

/// The partitions of an image, or the whole image when it is a bare filesystem.
fn volumes(
    disk: &Arc<crate::source::disk::Disk>,
    stats: &Stats,
) -> Vec<crate::source::volume::Part> {
    use crate::source::volume::{self, Part};
    match volume::partitions(disk) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => volume::sniff(disk, 0)
            .map(|fs| {
                vec![Part {
                    name: "disk".into(),
                    start: 0,
                    len: disk.len(),
                    fs: Some(fs),
                    expect_fs: true,
                    missing: 0,
                }]
            })
            .unwrap_or_default(),
        Err(e) => {
            stats.skip(
                crate::source::Skip::Unreadable,
                Some(format!("{}: partition table: {e}", disk.path.display())),
            );
            Vec::new()
        }
    }
}

/// Raw-pass findings, each placed in its partition (origin `image › p1 (ext4)`, offset from the
/// partition's start), and dropped when the same secret was found in a file: a key found by
/// both passes is reported once, with its path.
fn place_raw(
    raw: Vec<Finding>,
    files: &[Finding],
    parts: &[crate::source::volume::Part],
    base: &Origin,
) -> Vec<Finding> {
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

/// The operator's AWS session, when IAM or SNS is needed.
fn open_session(a: &ActionPlan) -> Result<Option<crate::aws::iam::Session>> {
    if !a.owners && a.notify_sns.is_none() {
        return Ok(None);
    }
    Ok(Some(crate::aws::iam::Session::open(a.access.clone())?))
}

fn load_directory(a: &ActionPlan) -> Result<Option<crate::aws::directory::Directory>> {
    a.directory
        .as_deref()
        .map(crate::aws::directory::Directory::load)
        .transpose()
}

fn record_options<'a>(
    a: &'a ActionPlan,
    directory: Option<&'a crate::aws::directory::Directory>,
) -> crate::aws::owners::RecordOptions<'a> {
    crate::aws::owners::RecordOptions {
        owner_tags: &a.owner_tags,
        directory,
        policy: a.policy,
        profile: a.access.profile.as_deref(),
        now: jiff::Timestamp::now(),
    }
}

fn action_report(
    source: &str,
    session: Option<&crate::aws::iam::Session>,
    a: &ActionPlan,
    keys: Vec<crate::aws::actions::KeyRecord>,
    failed: Vec<(String, String)>,
) -> report::actions::ActionReport {
    report::actions::ActionReport {
        schema: report::actions::SCHEMA.into(),
        version: report::actions::VERSION,
        generated: jiff::Timestamp::now().to_string(),
        source: source.into(),
        operator: session.map(|s| s.operator_arn.clone()),
        max_age_days: a.policy.max_age_days,
        max_unused_days: a.policy.max_unused_days,
        accounts_failed: failed
            .into_iter()
            .map(|(account, error)| report::actions::AccountError { account, error })
            .collect(),
        keys,
    }
}

/// Writes the action reports and publishes to SNS; false if a message could not be sent.
fn deliver(
    r: &report::actions::ActionReport,
    session: Option<&crate::aws::iam::Session>,
    a: &ActionPlan,
) -> Result<bool> {
    for path in &a.reports {
        report::actions::write_file(r, path)?;
    }
    match (&a.notify_sns, session) {
        (Some(topic), Some(s)) => crate::aws::notify::run(s, topic, r),
        _ => Ok(true),
    }
}

/// `keyhound audit`: the action report of whole accounts.
pub fn audit(accounts: Vec<String>, a: ActionPlan, wait: std::time::Duration) -> Result<u8> {
    let session = crate::aws::iam::Session::open(a.access.clone())?;
    let directory = load_directory(&a)?;
    let accounts = if accounts.is_empty() {
        vec![session.operator_account.clone()]
    } else {
        accounts
    };
    let (rows, failed) = crate::aws::audit::audit(
        &session,
        &accounts,
        &record_options(&a, directory.as_ref()),
        wait,
    );
    for (acct, e) in &failed {
        eprintln!("keyhound: error: account {acct}: {e}");
    }
    let report = action_report("audit", Some(&session), &a, rows, failed);
    let sent = deliver(&report, Some(&session), &a)?;
    let mut out = std::io::stdout().lock();
    if a.reports.is_empty() {
        report::actions::markdown(&report, &mut out)?;
    } else {
        let audited = accounts.len() - report.accounts_failed.len();
        writeln!(
            out,
            "{} keys in {audited} account{}: {}",
            report.keys.len(),
            if audited == 1 { "" } else { "s" },
            report.counts()
        )?;
    }
    Ok(if !report.accounts_failed.is_empty() || !sent {
        EXIT_ERROR
    } else if report
        .keys
        .iter()
        .any(|k| k.action != crate::aws::actions::Action::None)
    {
        EXIT_FOUND
    } else {
        EXIT_CLEAN
    })
}

/// `keyhound remediate PLAN.json`.
pub fn remediate(
    plan: &Path,
    access: crate::aws::iam::Access,
    opts: crate::aws::remediate::Options,
    log: &Path,
) -> Result<u8> {
    let report = report::actions::ActionReport::read(plan)?;
    // A dry run needs no credentials and makes no call.
    let session = if opts.apply {
        Some(crate::aws::iam::Session::open(access)?)
    } else {
        None
    };
    crate::aws::remediate::run(&report, session.as_ref(), &opts, log)
}

fn is_reportable(rules: &RuleSet, id: &str) -> bool {
    rules
        .rules
        .iter()
        .find(|r| r.meta.id == id)
        .is_none_or(|r| r.standalone)
}

fn write_report(report: &Report, out: &OutputPlan) -> Result<()> {
    let quiet_text = out.quiet && out.format == Format::Text;
    match &out.file {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            report::write(report, out.format, false, &mut w)?;
            w.flush()?;
            if out.format != Format::Text && !out.quiet {
                // The human summary still goes to the terminal.
                report::text::write_summary(report, &mut std::io::stderr())?;
            }
        }
        None => {
            let stdout = std::io::stdout();
            let color = out.color.unwrap_or_else(|| {
                anstream::AutoStream::choice(&stdout) != anstream::ColorChoice::Never
            });
            let mut w = std::io::BufWriter::new(stdout.lock());
            if quiet_text {
                report::text::write_credentials(report, color, &mut w)?;
            } else {
                report::write(report, out.format, color, &mut w)?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// The findings of one blob (the blob's own part of it); nothing is allocated when there are
/// none, which is nearly always.
fn scan_blob(engine: &Engine, blob: &Blob) -> Vec<Finding> {
    let d = engine.scan(blob.data);
    if d.is_empty() {
        Vec::new()
    } else {
        finding::from_detections(blob, d)
    }
}

/// Scans a blob into `found` (the handler every source but git gets).
fn collect(engine: &Engine, blob: &Blob, found: &Mutex<Vec<Finding>>) {
    let f = scan_blob(engine, blob);
    if !f.is_empty() {
        found.lock().unwrap().extend(f);
    }
}

/// A spinner on stderr for long scans, unless quiet or stderr is not a terminal.
fn progress(stats: &Arc<Stats>, out: &OutputPlan) -> Progress {
    Progress::start(stats.clone(), !out.quiet && std::io::stderr().is_terminal())
}

/// Scans a text the way a file is scanned, for rule examples.
pub fn scan_text(engine: &Engine, text: &[u8]) -> Vec<Credential> {
    let blob = Blob::whole(text, Arc::new(Origin::file("example")));
    let f = scan_blob(engine, &blob);
    let mut creds = finding::group(f);
    crate::aws::enrich_offline(&mut creds);
    creds.retain(|c| c.class == Class::Secret);
    creds
}

/// Runs every rule's positive and negative examples (each expanded with several seeds);
/// returns one line per failure.
pub fn check_rules(engine: &Engine) -> Vec<String> {
    let rules = &engine.rules;
    // Which reportable ids show that a rule matched: itself, and the pairs it is part of.
    let mut covers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &rules.rules {
        covers.entry(&r.meta.id).or_default().push(&r.meta.id);
    }
    for p in &rules.pairs {
        covers.entry(&p.meta.id).or_default().push(&p.meta.id);
        let members = p.secrets.iter().chain(p.token.iter()).chain([&p.key]);
        for &m in members {
            covers
                .entry(&rules.rules[m].meta.id)
                .or_default()
                .push(&p.meta.id);
        }
    }
    let mut failures = Vec::new();
    let cases = rules
        .rules
        .iter()
        .map(|r| (&r.meta, r.standalone, &r.examples, &r.negative_examples))
        .chain(
            rules
                .pairs
                .iter()
                .map(|p| (&p.meta, true, &p.examples, &p.negative_examples)),
        );
    for (meta, standalone, pos, neg) in cases {
        if standalone && pos.is_empty() {
            failures.push(format!("{}: no examples", meta.id));
        }
        let ids = &covers[meta.id.as_str()];
        for (want, list) in [(true, pos), (false, neg)] {
            for ex in list.iter() {
                for seed in 0..3 {
                    let text = match examples::expand(ex, &mut fastrand::Rng::with_seed(seed)) {
                        Ok(t) => t,
                        Err(e) => {
                            failures.push(format!("{}: {e}", meta.id));
                            break;
                        }
                    };
                    // A positive example is also looked for in UTF-16 (little-endian, and
                    // big-endian with and without its byte order mark), where the prefilter
                    // sees only a short hint of each keyword.
                    let units: Vec<u16> = text.encode_utf16().collect();
                    let encodings = [
                        ("", text.as_bytes().to_vec()),
                        (
                            " in UTF-16LE",
                            units.iter().flat_map(|u| u.to_le_bytes()).collect(),
                        ),
                        (
                            " in UTF-16BE",
                            [0xfe, 0xff]
                                .into_iter()
                                .chain(units.iter().flat_map(|u| u.to_be_bytes()))
                                .collect(),
                        ),
                        (
                            " in UTF-16BE without a byte order mark",
                            units.iter().flat_map(|u| u.to_be_bytes()).collect(),
                        ),
                    ];
                    let tried = if want {
                        &encodings[..]
                    } else {
                        &encodings[..1]
                    };
                    let before = failures.len();
                    for (how, bytes) in tried {
                        let creds = scan_text(engine, bytes);
                        let hit = creds.iter().any(|c| ids.contains(&c.rule.id.as_str()));
                        if hit != want {
                            failures.push(format!(
                                "{}: {} example (seed {seed}){how} {}: {:?}",
                                meta.id,
                                if want { "positive" } else { "negative" },
                                if want { "not found" } else { "reported" },
                                text
                            ));
                        }
                    }
                    if failures.len() > before {
                        break;
                    }
                }
            }
        }
    }
    failures
}

/// Used by `keyhound rules`: the loaded rule set with any `--rules` dirs.
pub fn load_engine(rules: &[PathBuf], config: Option<&Path>) -> Result<Engine> {
    let mut set = RuleSet::load(rules)?;
    if let Some(c) = config {
        let c = Config::load(c)?;
        set.set_pair_window(c.detect.pair_lines, c.detect.pair_bytes);
    }
    Engine::new(set)
}
