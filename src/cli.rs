//! Command line: clap derive parses arguments into a plan for the command's file in `command/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::command::{self, git::GitPlan, image::ImagePlan, scan::ScanPlan};
use crate::pipeline::{self, DetectPlan, OutputPlan, EXIT_ERROR};
use crate::report::Format;
use crate::source::git::HistoryOptions;
use crate::source::tree::WalkOptions;

#[derive(Parser)]
#[command(
    name = "keyhound",
    version,
    about = "Find leaked AWS access keys and other secrets in files, git history, archives and disk images.",
    after_help = "Exit status: 0 nothing found, 1 secrets found, 2 error or incomplete scan."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan files and directories (the working tree).
    Scan(ScanArgs),
    /// Scan git history: every blob reachable from all refs (or a branch, a range, or every
    /// object), or with --staged what is staged for the next commit.
    Git(GitArgs),
    /// Scan what is staged for the next commit (the pre-commit check); `git --staged`.
    Protect(ProtectArgs),
    /// Scan disk images or block devices byte by byte (raw images, EBS snapshots, /dev/…):
    /// deleted files, free space and swap included; findings carry byte offsets.
    Image(ImageArgs),
    /// Scan EBS snapshots in place through the EBS direct APIs (no volume created, nothing
    /// copied): snapshot ids, volume ids (their latest completed snapshot), instance ids (the
    /// latest snapshot of each attached volume), or --all; across accounts and regions.
    Snapshot(SnapshotArgs),
    /// Scan S3 buckets and prefixes in place (nothing copied to disk): objects streamed,
    /// archives expanded, disk images walked through ranged reads, old versions with
    /// --versions; across accounts.
    S3(S3Args),
    /// Join the JSON reports of a sharded scan's parts (files or directories) into one report,
    /// in any format: refuses parts of different plans, names missing ones (exit 2).
    Merge(MergeArgs),
    /// The action report for whole accounts, without scanning: every access key from IAM's
    /// credential report, with owner, age, last use and what to do.
    Audit(AuditArgs),
    /// Carry out a JSON action report: dry run by default; --apply deactivates keys.
    Remediate(RemediateArgs),
    /// Install a git pre-commit hook that runs `keyhound git --staged`.
    InstallHook(InstallHookArgs),
    /// List the rules, or test their examples.
    Rules(RulesArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Args)]
struct DetectArgs {
    /// Add the rules in this directory or file (TOML, same format as patterns/, or a gitleaks
    /// config). Repeatable.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Turn on a rule that is off by default (a rule id or a family). Repeatable.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    enable_rule: Vec<String>,
    /// Turn off a rule (a rule id, a pair id or a family). Repeatable.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    disable_rule: Vec<String>,
    /// Use only rules at least this sure of what they find [default: low, every rule that is on].
    #[arg(long, value_name = "LEVEL")]
    min_confidence: Option<crate::detect::Confidence>,
    /// Also look for secret-looking values assigned to password, secret, token or key names
    /// (the `generic` rules: more findings, less precise).
    #[arg(long)]
    generic: bool,
    /// Configuration file [default: .keyhound.toml in the scanned directory, if any].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Suppress the credentials of an earlier JSON report; report baseline entries not seen.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// A file of fingerprints to ignore, besides .keyhoundignore in the scanned directory.
    #[arg(long, value_name = "FILE")]
    ignore_file: Vec<PathBuf>,
    /// Pair a key id with a secret at most this many lines away [default: 5].
    #[arg(long, value_name = "N")]
    pair_window_lines: Option<usize>,
    /// Pair a key id with a secret at most this many bytes away [default: 1024].
    #[arg(long, value_name = "N")]
    pair_window_bytes: Option<usize>,
    /// Ask AWS STS (GetCallerIdentity) whether each found key pair is live and whose it is. The
    /// secret leaves only as a SigV4 signature; canary-token keys are never called.
    #[arg(long, help_heading = "Verification")]
    verify: bool,
    /// Calls to STS in flight at most.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        help_heading = "Verification"
    )]
    verify_concurrency: usize,
    /// Call canary-token keys too (this alerts whoever planted them).
    #[arg(long, requires = "verify", help_heading = "Verification")]
    verify_canaries: bool,
    /// Only call keys whose account (decoded from the key id) is one of these.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        requires = "verify",
        help_heading = "Verification"
    )]
    verify_accounts: Option<Vec<String>>,
    /// Seconds one verification may take, retries included.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        help_heading = "Verification"
    )]
    verify_timeout: u64,
    /// Report only the keys STS confirmed live.
    #[arg(long, requires = "verify", help_heading = "Verification")]
    only_verified: bool,
    /// Milliseconds before asking again about a SignatureDoesNotMatch.
    #[arg(long, value_name = "MS", default_value_t = 6000, hide = true)]
    verify_recheck_ms: u64,
    /// Milliseconds before the first retry (doubling, with jitter).
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true)]
    verify_backoff_ms: u64,
    /// Ask the operator's IAM (their own credentials, never the found ones) who owns each found
    /// key, its status, age and last use, before any verification call (which would count as a
    /// use).
    #[arg(long, help_heading = "Owners and actions")]
    owners: bool,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    actions: ActionArgs,
}

