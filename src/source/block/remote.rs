//! A disk whose blocks are fetched over the network (an EBS snapshot through the EBS direct
//! APIs; later a disk image in S3 through ranged GETs), where every request costs time and
//! money: each written block is fetched **once** per scan.
//!
//! - Reads (`read_at`, from the partition tables and filesystem walkers) fetch the blocks they
//!   touch; each read also asks for the next written blocks nobody fetched yet (read-ahead, in
//!   the background: the read waits only for its own blocks), and all are kept in a bounded
//!   cache (`cache_bytes`, `BlockCache`: the blocks the walk has read all of go first, then
//!   the least recently used); a block another request is fetching is waited for, not asked
//!   twice.
//!   Unwritten blocks read as zeros without a request.
//! - Every block fetched for the first time is also handed to the raw pass (`tap`), so the raw
//!   pass never asks for a block the walk already read. After the walk, `sweep` fetches the
//!   written blocks nobody asked for, in order, and hands them over too.
//!
//! The walk runs first and the sweep after it, rather than both at once: at once, the sweep's
//! blocks would push the walk's out of the cache (and the walk would ask for them again). What
//! is asked twice is only a block the walk itself needs again after the cache let it go; the
//! summary counts those (`refetched`).

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::runtime::RuntimeFlavor;

use super::BlockReader;

/// Where the blocks come from.
pub trait Fetch: Send + Sync {
    /// Size of the disk in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes in a block (512 KiB on AWS; whatever the service reports).
    fn block_size(&self) -> u64;
    /// The indices of the blocks that were written, sorted; the others read as zeros.
    fn written(&self) -> &[u64];
    /// Block `index`, checked (its length and checksum): `block_size` bytes.
    fn fetch(&self, index: u64) -> BoxFuture<'_, Result<Bytes, FetchError>>;
    /// Where `fetch` lands blocks side by side, if it does (`arena.rs`): the raw pass joins
    /// neighbours there without a copy.
    fn arenas(&self) -> Option<&super::arena::Arenas> {
        None
    }
}

/// Why a block could not be had.
#[derive(Clone, Debug)]
pub struct FetchError {
    pub message: String,
    /// No block of this disk can be had (access denied, the disk is gone): nothing more is
    /// asked for.
    pub whole_disk: bool,
}

impl FetchError {
    pub fn block(message: String) -> FetchError {
        FetchError {
            message,
            whole_disk: false,
        }
    }
}

/// A block's bytes, or why it could not be had.
type BlockResult = Result<Bytes, String>;

/// A fetched block on its way to the raw pass: its byte offset on the disk and its bytes.
pub type Fetched = (u64, Bytes);

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Requests in flight at once for this disk.
    pub concurrency: usize,
    /// Bytes of blocks the cache keeps for the walk.
    pub cache_bytes: u64,
}

/// The blocks the walk fetched, at most `cap` of them. When one must go, it is the least
/// recently used of those the walk has read every part of (a file's data, read through once),
/// and only if there is none, the least recently used of the others (metadata such as inode
/// tables, read a piece at a time in bursts far apart, and blocks read ahead). A plain LRU lets
/// the metadata go between bursts. On the 2 GiB bench volume (1,596 written blocks), the
/// blocks fetched twice went from 79 to none with 128 MiB (64 MiB: 122 to 1; 16 MiB: 126 to
/// 29); replaying its walk's 10,519 reads, an oracle that knows every next read fetches none
/// twice even with 32 MiB.
struct BlockCache {
    /// Blocks some part of which the walk has not read, with which 64ths of them it has.
    fresh: lru::LruCache<u64, (Bytes, u64)>,
    /// Blocks the walk has read all of.
    read: lru::LruCache<u64, Bytes>,
    cap: usize,
}

impl BlockCache {
    fn new(cap: usize) -> BlockCache {
        BlockCache {
            fresh: lru::LruCache::unbounded(),
            read: lru::LruCache::unbounded(),
            cap: cap.max(1),
        }
    }

    fn get(&mut self, i: u64) -> Option<Bytes> {
        match self.fresh.get(&i) {
            Some((d, _)) => Some(d.clone()),
            None => self.read.get(&i).cloned(),
        }
    }

    fn put(&mut self, i: u64, data: Bytes) {
        match self.fresh.get_mut(&i) {
            Some(e) => e.0 = data,
            None if self.read.contains(&i) => {
                self.read.put(i, data);
            }
            None => {
                self.fresh.put(i, (data, 0));
            }
        }
        while self.fresh.len() + self.read.len() > self.cap {
            if self.read.pop_lru().is_none() && self.fresh.pop_lru().is_none() {
                break;
            }
        }
    }

