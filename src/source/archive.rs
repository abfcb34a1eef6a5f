//! Archives and compressed streams inside any input (working-tree files, git blobs), recognised
//! by content, not by name: zip (jar, war, whl, docx…), tar, gzip, bzip2, xz and zstd, nested to
//! a configurable depth. Streams (tar and the compressions) are read without buffering; a zip is
//! opened through `Seek` — the file itself, or, nested, a buffer of at most `max_buffer` bytes.
//! Two common cases are inflated whole instead, in one libdeflate call each (`Inflater`): a gzip
//! file already in memory and a zip's deflated members, when their stated size is within the
//! budgets (and `max_buffer`); anything they cannot read whole goes down the streaming path.
//!
//! Budgets against bombs, per outermost input: expanded bytes, expansion ratio and entries.
//! Over budget the expansion stops with a warning naming the archive; what was found stays.
//! Every blob's origin names the chain: `backups/release.tgz › release/bundle.zip › .env`.

use std::io::{self, Cursor, Read, Seek};
use std::sync::Arc;

use super::gitcopy::{GitCollector, Tee};
use super::window::Counted;
use super::{Skip, Stats};
use crate::blob::{Blob, Origin};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// The kind of archive `head` (the first bytes, 512 are enough) starts, if any.
pub fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Kind::Gzip)
    } else if head.len() >= 10 && head.starts_with(b"BZh") && &head[4..10] == b"1AY&SY" {
        Some(Kind::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Kind::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Kind::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Archives inside archives, at most this deep (0: archives are scanned as raw bytes).
    pub max_depth: usize,
    /// Bytes expanded from one outermost input.
    pub max_bytes: u64,
    /// Expanded / compressed size, checked once past `ratio_after` bytes.
    pub max_ratio: u64,
    pub ratio_after: u64,
    /// Members of one outermost input.
    pub max_entries: u64,
    /// The largest nested zip held in memory to open it.
    pub max_buffer: usize,
    /// Windows for members (as for big files).
    pub chunk: usize,
    pub overlap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_bytes: 16 << 30,
            max_ratio: 200,
            ratio_after: 256 << 20,
            max_entries: 1_000_000,
            max_buffer: 256 << 20,
            chunk: 16 << 20,
            overlap: 64 << 10,
        }
    }
}

/// Why expansion stopped early.
struct Stop(String);

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop(format!("corrupt or truncated archive: {e}"))
    }
}

impl From<zip::result::ZipError> for Stop {
    fn from(e: zip::result::ZipError) -> Self {
        Stop(format!("corrupt zip: {e}"))
    }
}

/// Expands one outermost input; calls `f` with every leaf member's windows.
pub struct Expander<'a, F: FnMut(Blob)> {
    limits: Limits,
    stats: &'a Stats,
    f: &'a mut F,
    /// Size of the outermost input, for the ratio.
    input_len: u64,
    expanded: u64,
    entries: u64,
    buf: Vec<u8>,
    /// Members that are a git repository's files are copied here too, for its history.
    git: Option<&'a GitCollector>,
}

impl<'a, F: FnMut(Blob)> Expander<'a, F> {
    pub fn new(limits: Limits, stats: &'a Stats, input_len: u64, f: &'a mut F) -> Self {
        Expander {
            limits,
            stats,
            f,
            input_len: input_len.max(1),
            expanded: 0,
            entries: 0,
            buf: Vec::new(),
            git: None,
        }
    }

    /// Copies the files of the git repositories inside (`home/app/.git/objects/…`) to `git`.
    pub fn git(mut self, git: Option<&'a GitCollector>) -> Self {
        self.git = git;
        self
    }

    /// Expands an archive held in memory. Returns false if it could not be expanded at all (the
    /// caller then scans its raw bytes).
    pub fn bytes(&mut self, data: &[u8], kind: Kind, origin: &Arc<Origin>) -> bool {
        let r = self.archive_bytes(data, kind, origin, 1);
        self.finish(r, kind, origin)
    }

    /// An archive in memory, outermost or nested in one: a zip is opened where it lies, a gzip
    /// inflated whole when it can be, anything else streamed.
    fn archive_bytes(
        &mut self,
        data: &[u8],
        kind: Kind,
        origin: &Arc<Origin>,
        depth: usize,
    ) -> Result<(), Stop> {
        match kind {
            Kind::Zip => self.zip(Cursor::new(data), origin, depth),
            Kind::Gzip => match self.inflate_whole(data) {
                Some(out) => self.inflated(&out, origin, depth),
                None => self.stream(kind, &mut { data }, origin, depth),
            },
            k => self.stream(k, &mut { data }, origin, depth),
        }
    }

