//! Inside a disk image: the partition table (GPT with the `gpt` crate, MBR with extended and
//! logical partitions with `mbrman`), each partition's filesystem sniffed from its superblock,
//! and the files of the filesystems keyhound can walk, each scanned with its path:
//! `disk.img › p1 (ext4) › /home/ec2-user/.aws/credentials`.
//!
//! Readers: ext4 (`ext4-view`: read-only, pure Rust, extents and htree directories), FAT
//! (`fatfs`: FAT12/16/32 with long names) and NTFS (`ntfs`: read-only, resident and
//! non-resident data, index B-trees) and XFS (`xfs.rs`, this crate's own: see there why).

use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use super::archive::{self, Limits};
use super::disk::{Disk, Slice};
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    Ext,
    Xfs,
    Fat,
    Ntfs,
    Luks,
    Swap,
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
        }
    }
}

/// A partition (or the whole disk, for a bare filesystem).
#[derive(Clone, Debug)]
pub struct Part {
    /// `p1`, `p5` (logical), or `disk` for a bare filesystem.
    pub name: String,
    pub start: u64,
    pub len: u64,
    pub fs: Option<FsKind>,
    /// Whether a filesystem belongs here (not a BIOS boot partition).
    pub expect_fs: bool,
    /// Bytes of the partition past the end of the image (a truncated image).
    pub missing: u64,
}

impl Part {
    /// `p1 (ext4)`, `p2`, `disk (fat)`.
    pub fn label(&self) -> String {
        match self.fs {
            Some(k) => format!("{} ({})", self.name, k.name()),
            None => self.name.clone(),
        }
    }
}