#[derive(Args)]
struct AccessArgs {
    /// The operator's AWS profile [default: the SDK's chain: environment, profiles, SSO,
    /// instance role].
    #[arg(long, value_name = "NAME", help_heading = "Owners and actions")]
    profile: Option<String>,
    /// In every other account, assume arn:aws:iam::{account}:role/NAME for the lookups.
    #[arg(long, value_name = "NAME", help_heading = "Owners and actions")]
    assume_role: Option<String>,
}

impl AccessArgs {
    fn plan(self) -> crate::aws::iam::Access {
        crate::aws::iam::Access {
            profile: self.profile,
            assume_role: self.assume_role,
        }
    }
}

#[derive(Args)]
struct ActionArgs {
    /// User tags that name a key's owner, first set wins.
    #[arg(
        long,
        value_name = "KEY,...",
        value_delimiter = ',',
        default_value = "owner,creator,email,Owner,CreatedBy",
        help_heading = "Owners and actions"
    )]
    owner_tags: Vec<String>,
    /// People still here: a CSV or JSON export (Okta, Google Workspace, Azure AD) with an email
    /// column and optionally a status; keys of owners not in it are DEACTIVATE (owner left).
    #[arg(long, value_name = "FILE", help_heading = "Owners and actions")]
    directory: Option<PathBuf>,
    /// Active keys at least this many days old are to be rotated.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 90,
        help_heading = "Owners and actions"
    )]
    max_age: i64,
    /// Active keys unused this many days (never used: since creation) are to be retired.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 90,
        help_heading = "Owners and actions"
    )]
    max_unused: i64,
    /// Write the action report (what to do with each key, and the commands); the format
    /// follows the extension: .md, .json, .csv. Repeatable.
    #[arg(long, value_name = "FILE", help_heading = "Owners and actions")]
    report: Vec<PathBuf>,
    /// Publish one message per owner with that owner's actions to this SNS topic.
    #[arg(long, value_name = "TOPIC_ARN", help_heading = "Owners and actions")]
    notify_sns: Option<String>,
}

impl ActionArgs {
    fn plan(self, owners: bool, access: crate::aws::iam::Access) -> pipeline::ActionPlan {
        pipeline::ActionPlan {
            owners,
            access,
            owner_tags: self.owner_tags,
            directory: self.directory,
            policy: crate::aws::actions::Policy {
                max_age_days: self.max_age.max(0),
                max_unused_days: self.max_unused.max(0),
            },
            reports: self.report,
            notify_sns: self.notify_sns,
        }
    }
}

