//! `keyhound s3`: backups where they live. Buckets and prefixes (or every bucket of the
//! accounts) listed, each object read without a temporary file and scanned as a local file
//! would be: archives expanded with their chains, disk images walked like `keyhound image`
//! through ranged GETs, old versions with `--versions`.
//!
//! Discovery (`source::s3`) → what reading costs (`--plan`, `--max-gib`) → the objects read by
//! `--s3-concurrency` workers → the shared stages (`pipeline::finish`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{Cursor, Read};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::aws::iam::{Access, Session};
use crate::blob::{Blob, Origin};
use crate::command::git::copied_histories;
use crate::command::image::disk_findings;
use crate::command::snapshot::{account_config, accounts, cost_gate, ReadCost};
use crate::detect::Engine;
use crate::finding::Finding;
use crate::pipeline::{collect, finish, progress, DetectPlan, Detector, OutputPlan};
use crate::source::archive::{self, Expander};
use crate::source::block::{remote, s3 as s3block, Disk, Format as DiskFormat, Memory, Slice};
use crate::source::git::HistoryOptions;
use crate::source::gitcopy::GitCollector;
use crate::source::image::ImageOptions;
use crate::source::s3::{self, KeyFilter, ListQuery, Location, ObjectInfo, Stream, Target};
use crate::source::window::{stream, Counted};
use crate::source::{Skip, Stats};

/// List prices of S3 Standard requests (US East), per 1,000.
pub const GET_PRICE: f64 = 0.0004;
pub const LIST_PRICE: f64 = 0.005;
/// Data transfer out of AWS to the internet, per GiB (first 10 TiB a month): what reading
/// costs when keyhound does not run in the bucket's region.
pub const TRANSFER_OUT_PRICE: f64 = 0.09;

/// Bytes of an object's start looked at to tell what it is (a disk image, an archive).
const HEAD: usize = 64 << 10;
/// Objects up to this size are read whole into memory (archives inside opened there); bigger
/// ones stream through windows of this size, so that memory stays `concurrency` × this.
const OBJECT_WINDOW: usize = 4 << 20;

pub struct S3Plan {
    pub locations: Vec<Location>,
    pub all_buckets: bool,
    pub accounts: Vec<String>,
    pub organization: bool,
    pub access: Access,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub versions: bool,
    /// Objects over this many bytes are not read (disk images are).
    pub max_object_bytes: Option<u64>,
    pub requester_pays: bool,
    /// Objects read at once.
    pub concurrency: usize,
    pub plan_only: bool,
    pub max_gib: Option<f64>,
    /// For disk images and big zips read by ranges.
    pub remote: remote::Options,
    pub options: ImageOptions,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// What reading the objects costs.
#[derive(Debug, Default, Serialize)]
pub struct Cost {
    pub buckets: usize,
    pub objects: u64,
    pub bytes: u64,
    /// GETs: one per object, two for one over 4 MiB (a disk image or a big zip: one a MiB).
    pub get_calls: u64,
    /// List calls made to find the objects (already made).
    pub list_calls: u64,
    /// US dollars at list price for the requests.
    pub usd: f64,
    /// US dollars at list price for the bytes, when read from outside AWS.
    pub transfer_usd: f64,
    /// Objects left out, by why: storage class, size, globs, noncurrent versions.
    pub skipped: BTreeMap<String, u64>,
    pub noncurrent_bytes_left: u64,
}

impl ReadCost for Cost {
    fn gib(&self) -> f64 {
        self.bytes as f64 / (1u64 << 30) as f64
    }

