//! MBR with extended and logical partitions, read with `mbrman`.

use std::sync::Arc;

use super::{sniff, Disk, Part, Slice};

/// The partitions of an MBR disk, logical ones numbered from 5 as Linux does; `None` when the
/// disk has no MBR.
pub(super) fn partitions(disk: &Arc<Disk>, mut whole: Slice) -> Option<Vec<Part>> {
    let mbr = mbrman::MBR::read_from(&mut whole, 512).ok()?;
    let mut parts = Vec::new();
    for (n, p) in mbr.iter() {
        if !p.is_used() || p.is_extended() {
            continue;
        }
        parts.push(part(n, p.starting_lba, p.sectors, disk));
    }
    for (i, l) in mbr.logical_partitions.iter().enumerate() {
        let p = &l.partition;
        parts.push(part(5 + i, p.starting_lba, p.sectors, disk));
    }
    Some(parts)
}

fn part(n: usize, lba: u32, sectors: u32, disk: &Disk) -> Part {
    let len = disk.len();
    let start = lba as u64 * 512;
    Part {
        name: format!("p{n}"),
        start,
        len: (sectors as u64 * 512).min(len.saturating_sub(start)),
        missing: (start + sectors as u64 * 512).saturating_sub(len),
        fs: sniff(disk, start),
        expect_fs: true,
    }
}
