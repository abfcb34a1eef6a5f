//! VMDK (monolithicSparse, streamOptimized with compressed grains, flat descriptors) through
//! `vmdk-core`: read-only, no unsafe, checked byte-for-byte against `qemu-img convert` images.
//! A sparse VMDK's allocated ranges are read once from its grain tables, so the raw pass skips
//! the grains never written.

use std::io;
use std::path::{Path, PathBuf};

use super::{BlockReader, Pooled, Seeker};

type Reader = Seeker<vmdk::VmdkFileReader>;

struct Vmdk {
    pool: Pooled<Reader>,
    /// The allocated byte ranges, sorted and merged; `None`: all of the disk may hold data.
    allocated: Option<Vec<(u64, u64)>>,
}

pub fn open(path: &Path) -> Result<Box<dyn BlockReader>, String> {
    let r = vmdk::VmdkFileReader::open_path(path).map_err(|e| e.to_string())?;
    let len = r.virtual_disk_size();
    let allocated = allocated(path, len);
    let path: PathBuf = path.to_path_buf();
    let open = move || {
        vmdk::VmdkFileReader::open_path(&path)
            .map(Seeker)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("vmdk: {e}")))
    };
    Ok(Box::new(Vmdk {
        pool: Pooled::new(Seeker(r), len, Box::new(open)),
        allocated,
    }))
}

impl BlockReader for Vmdk {
    fn len(&self) -> u64 {
        self.pool.len()
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.pool.read_at(buf, off)
    }
    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        match &self.allocated {
            Some(ranges) => super::next_range(ranges, pos, end),
            None => (pos, end),
        }
    }
}

/// The allocated ranges of a sparse VMDK, merged; `None` for a flat one, a huge one, or when
/// the grain tables cannot be read (the whole disk is read then).
fn allocated(path: &Path, len: u64) -> Option<Vec<(u64, u64)>> {
    let mut r = vmdk::VmdkFileReader::open_path(path).ok()?;
    // The crate lists every grain at once (16 bytes each): past 4 Mi grains (256 GiB of 64 KiB
    // grains) that list would outweigh a scan's memory, and the whole disk is read instead.
    let grain = r.info().grain_size_bytes;
    if grain == 0 || len / grain > 4 << 20 {
        return None;
    }
    let mut grains = r.iter_allocated_grains().ok()?;
    // Documented as in order; merging relies on it, and a grain skipped is a key missed.
    grains.sort_unstable_by_key(|g| g.start_lba);
    let mut out: Vec<(u64, u64)> = Vec::new();
    for g in grains {
        let s = g.start_lba.saturating_mul(512);
        let e = s
            .saturating_add(g.sector_count.saturating_mul(512))
            .min(len);
        super::push_merged(&mut out, s, e);
    }
    // Flat extents come back as one grain over the whole disk: nothing to skip.
    (out != [(0, len)]).then_some(out)
}
