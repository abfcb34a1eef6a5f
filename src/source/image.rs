//! Disk images and block devices: the raw pass. Every byte of the image is streamed through
//! overlapping windows, so keys outside any live file — deleted files, free space, swap,
//! journals — are found and reported with their byte offset. What the disk knows holds no data
//! is skipped (`Disk::data`: holes of sparse files, unallocated VMDK grains and qcow2 clusters). The disk is cut
//! into units of `UNIT` bytes that the threads take in turn as they become free (so a thread
//! with easy bytes does not sit idle while another finishes a hard half), each unit read a
//! little past its ends so that no key across a boundary is lost or reported twice. A read
//! error is named once and the scan goes on from the next MiB.
//!
//! Partition tables and filesystems (paths inside the image) are `volume.rs`; the pipeline
//! places each raw finding in its partition afterwards.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

use super::disk::{Disk, Slice};
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

pub struct ImageOptions {
    pub threads: usize,
    pub chunk: usize,
    pub overlap: usize,
    /// Scan raw image files from a map of the page cache instead of reading them (`Disk::map`).
    pub mmap: bool,
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
    let map = if opts.mmap { disk.map() } else { None };
    let map = map.as_ref();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                let mut w = Worker {
                    handle: make(),
                    buf: Vec::new(),
                    failing: false,
                };
                loop {
                    let lo = next.fetch_add(UNIT, Ordering::Relaxed);
                    if lo >= len {
                        break;
                    }
                    let hi = (lo + UNIT).min(len);
                    unit_pass(disk, map, origin, lo, hi, opts, stats, &mut w);
                }
            });
        }
    });
    stats.files.fetch_add(1, Ordering::Relaxed);
}

/// Bytes of the disk a thread takes at a time: small enough that threads finish together, big
/// enough that the context read past each end (`overlap`, 64 KiB) costs little. Whole MiB, so
/// windows stay aligned on the device's blocks.
const UNIT: u64 = 32 << 20;

/// A thread's state across the units it scans.
struct Worker<F> {
    handle: F,
    buf: Vec<u8>,
    /// The last read failed: further failures in a row are counted, not named again.
    failing: bool,
}

/// Scans the data in `[lo, hi)`, reading `overlap` bytes of context on each side: from `map`
/// when the image is mapped, else read through `disk`.
#[allow(clippy::too_many_arguments)]
fn unit_pass<F: FnMut(Blob)>(
    disk: &Arc<Disk>,
    map: Option<&Mmap>,
    origin: &Arc<Origin>,
    lo: u64,
    hi: u64,
    opts: &ImageOptions,
    stats: &Stats,
    w: &mut Worker<F>,
) {
    let len = disk.len();
    let Worker {
        handle,
        buf,
        failing,
    } = w;
    let ctx = opts.overlap as u64;
    let (read_lo, read_hi) = (lo.saturating_sub(ctx), (hi + ctx).min(len));
    let mut pos = read_lo;
    // Count each byte once, though units read into their neighbours.
    let count = |from: u64, to: u64| {
        let n = to.min(hi).saturating_sub(from.max(lo));
        stats.bytes.fetch_add(n, Ordering::Relaxed);
    };
    // Given a blob at its whole-image offset: own only what lies in [lo, hi).
    let mut own = |mut b: Blob| {
        let own_lo = lo.saturating_sub(b.offset) as usize;
        let own_hi = hi.saturating_sub(b.offset).min(b.data.len() as u64) as usize;
        b.own = b.own.start.max(own_lo)..b.own.end.min(own_hi);
        if !b.own.is_empty() {
            handle(b);
        }
    };
    while pos < read_hi {
        let (start, end) = disk.data(pos, read_hi);
        if start >= read_hi {
            break;
        }
        if let Some(map) = map {
            let mut done = start;
            super::fs::windows(
                &map[start as usize..end as usize],
                origin,
                start,
                opts.chunk,
                opts.overlap,
                &mut |b: Blob| {
                    let next = b.offset + b.own.end.saturating_sub(opts.overlap) as u64;
                    own(b);
                    release(map, &mut done, next, false);
                },
            );
            release(map, &mut done, end, true);
            count(start, end);
            pos = end;
            continue;
        }
        let mut r = Slice::new(disk.clone(), start, end - start);
        let result = super::fs::stream(
            &mut r,
            origin,
            opts.chunk,
            opts.overlap,
            buf,
            &mut |mut b: Blob| {
                b.offset += start;
                own(b)
            },
        );
        let got = start + r.position();
        count(start, got);
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
            let msg = (!*failing).then(|| format!("{origin}: byte {got}: {e}"));
            stats.skip(Skip::Unreadable, msg);
            *failing = true;
            pos = next.max(pos + 1);
            continue;
        }
        *failing = false;
        pos = end;
    }
}

/// Unmaps the pages of `map` in `[*done, to)` that the scan has passed (at least 2 MiB at a
/// time, all of them when `last`): without this, every page of a mapped image read so far would
/// count in the process's resident memory. The page cache keeps them; a later read (a
/// neighbouring unit's context) maps them again.
fn release(map: &Mmap, done: &mut u64, to: u64, last: bool) {
    // SAFETY: sysconf has no preconditions.
    let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64;
    let from = *done & !(page - 1);
    let to = if last {
        to.div_ceil(page) * page
    } else {
        to & !(page - 1)
    }
    .min(map.len() as u64);
    if to > from && (last || to - from >= 2 << 20) {
        // SAFETY: the map is read-only and shared, so dropping its pages loses nothing: the
        // next access maps the same page-cache page again. No reference into the range is used
        // after this (blobs before `to` are done), and one would read the same bytes anyway.
        let _ = unsafe {
            map.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                from as usize,
                (to - from) as usize,
            )
        };
        *done = to;
    }
}
