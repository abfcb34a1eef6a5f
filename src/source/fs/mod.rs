//! Filesystems on a volume (a partition, or a whole disk), read from any block reader: each
//! sniffed from its superblock, and the files of those keyhound can walk scanned with their
//! paths: `disk.img › p1 (ext4) › /home/ec2-user/.aws/credentials`.
//!
//! Walkers, a file each: ext4 (`ext4-view`: read-only, pure Rust, extents and htree
//! directories), FAT (`fatfs`: FAT12/16/32 with long names), NTFS (`ntfs`: read-only, resident
//! and non-resident data, index B-trees) and XFS (`xfs.rs`, this crate's own: see there why).

use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use super::archive::{self, Limits};
use super::block::{Disk, Slice};
use super::gitcopy::{GitCollector, Tee};
use super::partition::Part;
use super::window::Counted;
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};
use crate::shard::PIECE;

mod ext4;
mod fat;
mod ntfs;
pub mod xfs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    Ext,
    Xfs,
    Fat,
    Ntfs,
    Luks,
    Swap,
    /// An LVM2 physical volume: its logical volumes are walked as volumes of their own.
    Lvm,
}

impl FsKind {
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Fat => "fat",
            FsKind::Ntfs => "ntfs",
            FsKind::Luks => "luks",
            FsKind::Swap => "swap",
            FsKind::Lvm => "lvm",
        }
    }
}

/// The filesystem whose superblock is at `start`, if keyhound knows its magic.
pub fn sniff(disk: &Disk, start: u64) -> Option<FsKind> {
    let mut b = vec![0u8; 4096];
    let n = disk.read_at(&mut b, start).ok()?;
    let b = &b[..n];
    let at = |o: usize, m: &[u8]| b.get(o..o + m.len()) == Some(m);
    if crate::source::partition::lvm::sniff(b) {
        Some(FsKind::Lvm)
    } else if at(1024 + 56, &[0x53, 0xEF]) {
        Some(FsKind::Ext)
    } else if at(0, b"XFSB") {
        Some(FsKind::Xfs)
    } else if at(3, b"NTFS    ") {
        Some(FsKind::Ntfs)
    } else if at(0, b"LUKS\xba\xbe") {
        Some(FsKind::Luks)
    } else if at(510, &[0x55, 0xAA]) && (at(54, b"FAT") || at(82, b"FAT32")) {
        Some(FsKind::Fat)
    } else if at(4086, b"SWAPSPACE2") {
        Some(FsKind::Swap)
    } else {
        None
    }
}

/// How files inside an image are read.
pub struct WalkOptions {
    pub chunk: usize,
    pub overlap: usize,
    pub archives: Limits,
    /// Threads that scan the files the walk reads (the walk itself is one more).
    pub threads: usize,
    /// Bytes of files read and waiting for those threads, at most (`QUEUE_BYTES`); past that
    /// the walking thread scans a file itself.
    pub queue_bytes: usize,
    /// Where the files of git repositories met on the way are copied, for their history.
    pub git: Option<Arc<GitCollector>>,
    /// Only this shard's files are scanned (by path); a repository's files are still copied
    /// for its history, which is sharded by object id.
    pub shard: Option<crate::shard::Shard>,
}

/// Walks the files of `part`'s filesystem, handing each file's bytes to a handler from `make`
/// (one per scanning thread) with origin `base › label › /path`. Returns false when the
/// filesystem cannot be walked (a warning says why); the raw pass covers it either way.
///
/// A filesystem reader is not shared between threads (ext4-view's is not `Send`), so one thread
/// walks and reads; the files' bytes go to `opts.threads` scanning threads, which also expand
/// archives (gzip'd man pages and changelogs are much of a system volume's files). At most
/// `opts.queue_bytes` wait for them; past that the walking thread scans the file itself.
pub fn walk_files<F>(
    disk: &Arc<Disk>,
    base: &Origin,
    part: &Part,
    opts: &WalkOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) -> bool
