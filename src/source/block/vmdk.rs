//! VMDK (monolithicSparse, streamOptimized with compressed grains, flat descriptors) through
//! `vmdk-core`: read-only, no unsafe, checked byte-for-byte against `qemu-img convert` images.
//! A sparse VMDK's allocated ranges are read once from its grain tables, so the raw pass skips
//! the grains never written.

use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BlockReader, Pooled, Seeker, Store, StoreReader};

struct Vmdk<R: Read + Seek + Send> {
    pool: Pooled<Seeker<vmdk::VmdkReader<R>>>,
    /// The allocated byte ranges, sorted and merged; `None`: all of the disk may hold data.
    allocated: Option<Vec<(u64, u64)>>,
}

/// A VMDK file (binary, or a text descriptor naming extent files beside it).
pub fn open(path: &Path) -> Result<Box<dyn BlockReader>, String> {
    let path: PathBuf = path.to_path_buf();
    pooled(move || vmdk::VmdkFileReader::open_path(&path).map_err(|e| e.to_string()))
}

/// A binary VMDK (monolithicSparse, streamOptimized) read from a store (an object in S3).
pub fn open_store(store: Arc<dyn Store>) -> Result<Box<dyn BlockReader>, String> {
    pooled(move || {
        let r = StoreReader::new(store.clone()).map_err(|e| e.to_string())?;
        vmdk::VmdkReader::open(r).map_err(|e| e.to_string())
    })
}

fn pooled<R: Read + Seek + Send + 'static>(
    open: impl Fn() -> Result<vmdk::VmdkReader<R>, String> + Send + Sync + 'static,
) -> Result<Box<dyn BlockReader>, String> {
    let r = open()?;
    let len = r.virtual_disk_size();
    let allocated = open().ok().and_then(|r| allocated(r, len));
    let handle = move || {
        open()
            .map(Seeker)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("vmdk: {e}")))
    };
    Ok(Box::new(Vmdk {
        pool: Pooled::new(Seeker(r), len, Box::new(handle)),
        allocated,
    }))
}

impl<R: Read + Seek + Send> BlockReader for Vmdk<R> {
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
fn allocated<R: Read + Seek>(mut r: vmdk::VmdkReader<R>, len: u64) -> Option<Vec<(u64, u64)>> {
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
