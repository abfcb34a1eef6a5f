//! Disk images and block devices: the raw pass. Every byte of the image is streamed through
//! overlapping windows, so keys outside any live file — deleted files, free space, swap,
//! journals — are found and reported with their byte offset. What the disk knows holds no data
//! is skipped (`Disk::data`: holes of sparse files, unallocated VMDK grains and qcow2 clusters). The disk is cut
//! into units of `UNIT` bytes that the threads take in turn as they become free (so a thread
//! with easy bytes does not sit idle while another finishes a hard half), each unit read a
//! little past its ends so that no key across a boundary is lost or reported twice. A read
//! error is named once and the scan goes on from the next MiB.
//!
//! `scan` runs the raw pass beside the walk of each volume's files (`partition`, `fs`); the
//! command places each raw finding in its partition afterwards.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Mmap, UncheckedAdvice};

use super::archive::Limits;
use super::block::arena::Arenas;
use super::block::remote::{Fetched, Remote};
use super::block::{Disk, Format as DiskFormat, Slice};
use super::fs::{walk_files, FsKind, WalkOptions, QUEUE_BYTES};
use super::gitcopy::GitCollector;
use super::partition::{lvm, volumes, Part};
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

pub struct ImageOptions {
    pub threads: usize,
    pub chunk: usize,
    pub overlap: usize,
    /// Scan raw image files from a map of the page cache instead of reading them (`Disk::map`).
    pub mmap: bool,
    /// Archives among the files of the disk's filesystems.
    pub archives: Limits,
    /// Copy the git repositories met in the filesystems for their history (`GitCollector`),
    /// at most this many bytes; `None`: `--no-git-history`.
    pub git_budget: Option<u64>,
    /// Only this shard's part of a local disk: the raw pass's units (dealt in turn) and the files
    /// (by path); git histories by object id. (A remote disk is one shard's whole.)
    pub shard: Option<crate::shard::Shard>,
}

/// Bytes of git repositories copied out of one disk for their history, at most.
pub const GIT_BUDGET: u64 = 4 << 30;

/// Scans a whole disk: the raw pass over every byte that may hold data and, at the same time,
/// the files of each volume's filesystem with their paths (`base › p1 (ext4) › /etc/app.env`).
/// Raw-pass blobs (origin `base`, raw, offsets from the disk's start) go to handlers from `raw`,
/// the files' to handlers from `files`. Returns the volumes, for placing raw findings.
pub fn scan<R, F>(
    disk: &Arc<Disk>,
    base: &Origin,
    opts: &ImageOptions,
    git: Option<Arc<GitCollector>>,
    stats: &Stats,
    raw: &(dyn Fn() -> R + Sync),
    files: &(dyn Fn() -> F + Sync),
) -> Vec<Part>
where
    R: FnMut(Blob) + Send,
    F: FnMut(Blob) + Send,
{
    let raw_origin = Arc::new(Origin {
        raw: true,
        ..base.clone()
    });
    if let Some(remote) = disk.remote() {
        return scan_remote(
            disk,
            remote,
            &raw_origin,
            base,
            opts,
            git,
            stats,
            raw,
            files,
        );
    }
    let parts = volumes(disk);
    let walk = walk_options(opts, git);
    // The raw pass and the walk of the filesystems' files (with their paths) run at once;
    // the walk reads files on one thread and scans them on others (`walk_files`). A 2 GiB
    // ext4 volume of /usr/share on two cores: 1.85 s one after the other, 1.30 s at once
    // with the walk scanning on its own thread, 0.84–0.93 s with its files scanned on
    // other threads.
    std::thread::scope(|s| {
        s.spawn(|| raw_pass(disk, &raw_origin, opts, stats, raw));
        walk_volumes(disk, base, &parts, &walk, stats, files);
    });
    parts
}

/// Walks the files of every volume: the partitions' filesystems, then the logical volumes of
/// the LVM2 physical volumes among them (`base › p2 (lvm) › vg0/root (xfs) › /etc/app.env`).
/// Thin, RAID and snapshot volumes, and metadata that cannot be read, are named; the raw pass
/// covers their bytes in the PV's partition.
fn walk_volumes<F>(
    disk: &Arc<Disk>,
    base: &Origin,
    parts: &[Part],
    walk: &WalkOptions,
    stats: &Stats,
    files: &(dyn Fn() -> F + Sync),
) where
    F: FnMut(Blob) + Send,
{
    let mut pvs = Vec::new();
    for part in parts {
        if part.fs == Some(FsKind::Lvm) {
            pvs.push((lvm::read_pv(disk, part.start, part.len), part));
        } else {
            walk_files(disk, base, part, walk, stats, files);
        }
    }
    if pvs.is_empty() {
        return;
    }
    let found = lvm::logical_volumes(disk, &pvs);
    // Each LV's places are under its first PV's partition.
    let mut lv_base = base.clone();
    lv_base.inner.push(pvs[0].1.label());
    // Every shard reads the same metadata: the first names what it cannot map.
    for why in found.skipped {
        if walk.shard.is_none_or(|s| s.index == 0) {
            stats.skip(Skip::Filesystem, Some(format!("{base} › {why}")));
        }
    }
    for (name, lv) in found.lvs {
        let lv_disk = Arc::new(Disk::new(
            format!("{} › {name}", disk.name),
            DiskFormat::Lvm,
            Box::new(lv),
        ));
        let part = Part {
            name,
            start: 0,
            len: lv_disk.len(),
            fs: crate::source::fs::sniff(&lv_disk, 0),
            expect_fs: true,
            missing: 0,
        };
        walk_files(&lv_disk, &lv_base, &part, walk, stats, files);
    }
}

