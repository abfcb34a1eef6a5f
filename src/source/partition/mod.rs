//! Partition tables: GPT (`gpt.rs`, with the `gpt` crate) and MBR with extended and logical
//! partitions (`mbr.rs`, with `mbrman`), read from any block reader. Each partition's
//! filesystem is sniffed from its superblock (`fs::sniff`); a disk without a table that holds a
//! filesystem is one volume, `disk`. LVM2 physical volumes on those partitions hold logical
//! volumes of their own (`lvm.rs`).

use std::sync::Arc;

use super::block::{Disk, Slice};
use super::fs::{sniff, FsKind};

mod gpt;
pub mod lvm;
mod mbr;

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

/// The partitions of the disk: GPT first (its protective MBR would read as one partition),
/// then MBR; none when the disk has no partition table.
pub fn partitions(disk: &Arc<Disk>) -> Vec<Part> {
    let whole = || Slice::new(disk.clone(), 0, disk.len());
    gpt::partitions(disk, whole())
        .or_else(|| mbr::partitions(disk, whole()))
        .unwrap_or_default()
}

/// The volumes of a disk: its partitions, or the whole disk when it is a bare filesystem.
pub fn volumes(disk: &Arc<Disk>) -> Vec<Part> {
    match partitions(disk) {
        p if !p.is_empty() => p,
        _ => sniff(disk, 0)
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
    }
}