    /// `data` inflated in one call, when it is exactly one whole gzip member whose stated size
    /// (its last four bytes) is within the budgets. `None` sends it down the streaming path
    /// (flate2), which reads several members, damaged ones and bombs, with its warnings.
    fn inflate_whole(&self, data: &[u8]) -> Option<Vec<u8>> {
        let tail = data.get(data.len().checked_sub(4)?..)?;
        let size = u32::from_le_bytes(tail.try_into().ok()?) as u64;
        if !self.fits(size) {
            return None;
        }
        Inflater::with(|i| i.inflate(Format::Gzip, data, size as usize))
    }

    /// Whether `size` more bytes, held in memory at once, stay within the budgets.
    fn fits(&self, size: u64) -> bool {
        let l = &self.limits;
        let after = self.expanded + size;
        size <= l.max_buffer as u64
            && after <= l.max_bytes
            && (after <= l.ratio_after || after / self.input_len <= l.max_ratio)
    }

    /// Member `i` of a zip, named and inflated in one call, when it is deflated, not encrypted
    /// and within the budgets, and its checksum holds. `None` leaves it to the zip crate's
    /// reader (zlib-rs, a buffer at a time), which says what is wrong with it, if anything.
    fn inflate_zip_member<R: Read + Seek>(
        &self,
        z: &mut zip::ZipArchive<R>,
        i: usize,
    ) -> Option<(String, Vec<u8>)> {
        let mut m = z.by_index_raw(i).ok()?;
        if m.compression() != zip::CompressionMethod::Deflated
            || m.encrypted()
            || m.is_dir()
            || !self.fits(m.size())
        {
            return None;
        }
        let (size, crc) = (m.size() as usize, m.crc32());
        let name = m.name().ok()?.into_owned();
        let mut packed = Vec::new();
        m.read_to_end(&mut packed).ok()?;
        let out = Inflater::with(|i| i.inflate(Format::Deflate, &packed, size))?;
        (out.len() == size && crc32fast::hash(&out) == crc).then_some((name, out))
    }

    /// Expands an archive file; a zip is read through its `Seek`.
    pub fn file(&mut self, file: std::fs::File, kind: Kind, origin: &Arc<Origin>) -> bool {
        match kind {
            Kind::Zip => self.seekable(io::BufReader::new(file), origin),
            k => self.reader(&mut io::BufReader::with_capacity(1 << 16, file), k, origin),
        }
    }

    /// Expands a zip read where it lies (a file, an object in S3 read by ranges).
    pub fn seekable<R: Read + Seek>(&mut self, r: R, origin: &Arc<Origin>) -> bool {
        let r = self.zip(r, origin, 1);
        self.finish(r, Kind::Zip, origin)
    }

    /// Expands an archive streamed from `r` (tar and the compressions; a zip is held in memory
    /// up to `max_buffer` bytes to be opened).
    pub fn reader(&mut self, r: &mut dyn Read, kind: Kind, origin: &Arc<Origin>) -> bool {
        let r = self.stream(kind, r, origin, 1);
        self.finish(r, kind, origin)
    }

    /// Something was expanded: keep it, and the input counts as incomplete if it stopped early.
    /// Nothing was, or the input is a plain tar (its members are stored as they are): the caller
    /// scans the raw bytes instead, so nothing is missed.
    fn finish(&mut self, r: Result<(), Stop>, kind: Kind, origin: &Arc<Origin>) -> bool {
        let Err(Stop(why)) = r else { return true };
        let budget = why.starts_with("over budget");
        let expanded = (self.entries > 0 && kind != Kind::Tar) || budget;
        let (skip, note) = match (budget, expanded) {
            (true, _) => (Skip::ArchiveBudget, ""),
            (false, true) => (Skip::CorruptArchive, ""),
            (false, false) => (Skip::ArchiveAsBytes, "; scanned as raw bytes"),
        };
        self.stats
            .skip(skip, Some(format!("{origin}: {why}{note}")));
        expanded
    }