    /// The walk read bytes `[lo, hi)` of block `i`, whose length is `len`.
    fn mark(&mut self, i: u64, lo: u64, hi: u64, len: u64) {
        if hi <= lo || len == 0 {
            return;
        }
        let Some(e) = self.fresh.peek_mut(&i) else {
            return;
        };
        let part = len.div_ceil(64);
        let (a, b) = (lo / part, (hi - 1).min(len - 1) / part);
        e.1 |= (u64::MAX >> (63 - b)) & (u64::MAX << a);
        let parts = len.div_ceil(part);
        if e.1 == u64::MAX >> (64 - parts) {
            if let Some((d, _)) = self.fresh.pop(&i) {
                self.read.put(i, d);
            }
        }
    }
}

impl Default for BlockCache {
    fn default() -> BlockCache {
        BlockCache::new(16)
    }
}

#[derive(Default)]
struct State {
    cache: BlockCache,
    /// Blocks fetched at least once (handed to the raw pass).
    seen: HashSet<u64>,
    in_flight: HashSet<u64>,
    /// Blocks that could not be fetched, with why: not asked again.
    failed: std::collections::HashMap<u64, String>,
    /// Why no block of the disk can be had, once a request said so.
    broken: Option<String>,
    /// Blocks fetched with no tap to take them and too many to hold: not seen, so that the
    /// sweep fetches them again for the raw pass.
    forgotten: HashSet<u64>,
    /// The block the last read began in, and whether reads have been going down the disk:
    /// read-ahead follows them (`Remote::blocks`).
    last_read: Option<u64>,
    downward: bool,
}

/// Where first-time blocks go: the raw pass's channel, or, until there is one, held (up to
/// `max_held` bytes) for `set_tap` to hand over.
#[derive(Default)]
struct Tap {
    tx: Option<SyncSender<Fetched>>,
    held: Vec<Fetched>,
    held_bytes: u64,
    max_held: u64,
}

/// Bytes of first-time blocks held for the raw pass while it has no tap yet: what reading a
/// disk's format, partition table and their read-ahead fetches (64 of EBS's 512 KiB blocks).
const UNTAPPED_BYTES: u64 = 32 << 20;

/// What a remote disk's reads cost, for the summary.
#[derive(Default)]
pub struct Counters {
    /// Requests for blocks that succeeded.
    pub fetched: AtomicU64,
    /// Of those, blocks fetched a second time (the cache had let them go).
    pub refetched: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct Remote {
    inner: Arc<Inner>,
    rt: tokio::runtime::Handle,
    opts: Options,
    /// The written byte ranges, merged.
    ranges: Vec<(u64, u64)>,
    /// Blocks in a read's round of requests, with those it reads ahead: `concurrency`, and at
    /// most a sixteenth of the cache's blocks. A round's read-ahead must outlive the rounds
    /// that come before the walk gets to it. With a plain LRU, replaying a walk of the 2 GiB
    /// bench volume against the cache, the blocks fetched twice were, by read-ahead: with
    /// 128 MiB, 32: 152, 16: 79, 8: 39; with 64 MiB, 32: 304, 8: 122. With `BlockCache`, in
    /// a replay of the same walk: with 128 MiB, 32: 2, 16: 1, 8: 1; with 64 MiB, 32: 129,
    /// 16: 43, 8: 3.
    read_ahead: usize,
    /// Whether read-ahead runs in the background (its requests settled by their own tasks) or
    /// in a read's round of requests (a current-thread runtime runs tasks only inside its own
    /// `block_on`, so there nothing would settle them while a read waits).
    background: bool,
}

/// What a disk's reads share with the requests in flight, which settle their blocks themselves.
pub struct Inner {
    src: Arc<dyn Fetch>,
    state: Mutex<State>,
    /// Notified whenever a request settles.
    done: Condvar,
    tap: Mutex<Tap>,
    pub counters: Counters,
    /// Where first fetches are counted for the progress line.
    progress: std::sync::OnceLock<Arc<crate::source::Stats>>,
}

impl std::ops::Deref for Remote {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Remote {
    pub fn new(src: Arc<dyn Fetch>, rt: tokio::runtime::Handle, opts: Options) -> Remote {
        let bs = src.block_size();
        let len = src.len();
        let mut ranges = Vec::new();
        for &i in src.written() {
            let s = i * bs;
            super::push_merged(&mut ranges, s.min(len), (s + bs).min(len));
        }
        let blocks = (opts.cache_bytes / bs.max(1)).max(16) as usize;
        let read_ahead = opts.concurrency.min(blocks / 16).max(1);
        let state = State {
            cache: BlockCache::new(blocks),
            ..Default::default()
        };
        let background = rt.runtime_flavor() != RuntimeFlavor::CurrentThread;
        Remote {
            inner: Arc::new(Inner {
                src,
                state: Mutex::new(state),
                done: Condvar::new(),
                tap: Mutex::new(Tap {
                    max_held: UNTAPPED_BYTES,
                    ..Default::default()
                }),
                counters: Counters::default(),
                progress: Default::default(),
            }),
            rt,
            opts,
            ranges,
            read_ahead,
            background,
        }
    }