fn walk_options(opts: &ImageOptions, git: Option<Arc<GitCollector>>) -> WalkOptions {
    WalkOptions {
        chunk: opts.chunk,
        overlap: opts.overlap,
        archives: opts.archives,
        threads: opts.threads,
        queue_bytes: QUEUE_BYTES,
        git,
        shard: opts.shard,
    }
}

/// `scan` of a remote disk: the walk first, every block it fetches handed to the raw pass as
/// it arrives, then the sweep of the blocks nobody read (`remote.rs`), so each is fetched once.
/// The partition tables are read once the raw pass is there to take what they fetch: a block
/// fetched before is not fetched again, so it would never reach the raw pass.
#[allow(clippy::too_many_arguments)]
fn scan_remote<R, F>(
    disk: &Arc<Disk>,
    remote: &Remote,
    raw_origin: &Arc<Origin>,
    base: &Origin,
    opts: &ImageOptions,
    git: Option<Arc<GitCollector>>,
    stats: &Stats,
    raw: &(dyn Fn() -> R + Sync),
    files: &(dyn Fn() -> F + Sync),
) -> Vec<Part>
where
    R: FnMut(Blob) + Send,
    F: FnMut(Blob) + Send,
{
    let walk = walk_options(opts, git);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Fetched>(64);
    let rx = std::sync::Mutex::new(rx);
    let asm = std::sync::Mutex::new(
        Assembler::new(remote.ranges().to_vec(), opts.overlap as u64).in_arenas(remote.arenas()),
    );
    let len = disk.len();
    let take = |(off, data): Fetched, handle: &mut R| {
        let n = (data.len() as u64).min(len.saturating_sub(off));
        stats.bytes.fetch_add(n, Ordering::Relaxed);
        let jobs = asm.lock().unwrap_or_else(|e| e.into_inner()).add(off, data);
        for job in jobs {
            raw_job(job, raw_origin, opts, handle);
        }
    };
    // What was fetched before (the disk's format read) is the raw pass's too.
    let early = remote.set_tap(Some(tx));
    let parts = std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                let mut handle = raw();
                loop {
                    // The lock is held only while waiting for the next block, never while
                    // scanning.
                    let got = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(block) = got else { break };
                    take(block, &mut handle);
                }
            });
        }
        let mut handle = raw();
        for block in early {
            take(block, &mut handle);
        }
        drop(handle);
        let parts = volumes(disk);
        walk_volumes(disk, base, &parts, &walk, stats, files);
        remote.sweep();
        // Dropping the sender ends the raw threads once they have taken every block.
        remote.set_tap(None);
        parts
    });
    let mut handle = raw();
    let rest = asm.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
    for job in rest {
        raw_job(job, raw_origin, opts, &mut handle);
    }
    report_failures(disk, remote, stats);
    stats.files.fetch_add(1, Ordering::Relaxed);
    parts
}

/// Names what a remote disk could not give: the reason no block could be had, or the blocks
/// that failed (the first `NAMED`, then how many more), each counted.
fn report_failures(disk: &Disk, remote: &Remote, stats: &Stats) {
    const NAMED: usize = 10;
    if let Some((why, unread)) = remote.broken() {
        let msg = format!("{}: {why}: {unread} written blocks not read", disk.name);
        stats.skip(Skip::Unreadable, Some(msg));
        return;
    }
    let failed = remote.failed();
    for (k, (i, e)) in failed.iter().enumerate() {
        let more = match failed.len().saturating_sub(NAMED) {
            n if k + 1 == NAMED && n > 0 => format!(" (and {n} more blocks failed)"),
            _ => String::new(),
        };
        let msg = (k < NAMED).then(|| format!("{}: block {i}: {e}{more}", disk.name));
        stats.skip(Skip::Unreadable, msg);
    }
}

