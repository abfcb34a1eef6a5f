//! Disk images and block devices: the raw pass. Every byte of the image is streamed through
//! overlapping windows, so keys outside any live file — deleted files, free space, swap,
//! journals — are found and reported with their byte offset. What the disk knows holds no data
//! is skipped (`Disk::data`: holes of sparse files, unallocated qcow2 clusters); the disk is
//! split into one region per thread, each reading a little past its ends so that no key across
//! a boundary is lost or reported twice. A read error is named once and the region goes on
//! from the next MiB.
//!
//! Partition tables and filesystems (paths inside the image) are `volume.rs`; the pipeline
//! places each raw finding in its partition afterwards.

use std::io;
use std::sync::Arc;

use super::disk::{Disk, Slice};
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

pub struct ImageOptions {
    pub threads: usize,
    pub chunk: usize,
    pub overlap: usize,
}

/// Streams every data byte of `disk` to `make()`'s handlers, one per thread.
pub fn raw_pass<F>(
    disk: &Arc<Disk>,
    origin: &Arc<Origin>,
    opts: &ImageOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) where
    F: FnMut(Blob) + Send,
{
    let len = disk.len();
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
            s.spawn(move || region_pass(disk, origin, lo, hi, opts, stats, make));
        }
    });
    stats
        .files
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Scans the data in `[lo, hi)`, reading `overlap` bytes of context on each side.
fn region_pass<F: FnMut(Blob)>(
    disk: &Arc<Disk>,
    origin: &Arc<Origin>,
    lo: u64,
    hi: u64,
    opts: &ImageOptions,
    stats: &Stats,
    make: &(dyn Fn() -> F + Sync),
) {
    let len = disk.len();
    let mut handle = make();
    let mut buf = Vec::new();
    let ctx = opts.overlap as u64;
    let (read_lo, read_hi) = (lo.saturating_sub(ctx), (hi + ctx).min(len));
    let mut pos = read_lo;
    let mut failing = false;
    while pos < read_hi {
        let (start, end) = disk.data(pos, read_hi);
        if start >= read_hi {
            break;
        }
        let mut r = Slice::new(disk.clone(), start, end - start);
        let result = super::fs::stream(
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
        );
        let got = start + r.position();
        // Count each byte once, though regions read into their neighbours.
        let counted = got.min(hi).saturating_sub(start.max(lo));
        stats
            .bytes
            .fetch_add(counted, std::sync::atomic::Ordering::Relaxed);
        let err = match result {
            Err(e) => Some(e),
            Ok(n) if n < end - start => Some(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("image ends at {} of {}", start + n, end),
            )),
            Ok(_) => None,
        };
        if let Some(e) = err {
            // Name the first unreadable place; go on from the next MiB, counting further
            // failures in a row without repeating the message.
            let next = ((got >> 20) + 1) << 20;
            let msg = (!failing).then(|| format!("{origin}: byte {got}: {e}"));
            stats.skip(Skip::Unreadable, msg);
            failing = true;
            pos = next.max(pos + 1);
            continue;
        }
        failing = false;
        pos = end;
    }
}
