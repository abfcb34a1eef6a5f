//! GPT, read with the `gpt` crate (512-byte logical blocks, as EC2 volumes and disk images
//! use).

use std::sync::Arc;

use super::{sniff, Disk, Part, Slice};

/// The partitions of a GPT disk; `None` when the disk has no valid GPT.
pub(super) fn partitions(disk: &Arc<Disk>, whole: Slice) -> Option<Vec<Part>> {
    let len = disk.len();
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let table = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .open_from_device(whole)
        .ok()?;
    let mut parts = Vec::new();
    for (n, p) in table.partitions() {
        let (Ok(start), Ok(plen)) = (p.bytes_start(lb), p.bytes_len(lb)) else {
            continue;
        };
        parts.push(Part {
            name: format!("p{n}"),
            start,
            len: plen.min(len.saturating_sub(start)),
            missing: (start + plen).saturating_sub(len),
            fs: sniff(disk, start),
            // BIOS boot and Microsoft reserved partitions hold no filesystem.
            expect_fs: p.part_type_guid != gpt::partition_types::BIOS
                && p.part_type_guid != gpt::partition_types::MICROSOFT_RESERVED,
        });
    }
    Some(parts)
}