    /// Counts each block's first fetch in `stats.remote` too.
    pub fn reporting(self, stats: Arc<crate::source::Stats>) -> Remote {
        let _ = self.inner.progress.set(stats);
        self
    }

    /// Written bytes (what a full read costs).
    pub fn written_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }

    /// Where the blocks land side by side, if they do.
    pub fn arenas(&self) -> Option<&super::arena::Arenas> {
        self.src.arenas()
    }

    /// The written byte ranges, merged.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// From now on, every block fetched for the first time is also sent here. Returns the
    /// blocks fetched for the first time while there was no tap (a disk's format and partition
    /// table read before its scan), which are the raw pass's too.
    pub fn set_tap(&self, tx: Option<SyncSender<Fetched>>) -> Vec<Fetched> {
        let mut tap = self.tap.lock().unwrap();
        tap.tx = tx;
        tap.held_bytes = 0;
        std::mem::take(&mut tap.held)
    }

    /// Why no block of the disk can be had, if a request said so; and how many written
    /// blocks were never read.
    pub fn broken(&self) -> Option<(String, u64)> {
        let st = self.state.lock().unwrap();
        let unread = (self.src.written().len() - st.seen.len()) as u64;
        st.broken.clone().map(|b| (b, unread))
    }

    /// Blocks that could not be fetched, with why.
    pub fn failed(&self) -> Vec<(u64, String)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .failed
            .clone()
            .into_iter()
            .collect();
        v.sort();
        v
    }

    fn is_written(&self, index: u64) -> bool {
        self.src.written().binary_search(&index).is_ok()
    }

    /// Fetches `indices` (at most `concurrency` at once), each a first time or again; returns
    /// each block's bytes or error. Each block is settled as it arrives (counted, cached,
    /// first-time blocks handed to the tap), so the raw pass starts on a block while the
    /// others are still on their way.
    /// `keep`: cache what comes (a read, and what it reads ahead); not for the sweep, which
    /// comes after the walk. (Caching read-ahead blocks as the least recently used, to keep the
    /// walk's metadata, was measured: it evicts the read-ahead a walk is about to use, and
    /// blocks fetched twice went from 152 to 1,250 of 1,594 on the 2 GiB bench volume.)
    fn fetch_all(&self, indices: Vec<u64>, keep: bool) -> Vec<(u64, BlockResult)> {
        let mut out = Vec::with_capacity(indices.len());
        self.fetch_each(indices.into_iter(), keep, |i, r| out.push((i, r)));
        out
    }

