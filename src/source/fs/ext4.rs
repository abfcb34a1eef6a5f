//! ext4 (and ext2/3) through `ext4-view`, files and directories opened from their entries by
//! inode.

use super::{Blob, FileScanner, Slice};

/// The inode of an ext4 filesystem's root directory.
const EXT4_ROOT_INODE: u32 = 2;

pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<(), String> {
    if let Some(why) = implausible_superblock(&slice) {
        return Err(format!("ext4: {why}"));
    }
    let fs = ext4_view::Ext4::load(Box::new(crate::source::block::ReadAhead::new(slice)))
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
                // Another shard's small file is not opened: its inode's size, read unchecked,
                // says so (checking every inode was a fifth of a shard's walk). Where the size
                // cannot be read, the file is opened, and the error named by its shard.
                if entry
                    .size_unchecked()
                    .is_ok_and(|len| !files.wants(&shown, len))
                {
                    continue;
                }
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

/// ext4's largest block size, 64 KiB, as `s_log_block_size` (the size is 1 KiB shifted by it).
const MAX_LOG_BLOCK_SIZE: u32 = 6;

/// Why the superblock cannot be, if it cannot, where ext4-view would allocate by it first:
/// - a block size past ext4's 64 KiB: ext4-view takes any power of two up to 2 GiB and keeps
///   eight blocks in its cache, allocated up front, so a 2 KiB input claiming 16 MiB blocks
///   (found by fuzzing `fs_ext4`) took 144 MB, and 2 GiB blocks would ask for 16 GiB;
/// - block groups whose descriptors would not fit on the volume: ext4-view sets room aside for
///   every descriptor before it reads the first, so a superblock claiming a billion groups (58
///   GB asked for by a 3 KiB input, also found by fuzzing) ended the process on a failed
///   allocation.
///
/// The fields are the ones ext4-view reads, at the offsets of the ext4 on-disk format
/// (superblock at byte 1024).
fn implausible_superblock(slice: &Slice) -> Option<String> {
    let mut sb = [0u8; 1024];
    slice.read_exact_at(&mut sb, 1024).ok()?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let log_block_size = u32_at(0x18);
    if log_block_size > MAX_LOG_BLOCK_SIZE {
        return Some(format!(
            "the superblock claims blocks of 2^{} bytes, past ext4's 64 KiB (damaged?): its \
             files are not walked",
            u64::from(log_block_size) + 10
        ));
    }
    let is_64bit = u32_at(0x60) & 0x80 != 0;
    // As ext4-view reads it: the high half whatever the 64-bit feature says.
    let blocks = u64::from(u32_at(0x4)) | u64::from(u32_at(0x150)) << 32;
    let per_group = u64::from(u32_at(0x20));
    // Damage of other kinds is ext4-view's to name.
    let data_blocks = blocks.checked_sub(u64::from(u32_at(0x14)))?;
    let groups = data_blocks.checked_div(per_group)? + u64::from(data_blocks % per_group != 0);
    let desc = if is_64bit {
        u64::from(u16::from_le_bytes([sb[0xFE], sb[0xFF]])).max(64)
    } else {
        32
    };
    (groups.saturating_mul(desc) > slice.size()).then(|| {
        format!(
            "the superblock claims {groups} block groups, whose descriptors ({desc} bytes each) \
             cannot fit on a volume of {} bytes (damaged?): its files are not walked",
            slice.size()
        )
    })
}
