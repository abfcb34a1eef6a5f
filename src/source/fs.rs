//! The working tree: the `ignore` crate's parallel walker (the one ripgrep uses), .gitignore
//! honoured unless `no_ignore`, `.git/` skipped, hidden files scanned (`.env`, `.aws/` are where
//! keys live), symlinks followed only when asked. Files up to `chunk` bytes are read whole into
//! a buffer each thread reuses; bigger ones stream through overlapping windows.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::{WalkBuilder, WalkState};

use super::{archive, Skip, Stats};
use crate::blob::{Blob, Origin};

pub struct WalkOptions {
    pub no_ignore: bool,
    pub follow_links: bool,
    pub threads: usize,
    /// Largest piece of a file held in memory at once.
    pub chunk: usize,
    /// Bytes shared by consecutive pieces (at least the longest possible match).
    pub overlap: usize,
    /// Archives found among the files (depth 0: scan them as raw bytes).
    pub archives: super::archive::Limits,
}

/// Walks `roots` on `opts.threads` threads; `make` builds one blob handler per thread.
/// `exclude` gets each file's display path and says whether to skip it.
pub fn walk<F>(
    roots: &[PathBuf],
    opts: &WalkOptions,
    stats: &Stats,
    exclude: &(dyn Fn(&str) -> bool + Sync),
    make: &(dyn Fn() -> F + Sync),
) where
    F: FnMut(Blob) + Send,
{
    let mut b = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        b.add(r);
    }
    b.threads(opts.threads)
        .hidden(false)
        .follow_links(opts.follow_links)
        .git_ignore(!opts.no_ignore)
        .git_global(!opts.no_ignore)
        .git_exclude(!opts.no_ignore)
        .ignore(!opts.no_ignore)
        .parents(!opts.no_ignore)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git");
    b.build_parallel().run(|| {
        let mut handle = make();
        let mut buf = Vec::new();
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    stats.skip(Skip::Unreadable, Some(format!("{}", err)));
                    return WalkState::Continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                return WalkState::Continue;
            };
            if ft.is_dir() {
                return WalkState::Continue;
            }
            let name = display_path(entry.path());
            if ft.is_symlink() {
                stats.skip(Skip::Symlink, None);
                return WalkState::Continue;
            }
            if !ft.is_file() {
                stats.skip(Skip::Special, None);
                return WalkState::Continue;
            }
            if exclude(&name) {
                stats.skip(Skip::Allowlisted, None);
                return WalkState::Continue;
            }
            let origin = Arc::new(Origin::file(name));
            if let Err(e) = read_file(entry.path(), &origin, opts, stats, &mut buf, &mut handle) {
                stats.skip(Skip::Unreadable, Some(format!("{origin}: {e}")));
            }
            WalkState::Continue
        })
    });
}

/// A path as users want to see it: without a leading `./`, with `/` separators.
pub fn display_path(p: &Path) -> String {
    let p = p.strip_prefix(".").unwrap_or(p);
    let s = p.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '\\' {
        s.replace('\\', "/")
    } else {
        s.into_owned()
    }
}