    /// Fetches the blocks `indices` yields, keeping `concurrency` requests in flight, and
    /// settles each as it arrives before handing it to `each`. The indices are drawn as
    /// requests free up, so a caller may decide on each one late (the sweep does).
    fn fetch_each<I>(&self, indices: I, keep: bool, mut each: impl FnMut(u64, BlockResult))
    where
        I: Iterator<Item = u64>,
    {
        self.rt.block_on(async {
            let mut results = futures_util::stream::iter(indices)
                .map(|i| async move {
                    // Once the disk said no to one request, the others are not sent.
                    let broken = self.state.lock().unwrap().broken.clone();
                    match broken {
                        Some(message) => (
                            i,
                            Err(FetchError {
                                message,
                                whole_disk: true,
                            }),
                        ),
                        // On a runtime worker, as a task of its own: the body's chunks
                        // reach it there, and the checksum is taken there, rather than each
                        // chunk waking this thread. (A current-thread runtime runs spawned
                        // tasks only inside its own `block_on`, not a handle's: there the
                        // request runs here.)
                        None if self.rt.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                            (i, self.src.fetch(i).await)
                        }
                        None => {
                            let src = self.src.clone();
                            let task = self.rt.spawn(async move { src.fetch(i).await });
                            let r = task.await.unwrap_or_else(|e| {
                                Err(FetchError::block(format!("the request's task failed: {e}")))
                            });
                            (i, r)
                        }
                    }
                })
                .buffer_unordered(self.opts.concurrency.max(1));
            while let Some((i, r)) = results.next().await {
                let r = self.settle(i, r, keep);
                each(i, r);
            }
        });
    }

    /// The bytes of written blocks `indices` (sorted), from the cache, from another thread's request,
    /// or fetched now.
    fn blocks(&self, indices: &[u64]) -> io::Result<Vec<Bytes>> {
        let mut have: Vec<Option<Bytes>> = vec![None; indices.len()];
        // Read ahead once a read (in its first round).
        let mut ahead_asked = false;
        loop {
            let mut mine = Vec::new();
            let mut waiting = false;
            {
                let mut st = self.state.lock().unwrap();
                if let Some(b) = &st.broken {
                    return Err(io::Error::other(b.clone()));
                }
                for (k, &i) in indices.iter().enumerate() {
                    if have[k].is_some() {
                        continue;
                    }
                    if let Some(e) = st.failed.get(&i) {
                        return Err(block_error(i, e));
                    }
                    if let Some(d) = st.cache.get(i) {
                        have[k] = Some(d.clone());
                    } else if st.in_flight.contains(&i) {
                        waiting = true;
                    } else {
                        st.in_flight.insert(i);
                        mine.push(i);
                    }
                }
                // Read ahead: the written blocks after this read that nobody has fetched yet,
                // among the next `2 * read_ahead`. A walk reads files in order, so they are
                // likely next; and every written block is fetched once anyway (the raw pass
                // needs it), so none of these is a request more, unless the cache lets it go
                // before the walk gets to it. In the background, on every read, hit or miss,
                // up to `read_ahead` requests in flight: the walk waits only for a block that
                // has not come yet, not for a round of requests (bench/snapshot.sh with 20 ms a
                // request: 11.5 s with rounds, 9.2 s so). Otherwise in a miss's round of
                // requests, `read_ahead` in all.
                // Reads that go down the disk (ext4 walked a directory of files that mkfs
                // laid out upward: on the bench volume, the walk's 258 misses came in runs
                // such as blocks 956, 955, 953, 951, 950, ...) get read-ahead downward.
                if let Some(&first) = indices.first().filter(|_| !ahead_asked) {
                    if let Some(prev) = st.last_read.filter(|&p| p != first) {
                        st.downward = first < prev;
                    }
                    st.last_read = Some(first);
                }
                let downward = st.downward;
                let after = match (self.background, downward) {
                    (true, false) => indices.last(),
                    (true, true) => indices.first(),
                    (false, false) => mine.last(),
                    (false, true) => mine.first(),
                };
                if let (Some(&last), false) = (after, ahead_asked) {
                    ahead_asked = self.background;
                    let room = if self.background {
                        self.read_ahead.saturating_sub(st.in_flight.len())
                    } else {
                        self.read_ahead.saturating_sub(mine.len())
                    };
                    let written = self.src.written();
                    let near: Box<dyn Iterator<Item = &u64>> = if downward {
                        let to = written.partition_point(|&w| w < last);
                        Box::new(written[..to].iter().rev())
                    } else {
                        let from = written.partition_point(|&w| w <= last);
                        Box::new(written[from..].iter())
                    };
                    let mut ahead = Vec::new();
                    for &w in near.take(self.read_ahead * 2) {
                        if ahead.len() >= room {
                            break;
                        }
                        if !st.seen.contains(&w)
                            && !st.forgotten.contains(&w)
                            && !st.in_flight.contains(&w)
                            && !st.failed.contains_key(&w)
                        {
                            st.in_flight.insert(w);
                            ahead.push(w);
                        }
                    }
                    if self.background {
                        for w in ahead {
                            self.read_ahead_in_background(w);
                        }
                    } else {
                        mine.extend(ahead);
                    }
                }
                if mine.is_empty() && waiting {
                    // Another request is fetching what is left: wait for it, then look again.
                    let _unused = self.done.wait(st).unwrap();
                    continue;
                }
            }
            if mine.is_empty() {
                break;
            }
            for (i, r) in self.fetch_all(mine, true) {
                // A block read ahead that failed fails no read (it is named with the rest).
                if let Ok(k) = indices.binary_search(&i) {
                    have[k] = Some(r.map_err(|e| block_error(i, &e))?);
                }
            }
        }
        Ok(have.into_iter().map(Option::unwrap).collect())
    }

    /// Fetches block `i` (marked in flight) as a task of its own, which settles it: cached and
    /// handed to the tap as any other (on a blocking thread, since the tap may make it wait
    /// for the raw pass).
    fn read_ahead_in_background(&self, i: u64) {
        let inner = self.inner.clone();
        let rt = self.rt.clone();
        self.rt.spawn(async move {
            let broken = inner.state.lock().unwrap().broken.clone();
            let r = match broken {
                Some(message) => Err(FetchError {
                    message,
                    whole_disk: true,
                }),
                None => inner.src.fetch(i).await,
            };
            rt.spawn_blocking(move || {
                let _ = inner.settle(i, r, true);
            });
        });
    }

    /// Fetches every written block not fetched yet, in order, `concurrency` at a time, and
    /// hands each to the tap (not to the cache: the walk is over). Failures are kept. One
    /// stream of requests: each block is claimed as a request frees up, so none waits for a
    /// batch to finish.
    pub fn sweep(&self) {
        let written = self.src.written();
        let mut next = 0;
        let todo = std::iter::from_fn(|| {
            let mut st = self.state.lock().unwrap();
            while next < written.len() {
                let i = written[next];
                next += 1;
                if st.broken.is_some() {
                    return None;
                }
                if st.seen.contains(&i) || st.failed.contains_key(&i) || st.in_flight.contains(&i) {
                    continue;
                }
                st.in_flight.insert(i);
                return Some(i);
            }
            None
        });
        self.fetch_each(todo, false, |_, _| {});
        // Blocks read ahead in the background are still the raw pass's.
        self.settled();
    }

    /// Waits until no request is in flight.
    fn settled(&self) {
        let mut st = self.state.lock().unwrap();
        while !st.in_flight.is_empty() {
            st = self.done.wait(st).unwrap();
        }
    }
}