#[derive(Args)]
struct SnapshotArgs {
    /// Snapshot ids (snap-…), volume ids (vol-…: the latest completed snapshot) or instance ids
    /// (i-…: the latest completed snapshot of each attached volume).
    #[arg(required_unless_present = "all")]
    ids: Vec<String>,
    /// Every completed snapshot the accounts own (the latest per volume unless
    /// --every-snapshot).
    #[arg(long, help_heading = "Discovery")]
    all: bool,
    /// Every snapshot of each volume, not only its latest.
    #[arg(long, help_heading = "Discovery")]
    every_snapshot: bool,
    /// Only snapshots with this tag (tag:KEY=VALUE). Repeatable.
    #[arg(long, value_name = "tag:KEY=VALUE", value_parser = parse_tag_filter, help_heading = "Discovery")]
    filter: Vec<(String, String)>,
    /// Only snapshots started on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_date, help_heading = "Discovery")]
    created_after: Option<jiff::Timestamp>,
    /// Regions to look in, or `all` (every region enabled for the account) [default: the
    /// configured region].
    #[arg(
        long,
        value_name = "R,...|all",
        value_delimiter = ',',
        help_heading = "Discovery"
    )]
    regions: Option<Vec<String>>,
    /// Accounts to look in [default: the operator's]; others are reached with --assume-role.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "organization",
        help_heading = "Discovery"
    )]
    accounts: Vec<String>,
    /// Every active account of the organization (Organizations ListAccounts, from the
    /// management or a delegated administrator account), reached with --assume-role.
    #[arg(long, help_heading = "Discovery")]
    organization: bool,
    /// Print the snapshots that would be scanned (text, or --format json/jsonl) and stop.
    #[arg(long, help_heading = "Discovery")]
    list: bool,
    /// Print how many blocks and GiB would be read and what the calls cost, and stop.
    #[arg(long, conflicts_with = "list", help_heading = "Discovery")]
    plan: bool,
    /// Refuse to read more than this many GiB of written blocks.
    #[arg(long, value_name = "GIB", help_heading = "Discovery")]
    max_gib: Option<f64>,
    /// GetSnapshotBlock requests in flight per snapshot.
    #[arg(long, value_name = "N", default_value_t = 32)]
    ebs_concurrency: usize,
    /// GetSnapshotBlock requests a second per account, shared by every snapshot of the run:
    /// AWS's quota (1,000) unless the account had it raised.
    #[arg(long, value_name = "N", default_value_t = crate::source::block::ebs::GET_BLOCKS_PER_SECOND)]
    ebs_requests_per_second: u32,
    /// Blocks kept for the filesystem walk, in MiB (each written block is fetched once; one
    /// the walk needs again after the cache let it go is fetched again, and counted).
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    cache_mib: u64,
    #[command(flatten)]
    disk: DiskArgs,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct S3Args {
    /// Where to look: s3://bucket or s3://bucket/prefix.
    #[arg(required_unless_present = "all_buckets", value_parser = parse_location)]
    locations: Vec<crate::source::s3::Location>,
    /// Every bucket the accounts own (ListBuckets), each read in its own region.
    #[arg(long, help_heading = "Discovery")]
    all_buckets: bool,
    /// Accounts to look in [default: the operator's]; others are reached with --assume-role.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "organization",
        help_heading = "Discovery"
    )]
    accounts: Vec<String>,
    /// Every active account of the organization (Organizations ListAccounts), reached with
    /// --assume-role; with --all-buckets.
    #[arg(long, requires = "all_buckets", help_heading = "Discovery")]
    organization: bool,
    /// Only keys matching this glob (a glob without `/` matches the key's last part,
    /// `*.tar.gz`; one with `/` the whole key, `backups/**`). Repeatable.
    #[arg(long, value_name = "GLOB", help_heading = "Discovery")]
    include: Vec<String>,
    /// Leave out keys matching this glob (as --include). Repeatable.
    #[arg(long, value_name = "GLOB", help_heading = "Discovery")]
    exclude: Vec<String>,
    /// Read noncurrent versions too (older versions, and objects behind a delete marker):
    /// each place names its version id and date. Without it they are counted, not read.
    #[arg(long, help_heading = "Discovery")]
    versions: bool,
    /// Leave out objects bigger than this (counted); disk images are read whatever their size.
    #[arg(long, value_name = "MIB", help_heading = "Discovery")]
    max_object_mib: Option<u64>,
    /// Send `x-amz-request-payer: requester` (for requester-pays buckets: you pay for the
    /// requests and the bytes).
    #[arg(long, help_heading = "Discovery")]
    request_payer: bool,
    /// Print how many objects and GiB would be read and what the requests cost, and stop.
    #[arg(long, help_heading = "Discovery")]
    plan: bool,
    /// Refuse to read more than this many GiB.
    #[arg(long, value_name = "GIB", help_heading = "Discovery")]
    max_gib: Option<f64>,
    /// Objects read at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    s3_concurrency: usize,
    /// For disk images in S3: bytes kept for the filesystem walk, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    cache_mib: u64,
    #[command(flatten)]
    disk: DiskArgs,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct MergeArgs {
    /// The parts' JSON reports (scan reports, and the action reports of `--report part.json`),
    /// or directories or s3://bucket/prefix/ holding them (*.json).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

fn parse_location(s: &str) -> Result<crate::source::s3::Location, String> {
    s.parse()
}

/// How a whole disk (an image, a device, a snapshot) is scanned.
#[derive(Args)]
struct DiskArgs {
    /// Worker threads [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
    /// Window size in MiB (memory per thread is about this).
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    buffer_mib: usize,
    /// Do not read the history of git repositories found in the filesystems (their files are
    /// scanned either way).
    #[arg(long)]
    no_git_history: bool,
    #[command(flatten)]
    archives: ArchiveArgs,
}

impl DiskArgs {
    /// `overlap`: context shared by neighbouring windows (the detector's longest match is
    /// added by the command).
    fn options(&self, overlap: usize, mmap: bool) -> crate::source::image::ImageOptions {
        let chunk = self.buffer_mib.max(1) << 20;
        crate::source::image::ImageOptions {
            threads: self.threads.unwrap_or_else(default_threads).max(1),
            chunk,
            overlap,
            mmap,
            archives: self.archives.limits(chunk),
            git_budget: (!self.no_git_history).then_some(crate::source::image::GIT_BUDGET),
            shard: None,
        }
    }
}

fn parse_tag_filter(s: &str) -> Result<(String, String), String> {
    let rest = s
        .strip_prefix("tag:")
        .ok_or_else(|| format!("{s}: expected tag:KEY=VALUE"))?;
    let (k, v) = rest
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected tag:KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

fn parse_date(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::Date>()
        .map_err(|e| format!("{s}: {e}"))
        .and_then(|d| {
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
                .map_err(|e| format!("{s}: {e}"))
        })
}

#[derive(Args)]
struct AuditArgs {
    /// Accounts to audit [default: the operator's]; others are reached with --assume-role.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "organization"
    )]
    accounts: Vec<String>,
    /// Every active account of the organization (Organizations ListAccounts), reached with
    /// --assume-role.
    #[arg(long)]
    organization: bool,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    actions: ActionArgs,
    /// Seconds to wait for IAM to generate a credential report.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    report_wait: u64,
    /// Accounts split by a hash of their id; `keyhound merge` joins the parts' JSON action
    /// reports (`--report part-{shard}.json`).
    #[command(flatten)]
    shard: ShardArgs,
}