fn read_file<F: FnMut(Blob)>(
    path: &Path,
    origin: &Arc<Origin>,
    opts: &WalkOptions,
    stats: &Stats,
    buf: &mut Vec<u8>,
    handle: &mut F,
) -> io::Result<()> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let archives = opts.archives.max_depth > 0;
    if len <= opts.chunk as u64 {
        buf.clear();
        f.read_to_end(buf)?;
        stats.read(buf.len() as u64);
        if let Some(kind) = archive::sniff(buf).filter(|_| archives) {
            let mut ex = archive::Expander::new(opts.archives, stats, len, handle);
            if ex.bytes(buf, kind, origin) {
                return Ok(());
            }
        }
        handle(Blob::whole(buf, origin.clone()));
        return Ok(());
    }
    if archives {
        let mut head = [0u8; 512];
        let n = read_up_to(&mut f, &mut head)?;
        f.seek(io::SeekFrom::Start(0))?;
        if let Some(kind) = archive::sniff(&head[..n]) {
            stats.read(len);
            let mut ex = archive::Expander::new(opts.archives, stats, len, handle);
            if ex.file(f, kind, origin) {
                return Ok(());
            }
            // Unreadable from its first bytes: scan it as raw bytes instead.
            f = File::open(path)?;
            stats
                .files
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            stats
                .bytes
                .fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let n = stream(&mut f, origin, opts.chunk, opts.overlap, buf, handle)?;
    stats.read(n);
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns how much was read.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Feeds a reader through overlapping windows of at most `chunk + overlap` bytes. Each window
/// owns the detections that start after the previous window's end (the overlap is context only),
/// and a window ends at a line break when one is near, so no token is cut where it is owned.
pub fn stream<R: Read + ?Sized, F: FnMut(Blob)>(
    r: &mut R,
    origin: &Arc<Origin>,
    chunk: usize,
    overlap: usize,
    buf: &mut Vec<u8>,
    handle: &mut F,
) -> io::Result<u64> {
    let chunk = chunk.max(2 * overlap);
    buf.clear();
    let mut offset = 0u64; // of buf[0] in the input
    let mut line = 0u64; // newlines before buf[0]
    let mut own_start = 0usize;
    let mut total = 0u64;
    loop {
        // Fill the buffer up to `overlap + chunk` bytes, without zero-filling it first (a small
        // archive member must not cost a 16 MiB memset).
        let want = overlap + chunk;
        let before = buf.len();
        // On a read error (a damaged archive member, a bad checksum at its end), what was read
        // is still scanned, then the error returned.
        let failed = Read::take(&mut *r, (want - before) as u64)
            .read_to_end(buf)
            .err();
        let filled = buf.len();
        total += (filled - before) as u64;
        let eof = failed.is_some() || filled < want;
        // This window owns detections starting in [own_start, own_end).
        let own_end = if eof {
            buf.len()
        } else {
            own_end(buf, own_start, overlap)
        };
        if failed.is_none() || own_end > own_start {
            handle(Blob {
                data: buf,
                origin: origin.clone(),
                offset,
                line,
                own: own_start..own_end,
            });
        }
        if eof {
            return failed.map_or(Ok(total), Err);
        }
        // Keep `overlap` bytes of context before the next owned range.
        let keep_from = own_end.saturating_sub(overlap);
        if !origin.raw {
            line += memchr::memchr_iter(b'\n', &buf[..keep_from]).count() as u64;
        }
        offset += keep_from as u64;
        buf.drain(..keep_from);
        own_start = own_end - keep_from;
    }
}

/// Where a full window (not the input's last) stops owning: `overlap` bytes before its end, or
/// at a line break in the last quarter-overlap before that.
fn own_end(window: &[u8], own_start: usize, overlap: usize) -> usize {
    let cut = window.len() - overlap;
    let lo = cut.saturating_sub(overlap / 4).max(own_start + 1);
    memchr::memrchr(b'\n', &window[lo..cut]).map_or(cut, |p| lo + p + 1)
}

/// The windows `stream` would make of `data` (which starts at `offset` of its input), cut from
/// it in place: for bytes already in memory (a mapped disk image, an inflated file). Lines are
/// counted as `stream` counts them: not for raw origins.
pub fn windows<F: FnMut(Blob)>(
    data: &[u8],
    origin: &Arc<Origin>,
    offset: u64,
    chunk: usize,
    overlap: usize,
    handle: &mut F,
) {
    let chunk = chunk.max(2 * overlap);
    let mut from = 0; // start of the window (context before what it owns)
    let mut own_start = 0; // relative to `from`
    let mut line = 0u64; // newlines before `from`
    loop {
        let end = (from + overlap + chunk).min(data.len());
        let w = &data[from..end];
        // As `stream`: a full window is not the last, even when it ends with the input.
        let eof = w.len() < overlap + chunk;
        let own = own_start..if eof {
            w.len()
        } else {
            own_end(w, own_start, overlap)
        };
        let next = from + own.end;
        handle(Blob {
            data: w,
            origin: origin.clone(),
            offset: offset + from as u64,
            line,
            own,
        });
        if eof {
            return;
        }
        let keep_from = next.saturating_sub(overlap);
        if !origin.raw {
            line += memchr::memchr_iter(b'\n', &data[from..keep_from]).count() as u64;
        }
        own_start = next - keep_from;
        from = keep_from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_byte_once_as_owner() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let origin = Arc::new(Origin::file("x"));
        let mut owned = Vec::new();
        let mut buf = Vec::new();
        let n = stream(
            &mut &data[..],
            &origin,
            64 * 1024,
            4096,
            &mut buf,
            &mut |b: Blob| {
                // Every owned byte is where the input says it is, and lines are counted right.
                let s = b.own.start;
                assert_eq!(
                    &b.data[s..s + 1],
                    &data[b.offset as usize + s..b.offset as usize + s + 1]
                );
                let nl = data[..b.offset as usize]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count() as u64;
                assert_eq!(nl, b.line);
                assert_eq!(b.own.start, if b.offset == 0 { 0 } else { 4096 });
                owned.push((b.offset + b.own.start as u64, b.offset + b.own.end as u64));
            },
        )
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(owned.len() > 3);
        assert_eq!(owned[0].0, 0);
        for w in owned.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        assert_eq!(owned.last().unwrap().1, data.len() as u64);
    }

    #[test]
    fn windows_in_memory_are_the_windows_streamed() {
        let mut rng = fastrand::Rng::with_seed(7);
        for len in [0, 1, 10_000, 3 * 4096, 68 * 1024, 200_000, 1 << 20] {
            let data: Vec<u8> = (0..len)
                .map(|_| if rng.u8(..) < 8 { b'\n' } else { rng.u8(..) })
                .collect();
            // Lines are counted for files, not for raw origins (image bytes).
            for raw in [true, false] {
                let mut origin = Origin::file("x");
                origin.raw = raw;
                let origin = Arc::new(origin);
                let (mut streamed, mut mapped) = (Vec::new(), Vec::new());
                let mut buf = Vec::new();
                let note = |v: &mut Vec<_>, b: Blob| {
                    let o = b.offset as usize;
                    assert_eq!(b.data, &data[o..o + b.data.len()]);
                    let nl = memchr::memchr_iter(b'\n', &data[..o]).count() as u64;
                    assert_eq!(b.line, if raw { 0 } else { nl });
                    if !b.own.is_empty() {
                        v.push((o + b.own.start, o + b.own.end, b.line));
                    }
                };
                stream(
                    &mut &data[..],
                    &origin,
                    64 << 10,
                    4096,
                    &mut buf,
                    &mut |b| note(&mut streamed, b),
                )
                .unwrap();
                windows(&data, &origin, 0, 64 << 10, 4096, &mut |b| {
                    note(&mut mapped, b)
                });
                assert_eq!(streamed, mapped, "{len}");
                let covered: usize = mapped.iter().map(|(s, e, _)| e - s).sum();
                assert_eq!(covered, len);
            }
        }
    }
}