impl Inner {
    /// Records the outcome of block `i`'s request: counts it, caches it (`keep`), wakes the
    /// readers waiting for it, and hands a first-time block to the tap (which may wait for the
    /// raw pass: that holds back the next requests, not the ones in flight).
    fn settle(&self, i: u64, r: Result<Bytes, FetchError>, keep: bool) -> BlockResult {
        let bs = self.src.block_size();
        let mut first = None;
        let r = {
            let mut st = self.state.lock().unwrap();
            st.in_flight.remove(&i);
            if let Err(e) = &r {
                if e.whole_disk && st.broken.is_none() {
                    st.broken = Some(e.message.clone());
                }
            }
            let r = r.map_err(|e| e.message);
            match &r {
                Ok(data) => {
                    self.counters.fetched.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    if st.seen.insert(i) {
                        if st.forgotten.remove(&i) {
                            self.counters.refetched.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(p) = self.progress.get() {
                            p.remote.fetched.fetch_add(1, Ordering::Relaxed);
                            p.remote
                                .bytes
                                .fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                        first = Some((i * bs, data.clone()));
                    } else {
                        self.counters.refetched.fetch_add(1, Ordering::Relaxed);
                    }
                    if keep {
                        st.cache.put(i, data.clone());
                    }
                }
                Err(e) => {
                    st.failed.insert(i, e.clone());
                }
            }
            r
        };
        self.done.notify_all();
        if let Some(f) = first {
            let mut tap = self.tap.lock().unwrap();
            match tap.tx.clone() {
                Some(tx) => {
                    drop(tap);
                    // The raw pass is gone only when the scan is over.
                    let _ = tx.send(f);
                }
                None if tap.held_bytes + f.1.len() as u64 <= tap.max_held => {
                    tap.held_bytes += f.1.len() as u64;
                    tap.held.push(f);
                }
                None => {
                    // Too much to hold: as if never fetched, so that the sweep fetches it
                    // again for the raw pass (counted as fetched again).
                    drop(tap);
                    let mut st = self.state.lock().unwrap();
                    st.seen.remove(&i);
                    st.forgotten.insert(i);
                }
            }
        }
        r
    }
}

fn block_error(index: u64, e: &str) -> io::Error {
    io::Error::other(format!("block {index}: {e}"))
}

impl BlockReader for Remote {
    fn len(&self) -> u64 {
        self.src.len()
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let len = self.src.len();
        if off >= len || buf.is_empty() {
            return Ok(0);
        }
        let bs = self.src.block_size();
        let n = (buf.len() as u64).min(len - off) as usize;
        let (first, last) = (off / bs, (off + n as u64 - 1) / bs);
        let wanted: Vec<u64> = (first..=last).filter(|&i| self.is_written(i)).collect();
        let blocks = self.blocks(&wanted)?;
        {
            let mut st = self.state.lock().unwrap();
            for &i in &wanted {
                let s = i * bs;
                let blen = bs.min(len - s);
                let (lo, hi) = (off.max(s) - s, (off + n as u64).min(s + blen) - s);
                st.cache.mark(i, lo, hi, blen);
            }
        }
        let mut w = 0;
        for i in first..=last {
            let (lo, hi) = ((i * bs).max(off), ((i + 1) * bs).min(off + n as u64));
            let out = &mut buf[(lo - off) as usize..(hi - off) as usize];
            match wanted.binary_search(&i) {
                Ok(k) => {
                    let b = &blocks[k];
                    let from = (lo - i * bs) as usize;
                    let have = b.len().saturating_sub(from).min(out.len());
                    out[..have].copy_from_slice(&b[from..from + have]);
                    out[have..].fill(0);
                }
                Err(_) => out.fill(0),
            }
            w += out.len();
        }
        Ok(w)
    }

    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        super::next_range(&self.ranges, pos, end)
    }

    fn remote(&self) -> Option<&Remote> {
        Some(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Blocks from memory, counting requests (the other tests of remote disks use it too).
    pub(crate) struct Mem {
        pub(crate) data: Vec<u8>,
        bs: u64,
        pub(crate) written: Vec<u64>,
        asked: Mutex<Vec<u64>>,
        bad: Option<u64>,
        denied: bool,
        /// Blocks land side by side here, as a snapshot's do.
        pub(crate) arenas: Option<crate::source::block::arena::Arenas>,
    }

    impl Fetch for Mem {
        fn len(&self) -> u64 {
            self.data.len() as u64
        }
        fn block_size(&self) -> u64 {
            self.bs
        }
        fn written(&self) -> &[u64] {
            &self.written
        }
        fn arenas(&self) -> Option<&crate::source::block::arena::Arenas> {
            self.arenas.as_ref()
        }
        fn fetch(&self, i: u64) -> BoxFuture<'_, Result<Bytes, FetchError>> {
            Box::pin(async move {
                self.asked.lock().unwrap().push(i);
                if Some(i) == self.bad {
                    return Err(FetchError::block("checksum stays wrong".into()));
                }
                if self.denied {
                    return Err(FetchError {
                        message: "AccessDeniedException: no".into(),
                        whole_disk: true,
                    });
                }
                let s = (i * self.bs) as usize;
                Ok(landed(
                    self.arenas.as_ref(),
                    i,
                    &self.data[s..s + self.bs as usize],
                ))
            })
        }
    }

    /// Block `i`'s bytes as a fetch hands them over: landed in `arenas` (in two chunks, as a
    /// body comes), or a buffer of their own.
    pub(crate) fn landed(
        arenas: Option<&crate::source::block::arena::Arenas>,
        i: u64,
        block: &[u8],
    ) -> Bytes {
        match arenas {
            Some(a) => {
                let mut l = a.landing(i);
                l.put(&block[..block.len() / 3]);
                l.put(&block[block.len() / 3..]);
                l.finish()
            }
            None => Bytes::copy_from_slice(block),
        }
    }

    /// A disk of `blocks` blocks of `bs` bytes, of which those whose index is not 1 more than
    /// a multiple of 3 are written (random non-zero bytes); block `bad` fails every request.
    pub(crate) fn mem(blocks: u64, bs: u64, bad: Option<u64>) -> Arc<Mem> {
        Arc::new(mem_data(blocks, bs, bad))
    }

    /// `mem`'s disk, not shared yet.
    pub(crate) fn mem_data(blocks: u64, bs: u64, bad: Option<u64>) -> Mem {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut data = vec![0u8; (blocks * bs) as usize];
        let written: Vec<u64> = (0..blocks).filter(|i| i % 3 != 1).collect();
        for &i in &written {
            for b in &mut data[(i * bs) as usize..((i + 1) * bs) as usize] {
                *b = rng.u8(1..);
            }
        }
        Mem {
            data,
            bs,
            written,
            asked: Mutex::new(Vec::new()),
            bad,
            denied: false,
            arenas: None,
        }
    }

    /// Reads give the disk's bytes (zeros where unwritten); what the walk read is not asked
    /// again by the sweep, and everything written reaches the tap exactly once.
    #[test]
    fn reads_sweep_and_tap_fetch_each_block_once() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let m = mem(40, 512, None);
        let r = Remote::new(
            m.clone(),
            rt.handle().clone(),
            Options {
                concurrency: 4,
                cache_bytes: 1 << 20,
            },
        );
        let (tx, rx) = std::sync::mpsc::sync_channel(1000);
        r.set_tap(Some(tx));
        let mut buf = vec![0u8; 3000];
        for off in [0u64, 700, 5000, 700, 19_000] {
            let n = r.read_at(&mut buf, off).unwrap();
            assert_eq!(&buf[..n], &m.data[off as usize..off as usize + n], "{off}");
        }
        r.sweep();
        r.set_tap(None);
        let mut tapped: Vec<u64> = rx.try_iter().map(|(o, _)| o / 512).collect();
        tapped.sort();
        assert_eq!(tapped, m.written);
        let mut asked = m.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(
            asked, m.written,
            "each written block once, no unwritten one"
        );
        assert_eq!(r.counters.refetched.load(Ordering::Relaxed), 0);
        assert_eq!(r.data(512, 40 * 512), (1024, 2048));
    }

    /// On a multi-thread runtime, read-ahead runs in the background, on hits as on misses: a
    /// read of a block that was read ahead asks for the next ones, up to `read_ahead` in
    /// flight, and what comes is cached and tapped once.
    #[test]
    fn read_ahead_runs_in_the_background_on_hits_too() {
        let (_rt, m, r, rx) = background_disk();
        let mut buf = vec![0u8; 512];
        let asked = || sorted_asks(&m);
        // A miss: block 0 and, in the background, 3 more (4 in flight at most).
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 512);
        r.settled();
        assert_eq!(asked(), [0, 2, 3, 5]);
        // A hit on block 5 asks for the next 4.
        assert_eq!(r.read_at(&mut buf, 5 * 512).unwrap(), 512);
        assert_eq!(buf, m.data[5 * 512..6 * 512]);
        r.settled();
        assert_eq!(asked(), [0, 2, 3, 5, 6, 8, 9, 11]);
        for i in [2u64, 3, 6, 8, 9, 11] {
            assert_eq!(r.read_at(&mut buf, i * 512).unwrap(), 512);
            assert_eq!(buf, m.data[(i * 512) as usize..((i + 1) * 512) as usize]);
        }
        swept_each_once(&r, &rx, &m);
    }