#[derive(Args)]
struct RemediateArgs {
    /// A JSON action report (`--report FILE.json` of scan or audit).
    plan: PathBuf,
    /// Make the changes (the default is a dry run that prints each call).
    #[arg(long)]
    apply: bool,
    /// Also delete keys whose action is DELETE or DEACTIVATE THEN DELETE.
    #[arg(long, requires = "apply")]
    delete: bool,
    /// Append every call and its result here (JSON lines).
    #[arg(long, value_name = "FILE", default_value = "keyhound-remediate.jsonl")]
    audit_log: PathBuf,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Args)]
struct OutputArgs {
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: Format,
    /// Write the report to FILE instead of standard output (`{shard}` in it: the shard's
    /// number, 1-based).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Show secrets in full (they are redacted otherwise).
    #[arg(long)]
    show_secrets: bool,
    /// Also report documentation examples and placeholders.
    #[arg(long)]
    include_examples: bool,
    /// No progress, no summary: only the findings.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Colour in text output.
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorWhen,
    #[command(flatten)]
    shard: ShardArgs,
}

/// Which part of a split scan (or audit) this run is.
#[derive(Args)]
struct ShardArgs {
    /// Only part K of N (1-based: 3/4); `keyhound merge` joins the N reports (JSON).
    #[arg(long, value_name = "K/N", value_parser = crate::shard::Shard::parse, help_heading = "Sharding")]
    shard: Option<crate::shard::Shard>,
    /// Scan only part I (0-based, as fan-out engines count: a GitHub matrix's job-index) of
    /// --shards N. Without either, JOB_COMPLETION_INDEX (Kubernetes) or
    /// AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch) with KEYHOUND_SHARDS.
    #[arg(
        long,
        value_name = "I",
        requires = "shards",
        conflicts_with = "shard",
        help_heading = "Sharding"
    )]
    shard_index: Option<u32>,
    /// How many parts, with --shard-index.
    #[arg(
        long,
        value_name = "N",
        requires = "shard_index",
        help_heading = "Sharding"
    )]
    shards: Option<u32>,
}

