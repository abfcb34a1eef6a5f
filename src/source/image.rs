//! Disk images and block devices: the raw pass. Every byte of the image is streamed through
//! overlapping windows, so keys outside any live file — deleted files, free space, swap,
//! journals — are found and reported with their byte offset. Holes of sparse images are skipped
//! (`SEEK_DATA`/`SEEK_HOLE`); the image is split into one region per thread, each reading a
//! little past its ends so that no key across a boundary is lost or reported twice.
//!
//! Partition tables and filesystems (paths inside the image) are `volume.rs`; the pipeline
//! places each raw finding in its partition afterwards.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

/// Size of a regular file or block device.
fn size(f: &mut File) -> io::Result<u64> {
    let m = f.metadata()?;
    if m.file_type().is_block_device() {
        let end = f.seek(SeekFrom::End(0))?;
        f.seek(SeekFrom::Start(0))?;
        Ok(end)
    } else {
        Ok(m.len())
    }
}

/// The next range holding data at or after `pos` (before `end`), skipping holes. Where the
/// filesystem cannot say, everything is data.
fn next_data(f: &File, pos: u64, end: u64) -> (u64, u64) {
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a descriptor this File owns; only the offset changes, and every read
    // below seeks explicitly first.
    let start = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
    if start < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => (end, end), // no data after pos
            _ => (pos, end),                 // not supported: read it all
        };
    }
    let start = (start as u64).min(end);
    let hole = unsafe { libc::lseek(fd, start as libc::off_t, libc::SEEK_HOLE) };
    let stop = if hole < 0 {
        end
    } else {
        (hole as u64).min(end)
    };
    (start, stop.max(start))
}

pub struct ImageOptions {
    pub threads: usize,
    pub chunk: usize,
    pub overlap: usize,
}

/// Streams every data byte of `path` to `make()`'s handlers, one per thread. Returns the size.
pub fn raw_pass<F>(
    path: &Path,
    origin: &Arc<Origin>,
    opts: &ImageOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) -> io::Result<u64>
where
    F: FnMut(Blob) + Send,
{
    let mut f = File::open(path)?;
    let len = size(&mut f)?;
    let threads = opts.threads.max(1) as u64;
    // Regions of whole MiB, so windows stay aligned on the device's blocks.
    let region = (len.div_ceil(threads)).div_ceil(1 << 20) << 20;
    let region = region.max(1 << 20);
    std::thread::scope(|s| {
        for k in 0..threads {
            let (lo, hi) = (k * region, ((k + 1) * region).min(len));
            if lo >= hi {
                continue;
            }
            s.spawn(move || {
                if let Err(e) = region_pass(path, origin, lo, hi, len, opts, stats, make) {
                    stats.skip(
                        Skip::Unreadable,
                        Some(format!("{origin}: bytes {lo}..{hi}: {e}")),
                    );
                }
            });
        }
    });
    stats
        .files
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(len)
}

/// Scans the data in `[lo, hi)`, reading `overlap` bytes of context on each side.
#[allow(clippy::too_many_arguments)]
fn region_pass<F: FnMut(Blob)>(
    path: &Path,
    origin: &Arc<Origin>,
    lo: u64,
    hi: u64,
    len: u64,
    opts: &ImageOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) -> io::Result<()> {
    let mut f = File::open(path)?;
    let mut handle = make();
    let mut buf = Vec::new();
    let ctx = opts.overlap as u64;
    let (read_lo, read_hi) = (lo.saturating_sub(ctx), (hi + ctx).min(len));
    let mut pos = read_lo;
    while pos < read_hi {
        let (start, end) = next_data(&f, pos, read_hi);
        if start >= read_hi {
            break;
        }
        f.seek(SeekFrom::Start(start))?;
        let mut r = (&f).take(end - start);
        let n = super::fs::stream(
            &mut r,
            origin,
            opts.chunk,
            opts.overlap,
            &mut buf,
            &mut |mut b: Blob| {
                // Whole-image offsets; own only what lies in [lo, hi).
                b.offset += start;
                let own_lo = lo.saturating_sub(b.offset) as usize;
                let own_hi = hi.saturating_sub(b.offset).min(b.data.len() as u64) as usize;
                b.own = b.own.start.max(own_lo)..b.own.end.min(own_hi);
                if !b.own.is_empty() {
                    handle(b);
                }
            },
        )?;
        // Count each byte once, though regions read into their neighbours.
        let counted = end.min(hi).saturating_sub(start.max(lo));
        stats
            .bytes
            .fetch_add(counted, std::sync::atomic::Ordering::Relaxed);
        if n < end - start {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("image ends at {} of {}", start + n, end),
            ));
        }
        pos = end;
    }
    Ok(())
}