    /// `mem(60, 512)` (blocks 0, 2, 3, 5, 6, 8, 9, 11, ... written) as a remote disk on a
    /// two-thread runtime (read-ahead in the background), 4 requests at once, a cache of
    /// 1,024 blocks, and its tap.
    fn background_disk() -> (
        tokio::runtime::Runtime,
        Arc<Mem>,
        Remote,
        std::sync::mpsc::Receiver<Fetched>,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let m = mem(60, 512, None);
        let opts = Options {
            concurrency: 4,
            cache_bytes: 1024 * 512,
        };
        let r = Remote::new(m.clone(), rt.handle().clone(), opts);
        let (tx, rx) = std::sync::mpsc::sync_channel(1000);
        r.set_tap(Some(tx));
        (rt, m, r, rx)
    }

    /// The blocks `m` was asked for, in order.
    fn sorted_asks(m: &Mem) -> Vec<u64> {
        let mut v = m.asked.lock().unwrap().clone();
        v.sort();
        v
    }

    /// After the sweep, every written block was tapped once and asked for once.
    fn swept_each_once(r: &Remote, rx: &std::sync::mpsc::Receiver<Fetched>, m: &Mem) {
        r.sweep();
        r.set_tap(None);
        let mut tapped: Vec<u64> = rx.try_iter().map(|(o, _)| o / 512).collect();
        tapped.sort();
        assert_eq!(tapped, m.written);
        assert_eq!(sorted_asks(m), m.written, "each written block once");
    }