/// The filesystem whose superblock is at `start`, if keyhound knows its magic.
pub fn sniff(disk: &Disk, start: u64) -> Option<FsKind> {
    let mut b = vec![0u8; 4096];
    let n = disk.read_at(&mut b, start).ok()?;
    let b = &b[..n];
    let at = |o: usize, m: &[u8]| b.get(o..o + m.len()) == Some(m);
    if at(1024 + 56, &[0x53, 0xEF]) {
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

/// The partitions of the image: GPT first (its protective MBR would read as one partition),
/// then MBR; none when the image has no partition table.
pub fn partitions(disk: &Arc<Disk>) -> io::Result<Vec<Part>> {
    let len = disk.len();
    let f = &**disk;
    let mut parts = Vec::new();
    let whole = || Slice::new(disk.clone(), 0, len);
    if let Ok(table) = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(whole())
    {
        for (n, p) in table.partitions() {
            let lb = gpt::disk::LogicalBlockSize::Lb512;
            let (Ok(start), Ok(plen)) = (p.bytes_start(lb), p.bytes_len(lb)) else {
                continue;
            };
            parts.push(Part {
                name: format!("p{n}"),
                start,
                len: plen.min(len.saturating_sub(start)),
                missing: (start + plen).saturating_sub(len),
                fs: sniff(f, start),
                // BIOS boot and Microsoft reserved partitions hold no filesystem.
                expect_fs: p.part_type_guid != gpt::partition_types::BIOS
                    && p.part_type_guid != gpt::partition_types::MICROSOFT_RESERVED,
            });
        }
        return Ok(parts);
    }
    if let Ok(mbr) = mbrman::MBR::read_from(&mut whole(), 512) {
        for (n, p) in mbr.iter() {
            if !p.is_used() || p.is_extended() {
                continue;
            }
            parts.push(mbr_part(n, p.starting_lba, p.sectors, len, f));
        }
        for (i, l) in mbr.logical_partitions.iter().enumerate() {
            // Logical partitions are numbered from 5, as Linux does.
            let p = &l.partition;
            parts.push(mbr_part(5 + i, p.starting_lba, p.sectors, len, f));
        }
    }
    Ok(parts)
}

fn mbr_part(n: usize, lba: u32, sectors: u32, len: u64, f: &Disk) -> Part {
    let start = lba as u64 * 512;
    Part {
        name: format!("p{n}"),
        start,
        len: (sectors as u64 * 512).min(len.saturating_sub(start)),
        missing: (start + sectors as u64 * 512).saturating_sub(len),
        fs: sniff(f, start),
        expect_fs: true,
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
    if part.missing > 0 {
        stats.skip(
            Skip::Unreadable,
            Some(format!(
                "{base} › {}: the image ends {} bytes before this partition does (truncated?); \
                 what is there is scanned",
                part.label(),
                part.missing
            )),
        );
    }
    let label = part.label();
    let walk: fn(Slice, &mut FileScanner<F>) -> Result<(), String> = match part.fs {
        Some(FsKind::Ext) => walk_ext4,
        Some(FsKind::Fat) => walk_fat,
        Some(FsKind::Ntfs) => walk_ntfs,
        Some(FsKind::Xfs) => walk_xfs,
        Some(FsKind::Luks) => {
            let e = "encrypted (LUKS): only its raw bytes are scanned";
            stats.skip(Skip::Filesystem, Some(format!("{base} › {label}: {e}")));
            return false;
        }
        None if part.expect_fs => {
            let e = "unknown filesystem: only its raw bytes are scanned";
            stats.skip(Skip::Filesystem, Some(format!("{base} › {label}: {e}")));
            return false;
        }
        Some(FsKind::Swap) | None => return false,
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
        };
        let r = walk(slice, &mut files);
        files.flush();
        r
        // `files` (the sender) is dropped here: the scanning threads finish the queue and end.
    });
    if let Err(e) = r {
        stats.skip(Skip::Filesystem, Some(format!("{base} › {label}: {e}")));
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
    own: Range<usize>,
    /// The whole file: look inside it if it is an archive.
    whole: bool,
}

impl Job {
    fn scan<F: FnMut(Blob)>(self, opts: &WalkOptions, stats: &Stats, handle: &mut F) {
        if self.whole && opts.archives.max_depth > 0 {
            if let Some(kind) = archive::sniff(&self.data) {
                let len = self.data.len() as u64;
                let mut ex = archive::Expander::new(opts.archives, stats, len, handle);
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
}

impl<F: FnMut(Blob)> FileScanner<'_, F> {
    /// Counts an unreadable directory or file of the walk, naming it.
    fn warn(&self, at: &str, e: &dyn std::fmt::Display) {
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

    /// Reads one file for scanning: whole (archives inside expanded), big ones in windows.
    fn file(&mut self, name: &str, len: u64, r: &mut dyn Read) {
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
                    whole: true,
                });
            })
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            let (chunk, overlap) = (self.opts.chunk, self.opts.overlap);
            let n = super::fs::stream(r, &origin, chunk, overlap, &mut buf, &mut |b: Blob| {
                self.send(Job {
                    origin: b.origin,
                    data: b.data.to_vec(),
                    offset: b.offset,
                    line: b.line,
                    own: b.own,
                    whole: false,
                })
            });
            self.buf = buf;
            n.map(|n| self.stats.read(n))
        };
        if let Err(e) = result {
            self.stats
                .skip(Skip::Unreadable, Some(format!("{origin}: {e}")));
        }
    }
}

/// The inode of an ext4 filesystem's root directory.
const EXT4_ROOT_INODE: u32 = 2;

fn walk_ext4<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let fs = ext4_view::Ext4::load(Box::new(super::disk::ReadAhead::new(slice)))
        .map_err(|e| format!("ext4: {e}"))?;
    // Directories and files are opened from their entries (by inode): `fs.read_dir(path)` and
    // `fs.open(path)` would resolve the path from the root again, reading every directory on the
    // way, entry by entry where it has no htree index.
    // `None` is the root. A directory is walked once: a corrupt or crafted filesystem can link
    // a directory into itself, and its paths would grow without end.
    let mut dirs: Vec<Option<ext4_view::DirEntry>> = vec![None];
    let mut seen = std::collections::HashSet::from([EXT4_ROOT_INODE]);
    while let Some(dir) = dirs.pop() {
        let (shown, entries) = match &dir {
            None => ("/".to_string(), fs.read_dir("/")),
            Some(d) => (d.path().display().to_string(), d.read_dir()),
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                files.warn(&shown, &e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            let name = entry.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                // Not a second time: a loop in a corrupt directory tree (as the XFS and NTFS
                // walks do; what it holds was walked under its first path).
                if seen.insert(entry.inode()) {
                    dirs.push(Some(entry));
                }
            } else if ft.is_regular_file() {
                let shown = entry.path().display().to_string();
                match entry.open() {
                    Ok(mut f) => {
                        let len = f.metadata().len();
                        files.file(&shown, len, &mut f);
                    }
                    Err(e) => files.warn(&shown, &e),
                }
            }
        }
    }
    Ok(())
}