impl ShardArgs {
    /// The shard asked for on the command line or, without one, by the fan-out engine.
    fn resolve(self) -> Option<crate::shard::Shard> {
        match (self.shard, self.shard_index, self.shards) {
            (Some(s), _, _) => Some(Ok(s)),
            (None, Some(i), Some(n)) => Some(crate::shard::Shard::indexed(i, n)),
            _ => crate::shard::Shard::from_env(|k| std::env::var(k).ok()).transpose(),
        }
        .map(|r| {
            r.unwrap_or_else(|e| {
                eprintln!("keyhound: error: {e}");
                std::process::exit(EXIT_ERROR.into())
            })
        })
    }
}

/// Flags that change how a report looks or where it goes, not what it holds: left out of a
/// sharded plan's identity (with the shard flags themselves). The bool says the flag takes a
/// value.
const NOT_IN_PLAN: &[(&str, bool)] = &[
    ("--format", true),
    ("-f", true),
    ("--output", true),
    ("-o", true),
    ("--quiet", false),
    ("-q", false),
    ("--color", true),
    ("--show-secrets", false),
    ("--threads", true),
    ("-j", true),
    ("--shard", true),
    ("--shard-index", true),
    ("--shards", true),
    // Where other outputs go, and how fast: not what is found.
    ("--report", true),
    ("--clone-dir", true),
    ("--buffer-mib", true),
    ("--cache-mib", true),
    ("--no-mmap", false),
    ("--s3-concurrency", true),
    ("--ebs-concurrency", true),
    ("--ebs-requests-per-second", true),
    ("--verify-concurrency", true),
    ("--report-wait", true),
];

/// The command line as a plan's identity: what shards must share to be merged.
fn plan_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, _)) if n.starts_with('-') => (n.to_string(), true),
            _ => (a.clone(), false),
        };
        match NOT_IN_PLAN.iter().find(|(n, _)| *n == name) {
            Some((_, true)) if !inline => {
                args.next();
            }
            Some(_) => {}
            None => out.push(a),
        }
    }
    out
}

#[derive(Args)]
struct ScanArgs {
    /// Files or directories to scan.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Also scan the history of the git repositories found under the paths (a `.git`
    /// directory or file, a bare repository): every blob and commit message once across all.
    #[arg(long)]
    git_history: bool,
    /// Do not honour .gitignore, .ignore and git's exclude files.
    #[arg(long)]
    no_ignore: bool,
    /// Follow symbolic links.
    #[arg(long, short = 'L')]
    follow: bool,
    /// Worker threads [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
    /// Largest piece of a file held in memory; bigger files are read in overlapping windows.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    buffer_mib: usize,
    #[command(flatten)]
    archives: ArchiveArgs,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ArchiveArgs {
    /// Look into archives (zip, tar, gzip, bzip2, xz, zstd) nested this deep; 0 scans them as
    /// raw bytes.
    #[arg(long, value_name = "N", default_value_t = 8, help_heading = "Archives")]
    archive_depth: usize,
    /// Stop expanding one input past this many MiB (decompression bombs).
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 16384,
        help_heading = "Archives"
    )]
    archive_max_mib: u64,
    /// Stop expanding one input that grows more than this many times its size.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        help_heading = "Archives"
    )]
    archive_max_ratio: u64,
}

