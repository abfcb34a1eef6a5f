//! The stages every command shares, called (not copied) by each command's file in
//! `command/`: the detector (rules, config, suppressions) loaded once, and `finish`, which takes
//! a command's findings through grouping, suppression, enrichment (owners, verification,
//! actions) to the written report and the exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

use crate::blob::Blob;
use crate::detect::{Engine, RuleSet, Selection};
use crate::finding::{self, Class, Credential, Finding};
use crate::report::{self, progress::Progress, Format, Report, Summary};
use crate::source::Stats;
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
    /// This run is one part of a sharded scan.
    pub shard: Option<crate::shard::Shard>,
    /// The command line, less what only changes the report's look (the plan's identity).
    pub args: Vec<String>,
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
    pub(crate) fn wanted(&self) -> bool {
        self.owners || !self.reports.is_empty() || self.notify_sns.is_some()
    }
}

/// What to find things with.
pub struct DetectPlan {
    pub actions: ActionPlan,
    pub verify: VerifyPlan,
    pub rules: Vec<PathBuf>,
    /// `--enable-rule`, `--disable-rule`, `--min-confidence`, `--generic`.
    pub selection: Selection,
    pub config: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    pub ignore_files: Vec<PathBuf>,
    pub pair_lines: Option<usize>,
    pub pair_bytes: Option<usize>,
}

/// Exit codes.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FOUND: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Loaded once per run: rules compiled into the engine, config, suppressions.
pub(crate) struct Detector<'a> {
    /// Never freed: a command's detector lives until the process ends, and freeing the
    /// automata of every compiled rule (and each thread's search caches) took 8% of a run
    /// whose input hit every rule's keywords.
    pub(crate) engine: std::mem::ManuallyDrop<Engine>,
    pub(crate) config: Config,
    suppressor: Suppressor,
    verify: &'a VerifyPlan,
    actions: &'a ActionPlan,
}

impl<'a> Detector<'a> {
    pub(crate) fn new(plan: &'a DetectPlan, roots: &[PathBuf]) -> Result<Detector<'a>> {
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
        let mut rules = RuleSet::load_selected(&plan.rules, &config.selection(&plan.selection))?;
        rules.set_pair_window(
            plan.pair_lines.or(config.detect.pair_lines),
            plan.pair_bytes.or(config.detect.pair_bytes),
        );
        let mut ignore_files = plan.ignore_files.clone();
        for d in search_dirs(roots) {
            if d.join(".gitleaksignore").is_file() {
                eprintln!(
                    "keyhound: note: {} is not read: its fingerprints name gitleaks' rules and \
                     commits in gitleaks' form; suppress with .keyhoundignore (fingerprints from \
                     keyhound's reports) or `keyhound:allow` on the line",
                    d.join(".gitleaksignore").display()
                );
            }
            let p = d.join(".keyhoundignore");
            if p.is_file() && !ignore_files.contains(&p) {
                ignore_files.push(p);
            }
        }
        let suppressor = Suppressor::new(&config, &ignore_files, plan.baseline.as_deref())?;
        Ok(Detector {
            engine: std::mem::ManuallyDrop::new(Engine::new(rules)?),
            config,
            suppressor,
            verify: &plan.verify,
            actions: &plan.actions,
        })
    }
}

/// Where `.keyhound.toml` and `.keyhoundignore` are looked for: each directory given, else the
/// current one.
pub(crate) fn search_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = roots.iter().filter(|r| r.is_dir()).cloned().collect();
    if v.is_empty() {
        v.push(PathBuf::from("."));
    }
    v.dedup();
    v
}

/// From findings to the written report; returns the exit code.
pub(crate) fn finish(
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
    let plan = crate::report::PlanId {
        args: out.args.clone(),
        rules: det.engine.rules.digest(),
        shard: out.shard,
    };
    let incomplete = enrich(Some(det.actions), det.verify, &mut creds, &plan)?;
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
        shards: Vec::new(),
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
        plan: Some(plan),
    };
    write_report(&report, out)?;
    Ok(exit_code(&report))
}