/// Scans one assembled stretch of a remote disk, owning only what the job owns.
fn raw_job<F: FnMut(Blob)>(job: RawJob, origin: &Arc<Origin>, opts: &ImageOptions, handle: &mut F) {
    let (lo, hi) = job.own;
    super::window::windows(
        &job.data,
        origin,
        job.offset,
        opts.chunk,
        opts.overlap,
        &mut |mut b: Blob| {
            let own_lo = lo.saturating_sub(b.offset) as usize;
            let own_hi = hi.saturating_sub(b.offset).min(b.data.len() as u64) as usize;
            b.own = b.own.start.max(own_lo)..b.own.end.min(own_hi);
            if !b.own.is_empty() {
                handle(b);
            }
        },
    );
}

/// Streams every data byte of `disk` to `make()`'s handlers, one per thread.
pub fn raw_pass<F>(
    disk: &Arc<Disk>,
    origin: &Arc<Origin>,
    opts: &ImageOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) where
    F: FnMut(Blob) + Send,
{
    let len = disk.len();
    let map = if opts.mmap { disk.map() } else { None };
    let map = map.as_ref();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                let mut w = Worker {
                    handle: make(),
                    buf: Vec::new(),
                    failing: false,
                };
                loop {
                    let lo = next.fetch_add(UNIT, Ordering::Relaxed);
                    if lo >= len {
                        break;
                    }
                    let hi = (lo + UNIT).min(len);
                    if opts.shard.is_some_and(|s| !s.owns_nth(lo / UNIT)) {
                        continue;
                    }
                    unit_pass(disk, map, origin, lo, hi, opts, stats, &mut w);
                }
            });
        }
    });
    // The disk is one file of the summary: counted by the shard of its first unit alone, so
    // that the parts' counts add up to the whole run's.
    let first = opts.shard.is_none_or(|s| s.owns_nth(0));
    stats.files.fetch_add(u64::from(first), Ordering::Relaxed);
}

/// Bytes of the disk a thread takes at a time: small enough that threads finish together, big
/// enough that the context read past each end (`overlap`, 64 KiB) costs little. Whole MiB, so
/// windows stay aligned on the device's blocks.
const UNIT: u64 = 32 << 20;

/// A thread's state across the units it scans.
struct Worker<F> {
    handle: F,
    buf: Vec<u8>,
    /// The last read failed: further failures in a row are counted, not named again.
    failing: bool,
}

/// Scans the data in `[lo, hi)`, reading `overlap` bytes of context on each side: from `map`
/// when the image is mapped, else read through `disk`.
#[allow(clippy::too_many_arguments)]
fn unit_pass<F: FnMut(Blob)>(
    disk: &Arc<Disk>,
    map: Option<&Mmap>,
    origin: &Arc<Origin>,
    lo: u64,
    hi: u64,
    opts: &ImageOptions,
    stats: &Stats,
    w: &mut Worker<F>,
) {
    let len = disk.len();
    let Worker {
        handle,
        buf,
        failing,
    } = w;
    let ctx = opts.overlap as u64;
    let (read_lo, read_hi) = (lo.saturating_sub(ctx), (hi + ctx).min(len));
    let mut pos = read_lo;
    // Count each byte once, though units read into their neighbours.
    let count = |from: u64, to: u64| {
        let n = to.min(hi).saturating_sub(from.max(lo));
        stats.bytes.fetch_add(n, Ordering::Relaxed);
    };
    // Given a blob at its whole-image offset: own only what lies in [lo, hi).
    let mut own = |mut b: Blob| {
        let own_lo = lo.saturating_sub(b.offset) as usize;
        let own_hi = hi.saturating_sub(b.offset).min(b.data.len() as u64) as usize;
        b.own = b.own.start.max(own_lo)..b.own.end.min(own_hi);
        if !b.own.is_empty() {
            handle(b);
        }
    };
    while pos < read_hi {
        let (start, end) = disk.data(pos, read_hi);
        if start >= read_hi {
            break;
        }
        if let Some(map) = map {
            let mut done = start;
            super::window::windows(
                &map[start as usize..end as usize],
                origin,
                start,
                opts.chunk,
                opts.overlap,
                &mut |b: Blob| {
                    let next = b.offset + b.own.end.saturating_sub(opts.overlap) as u64;
                    own(b);
                    release(map, &mut done, next, false);
                },
            );
            release(map, &mut done, end, true);
            count(start, end);
            pos = end;
            continue;
        }
        let mut r = Slice::new(disk.clone(), start, end - start);
        let result = super::window::stream(
            &mut r,
            origin,
            opts.chunk,
            opts.overlap,
            buf,
            &mut |mut b: Blob| {
                b.offset += start;
                own(b)
            },
        );
        let got = start + r.position();
        count(start, got);
        let err = match result {
            Err(e) => Some(e),
            Ok(n) if n < end - start => Some(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("image ends at {} of {}", start + n, end),
            )),
            Ok(_) => None,
        };
        if let Some(e) = err {
            // Name the first unreadable place; go on from the next MiB, counting further
            // failures in a row without repeating the message.
            let next = ((got >> 20) + 1) << 20;
            let msg = (!*failing).then(|| format!("{origin}: byte {got}: {e}"));
            stats.skip(Skip::Unreadable, msg);
            *failing = true;
            pos = next.max(pos + 1);
            continue;
        }
        *failing = false;
        pos = end;
    }
}

