//! Sources turn a place into blobs. Each source counts what it read and what it skipped.
//! Folders show the layers a byte passes through on its way out of a disk.
//!
//! | module | what it turns into blobs |
//! |---|---|
//! | `tree` | the working tree (files and directories) |
//! | `git` | git history and the staged index |
//! | `archive` | archives and compressed streams inside any of the others |
//! | `block` | block devices and containers: raw files, qcow2, VHD, VHDX, VMDK, EBS snapshots (one reader trait) |
//! | `partition` | GPT and MBR partition tables on a block reader |
//! | `fs` | ext4, XFS, FAT and NTFS walkers: files with paths, on a partition |
//! | `image` | a whole disk: its volumes walked and its raw pass |
//! | `snapshot` | which EBS snapshots to read (EC2 discovery), and whose machine each was |
//! | `s3` | which S3 objects to read (buckets, keys, versions), streamed or by ranges |
//! | `gitcopy` | git repositories inside filesystems and archives, copied for gix to read |
//! | `window` | big inputs cut into overlapping windows (shared by all) |

pub mod archive;
pub mod block;
pub mod fs;
pub mod git;
pub mod gitcopy;
pub mod image;
pub mod partition;
pub mod s3;
#[cfg(feature = "aws")]
pub mod snapshot;
pub mod tree;
pub mod window;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Why an input was not (fully) scanned. `is_error` ones make the scan incomplete (exit 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Could not be opened or read (permissions, I/O error, vanished).
    Unreadable,
    /// A symbolic link, not followed without `--follow`.
    Symlink,
    /// A FIFO, socket or device: reading it could block or never end.
    Special,
    /// Excluded by a path allowlist in `.keyhound.toml`.
    Allowlisted,
    /// An archive that could not be read to its end (what was read is scanned).
    CorruptArchive,
    /// An archive past its expansion budget (a decompression bomb?).
    ArchiveBudget,
    /// Looked like an archive but would not open: its raw bytes were scanned instead.
    ArchiveAsBytes,
    /// A partition whose files could not be walked (unknown, unsupported, encrypted or
    /// corrupt filesystem): only its raw bytes were scanned.
    Filesystem,
    /// An object in S3 in an archive storage class (Glacier Flexible Retrieval, Deep
    /// Archive): a GET needs a restore first. Counted by class in the warnings.
    Archived,
    /// An object over `--max-object-mib` (and not a disk image).
    TooLarge,
    /// An object key left out by `--include`/`--exclude`.
    Excluded,
    /// A noncurrent version of an object (or one behind a delete marker), without
    /// `--versions`.
    Noncurrent,
    /// A git blob stored as a delta past the size it is rebuilt in memory up to: not read.
    OverMemoryBound,
    /// A file in a filesystem that claims more bytes than its volume holds (sparse, or a
    /// damaged inode): read up to the volume's length; the raw pass covers the rest.
    LongerThanVolume,
}

impl Skip {
    /// Every reason, for reading a report's counts back (`keyhound merge`).
    pub const ALL: &'static [Skip] = &[
        Skip::Unreadable,
        Skip::Symlink,
        Skip::Special,
        Skip::Allowlisted,
        Skip::CorruptArchive,
        Skip::ArchiveBudget,
        Skip::ArchiveAsBytes,
        Skip::Filesystem,
        Skip::Archived,
        Skip::TooLarge,
        Skip::Excluded,
        Skip::Noncurrent,
        Skip::OverMemoryBound,
        Skip::LongerThanVolume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Unreadable => "unreadable",
            Skip::Symlink => "symlink not followed",
            Skip::Special => "not a regular file",
            Skip::Allowlisted => "allowlisted path",
            Skip::CorruptArchive => "corrupt archive",
            Skip::ArchiveBudget => "archive over budget",
            Skip::ArchiveAsBytes => "unopenable archive scanned as bytes",
            Skip::Filesystem => "filesystem not walked (raw pass only)",
            Skip::Archived => "in an archive storage class (not restored)",
            Skip::TooLarge => "over --max-object-mib",
            Skip::Excluded => "excluded by --include/--exclude",
            Skip::Noncurrent => "noncurrent version (read with --versions)",
            Skip::OverMemoryBound => "over the memory bound (not read)",
            Skip::LongerThanVolume => "file longer than its volume (the rest is the raw pass's)",
        }
    }
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Skip::Unreadable
                | Skip::CorruptArchive
                | Skip::ArchiveBudget
                | Skip::Filesystem
                | Skip::OverMemoryBound
        )
    }
}

/// Counters shared by the scanning threads.
#[derive(Default)]
pub struct Stats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Git history: commits walked.
    pub commits: AtomicU64,
    /// Remote disks (EBS snapshots), for the progress line.
    pub remote: RemoteProgress,
    /// Objects in S3, for the progress line.
    pub objects: ObjectProgress,
    skipped: Mutex<BTreeMap<Skip, u64>>,
    warnings: Mutex<Vec<String>>,
}

/// How far the reading of remote disks is.
#[derive(Default)]
pub struct RemoteProgress {
    pub disks: AtomicU64,
    pub disks_done: AtomicU64,
    /// Written blocks of all the disks, and those fetched so far (each counted once).
    pub blocks: AtomicU64,
    pub fetched: AtomicU64,
    pub bytes: AtomicU64,
}

/// How far the reading of objects (S3) is.
#[derive(Default)]
pub struct ObjectProgress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    /// Bytes of the objects to read, and of those read.
    pub bytes_total: AtomicU64,
    pub bytes: AtomicU64,
}

/// How many warnings are kept for the summary; the count goes on past it.
const MAX_WARNINGS: usize = 1000;

impl Stats {
    pub fn read(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a skipped input; errors also keep a message naming it.
    pub fn skip(&self, why: Skip, message: Option<String>) {
        *self.skipped.lock().unwrap().entry(why).or_default() += 1;
        if let Some(m) = message {
            let mut w = self.warnings.lock().unwrap();
            if w.len() < MAX_WARNINGS {
                w.push(m);
            }
        }
    }

    /// Counts `n` inputs skipped for one reason, without a message.
    pub fn skip_n(&self, why: Skip, n: u64) {
        if n > 0 {
            *self.skipped.lock().unwrap().entry(why).or_default() += n;
        }
    }

    pub fn skipped(&self) -> BTreeMap<Skip, u64> {
        self.skipped.lock().unwrap().clone()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }

    pub fn incomplete(&self) -> bool {
        self.skipped.lock().unwrap().keys().any(|s| s.is_error())
    }
}