    /// Reads that go down the disk get read-ahead downward: the written blocks below, not
    /// those above (which a walk going down will not ask for soon).
    #[test]
    fn read_ahead_follows_reads_down_the_disk() {
        let (_rt, m, r, rx) = background_disk();
        let mut buf = vec![0u8; 512];
        let asked = || sorted_asks(&m);
        // The first read reads ahead upward.
        assert_eq!(r.read_at(&mut buf, 39 * 512).unwrap(), 512);
        r.settled();
        assert_eq!(asked(), [39, 41, 42, 44]);
        // A read below it: downward, the 3 written blocks under block 36.
        assert_eq!(r.read_at(&mut buf, 36 * 512).unwrap(), 512);
        r.settled();
        assert_eq!(asked(), [32, 33, 35, 36, 39, 41, 42, 44]);
        for i in [35u64, 33, 32] {
            assert_eq!(r.read_at(&mut buf, i * 512).unwrap(), 512);
            assert_eq!(buf, m.data[(i * 512) as usize..((i + 1) * 512) as usize]);
        }
        swept_each_once(&r, &rx, &m);
    }

    /// Blocks fetched before there is a tap (a disk's format read) are held for it, up to
    /// `max_held` bytes; what does not fit is fetched again by the sweep, counted, and so
    /// every written block still reaches the raw pass exactly once.
    #[test]
    fn blocks_fetched_before_the_tap_are_held_for_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = mem(30, 512, None);
        let opts = Options {
            concurrency: 4,
            cache_bytes: 1 << 20,
        };
        let r = Remote::new(m.clone(), rt.handle().clone(), opts);
        r.tap.lock().unwrap().max_held = 1024;
        let mut buf = vec![0u8; 512];
        // Block 0 and three read ahead (2, 3, 5): two held, two let go.
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 512);
        let (tx, rx) = std::sync::mpsc::sync_channel(1000);
        let held: Vec<u64> = r.set_tap(Some(tx)).iter().map(|(o, _)| o / 512).collect();
        assert_eq!(held, [0, 2]);
        r.sweep();
        r.set_tap(None);
        let mut tapped: Vec<u64> = rx.try_iter().map(|(o, _)| o / 512).collect();
        tapped.extend(&held);
        tapped.sort();
        assert_eq!(tapped, m.written);
        let asked = m.asked.lock().unwrap().clone();
        for (i, n) in [(0, 1), (2, 1), (3, 2), (5, 2), (6, 1)] {
            assert_eq!(asked.iter().filter(|&&a| a == i).count(), n, "block {i}");
        }
        assert_eq!(r.counters.refetched.load(Ordering::Relaxed), 2);
    }

    /// A block that cannot be fetched fails the reads that need it, is asked once, and is
    /// named by `failed`.
    #[test]
    fn a_failing_block_is_named_and_not_asked_again() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = mem(12, 512, Some(3));
        let r = Remote::new(
            m.clone(),
            rt.handle().clone(),
            Options {
                concurrency: 2,
                cache_bytes: 0,
            },
        );
        let mut buf = vec![0u8; 1024];
        let e = r.read_at(&mut buf, 3 * 512).unwrap_err();
        assert!(e.to_string().contains("block 3: checksum"), "{e}");
        assert!(r.read_at(&mut buf, 3 * 512 + 10).is_err());
        r.sweep();
        assert_eq!(
            m.asked.lock().unwrap().iter().filter(|&&i| i == 3).count(),
            1
        );
        assert_eq!(r.failed().len(), 1);
        assert!(r.broken().is_none());
    }

    /// A bad block that a read only reads ahead into fails no read; a read of it fails.
    #[test]
    fn a_bad_block_read_ahead_fails_no_read() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = mem(12, 512, Some(5));
        let opts = Options {
            concurrency: 8,
            cache_bytes: 1 << 20,
        };
        let r = Remote::new(m.clone(), rt.handle().clone(), opts);
        let mut buf = vec![0u8; 512];
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 512);
        assert!(m.asked.lock().unwrap().contains(&5), "read ahead");
        assert!(r.read_at(&mut buf, 5 * 512).is_err());
        assert_eq!(r.read_at(&mut buf, 6 * 512).unwrap(), 512);
    }

    /// A read's round of requests reads ahead `concurrency` blocks in all, but at most a
    /// sixteenth of the blocks the cache holds, so what it reads ahead is still cached when
    /// the walk gets to it.
    #[test]
    fn read_ahead_is_at_most_a_sixteenth_of_the_cache() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Blocks 0, 2, 3, 5, 6, ... are written (`mem`): 67 of 100.
        for (cache_blocks, concurrency, round) in [(64u64, 32, 4), (1024, 32, 32), (1024, 8, 8)] {
            let m = mem(100, 512, None);
            let opts = Options {
                concurrency,
                cache_bytes: cache_blocks * 512,
            };
            let r = Remote::new(m.clone(), rt.handle().clone(), opts);
            let mut buf = vec![0u8; 512];
            assert_eq!(r.read_at(&mut buf, 0).unwrap(), 512);
            let want: Vec<u64> = m.written[..round].to_vec();
            let mut got = m.asked.lock().unwrap().clone();
            got.sort();
            assert_eq!(
                got, want,
                "cache of {cache_blocks} blocks, {concurrency} at once"
            );
            // What was read ahead is read from the cache.
            for &i in &want {
                assert_eq!(r.read_at(&mut buf, i * 512).unwrap(), 512);
                assert_eq!(buf, m.data[(i * 512) as usize..((i + 1) * 512) as usize]);
            }
            assert_eq!(m.asked.lock().unwrap().len(), round);
        }
    }

    /// The blocks the walk has read all of go first: a metadata block read a piece at a time
    /// stays cached while more file data than the cache holds streams past it, so it is asked
    /// once (a plain LRU let it go and asked it again). A block read in pieces that cover it
    /// counts as read all of.
    #[test]
    fn blocks_read_through_go_before_the_others() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = mem(100, 512, None);
        let opts = Options {
            concurrency: 1,
            cache_bytes: 16 * 512,
        };
        let r = Remote::new(m.clone(), rt.handle().clone(), opts);
        let mut buf = vec![0u8; 512];
        assert_eq!(r.read_at(&mut buf[..100], 0).unwrap(), 100);
        // Block 2 in three pieces: read all of.
        for (lo, hi) in [(0, 200), (200, 400), (400, 512)] {
            let n = r.read_at(&mut buf[..hi - lo], 2 * 512 + lo as u64).unwrap();
            assert_eq!(n, hi - lo);
        }
        assert!(r.state.lock().unwrap().cache.read.contains(&2));
        // Four times the cache's blocks of data, each read through.
        for &i in m.written.iter().skip(2).take(64) {
            assert_eq!(r.read_at(&mut buf, i * 512).unwrap(), 512);
            assert_eq!(buf, m.data[(i * 512) as usize..((i + 1) * 512) as usize]);
        }
        assert_eq!(r.read_at(&mut buf[..50], 300).unwrap(), 50);
        assert_eq!(buf[..50], m.data[300..350]);
        let asked = m.asked.lock().unwrap().clone();
        assert_eq!(asked.iter().filter(|&&i| i == 0).count(), 1, "{asked:?}");
        assert_eq!(r.counters.refetched.load(Ordering::Relaxed), 0);
    }

    /// An answer that holds for the whole disk (access denied) stops every further request.
    #[test]
    fn a_denied_disk_is_asked_no_further() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut m = Arc::into_inner(mem(30, 512, None)).unwrap();
        m.denied = true;
        let m = Arc::new(m);
        let opts = Options {
            concurrency: 1,
            cache_bytes: 0,
        };
        let r = Remote::new(m.clone(), rt.handle().clone(), opts);
        let mut buf = vec![0u8; 512];
        assert!(r.read_at(&mut buf, 0).is_err());
        assert!(r.read_at(&mut buf, 2048).is_err());
        r.sweep();
        assert_eq!(m.asked.lock().unwrap().len(), 1, "one request, then none");
        let (why, unread) = r.broken().unwrap();
        assert!(why.contains("AccessDenied"), "{why}");
        assert_eq!(unread, m.written.len() as u64);
    }
}