/// Unmaps the pages of `map` in `[*done, to)` that the scan has passed (at least 2 MiB at a
/// time, all of them when `last`): without this, every page of a mapped image read so far would
/// count in the process's resident memory. The page cache keeps them; a later read (a
/// neighbouring unit's context) maps them again.
fn release(map: &Mmap, done: &mut u64, to: u64, last: bool) {
    // SAFETY: sysconf has no preconditions.
    let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64;
    let from = *done & !(page - 1);
    let to = if last {
        to.div_ceil(page) * page
    } else {
        to & !(page - 1)
    }
    .min(map.len() as u64);
    if to > from && (last || to - from >= 2 << 20) {
        // SAFETY: the map is read-only and shared, so dropping its pages loses nothing: the
        // next access maps the same page-cache page again. No reference into the range is used
        // after this (blobs before `to` are done), and one would read the same bytes anyway.
        let _ = unsafe {
            map.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                from as usize,
                (to - from) as usize,
            )
        };
        *done = to;
    }
}

/// The raw pass over a remote disk: its blocks arrive in whatever order the walk and then the
/// sweep fetch them (`remote.rs`), each once. Bytes are scanned as soon as they have
/// `overlap` bytes of context on both sides (or a disk edge or an unwritten block there), so
/// every byte is owned by exactly one scan, as `raw_pass` owns it; what is kept waiting is only
/// the edges of runs whose neighbours have not arrived yet (and, where blocks land side by side
/// in arenas, up to `WAIT_RUN` of a run not scanned yet).
pub struct Assembler<'a> {
    ov: u64,
    /// The written byte ranges of the disk: outside them everything is zeros.
    ranges: Vec<(u64, u64)>,
    segs: std::collections::BTreeMap<u64, Seg>,
    /// Where the disk's blocks land side by side, if they do (`arena.rs`): there neighbours
    /// are joined without a copy, and a run is scanned once `WAIT_RUN` of it is there rather
    /// than block by block, so that the context on both sides of each scan is read once a run,
    /// not once a block.
    arenas: Option<&'a Arenas>,
    /// Bytes the runs' pieces hold.
    held: usize,
}

/// With arenas: bytes of a run not scanned yet that it waits for before a scan (unless the
/// run is closed at both ends); and the bytes all runs may hold while they wait (past that,
/// each scans what it has as it comes, as without arenas).
const WAIT_RUN: u64 = 4 << 20;
const WAIT_HELD: usize = 32 << 20;

/// With arenas: the runs open at once up to which the context kept at a run's open ends is a
/// view of the arena rather than a copy. A view keeps its whole blocks (512 KiB on AWS for the
/// 64 KiB of context); a copy cuts the run in two pieces that no longer join in place.
const PINNING_RUNS: usize = 32;

/// A run of contiguous bytes that arrived: `[a, b)`, of which detections starting in
/// `reported` were scanned; `pieces` hold the bytes still needed as context or unscanned.
struct Seg {
    a: u64,
    b: u64,
    reported: Vec<(u64, u64)>,
    pieces: Vec<(u64, Bytes)>,
}

/// Bytes to scan: `data` starts at `offset` of the disk; detections starting in `own` (offsets
/// of the disk) are this scan's.
pub struct RawJob {
    pub offset: u64,
    pub data: Bytes,
    pub own: (u64, u64),
}

