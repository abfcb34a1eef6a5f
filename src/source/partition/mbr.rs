//! MBR with extended and logical partitions, read with `mbrman`.

use std::sync::Arc;

use super::{sniff, Disk, Part, Slice};

/// The partitions of an MBR disk, logical ones numbered from 5 as Linux does; `None` when the
/// disk has no MBR.
pub(super) fn partitions(disk: &Arc<Disk>, mut whole: Slice) -> Option<Vec<Part>> {
    // A used entry starting at sector 0 would overlap the MBR itself: no disk has one, and
    // mbrman 0.6.1 panics when every used entry starts there (its alignment search finds no
    // divisor; found by fuzzing `partition`). Such a table is not a partition table.
    let mut first = [0u8; 512];
    whole.read_exact_at(&mut first, 0).ok()?;
    let at_zero = (0..4).any(|i| {
        let e = &first[446 + 16 * i..462 + 16 * i];
        e[4] != 0 && e[8..12] == [0, 0, 0, 0]
    });
    if at_zero {
        return None;
    }
    // Any other panic of the crate on a hostile table costs the table, not the scan.
    let mbr = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mbrman::MBR::read_from(&mut whole, 512)
    }))
    .ok()?
    .ok()?;
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