impl ArchiveArgs {
    fn limits(&self, chunk: usize) -> crate::source::archive::Limits {
        crate::source::archive::Limits {
            max_depth: self.archive_depth,
            max_bytes: self.archive_max_mib << 20,
            max_ratio: self.archive_max_ratio.max(1),
            chunk,
            ..Default::default()
        }
    }
}

#[derive(Args)]
struct GitArgs {
    /// The repository (a work tree, a bare repository or a linked worktree).
    #[arg(default_value = ".")]
    repo: PathBuf,
    /// Scan every object in the database, unreachable ones included (rebased-away commits,
    /// deleted branches still in packs, dangling blobs).
    #[arg(long, conflicts_with_all = ["branch", "range", "since_commit", "staged"])]
    all_objects: bool,
    /// Only the history of this branch (or any revision).
    #[arg(long, value_name = "REF")]
    branch: Option<String>,
    /// Only commits that are not reachable from this one.
    #[arg(long, value_name = "SHA")]
    since_commit: Option<String>,
    /// Only the commits that B has and A has not (a pull request: BASE..HEAD).
    #[arg(long, value_name = "A..B", conflicts_with = "branch")]
    range: Option<String>,
    /// Scan what is staged for the next commit instead of history.
    #[arg(long)]
    staged: bool,
    /// Many repositories as one scan: a file of paths or clone URLs, one a line (`#`
    /// comments), each with its size after it if known (`git@host:org/api 800m`). Each blob
    /// once across them; with --shard, whole repositories are split, balanced by size.
    #[arg(long, value_name = "FILE", conflicts_with = "staged")]
    repos: Option<PathBuf>,
    /// Where repositories given by URL are cloned (bare, with gix); an existing clone there is
    /// reused as it is.
    #[arg(long, value_name = "DIR", requires = "repos")]
    clone_dir: Option<PathBuf>,
    #[command(flatten)]
    archives: ArchiveArgs,
    /// Worker threads [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ImageArgs {
    /// Image files or block devices.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    disk: DiskArgs,
    /// Read raw image files with read() instead of mapping them: for a file that may shrink
    /// while it is scanned (a mapped file cut short kills the process with SIGBUS).
    #[arg(long)]
    no_mmap: bool,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ProtectArgs {
    /// The repository.
    #[arg(default_value = ".")]
    repo: PathBuf,
    #[command(flatten)]
    detect: DetectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct InstallHookArgs {
    /// The repository.
    #[arg(default_value = ".")]
    repo: PathBuf,
    /// Replace an existing pre-commit hook that keyhound did not write.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct RulesArgs {
    #[command(subcommand)]
    action: Option<RulesAction>,
    /// Add the rules in this directory or file. Repeatable.
    #[arg(long, value_name = "DIR", global = true)]
    rules: Vec<PathBuf>,
    /// Show only these rules or families (and turn on ones that are off by default).
    #[arg(long, value_name = "ID", value_delimiter = ',', global = true)]
    enable_rule: Vec<String>,
    /// Leave out these rules or families.
    #[arg(long, value_name = "ID", value_delimiter = ',', global = true)]
    disable_rule: Vec<String>,
    /// Only rules at least this sure.
    #[arg(long, value_name = "LEVEL", global = true)]
    min_confidence: Option<crate::detect::Confidence>,
}

#[derive(Subcommand)]
enum RulesAction {
    /// List every rule (the default).
    List,
    /// Run every rule's positive and negative examples.
    Check,
}

impl DetectArgs {
    /// The operator's access (--profile, --assume-role), for commands that read AWS.
    #[cfg(feature = "aws")]
    fn access_plan(&self) -> crate::aws::iam::Access {
        crate::aws::iam::Access {
            profile: self.access.profile.clone(),
            assume_role: self.access.assume_role.clone(),
        }
    }

    fn plan(self) -> DetectPlan {
        let options = self.verify.then(|| crate::aws::verify::VerifyOptions {
            concurrency: self.verify_concurrency.max(1),
            canaries: self.verify_canaries,
            accounts: self.verify_accounts,
            timeout: std::time::Duration::from_secs(self.verify_timeout.max(1)),
            recheck_delay: std::time::Duration::from_millis(self.verify_recheck_ms),
            initial_backoff: std::time::Duration::from_millis(self.verify_backoff_ms),
            ..Default::default()
        });
        DetectPlan {
            verify: crate::pipeline::VerifyPlan {
                options,
                only_verified: self.only_verified,
            },
            rules: self.rules,
            selection: crate::detect::Selection {
                enable: self
                    .enable_rule
                    .into_iter()
                    .chain(self.generic.then(|| "generic".to_string()))
                    .collect(),
                disable: self.disable_rule,
                min_confidence: self.min_confidence,
                all: false,
            },
            config: self.config,
            baseline: self.baseline,
            ignore_files: self.ignore_file,
            pair_lines: self.pair_window_lines,
            pair_bytes: self.pair_window_bytes,
            actions: self.actions.plan(self.owners, self.access.plan()),
        }
    }
}

impl OutputArgs {
    fn plan(self) -> OutputPlan {
        let shard = self.shard.resolve();
        let file = self.output.map(|f| crate::shard::fill(&f, shard));
        OutputPlan {
            shard,
            args: plan_args(),
            format: self.format,
            file,
            show_secrets: self.show_secrets,
            include_examples: self.include_examples,
            quiet: self.quiet,
            color: match self.color {
                ColorWhen::Auto => None,
                ColorWhen::Always => Some(true),
                ColorWhen::Never => Some(false),
            },
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The flags that call AWS in every command that has them.
#[cfg(not(feature = "aws"))]
const AWS_FLAGS: [&str; 3] = ["--verify", "--owners", "--notify-sns"];

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A build without the `aws` feature refuses AWS flags before any scanning (the commands
    // that are AWS through and through say so when they run).
    #[cfg(not(feature = "aws"))]
    if let Some(flag) = std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .find(|a| {
            AWS_FLAGS
                .iter()
                .any(|f| a == f || a.strip_prefix(f).is_some_and(|r| r.starts_with('=')))
        })
    {
        eprintln!("keyhound: error: {:#}", crate::aws::unavailable(&flag));
        return ExitCode::from(EXIT_ERROR);
    }
    let result = match cli.command {
        Command::Scan(a) => {
            let output = a.output.plan();
            command::scan::run(ScanPlan {
                roots: a.paths,
                walk: WalkOptions {
                    no_ignore: a.no_ignore,
                    follow_links: a.follow,
                    threads: a.threads.unwrap_or_else(default_threads).max(1),
                    chunk: a.buffer_mib.max(1) << 20,
                    overlap: 64 << 10,
                    archives: a.archives.limits(a.buffer_mib.max(1) << 20),
                    find_repos: false,
                    shard: output.shard,
                    git: None,
                },
                history: a.git_history.then(|| HistoryOptions {
                    threads: a.threads.unwrap_or_else(default_threads).max(1),
                    shard: output.shard,
                    ..Default::default()
                }),
                detect: a.detect.plan(),
                output,
            })
        }
        Command::Git(a) => {
            let output = a.output.plan();
            command::git::run(GitPlan {
                repo: a.repo,
                history: HistoryOptions {
                    all_objects: a.all_objects,
                    branch: a.branch,
                    since_commit: a.since_commit,
                    range: a.range,
                    threads: a.threads.unwrap_or_else(default_threads).max(1),
                    shard: output.shard,
                    ..Default::default()
                },
                staged: a.staged,
                repos: a.repos,
                clone_dir: a.clone_dir,
                archives: a.archives.limits(16 << 20),
                detect: a.detect.plan(),
                output,
            })
        }
        Command::Protect(a) => command::git::run(GitPlan {
            repo: a.repo,
            history: HistoryOptions::default(),
            staged: true,
            repos: None,
            clone_dir: None,
            archives: crate::source::archive::Limits::default(),
            detect: a.detect.plan(),
            output: a.output.plan(),
        }),
        Command::Image(a) => {
            let output = a.output.plan();
            let mut options = a.disk.options(64 << 10, !a.no_mmap);
            options.shard = output.shard;
            command::image::run(ImagePlan {
                images: a.images,
                options,
                detect: a.detect.plan(),
                output,
            })
        }
        #[cfg(not(feature = "aws"))]
        Command::Snapshot(_) => Err(crate::aws::unavailable(
            "keyhound snapshot's EBS and EC2 calls",
        )),
        #[cfg(not(feature = "aws"))]
        Command::S3(_) => Err(crate::aws::unavailable("keyhound s3's S3 calls")),
        #[cfg(feature = "aws")]
        Command::Snapshot(a) => {
            let access = a.detect.access_plan();
            command::snapshot::run(command::snapshot::SnapshotPlan {
                query: crate::source::snapshot::Query {
                    ids: a.ids,
                    all: a.all,
                    every_snapshot: a.every_snapshot,
                    tags: a.filter,
                    created_after: a.created_after,
                },
                regions: a.regions,
                accounts: a.accounts,
                organization: a.organization,
                access,
                list: a.list,
                plan_only: a.plan,
                max_gib: a.max_gib,
                get_rate: a.ebs_requests_per_second.max(1),
                remote: crate::source::block::remote::Options {
                    concurrency: a.ebs_concurrency.max(1),
                    cache_bytes: a.cache_mib << 20,
                },
                // A remote disk's raw pass keeps the edges of runs whose neighbours have not
                // arrived (4 × overlap each): a smaller context than a local image's 64 KiB
                // bounds that, and is still more than the detector's longest match.
                options: a.disk.options(16 << 10, false),
                detect: a.detect.plan(),
                output: a.output.plan(),
            })
        }
        #[cfg(feature = "aws")]
        Command::S3(a) => {
            let access = a.detect.access_plan();
            command::s3::run(command::s3::S3Plan {
                locations: a.locations,
                all_buckets: a.all_buckets,
                accounts: a.accounts,
                organization: a.organization,
                access,
                include: a.include,
                exclude: a.exclude,
                versions: a.versions,
                max_object_bytes: a.max_object_mib.map(|m| m << 20),
                requester_pays: a.request_payer,
                concurrency: a.s3_concurrency.max(1),
                plan_only: a.plan,
                max_gib: a.max_gib,
                remote: crate::source::block::remote::Options {
                    concurrency: 16,
                    cache_bytes: a.cache_mib << 20,
                },
                // As for snapshots: a remote disk's raw pass holds edges of 4 × overlap.
                options: a.disk.options(16 << 10, false),
                detect: a.detect.plan(),
                output: a.output.plan(),
            })
        }
        Command::Merge(a) => command::merge::run(command::merge::MergePlan {
            inputs: a.reports,
            detect: a.detect.plan(),
            output: a.output.plan(),
        }),
        Command::Audit(a) => command::audit::run(
            a.accounts,
            a.organization,
            a.actions.plan(true, a.access.plan()),
            std::time::Duration::from_secs(a.report_wait),
            crate::report::PlanId {
                args: plan_args(),
                rules: String::new(),
                shard: a.shard.resolve(),
            },
        ),
        Command::Remediate(a) => command::remediate::run(
            &a.plan,
            a.access.plan(),
            crate::aws::remediate::Options {
                apply: a.apply,
                delete: a.delete,
            },
            &a.audit_log,
        ),
        Command::InstallHook(a) => command::hook::run(&a.repo, a.force),
        Command::Rules(a) => command::rules::run(
            &a.rules,
            &crate::detect::Selection {
                enable: a.enable_rule,
                disable: a.disable_rule,
                min_confidence: a.min_confidence,
                all: false,
            },
            matches!(a.action, Some(RulesAction::Check)),
        ),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("keyhound: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