impl Seg {
    /// Jobs owning `[g0, g1)`, each with `ov` bytes of context on each side (less at the run's
    /// ends). Where a piece holds a stretch with its context, the job is a view of the piece
    /// (no copy); only around the joints between pieces are bytes copied, `4 * ov` a joint.
    /// (One job joined from every piece copied each block a second time: the raw pass of a
    /// snapshot swept in order copied 1.4 times the bytes it scanned.)
    fn jobs(&self, g0: u64, g1: u64, ov: u64, out: &mut Vec<RawJob>) {
        let context = |u: u64, v: u64| (u.saturating_sub(ov).max(self.a), (v + ov).min(self.b));
        // A job owning `[u, v)` joined from the pieces.
        let joined = |u: u64, v: u64| {
            let (x, y) = context(u, v);
            RawJob {
                offset: x,
                data: Bytes::from(self.bytes(x, y)),
                own: (u, v),
            }
        };
        let mut at = g0;
        while at < g1 {
            let Some((s, d)) = self
                .pieces
                .iter()
                .find(|(s, d)| *s <= at && at < s + d.len() as u64)
            else {
                // Not held (it cannot be: what is unscanned is kept with its context). Joined
                // as before, with what is held.
                debug_assert!(false, "byte {at} not held");
                out.push(joined(at, g1));
                return;
            };
            let (s, e) = (*s, s + d.len() as u64);
            // A view of this piece can own from where the context before starts in it (at
            // once in the run's first piece) to where the context after runs out of it (never
            // in its last).
            let from = if s <= self.a { at } else { at.max(s + ov) };
            let upto = if e >= self.b {
                g1
            } else {
                g1.min(e.saturating_sub(ov))
            };
            if from == at && upto > at {
                let (x, y) = context(at, upto);
                out.push(RawJob {
                    offset: x,
                    data: d.slice((x - s) as usize..(y - s) as usize),
                    own: (at, upto),
                });
                at = upto;
                continue;
            }
            // Astride a joint: joined, up to where a view can own again (in this piece, or
            // past the next joint when this piece is too short to hold any context).
            let upto = g1.min(if from < upto { from } else { e + ov });
            out.push(joined(at, upto));
            at = upto;
        }
    }

    /// The bytes `[x, y)`, which the pieces must hold.
    fn bytes(&self, x: u64, y: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((y - x) as usize);
        let mut at = x;
        for (s, d) in &self.pieces {
            let e = s + d.len() as u64;
            if e <= at || *s > at {
                continue;
            }
            let to = e.min(y);
            out.extend_from_slice(&d[(at - s) as usize..(to - s) as usize]);
            at = to;
            if at >= y {
                break;
            }
        }
        debug_assert_eq!(at, y, "bytes {x}..{y} not held");
        out
    }
}

