//! Where a remote disk's blocks land: side by side in one mapping per run of blocks (an
//! *arena*, 8 MiB of the disk), so that blocks that arrive one request at a time are still one
//! stretch of memory. The raw pass (`image.rs`' `Assembler`) then scans a run of neighbouring
//! blocks as one piece: no copy of the bytes around each joint between blocks, and no rescan
//! of the context on both sides of it (with AWS's 512 KiB blocks and 64 KiB of context, a
//! quarter of every block was copied and scanned a second time).
//!
//! Each block's slot is written once, by the request that fetched it, before anything can see
//! it; then it is handed out as a `Bytes` that owns a *view* of the arena. A view counts on each
//! slot it covers (where slots hold whole pages). When a slot's last view goes, its pages are
//! kept while the pages so kept stay under `DEAD_BYTES`, and go back to the system past that:
//! memory is held for the blocks somebody still holds (as with a buffer a block), not for
//! every arena one of them is in.
//! When an arena's last view goes, its mapping is kept for the next arena (`POOLED` of them):
//! the pages of a new mapping each cost a fault and zeroing on first write (a buffer a block,
//! from malloc, reused the same memory block after block), which took back more than the
//! joins saved.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use memmap2::{MmapMut, MmapRaw, UncheckedAdvice};

/// Bytes of the disk an arena holds.
const ARENA_BYTES: u64 = 8 << 20;
/// Bytes of slots nobody holds whose pages are kept (in arenas still alive).
const DEAD_BYTES: usize = 32 << 20;
/// Mappings of arenas nobody holds kept for new ones.
const POOLED: usize = 4;

/// The arenas of one disk, by the run of blocks each holds.
pub struct Arenas {
    block: u64,
    /// Blocks an arena holds.
    per: u64,
    live: Mutex<HashMap<u64, Weak<Arena>>>,
    pool: Arc<Pool>,
}

/// What the arenas of a disk share: the mappings kept for reuse, and the bytes of dead slots
/// whose pages are kept.
struct Pool {
    maps: Mutex<Vec<MmapRaw>>,
    dead: AtomicUsize,
    /// `DEAD_BYTES` (tests set less).
    dead_max: usize,
}

/// A slot's state.
const FREE: u8 = 0;
const WRITING: u8 = 1;
const PUBLISHED: u8 = 2;

struct Arena {
    map: ManuallyDrop<MmapRaw>,
    /// Slot `k` holds block `first + k`.
    first: u64,
    block: usize,
    state: Box<[AtomicU8]>,
    /// Views alive on each slot: counted only where a slot holds whole pages to give back
    /// (not for blocks smaller than a page, moto's 512 bytes, where a run's view would count on
    /// thousands of slots each time a block joins it).
    views: Box<[AtomicU32]>,
    counted: bool,
    /// Bytes of this arena's dead slots counted in `pool.dead`.
    dead: AtomicUsize,
    pool: Arc<Pool>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.pool
            .dead
            .fetch_sub(self.dead.load(Ordering::Relaxed), Ordering::Relaxed);
        // SAFETY: `map` is not used again.
        let map = unsafe { ManuallyDrop::take(&mut self.map) };
        let mut maps = self.pool.maps.lock().unwrap_or_else(|e| e.into_inner());
        if maps.len() < POOLED {
            maps.push(map);
        }
    }
}

impl Arena {
    fn slots(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        start / self.block..end.div_ceil(self.block)
    }

    /// Slot `k`'s last view is gone, and nothing can read it again (a published slot is never
    /// written again): its pages are kept while the disk's dead slots' are under
    /// `DEAD_BYTES`, else they go.
    fn dead(&self, k: usize) {
        let kept = self.pool.dead.fetch_add(self.block, Ordering::Relaxed);
        if kept + self.block <= self.pool.dead_max {
            self.dead.fetch_add(self.block, Ordering::Relaxed);
            return;
        }
        self.pool.dead.fetch_sub(self.block, Ordering::Relaxed);
        self.release(k);
    }