    fn line(&self) -> String {
        let mut s = format!(
            "{} object{} in {} bucket{}, {:.2} GiB to read: about {} GET and {} LIST \
             requests, ${:.4} at list price (and ${:.2} of transfer if read from outside AWS)",
            self.objects,
            if self.objects == 1 { "" } else { "s" },
            self.buckets,
            if self.buckets == 1 { "" } else { "s" },
            self.gib(),
            self.get_calls,
            self.list_calls,
            self.usd,
            self.transfer_usd,
        );
        if !self.skipped.is_empty() {
            let v: Vec<String> = self
                .skipped
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            s.push_str(&format!("; not read: {}", v.join(", ")));
        }
        s
    }
}

/// One bucket to list, where, as whom.
struct Bucket {
    account: String,
    region: String,
    name: String,
    prefix: String,
    conf: aws_config::SdkConfig,
}

/// One object to read, and the client of its bucket's region.
struct Job {
    info: Arc<ObjectInfo>,
    client: aws_sdk_s3::Client,
}

pub fn run(plan: S3Plan) -> Result<u8> {
    let start = Instant::now();
    let filter = KeyFilter::new(&plan.include, &plan.exclude).map_err(anyhow::Error::msg)?;
    let session = Session::open(plan.access.clone())?;
    let accounts = accounts(&session, plan.organization, &plan.accounts)?;
    if !plan.locations.is_empty() && accounts.len() > 1 {
        bail!(
            "s3:// locations are read as one account: name at most one with --accounts, or \
             use --all-buckets to read every bucket of several"
        );
    }
    let mut errors: Vec<String> = Vec::new();
    let buckets = buckets(&session, &plan, &accounts, &mut errors);
    // Every object to read.
    let mut clients: HashMap<(String, String), aws_sdk_s3::Client> = HashMap::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut cost = Cost {
        buckets: buckets.len(),
        ..Default::default()
    };
    let shard = plan.output.shard;
    let mut skipped: BTreeMap<Skip, u64> = BTreeMap::new();
    let mut archived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut notes: Vec<String> = Vec::new();
    for b in &buckets {
        let client = clients
            .entry((b.account.clone(), b.region.clone()))
            .or_insert_with(|| s3block::client(&b.conf, &b.region))
            .clone();
        let q = ListQuery {
            prefix: &b.prefix,
            versions: plan.versions,
            filter: &filter,
            requester_pays: plan.requester_pays,
            // A shard lists every object and reads (and counts) its share.
            shard,
        };
        let listing = match session
            .rt
            .block_on(s3::list(&client, &b.account, &b.region, &b.name, &q))
        {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        cost.list_calls += listing.list_calls;
        *skipped.entry(Skip::Excluded).or_default() += listing.excluded;
        *skipped.entry(Skip::Noncurrent).or_default() += listing.noncurrent_left;
        cost.noncurrent_bytes_left += listing.noncurrent_bytes_left;
        notes.extend(listing.note);
        for o in listing.objects {
            if s3::archived(&o.storage_class) {
                archived
                    .entry(o.storage_class.clone())
                    .or_default()
                    .push(o.place());
                continue;
            }
            if plan.max_object_bytes.is_some_and(|m| o.size > m) {
                // Read only if it is a disk image: a probe of its first bytes.
                cost.get_calls += 1;
            } else {
                cost.objects += 1;
                cost.bytes += o.size;
                // A big object: its first bytes by range, then the rest (a disk image or a
                // big zip: one GET a MiB instead).
                cost.get_calls += if o.size > OBJECT_WINDOW as u64 { 2 } else { 1 };
            }
            jobs.push(Job {
                info: Arc::new(o),
                client: client.clone(),
            });
        }
    }
    for (class, places) in &archived {
        cost.skipped.insert(class.clone(), places.len() as u64);
    }
    for (k, n) in &skipped {
        if *n > 0 {
            cost.skipped.insert(k.as_str().to_string(), *n);
        }
    }
    cost.usd =
        cost.get_calls as f64 * GET_PRICE / 1000.0 + cost.list_calls as f64 * LIST_PRICE / 1000.0;
    cost.transfer_usd = cost.gib() * TRANSFER_OUT_PRICE;
    for n in &notes {
        eprintln!("keyhound: warning: {n}");
    }
    if let Some(code) = cost_gate(&cost, plan.plan_only, plan.max_gib, &plan.output, &errors)? {
        return Ok(code);
    }
    let det = Detector::new(&plan.detect, &[])?;
    let stats = Arc::new(Stats::default());
    // Every shard finds and lists every bucket and meets the same errors doing it: the first
    // names them in its report, so the parts count them once, as the single run does.
    if shard.is_some_and(|s| s.index != 0) {
        errors.clear();
    }
    for e in errors {
        stats.skip(Skip::Unreadable, Some(e));
    }
    for (k, n) in skipped {
        stats.skip_n(k, n);
    }
    for (class, places) in &archived {
        const NAMED: usize = 5;
        let more = match places.len().saturating_sub(NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let msg = format!(
            "{} object{} in {class} not read (restore them to scan them): {}{more}",
            places.len(),
            if places.len() == 1 { "" } else { "s" },
            places[..places.len().min(NAMED)].join(", ")
        );
        stats.skip(Skip::Archived, Some(msg));
        stats.skip_n(Skip::Archived, places.len() as u64 - 1);
    }
    let mut options = plan.options;
    options.overlap = options.overlap.max(det.engine.max_span);
    let o = &stats.objects;
    o.total.store(jobs.len() as u64, Ordering::Relaxed);
    o.bytes_total.store(cost.bytes, Ordering::Relaxed);
    let progress = progress(&stats, &plan.output);
    // Big objects first, so that the last one read is not the longest.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.info.size));
    let roots: Vec<String> = buckets
        .iter()
        .map(|b| format!("s3://{}/{}", b.name, b.prefix))
        .collect();
    let reader = Reader {
        rt: session.rt.handle().clone(),
        engine: &det.engine,
        options: &options,
        remote: plan.remote,
        max_object: plan.max_object_bytes,
        requester_pays: plan.requester_pays,
        quiet: plan.output.quiet,
        stats: &stats,
        images: Mutex::new(()),
        found: Mutex::new(Vec::new()),
        git: options.git_budget.and_then(|b| match GitCollector::new(b) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("keyhound: warning: no temporary directory for git histories: {e}");
                None
            }
        }),
    };
    let queue = Mutex::new(VecDeque::from(jobs));
    std::thread::scope(|s| {
        for _ in 0..plan.concurrency.max(1) {
            s.spawn(|| loop {
                let job = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(job) = job else { break };
                reader.object(&job);
                stats.objects.done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let mut found = reader.found.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = &reader.git {
        // The repositories inside archives (a home directory's tarball), each read whole.
        let history = HistoryOptions {
            threads: options.threads,
            ..Default::default()
        };
        let (limits, mut seen) = (options.archives, HashSet::new());
        found.extend(copied_histories(
            &det.engine,
            g,
            &history,
            limits,
            &stats,
            &mut seen,
        ));
    }
    progress.finish();
    finish(&det, found, &stats, start, "s3", roots, &plan.output)
}

/// The buckets to list: those named, or every bucket of each account, each with its region.
fn buckets(
    session: &Session,
    plan: &S3Plan,
    accounts: &[String],
    errors: &mut Vec<String>,
) -> Vec<Bucket> {
    let mut out = Vec::new();
    for account in accounts {
        let Some(conf) = account_config(session, account, errors) else {
            continue;
        };
        let home = conf
            .region()
            .map_or("us-east-1".to_string(), |r| r.to_string());
        let client = s3block::client(&conf, &home);
        let mut named: Vec<(String, String, Option<String>)> = plan
            .locations
            .iter()
            .map(|l| (l.bucket.clone(), l.prefix.clone(), None))
            .collect();
        if plan.all_buckets {
            match session.rt.block_on(s3::buckets(&client)) {
                Ok(b) => named.extend(b.into_iter().map(|(n, r)| (n, String::new(), r))),
                Err(e) => {
                    errors.push(format!("account {account}: {e}"));
                    continue;
                }
            }
        }
        let mut regions: HashMap<String, String> = HashMap::new();
        for (name, prefix, region) in named {
            let region = match region.or_else(|| regions.get(&name).cloned()) {
                Some(r) => r,
                None => match session.rt.block_on(s3::bucket_region(&client, &name)) {
                    Ok(r) => r,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
            };
            regions.insert(name.clone(), region.clone());
            out.push(Bucket {
                account: account.clone(),
                region,
                name,
                prefix,
                conf: conf.clone(),
            });
        }
    }
    out
}

/// What every worker shares.
struct Reader<'a> {
    rt: tokio::runtime::Handle,
    engine: &'a Engine,
    options: &'a ImageOptions,
    remote: remote::Options,
    max_object: Option<u64>,
    requester_pays: bool,
    quiet: bool,
    stats: &'a Stats,
    /// Disk images are read one at a time: each uses every thread and its own cache.
    images: Mutex<()>,
    found: Mutex<Vec<Finding>>,
    /// Where the files of git repositories inside archives are copied, for their history.
    git: Option<GitCollector>,
}

impl Reader<'_> {
    fn target(&self, o: &ObjectInfo) -> Target {
        Target {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            version_id: o.version_id.clone(),
            etag: o.etag.clone(),
            requester_pays: self.requester_pays,
        }
    }

    fn fail(&self, o: &ObjectInfo, why: impl std::fmt::Display) {
        self.stats
            .skip(Skip::Unreadable, Some(format!("{}: {why}", o.place())));
    }

    fn object(&self, job: &Job) {
        let o = &*job.info;
        let origin = Arc::new(Origin {
            object: Some(job.info.clone()),
            ..Origin::file(o.place())
        });
        let target = self.target(o);
        let mut handle = |b: Blob| collect(self.engine, &b, &self.found);
        let archives = self.options.archives;
        if o.size <= OBJECT_WINDOW as u64 && self.max_object.is_none_or(|m| o.size <= m) {
            // Small: one GET, read whole; a small disk image is scanned from memory.
            let mut s = match Stream::open(&self.rt, &job.client, &target, 0) {
                Ok(s) => s,
                Err(e) => return self.fail(o, e.message),
            };
            let mut data = Vec::with_capacity(o.size as usize);
            let res = s.read_to_end(&mut data);
            self.read(data.len() as u64);
            if let Err(e) = res {
                self.fail(o, e);
            }
            if data.len() >= HEAD && s3::disk_like(&data) {
                let memory = Disk::new(o.place(), DiskFormat::Raw, Box::new(Memory(data.into())));
                return self.image(job, Arc::new(memory), &origin, None);
            }
            if let Some(kind) = archive::sniff(&data).filter(|_| archives.max_depth > 0) {
                let mut ex =
                    Expander::new(archives, self.stats, o.size, &mut handle).git(self.git.as_ref());
                if ex.bytes(&data, kind, &origin) {
                    return;
                }
            }
            return handle(Blob::whole(&data, origin));
        }
        // Big: its first bytes by range say what it is (a disk image is read by ranges, and
        // so is its rest, when over --max-object-mib, only if it is one).
        let probe = s3block::range(&job.client, &target, 0, HEAD.min(o.size as usize) as u64);
        let head = match self.rt.block_on(probe) {
            Ok(h) => h.to_vec(),
            Err(e) => return self.fail(o, e.message),
        };
        if s3::disk_like(&head) {
            let (outer, fetch) = self.ranged(job, &target);
            return self.image(job, outer, &origin, Some(&fetch));
        }
        if self.max_object.is_some_and(|m| o.size > m) {
            return self.stats.skip(Skip::TooLarge, None);
        }
        let kind = archive::sniff(&head).filter(|_| archives.max_depth > 0);
        if kind == Some(archive::Kind::Zip) {
            // A zip's directory is at its end: read where it lies, by ranges.
            let (outer, fetch) = self.ranged(job, &target);
            let mut ex =
                Expander::new(archives, self.stats, o.size, &mut handle).git(self.git.as_ref());
            let ok = ex.seekable(Slice::new(outer, 0, o.size), &origin);
            self.read(fetch.bytes.load(Ordering::Relaxed));
            if ok {
                return;
            }
        } else {
            // The rest streamed, after the bytes already had.
            let s = match Stream::open(&self.rt, &job.client, &target, head.len() as u64) {
                Ok(s) => s,
                Err(e) => return self.fail(o, e.message),
            };
            let mut r = Counted::new(Cursor::new(head).chain(s));
            match kind {
                Some(kind) => {
                    let mut ex = Expander::new(archives, self.stats, o.size, &mut handle)
                        .git(self.git.as_ref());
                    let ok = ex.reader(&mut r, kind, &origin);
                    self.read(r.n);
                    if ok {
                        return;
                    }
                }
                None => {
                    let mut buf = Vec::new();
                    let (chunk, overlap) = (OBJECT_WINDOW, self.options.overlap);
                    let res = stream(&mut r, &origin, chunk, overlap, &mut buf, &mut handle);
                    self.read(r.n);
                    if let Err(e) = res {
                        self.fail(o, e);
                    }
                    return;
                }
            }
        }
        // An archive that would not open from its first bytes: its raw bytes, read again.
        let s = match Stream::open(&self.rt, &job.client, &target, 0) {
            Ok(s) => s,
            Err(e) => return self.fail(o, e.message),
        };
        let mut buf = Vec::new();
        let (chunk, overlap) = (OBJECT_WINDOW, self.options.overlap);
        if let Err(e) = stream(&mut { s }, &origin, chunk, overlap, &mut buf, &mut handle) {
            self.fail(o, e);
        }
    }

    /// Counts bytes read (for the summary and the progress line).
    fn read(&self, n: u64) {
        self.stats.read(n);
        self.stats.objects.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The object as a disk of ranged reads (a bounded cache, each block fetched once), and
    /// its fetcher (which counts the requests).
    fn ranged(&self, job: &Job, target: &Target) -> (Arc<Disk>, Arc<s3block::Object>) {
        let o = &job.info;
        let fetch = Arc::new(s3block::Object::new(
            job.client.clone(),
            target.clone(),
            o.size,
            s3block::BLOCK,
        ));
        let r = remote::Remote::new(fetch.clone(), self.rt.clone(), self.remote);
        let disk = Arc::new(Disk::new(o.place(), DiskFormat::Raw, Box::new(r)));
        (disk, fetch)
    }

    /// A disk image in S3 (`outer`: its bytes, by ranged reads or in memory), scanned as
    /// `keyhound image` scans a file.
    fn image(
        &self,
        job: &Job,
        outer: Arc<Disk>,
        origin: &Arc<Origin>,
        fetch: Option<&s3block::Object>,
    ) {
        let o = &*job.info;
        let _one = self.images.lock().unwrap_or_else(|e| e.into_inner());
        let disk = match Disk::open_in(o.place(), outer) {
            Ok(d) => Arc::new(d),
            Err(e) => return self.fail(o, format!("a disk image that will not open: {e}")),
        };
        let found = disk_findings(self.engine, &disk, origin, self.options, self.stats);
        self.found.lock().unwrap().extend(found);
        if fetch.is_some() {
            // (A small image read whole was counted as it was read.)
            self.stats
                .objects
                .bytes
                .fetch_add(o.size, Ordering::Relaxed);
        }
        if let (Some(f), false) = (fetch, self.quiet) {
            eprintln!(
                "keyhound: {}: a {} disk image of {:.1} MiB, read by {} ranged GETs ({:.1} MiB \
                 of the object's {:.1} MiB)",
                o.place(),
                disk.format.name(),
                disk.len() as f64 / (1 << 20) as f64,
                f.requests.load(Ordering::Relaxed),
                f.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                o.size as f64 / (1 << 20) as f64,
            );
        }
    }
}