impl<'a> Assembler<'a> {
    pub fn new(ranges: Vec<(u64, u64)>, overlap: u64) -> Assembler<'a> {
        Assembler {
            ov: overlap.max(1),
            ranges,
            segs: Default::default(),
            arenas: None,
            held: 0,
        }
    }

    /// Blocks arrive as views of `arenas` (if the disk has them).
    pub fn in_arenas(mut self, arenas: Option<&'a Arenas>) -> Assembler<'a> {
        self.arenas = arenas;
        self
    }

    /// The written range holding `off`.
    fn range(&self, off: u64) -> (u64, u64) {
        let i = self.ranges.partition_point(|r| r.1 <= off);
        self.ranges.get(i).copied().unwrap_or((off, off))
    }

    /// Takes the bytes at `off`; returns what can be scanned now.
    pub fn add(&mut self, off: u64, data: Bytes) -> Vec<RawJob> {
        let (rs, re) = self.range(off);
        let end = (off + data.len() as u64).min(re.max(off));
        self.held += data.len();
        let mut seg = Seg {
            a: off,
            b: end,
            reported: Vec::new(),
            pieces: vec![(off, data)],
        };
        // Join the runs it touches, inside its written range.
        if let Some((&a, left)) = self.segs.range(..off).next_back() {
            if left.b == off && a >= rs {
                let mut left = self.segs.remove(&a).unwrap();
                left.b = seg.b;
                left.reported.append(&mut seg.reported);
                left.pieces.append(&mut seg.pieces);
                seg = left;
            }
        }
        if let Some(mut right) = self.segs.remove(&seg.b) {
            seg.b = right.b;
            seg.reported.append(&mut right.reported);
            seg.pieces.append(&mut right.pieces);
        }
        let closed = (seg.a <= rs, seg.b >= re);
        let jobs = match self.arenas {
            Some(arenas) => {
                seg.pieces = join_in_place(std::mem::take(&mut seg.pieces), arenas);
                let scanned: u64 = seg.reported.iter().map(|r| r.1 - r.0).sum();
                let waits = !(closed.0 && closed.1)
                    && (seg.b - seg.a).saturating_sub(scanned) < WAIT_RUN
                    && self.held <= WAIT_HELD;
                if waits {
                    Vec::new()
                } else {
                    self.scan(&mut seg, closed)
                }
            }
            None => self.scan(&mut seg, closed),
        };
        self.segs.insert(seg.a, seg);
        jobs
    }

    /// Scans what `seg` can own now that was not scanned, and lets go of bytes no longer needed.
    fn scan(&mut self, seg: &mut Seg, closed: (bool, bool)) -> Vec<RawJob> {
        let ov = self.ov;
        let lo = if closed.0 { seg.a } else { seg.a + ov };
        let hi = if closed.1 {
            seg.b
        } else {
            seg.b.saturating_sub(ov)
        };
        let mut jobs = Vec::new();
        if lo < hi {
            seg.reported.sort_unstable();
            let mut at = lo;
            let mut gaps = Vec::new();
            for &(p, q) in &seg.reported {
                if p > at {
                    gaps.push((at, p.min(hi)));
                }
                at = at.max(q);
            }
            if at < hi {
                gaps.push((at, hi));
            }
            for (g0, g1) in gaps.into_iter().filter(|g| g.0 < g.1) {
                seg.jobs(g0, g1, ov, &mut jobs);
            }
            seg.reported = vec![(lo, hi)];
            // Keep only the context later scans at an open edge need.
            let mut keep = Vec::new();
            if !closed.0 {
                keep.push((seg.a, (lo + ov).min(seg.b)));
            }
            if !closed.1 {
                keep.push((hi.saturating_sub(ov).max(seg.a), seg.b));
            }
            if let [(_, e0), (s1, e1)] = keep[..] {
                if s1 <= e0 {
                    keep = vec![(keep[0].0, e1)];
                }
            }
            let pieces: Vec<(u64, Bytes)> = keep
                .into_iter()
                .map(|(x, y)| (x, self.kept(seg, x, y)))
                .collect();
            self.held -= seg.pieces.iter().map(|p| p.1.len()).sum::<usize>();
            self.held += pieces.iter().map(|p| p.1.len()).sum::<usize>();
            seg.pieces = pieces;
        }
        jobs
    }

    /// The bytes `[x, y)` of `seg`, kept as context for later scans: a view of the arena they
    /// are in (while few runs are open), else a copy.
    fn kept(&self, seg: &Seg, x: u64, y: u64) -> Bytes {
        let arenas = self.arenas.filter(|_| self.segs.len() < PINNING_RUNS);
        let view = arenas.and_then(|a| {
            let (s, d) = seg
                .pieces
                .iter()
                .find(|(s, d)| *s <= x && y <= s + d.len() as u64)?;
            a.narrow(*s, d, x, y)
        });
        view.unwrap_or_else(|| Bytes::from(seg.bytes(x, y)))
    }

    /// At the end: what is left (next to blocks that never came) is scanned with the context
    /// there is.
    pub fn finish(&mut self) -> Vec<RawJob> {
        let segs = std::mem::take(&mut self.segs);
        let mut jobs = Vec::new();
        for (_, mut seg) in segs {
            jobs.extend(self.scan(&mut seg, (true, true)));
        }
        // What a run too short to scan again still held goes with it.
        self.held = 0;
        jobs
    }

    /// Bytes held, waiting for neighbours.
    pub fn held(&self) -> usize {
        self.held
    }
}