    /// Lets the pages of slot `k` go: only whole pages of the slot.
    fn release(&self, k: usize) {
        let page = page_size();
        let (s, e) = (k * self.block, (k + 1) * self.block);
        let (s, e) = (s.div_ceil(page) * page, e / page * page);
        if e > s {
            // SAFETY: no view covers the slot (its count is zero, and a view is only made from
            // views that cover what it covers), and it is never written again, so nothing reads
            // or writes these pages; an anonymous private page dropped reads as zeros.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, s, e - s)
            };
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize
}

/// A view of the published slots `[start, end)` of an arena (bytes of the arena): what a
/// `Bytes` handed out owns.
struct View {
    arena: Arc<Arena>,
    start: usize,
    end: usize,
}

impl View {
    /// Counts the view on its slots. The caller makes sure they are published and held by
    /// another view (or that it is the publication).
    fn new(arena: Arc<Arena>, start: usize, end: usize) -> View {
        if arena.counted {
            for k in arena.slots(start, end) {
                arena.views[k].fetch_add(1, Ordering::Relaxed);
            }
        }
        View { arena, start, end }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if !self.arena.counted {
            return;
        }
        for k in self.arena.slots(self.start, self.end) {
            if self.arena.views[k].fetch_sub(1, Ordering::AcqRel) == 1 {
                self.arena.dead(k);
            }
        }
    }
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies in the mapping, and every slot it covers was published: written
        // once before it was handed out (the hand-over orders that write before this read), and
        // never written again; its pages stay until the last view on it goes.
        unsafe {
            std::slice::from_raw_parts(
                self.arena.map.as_ptr().add(self.start),
                self.end - self.start,
            )
        }
    }
}

/// Where one block's body is written as it arrives: its arena slot, or (the slot was taken by
/// an earlier fetch of the same block, the body is longer than a block, or no arena could be
/// mapped) a buffer of its own.
pub struct Landing {
    slot: Option<(Arc<Arena>, usize)>,
    len: usize,
    own: Vec<u8>,
}

impl Landing {
    /// Appends `chunk` to the body.
    pub fn put(&mut self, chunk: &[u8]) {
        if let Some((arena, k)) = &self.slot {
            if self.len + chunk.len() <= arena.block {
                let at = k * arena.block + self.len;
                // SAFETY: this landing claimed the slot (WRITING), so nothing else writes it, and
                // nothing reads it before `finish` publishes it; the range is inside the slot.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        chunk.as_ptr(),
                        arena.map.as_mut_ptr().add(at),
                        chunk.len(),
                    );
                }
                self.len += chunk.len();
                return;
            }
            // Longer than a block: the body goes to a buffer of its own (and is refused for
            // its length); the slot is left for another fetch.
            let (arena, k) = self.slot.take().unwrap();
            let start = k * arena.block;
            // SAFETY: as above; the slot is still this landing's.
            let written =
                unsafe { std::slice::from_raw_parts(arena.map.as_ptr().add(start), self.len) };
            self.own.extend_from_slice(written);
            arena.state[k].store(FREE, Ordering::Release);
        }
        self.own.extend_from_slice(chunk);
        self.len += chunk.len();
    }

    /// The body: a view of the arena (the slot is published, never to be written again), or
    /// the buffer.
    pub fn finish(mut self) -> Bytes {
        match self.slot.take() {
            Some((arena, k)) => {
                let start = k * arena.block;
                arena.state[k].store(PUBLISHED, Ordering::Release);
                Bytes::from_owner(View::new(arena, start, start + self.len))
            }
            None => Bytes::from(std::mem::take(&mut self.own)),
        }
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        // Not finished (the request failed): the slot is free again; nothing saw it.
        if let Some((arena, k)) = self.slot.take() {
            arena.state[k].store(FREE, Ordering::Release);
        }
    }
}

impl Arenas {
    pub fn new(block_size: u64) -> Arenas {
        Arenas::keeping(block_size, DEAD_BYTES)
    }

    /// Arenas that keep the pages of up to `dead_max` bytes of dead slots.
    fn keeping(block_size: u64, dead_max: usize) -> Arenas {
        let block = block_size.max(1);
        Arenas {
            block,
            per: (ARENA_BYTES / block).max(1),
            live: Mutex::new(HashMap::new()),
            pool: Arc::new(Pool {
                maps: Mutex::new(Vec::new()),
                dead: AtomicUsize::new(0),
                dead_max,
            }),
        }
    }