/// What a run asks AWS about its credentials once they are grouped and suppressed: owners from
/// IAM (before STS: a verification call would itself count as the key's last use), then STS,
/// then the action report and its delivery. Shared by every scan and by `merge`. True when
/// something could not be done (the run is then incomplete). Without `actions`, only STS.
pub(crate) fn enrich(
    actions: Option<&ActionPlan>,
    verify: &VerifyPlan,
    creds: &mut Vec<Credential>,
    plan: &crate::report::PlanId,
) -> Result<bool> {
    let mut incomplete = false;
    let mut session = None;
    let actions = actions.filter(|a| a.wanted());
    if let Some(actions) = actions {
        match open_session(actions) {
            Ok(s) => session = s,
            Err(e) => {
                eprintln!("keyhound: error: {e:#}");
                incomplete = true;
            }
        }
    }
    let lookups = session
        .as_ref()
        .filter(|_| actions.is_some_and(|a| a.owners))
        .map(|s| {
            let (found, warnings) = crate::aws::owners::lookup(s, creds);
            for w in warnings {
                eprintln!("keyhound: warning: {w}");
            }
            found
        });
    if let Some(opts) = &verify.options {
        for w in crate::aws::verify::verify(creds, opts)? {
            eprintln!("keyhound: warning: {w}");
        }
        // Live keys are incidents: they come first.
        creds.sort_by_key(|c| !c.is_live());
    }
    if verify.only_verified {
        creds.retain(Credential::is_live);
    }
    if let Some(actions) = actions {
        let secrets: Vec<Credential> = creds
            .iter()
            .filter(|c| c.class == Class::Secret)
            .cloned()
            .collect();
        let directory = load_directory(actions)?;
        let rows = crate::aws::owners::records(
            &secrets,
            lookups.as_ref(),
            &record_options(actions, directory.as_ref()),
        );
        let report = action_report("scan", session.as_ref(), actions, rows, Vec::new(), plan);
        if !deliver(&report, session.as_ref(), actions)? {
            incomplete = true;
        }
    }
    Ok(incomplete)
}

/// 2 when the scan is incomplete, 1 when it found secrets, 0 otherwise.
pub(crate) fn exit_code(report: &Report) -> u8 {
    if report.summary.incomplete {
        EXIT_ERROR
    } else if report.credentials.iter().any(|c| c.class == Class::Secret) {
        EXIT_FOUND
    } else {
        EXIT_CLEAN
    }
}

/// The operator's AWS session, when IAM or SNS is needed.
pub(crate) fn open_session(a: &ActionPlan) -> Result<Option<crate::aws::iam::Session>> {
    if !a.owners && a.notify_sns.is_none() {
        return Ok(None);
    }
    Ok(Some(crate::aws::iam::Session::open(a.access.clone())?))
}

pub(crate) fn load_directory(a: &ActionPlan) -> Result<Option<crate::aws::directory::Directory>> {
    a.directory
        .as_deref()
        .map(crate::aws::directory::Directory::load)
        .transpose()
}

pub(crate) fn record_options<'a>(
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

pub(crate) fn action_report(
    source: &str,
    session: Option<&crate::aws::iam::Session>,
    a: &ActionPlan,
    keys: Vec<crate::aws::actions::KeyRecord>,
    failed: Vec<(String, String)>,
    plan: &crate::report::PlanId,
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
        plan: Some(plan.clone()),
    }
}

/// Writes the action reports and publishes to SNS; false if a message could not be sent.
pub(crate) fn deliver(
    r: &report::actions::ActionReport,
    session: Option<&crate::aws::iam::Session>,
    a: &ActionPlan,
) -> Result<bool> {
    let shard = r.plan.as_ref().and_then(|p| p.shard);
    for path in &a.reports {
        report::actions::write_file(r, &crate::shard::fill(path, shard))?;
    }
    match (&a.notify_sns, session) {
        // Each owner hears once, from `keyhound merge --notify-sns`, not once a part.
        (Some(_), _) if shard.is_some_and(|s| s.count > 1) => {
            eprintln!(
                "keyhound: note: a part of a sharded run does not notify: `keyhound merge \
                 --notify-sns TOPIC` does, once, for the whole run"
            );
            Ok(true)
        }
        (Some(topic), Some(s)) => crate::aws::notify::run(s, topic, r),
        _ => Ok(true),
    }
}

pub(crate) fn is_reportable(rules: &RuleSet, id: &str) -> bool {
    rules
        .rules
        .iter()
        .find(|r| r.meta.id == id)
        .is_none_or(|r| r.standalone)
}

pub(crate) fn write_report(report: &Report, out: &OutputPlan) -> Result<()> {
    let quiet_text = out.quiet && out.format == Format::Text;
    match &out.file {
        Some(path) => {
            let mut w = std::io::BufWriter::new(report::create_file(path)?);
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
pub(crate) fn scan_blob(engine: &Engine, blob: &Blob) -> Vec<Finding> {
    let d = engine.scan(blob.data);
    if d.is_empty() {
        Vec::new()
    } else {
        finding::from_detections(blob, d)
    }
}

/// Scans a blob into `found` (the handler every source but git gets).
pub(crate) fn collect(engine: &Engine, blob: &Blob, found: &Mutex<Vec<Finding>>) {
    let f = scan_blob(engine, blob);
    if !f.is_empty() {
        found.lock().unwrap().extend(f);
    }
}

/// A spinner on stderr for long scans, unless quiet or stderr is not a terminal.
pub(crate) fn progress(stats: &Arc<Stats>, out: &OutputPlan) -> Progress {
    Progress::start(stats.clone(), !out.quiet && std::io::stderr().is_terminal())
}