/// Pieces (in order) with each run of neighbours that lie side by side in an arena made one.
fn join_in_place(pieces: Vec<(u64, Bytes)>, arenas: &Arenas) -> Vec<(u64, Bytes)> {
    let mut out: Vec<(u64, Bytes)> = Vec::with_capacity(pieces.len());
    for (s, d) in pieces {
        if let Some((ps, pd)) = out.last_mut() {
            if *ps + pd.len() as u64 == s {
                if let Some(j) = arenas.join(*ps, pd, &d) {
                    *pd = j;
                    continue;
                }
            }
        }
        out.push((s, d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote disk scanned whole: the raw pass owns every written byte exactly once, those
    /// of the blocks fetched before the scan (a format sniffed) and by the partition tables'
    /// reads (and their read-ahead) too, on a multi-thread runtime (read-ahead in the
    /// background) as on a current-thread one.
    #[test]
    fn a_remote_disk_s_raw_pass_owns_every_written_byte_once() {
        let (bs, blocks) = (4096u64, 96u64);
        for (multi, in_arenas) in [(true, false), (false, false), (true, true), (false, true)] {
            // Blocks that land side by side (as a snapshot's) are joined in place.
            let mut mem = crate::source::block::remote::tests::mem_data(blocks, bs, None);
            if in_arenas {
                mem.arenas = Some(Arenas::new(bs));
            }
            let mem = Arc::new(mem);
            let written = mem.written.clone();
            assert!(written.contains(&0) && written.contains(&(blocks - 1)));
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            let opts = crate::source::block::remote::Options {
                concurrency: 8,
                cache_bytes: 1 << 20,
            };
            let remote = Remote::new(mem.clone(), rt.handle().clone(), opts);
            let disk = Arc::new(Disk::new("mem".into(), DiskFormat::Ebs, Box::new(remote)));
            let options = ImageOptions {
                threads: 2,
                chunk: 64 << 10,
                overlap: 1024,
                mmap: false,
                archives: Limits::default(),
                git_budget: None,
                shard: None,
            };
            // As `Disk::open_in` sniffs a format: reads before the scan, and their read-ahead.
            let mut head = [0u8; 512];
            disk.read_at(&mut head, 0).unwrap();
            disk.read_at(&mut head, blocks * bs - 512).unwrap();
            let owned = std::sync::Mutex::new(vec![0u8; (blocks * bs) as usize]);
            let scanned = AtomicU64::new(0);
            let stats = Stats::default();
            scan(
                &disk,
                &Origin::file("mem"),
                &options,
                None,
                &stats,
                &|| {
                    |b: Blob| {
                        scanned.fetch_add(b.data.len() as u64, Ordering::Relaxed);
                        let mut o = owned.lock().unwrap();
                        let at = b.offset as usize;
                        for n in &mut o[at + b.own.start..at + b.own.end] {
                            *n += 1;
                        }
                    }
                },
                &|| |_: Blob| {},
            );
            let owned = owned.into_inner().unwrap();
            for (k, &n) in owned.iter().enumerate() {
                let w = written.contains(&(k as u64 / bs));
                assert_eq!(
                    n, w as u8,
                    "multi-thread {multi}, arenas {in_arenas}: byte {k} owned {n} times"
                );
            }
            // In arenas, each run of written blocks waits until it is whole and is scanned in
            // place at once: no byte is scanned twice as context. Block by block, the context
            // around each joint is.
            let (scanned, written) = (scanned.into_inner(), written.len() as u64 * bs);
            if in_arenas {
                assert_eq!(scanned, written, "multi-thread {multi}");
            } else {
                assert!(scanned > written, "multi-thread {multi}");
            }
        }
    }

    /// Blocks arriving in any order: the scans own every written byte exactly once, each scan's
    /// bytes are the disk's, and an owned byte has `ov` bytes of context on each side unless a
    /// written range ends there.
    #[test]
    fn assembler_owns_every_byte_once_whatever_the_order() {
        let bs = 512u64;
        // More than two blocks (context spans several arrivals), and less than a fifth of one
        // (jobs are views of a block but around its joints).
        for ov in [1200u64, 100] {
            for in_arenas in [false, true] {
                assembled_in_any_order(bs, ov, in_arenas);
            }
        }
    }

    /// Block `i` of `disk` as a fetch hands it over.
    fn arrived(disk: &[u8], bs: u64, i: u64, arenas: Option<&Arenas>) -> Bytes {
        let b = &disk[(i * bs) as usize..((i + 1) * bs) as usize];
        crate::source::block::remote::tests::landed(arenas, i, b)
    }

    fn assembled_in_any_order(bs: u64, ov: u64, in_arenas: bool) {
        let blocks = 64u64;
        let written: Vec<u64> = (0..blocks).filter(|i| i % 9 != 4).collect();
        let mut ranges = Vec::new();
        for &i in &written {
            crate::source::block::push_merged(&mut ranges, i * bs, (i + 1) * bs);
        }
        let disk: Vec<u8> = (0..blocks * bs).map(|i| (i * 7 % 251) as u8).collect();
        // Seeds 0..20: every block arrives. Seeds 20..30: one never comes (a block that could
        // not be fetched): the rest is still owned once, with what context there is.
        for seed in 0..30 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut order = written.clone();
            rng.shuffle(&mut order);
            let lost = (seed >= 20).then(|| order.pop().unwrap());
            let arenas = in_arenas.then(|| Arenas::new(bs));
            let mut asm = Assembler::new(ranges.clone(), ov).in_arenas(arenas.as_ref());
            let mut jobs = Vec::new();
            for &i in &order {
                jobs.extend(asm.add(i * bs, arrived(&disk, bs, i, arenas.as_ref())));
            }
            let rest = asm.finish();
            if lost.is_none() {
                // Every run is closed at both ends: all was scanned as it arrived.
                assert!(rest.is_empty(), "seed {seed}");
            }
            let scanned_late = rest.len();
            jobs.extend(rest);
            let mut owned = vec![0u8; disk.len()];
            for j in &jobs {
                let (s, e) = (j.offset as usize, j.offset as usize + j.data.len());
                assert_eq!(
                    j.data,
                    &disk[s..e],
                    "seed {seed}: a job's bytes are the disk's"
                );
                assert!(j.offset <= j.own.0 && j.own.1 <= j.offset + j.data.len() as u64);
                if lost.is_some() {
                    continue; // next to the lost block there is less context
                }
                let (rs, re) = ranges[ranges.partition_point(|r| r.1 <= j.own.0)];
                assert!(
                    j.own.0 - j.offset >= ov.min(j.own.0 - rs),
                    "seed {seed}: context before"
                );
                assert!(
                    j.offset + j.data.len() as u64 - j.own.1 >= ov.min(re - j.own.1),
                    "seed {seed}: context after"
                );
            }
            for j in &jobs {
                for o in &mut owned[j.own.0 as usize..j.own.1 as usize] {
                    *o += 1;
                }
            }
            for (k, &n) in owned.iter().enumerate() {
                let block = k as u64 / bs;
                let w = written.contains(&block) && Some(block) != lost;
                assert_eq!(n, w as u8, "seed {seed}: byte {k} owned {n} times");
            }
            if lost.is_some() {
                assert!(
                    scanned_late > 0,
                    "seed {seed}: the lost block's neighbours wait"
                );
            }
            assert_eq!(asm.held(), 0);
        }
    }

    /// Blocks that land side by side in arenas, arriving in order: a run is scanned in views
    /// of the arena, `WAIT_RUN` at a time, and bytes are copied (`4 * ov`) only at the joint
    /// between two arenas; each byte is owned once, and the context is read once a scan, not
    /// once a block.
    #[test]
    fn assembler_scans_runs_in_place_in_arenas() {
        let (bs, ov) = (64u64 << 10, 64u64 << 10);
        let blocks = 2 * (8 << 20) / bs; // two arenas
        let disk: Vec<u8> = (0..blocks * bs).map(|i| (i * 7 % 251) as u8).collect();
        let arenas = Arenas::new(bs);
        let mut asm = Assembler::new(vec![(0, blocks * bs)], ov).in_arenas(Some(&arenas));
        let (mut arrived_at, mut jobs) = (Vec::new(), Vec::new());
        for i in 0..blocks {
            let b = arrived(&disk, bs, i, Some(&arenas));
            arrived_at.push(b.as_ptr_range());
            jobs.extend(asm.add(i * bs, b));
        }
        jobs.extend(asm.finish());
        assert_eq!(asm.held(), 0);
        let mut owned = vec![0u8; disk.len()];
        let (mut copied, mut scanned) = (0, 0);
        for j in &jobs {
            let (s, e) = (j.offset as usize, j.offset as usize + j.data.len());
            assert!(j.data == disk[s..e]);
            owned[j.own.0 as usize..j.own.1 as usize]
                .iter_mut()
                .for_each(|o| *o += 1);
            scanned += j.data.len() as u64;
            let p = j.data.as_ptr();
            if !arrived_at.iter().any(|r| r.contains(&p)) {
                copied += j.data.len() as u64;
            }
        }
        assert!(owned.iter().all(|&n| n == 1), "every byte owned once");
        assert!(copied <= 4 * ov, "{copied} bytes copied for one joint");
        // A scan each `WAIT_RUN`, the last, and the joint between the arenas: a copy astride
        // it and a view after it.
        let most = (blocks * bs).div_ceil(WAIT_RUN) + 3;
        assert!(
            jobs.len() as u64 <= most,
            "{} scans, not one a block",
            jobs.len()
        );
        assert!(
            scanned <= blocks * bs + 2 * ov * jobs.len() as u64,
            "{scanned} bytes scanned for {}",
            blocks * bs
        );
    }

    /// Blocks arriving in order, as the sweep hands them over: each job is a view of a block
    /// but around the joints between blocks, where at most `4 * ov` bytes are copied.
    #[test]
    fn assembler_copies_only_around_joints() {
        let (bs, ov, blocks) = (8192u64, 256u64, 16u64);
        let disk: Vec<u8> = (0..blocks * bs).map(|i| (i * 7 % 251) as u8).collect();
        let mut asm = Assembler::new(vec![(0, blocks * bs)], ov);
        let (mut arrived, mut jobs) = (Vec::new(), Vec::new());
        for i in 0..blocks {
            let b = Bytes::copy_from_slice(&disk[(i * bs) as usize..((i + 1) * bs) as usize]);
            arrived.push(b.clone());
            jobs.extend(asm.add(i * bs, b));
        }
        jobs.extend(asm.finish());
        let mut owned = vec![0u8; disk.len()];
        let mut copied = 0;
        for j in &jobs {
            let (s, e) = (j.offset as usize, j.offset as usize + j.data.len());
            assert_eq!(j.data, &disk[s..e]);
            owned[j.own.0 as usize..j.own.1 as usize]
                .iter_mut()
                .for_each(|o| *o += 1);
            let p = j.data.as_ptr();
            if !arrived.iter().any(|b| b.as_ptr_range().contains(&p)) {
                copied += j.data.len() as u64;
            }
        }
        assert!(owned.iter().all(|&n| n == 1), "every byte owned once");
        assert!(
            copied <= (blocks - 1) * 4 * ov,
            "{copied} bytes copied for {} joints",
            blocks - 1
        );
    }
}
