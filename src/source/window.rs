//! Bytes into overlapping windows: a reader streamed with a bounded buffer (`stream`), or bytes
//! already in memory cut in place (`windows`). Every source hands big inputs to the detector
//! this way, so a key across a window's edge is seen whole and reported once.

use std::io::{self, Read};
use std::sync::Arc;

use crate::blob::{Blob, Origin};

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

/// A reader that counts the bytes it has given.
pub(crate) struct Counted<R> {
    inner: R,
    pub n: u64,
}

impl<R> Counted<R> {
    pub fn new(inner: R) -> Counted<R> {
        Counted { inner, n: 0 }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
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
    buf.clear();
    stream_after(r, origin, chunk, overlap, buf, handle)
}

/// `stream` of an input whose first `buf.len()` bytes were already read from `r` into `buf`
/// (at most `chunk + overlap` of them); the count returned includes them.
pub fn stream_after<R: Read + ?Sized, F: FnMut(Blob)>(
    r: &mut R,
    origin: &Arc<Origin>,
    chunk: usize,
    overlap: usize,
    buf: &mut Vec<u8>,
    handle: &mut F,
) -> io::Result<u64> {
    let chunk = chunk.max(2 * overlap);
    let mut offset = 0u64; // of buf[0] in the input
    let mut line = 0u64; // newlines before buf[0]
    let mut column = 0u64; // characters of buf[0]'s line before it
    let mut own_start = 0usize;
    let mut total = buf.len() as u64;
    loop {
        // Fill the buffer up to `overlap + chunk` bytes, without zero-filling it first (a small
        // archive member must not cost a 16 MiB memset).
        let want = overlap + chunk;
        let before = buf.len();
        // On a read error (a damaged archive member, a bad checksum at its end), what was read
        // is still scanned, then the error returned.
        let failed = Read::take(&mut *r, want.saturating_sub(before) as u64)
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
                column,
                own: own_start..own_end,
            });
        }
        if eof {
            return failed.map_or(Ok(total), Err);
        }
        // Keep `overlap` bytes of context before the next owned range.
        let keep_from = own_end.saturating_sub(overlap);
        if !origin.raw {
            advance(&buf[..keep_from], &mut line, &mut column);
        }
        offset += keep_from as u64;
        buf.drain(..keep_from);
        own_start = own_end - keep_from;
    }
}

/// Hands on the parts of `b` that lie in the pieces `ours` accepts (piece `i` is bytes
/// `[i * piece, (i + 1) * piece)` of the input), each cut down to what it owns with `overlap`
/// bytes of context on either side, its offset, line and column moved to match. Over the
/// windows of an input, the pieces' owners together own every byte once. Returns the bytes
/// handed on as owned.
pub fn pieces<F: FnMut(Blob)>(
    b: Blob,
    piece: u64,
    overlap: usize,
    ours: impl Fn(u64) -> bool,
    handle: &mut F,
) -> u64 {
    let piece = piece.max(1);
    let (lo, hi) = (b.offset + b.own.start as u64, b.offset + b.own.end as u64);
    if lo >= hi {
        return 0;
    }
    let mut owned = 0;
    let (mut line, mut column, mut at) = (b.line, b.column, 0usize);
    for i in lo / piece..=(hi - 1) / piece {
        if !ours(i) {
            continue;
        }
        // The piece's share of what `b` owns, relative to `b.data`.
        let s = ((i * piece).max(lo) - b.offset) as usize;
        let e = (((i + 1) * piece).min(hi) - b.offset) as usize;
        let from = s.saturating_sub(overlap);
        let to = (e + overlap).min(b.data.len());
        if !b.origin.raw {
            advance(&b.data[at..from], &mut line, &mut column);
        }
        at = from;
        owned += (e - s) as u64;
        handle(Blob {
            data: &b.data[from..to],
            origin: b.origin.clone(),
            offset: b.offset + from as u64,
            line,
            column,
            own: s - from..e - from,
        });
    }
    owned
}

/// Moves the line and column of a window's start past `skipped` bytes.
fn advance(skipped: &[u8], line: &mut u64, column: &mut u64) {
    match memchr::memrchr(b'\n', skipped) {
        Some(nl) => {
            *line += memchr::memchr_iter(b'\n', skipped).count() as u64;
            *column = crate::finding::chars(&skipped[nl + 1..]);
        }
        None => *column += crate::finding::chars(skipped),
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
    let mut column = 0u64; // characters of `from`'s line before it
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
            column,
            own,
        });
        if eof {
            return;
        }
        let keep_from = next.saturating_sub(overlap);
        if !origin.raw {
            advance(&data[from..keep_from], &mut line, &mut column);
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
                let line_start = data[..b.offset as usize]
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |p| p + 1);
                assert_eq!(b.column, b.offset - line_start as u64);
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

    /// A file's pieces dealt among 3 shards: every byte owned once over all of them, each
    /// part's line and column those of its first byte, and its context no more than asked.
    #[test]
    fn pieces_of_a_file_are_owned_once_among_shards() {
        let mut rng = fastrand::Rng::with_seed(11);
        let data: Vec<u8> = (0..300_000)
            .map(|_| {
                if rng.u8(..) < 10 {
                    b'\n'
                } else {
                    b'a' + rng.u8(..26)
                }
            })
            .collect();
        let origin = Arc::new(Origin::file("x"));
        for (chunk, piece) in [
            (16 << 10, 40_000u64),
            (64 << 10, 10_000),
            (8 << 10, 1 << 20),
        ] {
            let mut owned = Vec::new();
            for k in 0..3u64 {
                let mut buf = Vec::new();
                let mut counted = 0;
                stream(
                    &mut &data[..],
                    &origin,
                    chunk,
                    1024,
                    &mut buf,
                    &mut |b: Blob| {
                        counted += pieces(b, piece, 1024, |i| i % 3 == k, &mut |p: Blob| {
                            let o = p.offset as usize;
                            assert_eq!(p.data, &data[o..o + p.data.len()]);
                            assert_eq!(
                                p.line,
                                memchr::memchr_iter(b'\n', &data[..o]).count() as u64
                            );
                            let bol = memchr::memrchr(b'\n', &data[..o]).map_or(0, |n| n + 1);
                            assert_eq!(p.column, (o - bol) as u64);
                            assert!(p.own.start <= 1024 && p.data.len() - p.own.end <= 1024);
                            let (s, e) = (o + p.own.start, o + p.own.end);
                            assert!(s < e && (s as u64 / piece) % 3 == k);
                            assert_eq!((e as u64 - 1) / piece, s as u64 / piece, "one piece");
                            owned.push((s, e));
                        });
                    },
                )
                .unwrap();
                assert_eq!(
                    counted,
                    owned
                        .iter()
                        .filter(|r| (r.0 as u64 / piece) % 3 == k)
                        .map(|r| (r.1 - r.0) as u64)
                        .sum::<u64>()
                );
            }
            owned.sort();
            assert_eq!(owned[0].0, 0);
            for w in owned.windows(2) {
                assert_eq!(w[0].1, w[1].0, "{chunk} {piece}");
            }
            assert_eq!(owned.last().unwrap().1, data.len());
        }
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