    /// Where block `index`'s body goes.
    pub fn landing(&self, index: u64) -> Landing {
        let own = Landing {
            slot: None,
            len: 0,
            own: Vec::new(),
        };
        let Ok(block) = usize::try_from(self.block) else {
            return own;
        };
        let group = index / self.per;
        let arena = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            match live.get(&group).and_then(Weak::upgrade) {
                Some(a) => a,
                None => {
                    let per = self.per as usize;
                    // A mapping an arena let go of, else a new anonymous one (its pages cost
                    // memory only once written). What a reused one holds is never seen: only
                    // published slots are.
                    let pooled = self
                        .pool
                        .maps
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop();
                    let map = match pooled {
                        Some(m) => m,
                        None => match per.checked_mul(block).map(MmapMut::map_anon) {
                            Some(Ok(m)) => MmapRaw::from(m),
                            _ => return own,
                        },
                    };
                    let a = Arc::new(Arena {
                        map: ManuallyDrop::new(map),
                        first: group * self.per,
                        block,
                        state: (0..per).map(|_| AtomicU8::new(FREE)).collect(),
                        views: (0..per).map(|_| AtomicU32::new(0)).collect(),
                        counted: block >= page_size(),
                        dead: AtomicUsize::new(0),
                        pool: self.pool.clone(),
                    });
                    // Arenas nobody holds any more are forgotten as new ones come.
                    if live.len() >= 4096 {
                        live.retain(|_, w| w.strong_count() > 0);
                    }
                    live.insert(group, Arc::downgrade(&a));
                    a
                }
            }
        };
        let k = (index - arena.first) as usize;
        match arena.state[k].compare_exchange(FREE, WRITING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Landing {
                slot: Some((arena, k)),
                len: 0,
                own: Vec::new(),
            },
            // Written before (a block fetched again): a buffer of its own.
            Err(_) => own,
        }
    }

    /// The arena `b` is a view of, if it is one, with where `b` starts in it: `b` holds the
    /// disk's bytes from `off`.
    fn locate(&self, off: u64, b: &Bytes) -> Option<(Arc<Arena>, usize)> {
        let group = off / self.block / self.per;
        let arena = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&group)
            .and_then(Weak::upgrade)?;
        let start = usize::try_from(off - arena.first * self.block).ok()?;
        let end = start.checked_add(b.len())?;
        // While the arena lives, no other allocation lies inside it: a `Bytes` that points
        // there is a view of it (made from published slots), at the disk's offset if it points
        // at the offset's place.
        (end <= arena.map.len() && std::ptr::eq(b.as_ptr(), arena.map.as_ptr().wrapping_add(start)))
            .then_some((arena, start))
    }

    /// `a` (the disk's bytes from `off`) and `b` (those right after) as one `Bytes`, without a
    /// copy, if they are neighbouring views of one arena.
    pub fn join(&self, off: u64, a: &Bytes, b: &Bytes) -> Option<Bytes> {
        let (arena, start) = self.locate(off, a)?;
        let end = start + a.len();
        if !std::ptr::eq(b.as_ptr(), arena.map.as_ptr().wrapping_add(end))
            || b.len() > arena.map.len() - end
        {
            return None;
        }
        // Both are held while the view is made, so every slot it covers is published and alive.
        Some(Bytes::from_owner(View::new(arena, start, end + b.len())))
    }

    /// `[x, y)` of `a` (the disk's bytes from `off`) as a view of its own, if `a` is a view of
    /// an arena: it keeps only the slots it covers, not all of `a`'s.
    pub fn narrow(&self, off: u64, a: &Bytes, x: u64, y: u64) -> Option<Bytes> {
        debug_assert!(off <= x && x <= y && y <= off + a.len() as u64);
        let (arena, start) = self.locate(off, a)?;
        let s = start + (x - off) as usize;
        Some(Bytes::from_owner(View::new(arena, s, s + (y - x) as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn land(a: &Arenas, i: u64, fill: u8, n: usize) -> Bytes {
        let mut l = a.landing(i);
        l.put(&vec![fill; n / 2]);
        l.put(&vec![fill; n - n / 2]);
        l.finish()
    }

    /// Neighbouring blocks of one arena join without a copy; blocks of two arenas, or not
    /// side by side, or fetched a second time, do not; and the joined bytes are the blocks'.
    #[test]
    fn neighbouring_blocks_join_in_place() {
        let bs = 4096u64;
        let a = Arenas::new(bs);
        let per = ARENA_BYTES / bs;
        let b0 = land(&a, 0, 1, 4096);
        let b1 = land(&a, 1, 2, 4096);
        let b3 = land(&a, 3, 3, 4096);
        let j = a.join(0, &b0, &b1).expect("neighbours join");
        assert_eq!(j.len(), 8192);
        assert_eq!(j.as_ptr(), b0.as_ptr());
        assert!(j[..4096].iter().all(|&x| x == 1) && j[4096..].iter().all(|&x| x == 2));
        assert!(a.join(0, &b0, &b3).is_none(), "not side by side");
        assert!(a.join(4096, &b0, &b1).is_none(), "not at the offset given");
        // A block fetched again lands in a buffer of its own and joins nothing.
        let again = land(&a, 1, 2, 4096);
        assert_ne!(again.as_ptr(), b1.as_ptr());
        assert!(a.join(0, &b0, &again).is_none());
        // The last block of one arena and the first of the next.
        let l = land(&a, per - 1, 4, 4096);
        let f = land(&a, per, 5, 4096);
        assert!(a.join((per - 1) * bs, &l, &f).is_none());
        // Blocks smaller than a page: nothing to give back, so nothing counted; they join.
        let small = Arenas::new(512);
        let (s0, s1) = (land(&small, 0, 6, 512), land(&small, 1, 7, 512));
        let js = small.join(0, &s0, &s1).expect("neighbours join");
        let (arena, _) = small.locate(0, &js).unwrap();
        assert!(arena.views.iter().all(|v| v.load(Ordering::Relaxed) == 0));
        assert_eq!(&js[510..514], &[6, 6, 7, 7]);
        // A buffer from elsewhere is no view.
        let other = Bytes::from(vec![0u8; 4096]);
        assert!(a.join(0, &b0, &other).is_none());
        assert!(a.narrow(0, &other, 0, 10).is_none());
        // A joined view outlives the blocks' own.
        drop((b0, b1));
        let n = a.narrow(0, &j, 4000, 4200).expect("a view of the arena");
        drop(j);
        assert_eq!(&n[..96], &[1u8; 96][..]);
        assert_eq!(&n[96..], &[2u8; 104][..]);
    }

    /// A body longer than a block, or a request that failed, leaves the slot free; a slot whose
    /// views are all gone, past what is kept, gives its pages back (reads as zeros) and is not
    /// written again.
    #[test]
    fn slots_are_written_once_and_let_go() {
        let bs = 2 * page_size() as u64;
        let a = Arenas::keeping(bs, 0);
        let long = land(&a, 0, 7, bs as usize + 1);
        assert_eq!(long.len(), bs as usize + 1);
        assert!(long.iter().all(|&x| x == 7));
        drop(a.landing(0)); // failed: never finished
        let b = land(&a, 0, 8, bs as usize);
        let keep = land(&a, 1, 9, bs as usize); // keeps the arena alive
        let (arena, _) = a.locate(0, &b).expect("in the arena");
        let view = a.narrow(0, &b, 0, 1).unwrap();
        drop(b);
        assert_eq!(arena.views[0].load(Ordering::Relaxed), 1);
        assert_eq!(view[0], 8);
        drop(view);
        assert_eq!(arena.views[0].load(Ordering::Relaxed), 0);
        // SAFETY (test): nothing holds slot 0 any more; read to see the pages went back.
        let first = unsafe { *arena.map.as_ptr() };
        assert_eq!(first, 0, "released pages read as zeros");
        assert_eq!(arena.state[0].load(Ordering::Relaxed), PUBLISHED);
        let again = land(&a, 0, 6, bs as usize);
        assert!(
            a.locate(0, &again).is_none(),
            "a published slot is not written again"
        );
        assert!(keep.iter().all(|&x| x == 9));
    }

    /// Dead slots' pages are kept up to the budget; an arena nobody holds leaves its mapping to
    /// the next, which shows only what is written into it.
    #[test]
    fn dead_slots_are_kept_and_mappings_reused() {
        let bs = 2 * page_size() as u64;
        let per = ARENA_BYTES / bs;
        let a = Arenas::keeping(bs, bs as usize);
        let b0 = land(&a, 0, 1, bs as usize);
        let b1 = land(&a, 1, 2, bs as usize);
        let b2 = land(&a, 2, 3, bs as usize);
        let (arena, _) = a.locate(0, &b0).unwrap();
        let base = arena.map.as_ptr();
        drop((b0, b1));
        // The first dead slot is kept, the second is past the budget.
        assert_eq!(a.pool.dead.load(Ordering::Relaxed), bs as usize);
        // SAFETY (test): nothing holds slots 0 and 1; read to see which pages went back.
        let (s0, s1) = unsafe { (*base, *base.add(bs as usize)) };
        assert_eq!((s0, s1), (1, 0));
        drop((arena, b2));
        assert_eq!(
            a.pool.dead.load(Ordering::Relaxed),
            0,
            "gone with the arena"
        );
        // The next arena (another run of blocks) is the same mapping.
        let n = land(&a, per + 2, 4, bs as usize);
        assert_eq!(n.as_ptr(), base.wrapping_add(2 * bs as usize));
        assert!(n.iter().all(|&x| x == 4));
        let m = land(&a, per + 3, 5, 10);
        assert_eq!(&m[..], &[5u8; 10][..], "a short body shows only itself");
        assert!(a.join((per + 2) * bs, &n, &m).is_some());
    }
}