where
    F: FnMut(Blob) + Send,
{
    // What is wrong with the volume itself every shard meets: the first names it, so the
    // parts count it once, as the single run does.
    let skip = |why: Skip, msg: String| {
        if opts.shard.is_none_or(|s| s.index == 0) {
            stats.skip(why, Some(msg));
        }
    };
    if part.missing > 0 {
        skip(
            Skip::Unreadable,
            format!(
                "{base} › {}: the image ends {} bytes before this partition does (truncated?); \
                 what is there is scanned",
                part.label(),
                part.missing
            ),
        );
    }
    let label = part.label();
    let walk: fn(Slice, &mut FileScanner<F>) -> Result<(), String> = match part.fs {
        Some(FsKind::Ext) => ext4::walk,
        Some(FsKind::Fat) => fat::walk,
        Some(FsKind::Ntfs) => ntfs::walk,
        Some(FsKind::Xfs) => xfs::walk,
        Some(FsKind::Luks) => {
            let e = "encrypted (LUKS): only its raw bytes are scanned";
            skip(Skip::Filesystem, format!("{base} › {label}: {e}"));
            return false;
        }
        None if part.expect_fs => {
            let e = "unknown filesystem: only its raw bytes are scanned";
            skip(Skip::Filesystem, format!("{base} › {label}: {e}"));
            return false;
        }
        // A PV's logical volumes are walked by `image::walk_volumes`.
        Some(FsKind::Swap) | Some(FsKind::Lvm) | None => return false,
    };
    let slice = Slice::new(disk.clone(), part.start, part.len);
    let (tx, rx) = mpsc::channel::<Vec<Job>>();
    let rx = Mutex::new(rx);
    let in_flight = AtomicUsize::new(0);
    let r = std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                let mut handle = make();
                loop {
                    // The lock is held only while waiting for the next job, never while scanning.
                    let batch = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(batch) = batch else { break };
                    let n = batch.iter().map(|j| j.data.len()).sum::<usize>();
                    for job in batch {
                        job.scan(opts, stats, &mut handle);
                    }
                    in_flight.fetch_sub(n, Ordering::Release);
                }
            });
        }
        let mut files = FileScanner {
            base,
            label: &label,
            opts,
            stats,
            queue: tx,
            in_flight: &in_flight,
            own: make(),
            buf: Vec::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            volume: part.len,
        };
        // A filesystem crate that panics on a corrupt volume (one did: ntfs 0.4.0, on a short
        // read inside a structure) costs that volume's walk, not the scan; the raw pass still
        // covers its bytes.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walk(slice, &mut files)))
            .unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(format!(
                    "the filesystem reader failed ({why}); only raw bytes are scanned"
                ))
            });
        files.flush();
        r
        // `files` (the sender) is dropped here: the scanning threads finish the queue and end.
    });
    if let Err(e) = r {
        skip(Skip::Filesystem, format!("{base} › {label}: {e}"));
        return false;
    }
    true
}

/// Bytes of files read by the walk and waiting for a scanning thread, at most (the default of
/// `WalkOptions::queue_bytes`): on a 2 GiB ext4 volume, 64 MiB was no faster and its peak RSS
/// 40 MB higher.
pub const QUEUE_BYTES: usize = 32 << 20;

/// Files go to the scanning threads in batches of about this many bytes (or `BATCH_FILES`
/// files): one hand-over per small file costs a thread wake-up each, 13% of the time on a
/// volume of 50,000 files.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_FILES: usize = 256;

/// A file's bytes, or a window of a big file's, on their way from the walk to a scanning thread.
struct Job {
    origin: Arc<Origin>,
    data: Vec<u8>,
    offset: u64,
    line: u64,
    column: u64,
    own: Range<usize>,
    /// The whole file: look inside it if it is an archive.
    whole: bool,
}

impl Job {
    fn scan<F: FnMut(Blob)>(self, opts: &WalkOptions, stats: &Stats, handle: &mut F) {
        if self.whole && opts.archives.max_depth > 0 {
            if let Some(kind) = archive::sniff(&self.data) {
                let len = self.data.len() as u64;
                let mut ex = archive::Expander::new(opts.archives, stats, len, handle)
                    .git(opts.git.as_deref());
                if ex.bytes(&self.data, kind, &self.origin) {
                    return;
                }
            }
        }
        handle(Blob {
            data: &self.data,
            origin: self.origin,
            offset: self.offset,
            line: self.line,
            column: self.column,
            own: self.own,
        });
    }
}