    fn budget(&self) -> Result<(), Stop> {
        let l = &self.limits;
        if self.expanded > l.max_bytes {
            return Err(Stop(format!(
                "over budget: more than {} MiB expanded (a decompression bomb?); the rest is not scanned",
                l.max_bytes >> 20
            )));
        }
        if self.expanded > l.ratio_after && self.expanded / self.input_len > l.max_ratio {
            return Err(Stop(format!(
                "over budget: expands more than {}× its size (a decompression bomb?); the rest is not scanned",
                l.max_ratio
            )));
        }
        if self.entries > l.max_entries {
            return Err(Stop(format!(
                "over budget: more than {} members; the rest is not scanned",
                l.max_entries
            )));
        }
        Ok(())
    }

    fn zip<R: Read + Seek>(
        &mut self,
        r: R,
        origin: &Arc<Origin>,
        depth: usize,
    ) -> Result<(), Stop> {
        let mut z = zip::ZipArchive::new(r)?;
        for i in 0..z.len() {
            if let Some((name, data)) = self.inflate_zip_member(&mut z, i) {
                self.member_bytes(&data, &child(origin, &name), depth)?;
                continue;
            }
            let m = match z.by_index(i) {
                Ok(m) => m,
                Err(zip::result::ZipError::UnsupportedArchive(why)) => {
                    self.stats.skip(
                        Skip::CorruptArchive,
                        Some(format!("{origin}: member {i} not readable: {why}")),
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if m.is_dir() {
                continue;
            }
            let name = m.name()?.into_owned();
            let inner = child(origin, &name);
            let size = m.size();
            self.member(&mut { m }, &inner, size, depth)?;
        }
        Ok(())
    }

    fn stream(
        &mut self,
        kind: Kind,
        r: &mut dyn Read,
        origin: &Arc<Origin>,
        depth: usize,
    ) -> Result<(), Stop> {
        match kind {
            Kind::Tar => self.tar(r, origin, depth),
            Kind::Gzip => {
                self.decompressed(&mut flate2::read::MultiGzDecoder::new(r), origin, depth)
            }
            Kind::Bzip2 => {
                self.decompressed(&mut bzip2::read::MultiBzDecoder::new(r), origin, depth)
            }
            Kind::Xz => self.decompressed(&mut lzma_rust2::XzReader::new(r, true), origin, depth),
            Kind::Zstd => {
                self.decompressed(&mut zstd::stream::read::Decoder::new(r)?, origin, depth)
            }
            Kind::Zip => {
                let data = read_capped(r, self.limits.max_buffer)?;
                match data {
                    Some(d) => self.zip(Cursor::new(d), origin, depth),
                    None => Err(Stop(format!(
                        "a nested zip over {} MiB is not opened",
                        self.limits.max_buffer >> 20
                    ))),
                }
            }
        }
    }

    /// A decompressed stream: a tar (`.tgz`, `.tar.zst`…) lists its members directly; anything
    /// else is one member named after the file without its compression suffix.
    fn decompressed(
        &mut self,
        r: &mut dyn Read,
        origin: &Arc<Origin>,
        depth: usize,
    ) -> Result<(), Stop> {
        let (head, r) = peek(r)?;
        let mut r = Cursor::new(head).chain(r);
        if sniff(r.get_ref().0.get_ref()) == Some(Kind::Tar) {
            return self.tar(&mut r, origin, depth);
        }
        let name = decompressed_name(origin);
        self.member(&mut r, &child(origin, &name), 0, depth)
    }

    /// `decompressed` for bytes in memory: the leaf member is scanned where it lies, not
    /// copied window by window.
    fn inflated(&mut self, data: &[u8], origin: &Arc<Origin>, depth: usize) -> Result<(), Stop> {
        if sniff(data) == Some(Kind::Tar) {
            return self.tar(&mut { data }, origin, depth);
        }
        self.member_bytes(data, &child(origin, &decompressed_name(origin)), depth)
    }

    /// `member` for bytes in memory.
    fn member_bytes(
        &mut self,
        data: &[u8],
        origin: &Arc<Origin>,
        depth: usize,
    ) -> Result<(), Stop> {
        self.entries += 1;
        self.budget()?;
        let cap = self.limits.max_bytes.saturating_sub(self.expanded) + 1;
        let data = &data[..data.len().min(usize::try_from(cap).unwrap_or(usize::MAX))];
        let result = match (depth < self.limits.max_depth)
            .then(|| sniff(data))
            .flatten()
        {
            Some(k) => self.archive_bytes(data, k, origin, depth + 1),
            None => {
                if let Some(mut copy) = self
                    .git
                    .and_then(|g| g.copy_member(origin, data.len() as u64))
                {
                    // A copy that cannot be written leaves the repository incomplete; gix says so.
                    let _ = io::Write::write_all(&mut copy, data);
                }
                let l = &self.limits;
                super::window::windows(data, origin, 0, l.chunk, l.overlap, &mut *self.f);
                Ok(())
            }
        };
        self.expanded += data.len() as u64;
        result?;
        self.budget()
    }

    fn tar(&mut self, r: &mut dyn Read, origin: &Arc<Origin>, depth: usize) -> Result<(), Stop> {
        let mut a = tar::Archive::new(r);
        for entry in a.entries()? {
            let e = entry?;
            if !matches!(
                e.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
            ) {
                continue;
            }
            let name = e.path().map(|p| p.to_string_lossy().into_owned())?;
            let size = e.size();
            self.member(&mut { e }, &child(origin, &name), size, depth)?;
        }
        Ok(())
    }

    /// One member (`size`: its stated size, 0 if unknown): a nested archive is expanded (within
    /// the depth limit), anything else scanned, and copied if it is a git repository's file.
    fn member(
        &mut self,
        r: &mut dyn Read,
        origin: &Arc<Origin>,
        size: u64,
        depth: usize,
    ) -> Result<(), Stop> {
        self.entries += 1;
        self.budget()?;
        let remaining = self.limits.max_bytes.saturating_sub(self.expanded) + 1;
        let mut counted = Counted::new(r.take(remaining));
        let (head, rest) = peek(&mut counted)?;
        let kind = (depth < self.limits.max_depth)
            .then(|| sniff(&head))
            .flatten();
        let mut r = Cursor::new(head).chain(rest);
        let result = match kind {
            Some(k) => self.stream(k, &mut r, origin, depth + 1),
            None => {
                let mut buf = std::mem::take(&mut self.buf);
                let f = &mut *self.f;
                let copy = self.git.and_then(|g| g.copy_member(origin, size));
                let res = super::window::stream(
                    &mut Tee::new(&mut r, copy, size),
                    origin,
                    self.limits.chunk,
                    self.limits.overlap,
                    &mut buf,
                    f,
                );
                self.buf = buf;
                res.map(|_| ()).map_err(Stop::from)
            }
        };
        self.expanded += counted.n;
        result?;
        self.budget()
    }
}

/// What `Inflater::inflate` reads: a gzip member (header, deflate stream, checksum and size) or
/// a bare deflate stream (a zip member).
#[derive(Clone, Copy)]
enum Format {
    Gzip,
    Deflate,
}

/// libdeflate's decompressor (see Cargo.toml for why): a whole stream in, all its bytes out.
struct Inflater(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: no preconditions; NULL (out of memory) is checked.
        std::ptr::NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() })
            .map(Inflater)
    }