fn walk_fat<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let fs =
        fatfs::FileSystem::new(slice, fatfs::FsOptions::new()).map_err(|e| format!("fat: {e}"))?;
    let mut dirs = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = dirs.pop() {
        for entry in dir.iter() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&format!("{prefix}/"), &e);
                    break;
                }
            };
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let shown = format!("{prefix}/{name}");
            if entry.is_dir() {
                dirs.push((shown, entry.to_dir()));
            } else {
                let len = entry.len();
                files.file(&shown, len, &mut entry.to_file());
            }
        }
    }
    Ok(())
}

fn walk_xfs<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    let fs = super::xfs::Xfs::open(slice).map_err(|e| format!("xfs: {e}"))?;
    let root = fs
        .inode(fs.root)
        .map_err(|e| format!("xfs: root directory: {e}"))?;
    let mut seen = std::collections::HashSet::from([root.ino]);
    let mut dirs = vec![(String::new(), root)];
    while let Some((prefix, dir)) = dirs.pop() {
        let entries = match fs.read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                files.warn(&format!("{prefix}/"), &e);
                continue;
            }
        };
        for entry in entries {
            let shown = format!("{prefix}/{}", String::from_utf8_lossy(&entry.name));
            if !seen.insert(entry.ino) {
                continue; // a hard link, or a loop in a corrupt directory
            }
            let inode = match fs.inode(entry.ino) {
                Ok(i) => i,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            if inode.is_dir() {
                dirs.push((shown, inode));
            } else if inode.is_file() {
                match fs.open_file(&inode) {
                    Ok(mut r) => files.file(&shown, r.len(), &mut r),
                    Err(e) => files.warn(&shown, &e),
                }
            }
        }
    }
    Ok(())
}

fn walk_ntfs<F: FnMut(Blob)>(mut slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    use ntfs::indexes::NtfsFileNameIndex;
    use ntfs::structured_values::NtfsFileNamespace;
    let fs = &mut slice;
    let mut ntfs = ntfs::Ntfs::new(fs).map_err(|e| format!("ntfs: {e}"))?;
    ntfs.read_upcase_table(fs)
        .map_err(|e| format!("ntfs: upcase table: {e}"))?;
    let root = ntfs.root_directory(fs).map_err(|e| format!("ntfs: {e}"))?;
    let mut seen = std::collections::HashSet::from([root.file_record_number()]);
    let mut dirs = vec![(String::new(), root)];
    while let Some((prefix, dir)) = dirs.pop() {
        let index = match dir.directory_index(fs) {
            Ok(i) => i,
            Err(e) => {
                files.warn(&format!("{prefix}/"), &e);
                continue;
            }
        };
        let mut entries = index.entries();
        while let Some(entry) = entries.next(fs) {
            let entry: ntfs::NtfsIndexEntry<NtfsFileNameIndex> = match entry {
                Ok(e) => e,
                Err(e) => {
                    files.warn(&format!("{prefix}/"), &e);
                    break;
                }
            };
            let Some(Ok(name)) = entry.key() else {
                continue;
            };
            // Each file is listed under its long name and, often, its 8.3 name too.
            if name.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            let n = name.name().to_string_lossy();
            // The metadata files ($MFT, $LogFile…) hold no user data.
            if n == "." || (prefix.is_empty() && n.starts_with('$')) {
                continue;
            }
            let number = entry.file_reference().file_record_number();
            if !seen.insert(number) {
                continue; // a hard link, or a loop in a corrupt index
            }
            let shown = format!("{prefix}/{n}");
            let file = match entry.to_file(&ntfs, fs) {
                Ok(f) => f,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            if name.is_directory() {
                dirs.push((shown, file));
                continue;
            }
            // The unnamed $DATA stream (alternate streams are left to the raw pass).
            let item = match file.data(fs, "") {
                None => continue,
                Some(Ok(item)) => item,
                Some(Err(e)) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            match item.to_attribute().and_then(|a| a.value(fs)) {
                Ok(v) => {
                    let len = v.len();
                    files.file(&shown, len, &mut v.attach(fs));
                }
                Err(e) => files.warn(&shown, &e),
            }
        }
    }
    Ok(())
}