struct FileScanner<'a, F> {
    base: &'a Origin,
    label: &'a str,
    opts: &'a WalkOptions,
    stats: &'a Stats,
    queue: mpsc::Sender<Vec<Job>>,
    /// Bytes queued and not yet scanned (`opts.queue_bytes` at most).
    in_flight: &'a AtomicUsize,
    /// The walking thread's own handler, for jobs the queue has no room for.
    own: F,
    buf: Vec<u8>,
    /// Jobs not yet handed over, and their bytes.
    batch: Vec<Job>,
    batch_bytes: usize,
    /// The volume's length: no file holds more of its data (see `file`).
    volume: u64,
}

impl<F: FnMut(Blob)> FileScanner<'_, F> {
    /// Counts an unreadable directory or file of the walk, naming it. Every shard walks every
    /// directory and looks at every file, so every shard meets it: only the shard that `at`
    /// falls in by path names it, and the parts of a sharded scan count it once, as the single
    /// run does (each part counted it before).
    fn warn(&self, at: &str, e: &dyn std::fmt::Display) {
        if self.opts.shard.is_some_and(|s| !s.owns(at.as_bytes())) {
            return;
        }
        self.stats.skip(
            Skip::Unreadable,
            Some(format!("{} › {} › {at}: {e}", self.base, self.label)),
        );
    }

    /// Adds a job to the batch, handing the batch over when it is big enough.
    fn send(&mut self, job: Job) {
        self.batch_bytes += job.data.len();
        self.batch.push(job);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_FILES {
            self.flush();
        }
    }

    /// Queues the batch for the scanning threads, or scans it here if the queue is full.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let n = std::mem::take(&mut self.batch_bytes);
        if batch.is_empty() {
            return;
        }
        let queued = self
            .in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |used| {
                (used == 0 || used + n <= self.opts.queue_bytes).then_some(used + n)
            })
            .is_ok();
        let batch = if queued {
            match self.queue.send(batch) {
                Ok(()) => return,
                // Every scanning thread is gone (one panicked): scan here.
                Err(mpsc::SendError(batch)) => {
                    self.in_flight.fetch_sub(n, Ordering::Release);
                    batch
                }
            }
        } else {
            batch
        };
        for job in batch {
            job.scan(self.opts, self.stats, &mut self.own);
        }
    }

    /// Whether `file` would read anything of a file of `len` bytes at `name`: everything
    /// unsharded; in a shard, its own files (by path), a big file (dealt by piece), and a
    /// repository's file (copied for its history). A walk that can learn a file's size without
    /// opening it (ext4) opens only these.
    fn wants(&self, name: &str, len: u64) -> bool {
        let Some(s) = self.opts.shard else {
            return true;
        };
        s.owns(name.as_bytes())
            || self.big(len)
            || (self.opts.git.is_some() && name.contains(".git/"))
    }

    /// A file read in windows, whose pieces a sharded scan deals among the shards.
    fn big(&self, len: u64) -> bool {
        len > PIECE && len > self.opts.chunk as u64
    }

    /// Reads one file for scanning: whole (archives inside expanded), big ones in windows; a
    /// git repository's file is copied for its history on the way.
    fn file(&mut self, name: &str, len: u64, r: &mut dyn Read) {
        // A file longer than its volume is sparse (holes read as zeros) or lies about its size
        // (a damaged or crafted inode claiming 192 GiB on a 64 KiB volume: read block by block
        // as zeros, that took hours). Its bytes past the volume's length are not read: every
        // block the file really holds is a block of the volume, which the raw pass scans.
        let (len, mut r) = if len > self.volume {
            // Named by the shard its path falls in (every shard reads some of a big file).
            if self.opts.shard.is_none_or(|s| s.owns(name.as_bytes())) {
                self.stats.skip(
                    Skip::LongerThanVolume,
                    Some(format!(
                        "{} › {} › {name}: claims {len} bytes, more than its volume's {}: only \
                         the first {} are read as the file (the raw pass covers the volume's \
                         every byte)",
                        self.base, self.label, self.volume, self.volume
                    )),
                );
            }
            (self.volume, r.take(self.volume))
        } else {
            (len, r.take(len))
        };
        let r: &mut dyn Read = &mut r;
        // The place is formatted only for a repository's files, not for every file of a volume.
        let copy = self
            .opts
            .git
            .as_ref()
            .filter(|_| name.contains(".git/"))
            .and_then(|g| {
                let place = format!("{} › {}", self.base, self.label);
                g.copy(self.base, &place, name, len, false)
            });
        let mut tee = Tee::new(r, copy, len);
        let pieces = self.opts.shard.and_then(|s| {
            // A big file (read in windows) is dealt among the shards by piece.
            self.big(len)
                .then(|| (s, crate::shard::bucket(name.as_bytes(), s.count)))
        });
        if pieces.is_none() && self.opts.shard.is_some_and(|s| !s.owns(name.as_bytes())) {
            // Another shard's file: only copied, when a repository's.
            if tee.copying() {
                let _ = std::io::copy(&mut tee, &mut std::io::sink());
            }
            return;
        }
        // A big file is read only as far as this shard's last piece of it, and that piece's
        // context past its end: the pieces after it are other shards', and the bytes before
        // it are read only for the line numbers. A shard with no piece of it reads none of it
        // (a repository's file is still copied whole).
        let mut stop = len;
        if let Some((s, first)) = pieces.filter(|_| !tee.copying()) {
            match (0..len.div_ceil(PIECE))
                .rev()
                .find(|&i| s.owns_piece(first, i))
            {
                Some(last) => {
                    stop = ((last + 1) * PIECE)
                        .saturating_add(self.opts.overlap as u64)
                        .min(len)
                }
                None => return,
            }
        }
        self.read_file(name, len, &mut (&mut tee).take(stop), pieces)
    }

    /// `pieces`: this shard and the one `name` falls in, for a big file whose pieces are dealt
    /// among shards (`Shard::owns_piece`): only this shard's are scanned and counted, the file
    /// itself by the shard of its first piece, and an error reading it by the shard of the
    /// piece it falls in (every shard that reads that far meets it). A big file cut short by
    /// an error counts with the bytes read before it, so the shards' counts add up to the
    /// single run's.
    fn read_file(
        &mut self,
        name: &str,
        len: u64,
        r: &mut dyn Read,
        pieces: Option<(crate::shard::Shard, u32)>,
    ) {
        let mut o = self.base.clone();
        o.inner.push(self.label.to_string());
        o.inner.push(name.to_string());
        let origin = Arc::new(o);
        let result = if len <= self.opts.chunk as u64 {
            // The length is the filesystem's word, and at most `chunk`.
            let mut data = Vec::with_capacity(len as usize);
            r.read_to_end(&mut data).map(|n| {
                self.stats.read(n as u64);
                self.send(Job {
                    origin: origin.clone(),
                    own: 0..data.len(),
                    data,
                    offset: 0,
                    line: 0,
                    column: 0,
                    whole: true,
                });
            })
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            let (chunk, overlap) = (self.opts.chunk, self.opts.overlap);
            let mut send = |b: Blob| {
                self.send(Job {
                    origin: b.origin,
                    data: b.data.to_vec(),
                    offset: b.offset,
                    line: b.line,
                    column: b.column,
                    own: b.own,
                    whole: false,
                })
            };
            let mut owned = 0;
            let mut r = Counted::new(r);
            let mut window = |b: Blob| match pieces {
                Some((s, first)) => {
                    let ours = |i| s.owns_piece(first, i);
                    owned += super::window::pieces(b, PIECE, overlap, ours, &mut send);
                }
                None => send(b),
            };
            let n = super::window::stream(&mut r, &origin, chunk, overlap, &mut buf, &mut window);
            self.buf = buf;
            match pieces {
                Some((s, first)) => {
                    let stats = self.stats;
                    stats
                        .files
                        .fetch_add(u64::from(s.owns_piece(first, 0)), Ordering::Relaxed);
                    stats.bytes.fetch_add(owned, Ordering::Relaxed);
                    // Only the shard of the piece the error fell in names it.
                    let at = (r.n / PIECE).min(len.div_ceil(PIECE).saturating_sub(1));
                    match n {
                        Err(e) if s.owns_piece(first, at) => Err(e),
                        _ => Ok(()),
                    }
                }
                None => {
                    self.stats.read(r.n);
                    n.map(|_| ())
                }
            }
        };
        if let Err(e) = result {
            self.stats
                .skip(Skip::Unreadable, Some(format!("{origin}: {e}")));
        }
    }
}