    /// Runs `f` with this thread's decompressor (made on first use).
    fn with<T>(f: impl FnOnce(&mut Inflater) -> Option<T>) -> Option<T> {
        thread_local! {
            static INFLATER: std::cell::RefCell<Option<Inflater>> = const { std::cell::RefCell::new(None) };
        }
        INFLATER.with_borrow_mut(|i| {
            if i.is_none() {
                *i = Inflater::new();
            }
            f(i.as_mut()?)
        })
    }

    /// The bytes of the one stream that is all of `data`, if it inflates to at most `cap`
    /// bytes. `None` if `data` is damaged, holds more than one gzip member or trailing bytes,
    /// or inflates to more.
    fn inflate(&mut self, format: Format, data: &[u8], cap: usize) -> Option<Vec<u8>> {
        let mut out = Vec::<u8>::with_capacity(cap);
        let (mut used, mut wrote) = (0usize, 0usize);
        let call = match format {
            Format::Gzip => libdeflate_sys::libdeflate_gzip_decompress_ex,
            Format::Deflate => libdeflate_sys::libdeflate_deflate_decompress_ex,
        };
        // SAFETY: the decompressor is live and used by this thread only (`&mut self`); the
        // input is `data.len()` readable bytes; the output is `out`'s capacity of writable
        // bytes, which libdeflate writes only within; both counts are written before return.
        let r = unsafe {
            call(
                self.0.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                out.as_mut_ptr().cast(),
                out.capacity(),
                &mut used,
                &mut wrote,
            )
        };
        if r != libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS || used != data.len() {
            return None;
        }
        // SAFETY: on success libdeflate has written `wrote` (at most the capacity) bytes from
        // the start of `out`.
        unsafe { out.set_len(wrote.min(out.capacity())) };
        Some(out)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// The first 512 bytes (fewer at the end), and the reader to go on with.
pub(crate) fn peek<R: Read>(mut r: R) -> io::Result<(Vec<u8>, R)> {
    let mut head = vec![0; 512];
    let n = super::window::read_up_to(&mut r, &mut head)?;
    head.truncate(n);
    Ok((head, r))
}

/// All of `r`, or `None` if it is longer than `cap`.
fn read_capped(r: &mut dyn Read, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut v = Vec::new();
    r.take(cap as u64 + 1).read_to_end(&mut v)?;
    Ok((v.len() <= cap).then_some(v))
}

fn child(origin: &Arc<Origin>, name: &str) -> Arc<Origin> {
    let mut o = (**origin).clone();
    o.inner.push(name.to_string());
    Arc::new(o)
}

/// `logs/app.log.gz` → `app.log`; `x.tgz` → `x.tar`; otherwise the name with `(decompressed)`.
fn decompressed_name(origin: &Origin) -> String {
    let last = origin.inner.last().unwrap_or(&origin.path);
    let base = last.rsplit('/').next().unwrap_or(last);
    for (suffix, repl) in [
        (".tgz", ".tar"),
        (".gz", ""),
        (".bz2", ""),
        (".xz", ""),
        (".zst", ""),
        (".zstd", ""),
    ] {
        if let Some(stem) = base.strip_suffix(suffix) {
            if !stem.is_empty() {
                return format!("{stem}{repl}");
            }
        }
    }
    format!("{base} (decompressed)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(Kind::Zip));
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(Kind::Gzip));
        assert_eq!(sniff(b"BZh91AY&SYxx"), Some(Kind::Bzip2));
        assert_eq!(sniff(b"BZh is a word"), None);
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]), Some(Kind::Xz));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Kind::Zstd));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Some(Kind::Tar));
        assert_eq!(sniff(b"plain text"), None);
    }

    #[test]
    fn the_ratio_budget_stops_a_bomb() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 32 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let stats = Stats::default();
        let limits = Limits {
            ratio_after: 4 << 20,
            max_ratio: 200,
            chunk: 1 << 20,
            ..Limits::default()
        };
        let mut windows = 0;
        let mut f = |_: Blob| windows += 1;
        let origin = Arc::new(Origin::file("zeros.gz"));
        let mut ex = Expander::new(limits, &stats, bomb.len() as u64, &mut f);
        assert!(ex.bytes(&bomb, Kind::Gzip, &origin));
        let w = stats.warnings();
        assert!(w[0].contains("zeros.gz") && w[0].contains("200×"), "{w:?}");
        assert!(stats.incomplete());
        assert!(windows > 0, "what was expanded before the stop was scanned");
    }

    /// The blobs an input gives, as (origin, offset, line, owned bytes), and the warnings.
    fn expand(data: &[u8], limits: Limits, whole: bool) -> (Vec<String>, Vec<String>) {
        let stats = Stats::default();
        let mut seen = Vec::new();
        let mut f = |b: Blob| {
            let own = String::from_utf8_lossy(&b.data[b.own.clone()]).into_owned();
            seen.push(format!("{} @{} l{} {own}", b.origin, b.offset, b.line));
        };
        let origin = Arc::new(Origin::file("logs/app.log.gz"));
        let mut ex = Expander::new(limits, &stats, data.len() as u64, &mut f);
        let r = if whole {
            ex.bytes(data, Kind::Gzip, &origin)
        } else {
            let r = ex.stream(Kind::Gzip, &mut { data }, &origin, 1);
            ex.finish(r, Kind::Gzip, &origin)
        };
        assert!(r);
        (seen, stats.warnings())
    }

    #[test]
    fn gzip_in_memory_is_inflated_whole_as_the_stream_reads_it() {
        use std::io::Write;
        let gz = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let lines = |from: u32| -> Vec<u8> {
            (from..from + 40_000)
                .flat_map(|i| format!("line {i}\n").into_bytes())
                .collect()
        };
        let one = gz(&lines(0));
        let two = [gz(&lines(0)), gz(&lines(40_000))].concat();
        let mut padded = one.clone();
        padded.extend([0u8; 512]);
        let mut lying = one.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        let mut inflater = Inflater::new().unwrap();
        assert_eq!(
            inflater.inflate(Format::Gzip, &one, 1 << 20),
            Some(lines(0))
        );
        for (name, data) in [
            ("one", &one),
            ("two", &two),
            ("padded", &padded),
            ("lying", &lying),
        ] {
            if name != "one" {
                assert_eq!(
                    inflater.inflate(Format::Gzip, data, 1 << 20),
                    None,
                    "{name}"
                );
            }
            // `bytes` takes the whole-file path for one member, and only then.
            let stats = Stats::default();
            let mut f = |_: Blob| {};
            let ex = Expander::new(Limits::default(), &stats, data.len() as u64, &mut f);
            assert_eq!(ex.inflate_whole(data).is_some(), name == "one", "{name}");
            // Small windows, so that lines are counted across several.
            let limits = Limits {
                chunk: 64 << 10,
                overlap: 4 << 10,
                ..Limits::default()
            };
            let fast = expand(data, limits, true);
            assert_eq!(fast, expand(data, limits, false), "{name}");
            let fast = fast.0;
            assert!(fast.len() > 3, "{name}: {fast:?}");
            assert!(fast
                .iter()
                .all(|b| b.starts_with("logs/app.log.gz › app.log @")));
        }
        // The second member is read.
        let (blobs, _) = expand(&two, Limits::default(), true);
        assert!(blobs.concat().contains("line 79999"));
    }

    #[test]
    fn zip_members_inflated_whole_are_the_members_the_zip_crate_reads() {
        use std::io::Write;
        use zip::write::SimpleFileOptions;
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = |m| SimpleFileOptions::default().compression_method(m);
        w.start_file("a.txt", opts(zip::CompressionMethod::Deflated))
            .unwrap();
        w.write_all(&text).unwrap();
        w.start_file("b.txt", opts(zip::CompressionMethod::Stored))
            .unwrap();
        w.write_all(b"stored\n").unwrap();
        w.add_directory("d/", opts(zip::CompressionMethod::Stored))
            .unwrap();
        w.start_file("d/empty", opts(zip::CompressionMethod::Deflated))
            .unwrap();
        let zipped = w.finish().unwrap().into_inner();

        let stats = Stats::default();
        let mut f = |_: Blob| {};
        let ex = Expander::new(Limits::default(), &stats, zipped.len() as u64, &mut f);
        let mut z = zip::ZipArchive::new(Cursor::new(&zipped[..])).unwrap();
        let mut fast_ones = 0;
        for i in 0..z.len() {
            let fast = ex.inflate_zip_member(&mut z, i);
            let mut m = z.by_index(i).unwrap();
            let mut slow = Vec::new();
            m.read_to_end(&mut slow).unwrap();
            if m.compression() == zip::CompressionMethod::Deflated && !m.is_dir() {
                assert_eq!(fast, Some((m.name().unwrap().into_owned(), slow)));
                fast_ones += 1;
            } else {
                assert_eq!(fast, None, "{}", m.name().unwrap());
            }
        }
        assert_eq!(fast_ones, 2);

        // A wrong checksum: the zip crate's reader reads the member and says so.
        let crc = crc32fast::hash(&text).to_le_bytes();
        let at = zipped.windows(4).rposition(|w| w == crc).unwrap();
        let mut bad = zipped.clone();
        bad[at] ^= 1;
        let mut z = zip::ZipArchive::new(Cursor::new(&bad[..])).unwrap();
        assert_eq!(ex.inflate_zip_member(&mut z, 0), None);
        let stats = Stats::default();
        let mut lines = 0;
        let mut f = |b: Blob| lines += b.data[b.own].iter().filter(|&&c| c == b'\n').count();
        let origin = Arc::new(Origin::file("x.zip"));
        Expander::new(Limits::default(), &stats, bad.len() as u64, &mut f).bytes(
            &bad,
            Kind::Zip,
            &origin,
        );
        let w = stats.warnings();
        assert_eq!(lines, 40_000, "{w:?}");
        assert!(
            w.len() == 1 && w[0].contains("x.zip") && w[0].contains("checksum"),
            "{w:?}"
        );
    }

    #[test]
    fn names_of_decompressed_streams() {
        let o = |p: &str| Origin::file(p);
        assert_eq!(decompressed_name(&o("logs/app.log.gz")), "app.log");
        assert_eq!(decompressed_name(&o("b/x.tgz")), "x.tar");
        assert_eq!(decompressed_name(&o("blob")), "blob (decompressed)");
    }
}
