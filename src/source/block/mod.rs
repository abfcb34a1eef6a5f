//! Block devices and containers: whatever holds a virtual disk, read through one trait
//! (`BlockReader`: size, positioned reads, the ranges that hold data), so that the partition
//! tables, the filesystem walkers and the raw pass never know where the blocks come from.
//!
//! | format | reader | why |
//! |---|---|---|
//! | raw, block device | `raw.rs`: `pread`, holes skipped with `SEEK_DATA`/`SEEK_HOLE`, mapped for the raw pass | |
//! | VMDK (monolithicSparse, streamOptimized with compressed grains, flat descriptors) | `vmdk.rs` over `vmdk-core` | read-only, no unsafe, checked byte-for-byte against `qemu-img convert` images by `tests/image.rs` |
//! | VHD (fixed, dynamic) | `vhd.rs`, this crate's own | `vhd-core` reads the whole file into memory when it opens it (343 MB of RSS for a 300 MB VHD); the format is a footer, a header and one table |
//! | VHDX (dynamic, any block size) | `vhdx.rs` over `vhdx-core` | read-only, no unsafe, checked byte-for-byte against `qemu-img convert` images |
//! | qcow2 (v2/v3, zlib and zstd compressed clusters, zero clusters) | `qcow2.rs`, this crate's own | `qcow2-core` misreads the compressed-cluster descriptor (offset and sector count split at bit 63−cluster_bits instead of 62−(cluster_bits−8)): it still decodes, but reads up to 128× the compressed bytes per cluster (222 MB/s instead of 1.5 GB/s on a compressible image), and it refuses zstd-compressed images; the format is small enough to read correctly here |
//! | EBS snapshot | `ebs.rs` over the EBS direct APIs (`aws-sdk-ebs`) | blocks fetched on demand, checksummed, each once |
//!
//! Image files are recognised by their magic, not their name. Readers that keep a position or
//! a cache of their own (the crates' `Read + Seek` readers, qcow2's L2 table) are used through a
//! small pool of opened handles (`Pooled`), so the raw pass's threads and the filesystem walkers
//! read the same disk at once.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub mod arena;
pub mod ebs;
pub mod qcow2;
pub mod raw;
pub mod remote;
pub mod s3;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

/// A virtual disk at byte offsets, readable from many threads at once.
pub trait BlockReader: Send + Sync {
    /// Size of the virtual disk in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads at `off`; may return fewer bytes than asked (0 only at the end).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// The next range holding data at or after `pos` (before `end`); all of it when unknown.
    /// What lies outside such ranges reads as zeros and is skipped by the raw pass.
    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        (pos, end)
    }
    /// A read-only map of the disk's bytes, where it is a plain file (see `Disk::map`).
    fn map(&self) -> Option<memmap2::Mmap> {
        None
    }
    /// A disk whose blocks are fetched over the network, each once (`remote.rs`): the raw pass
    /// takes the blocks as they are fetched instead of reading them again.
    fn remote(&self) -> Option<&remote::Remote> {
        None
    }
}

/// A disk held in memory (a small image read whole, from S3).
pub struct Memory(pub bytes::Bytes);

impl BlockReader for Memory {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let from = (off as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - from);
        buf[..n].copy_from_slice(&self.0[from..from + n]);
        Ok(n)
    }
}

/// The bytes a container format is read from: an image file, or an image in S3 read through
/// ranged requests (a remote `Disk`). Container readers hold one (`Arc<dyn Store>`) and never
/// know which.
pub trait Store: Send + Sync {
    /// Bytes in the store.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `off`; may return fewer bytes than asked (0 only at the end).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Fills `buf` from `off`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let mut n = 0;
        while n < buf.len() {
            match self.read_at(&mut buf[n..], off + n as u64)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                k => n += k,
            }
        }
        Ok(())
    }
}

impl Store for File {
    fn size(&self) -> io::Result<u64> {
        raw::size(self)
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, off)
    }
}

impl Store for Disk {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len())
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        Disk::read_at(self, buf, off)
    }
}

/// A store as a `Read + Seek` stream, for the crates that read one (`vmdk-core`, `vhdx-core`).
pub struct StoreReader {
    store: Arc<dyn Store>,
    len: u64,
    pos: u64,
}

impl StoreReader {
    pub fn new(store: Arc<dyn Store>) -> io::Result<StoreReader> {
        let len = store.size()?;
        Ok(StoreReader { store, len, pos: 0 })
    }
}

impl Read for StoreReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.store.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for StoreReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_to(self.len, self.pos, to)?;
        Ok(self.pos)
    }
}

/// Where a seek lands in something `len` bytes long, read at `pos`.
pub(crate) fn seek_to(len: u64, pos: u64, to: SeekFrom) -> io::Result<u64> {
    let p = match to {
        SeekFrom::Start(p) => p as i128,
        SeekFrom::End(d) => len as i128 + d as i128,
        SeekFrom::Current(d) => pos as i128 + d as i128,
    };
    if p < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek before start",
        ));
    }
    Ok(p as u64)
}

/// One opened handle of a reader that reads where it was last moved to, or keeps a cache.
pub trait Handle: Send {
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    fn data(&mut self, pos: u64, end: u64) -> (u64, u64) {
        (pos, end)
    }
}

/// A `Read + Seek` reader as a handle.
pub struct Seeker<R>(pub R);

impl<R: Read + Seek + Send> Handle for Seeker<R> {
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.0.seek(SeekFrom::Start(off))?;
        self.0.read(buf)
    }
}

type Opener<H> = Box<dyn Fn() -> io::Result<H> + Send + Sync>;

/// Handles of one disk shared by threads: each read takes a free one, or opens another.
pub struct Pooled<H> {
    len: u64,
    pool: Mutex<Vec<H>>,
    open: Opener<H>,
}

impl<H: Handle> Pooled<H> {
    pub fn new(first: H, len: u64, open: Opener<H>) -> Pooled<H> {
        Pooled {
            len,
            pool: Mutex::new(vec![first]),
            open,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut H) -> io::Result<T>) -> io::Result<T> {
        let h = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut h = match h {
            Some(h) => h,
            None => (self.open)()?,
        };
        let r = f(&mut h);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(h);
        r
    }
}

impl<H: Handle> BlockReader for Pooled<H> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.with(|h| h.read_at(buf, off))
    }
    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        self.with(|h| Ok(h.data(pos, end))).unwrap_or((pos, end))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Vmdk,
    Vhd,
    Vhdx,
    Qcow2,
    Ebs,
    /// A logical volume of LVM2 physical volumes on a disk.
    Lvm,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Qcow2 => "qcow2",
            Format::Ebs => "ebs",
            Format::Lvm => "lvm",
        }
    }
}

/// The container format of an image from its first and last 512 bytes.
pub fn sniff_bytes(head: &[u8], tail: &[u8]) -> Format {
    if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        Format::Vmdk
    } else if head.starts_with(b"vhdxfile") {
        Format::Vhdx
    } else if head.starts_with(b"QFI\xfb") {
        Format::Qcow2
    } else if tail.starts_with(b"conectix") || head.starts_with(b"conectix") {
        Format::Vhd
    } else {
        Format::Raw
    }
}

/// The container format of the file at `path`.
pub fn sniff(path: &Path) -> io::Result<Format> {
    let f = File::open(path)?;
    let mut head = [0u8; 512];
    let n = read_full(&f, &mut head, 0)?;
    let len = raw::size(&f)?;
    let mut foot = [0u8; 512];
    let tail = if len >= 512 {
        let n = read_full(&f, &mut foot, len - 512)?;
        &foot[..n]
    } else {
        &[][..]
    };
    Ok(sniff_bytes(&head[..n], tail))
}

fn read_full(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match FileExt::read_at(f, &mut buf[n..], off + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The part of `[pos, end)` that the first of `ranges` (sorted, merged) at or after `pos`
/// covers; `(end, end)` when none does.
pub(crate) fn next_range(ranges: &[(u64, u64)], pos: u64, end: u64) -> (u64, u64) {
    let i = ranges.partition_point(|r| r.1 <= pos);
    match ranges.get(i) {
        Some(&(s, e)) if s < end => (s.max(pos), e.min(end)),
        _ => (end, end),
    }
}

/// Appends `[s, e)` to sorted ranges, merged with the last when they touch.
pub(crate) fn push_merged(out: &mut Vec<(u64, u64)>, s: u64, e: u64) {
    match out.last_mut() {
        Some(last) if s <= last.1 => last.1 = last.1.max(e),
        _ if s < e => out.push((s, e)),
        _ => {}
    }
}

/// A virtual disk with a name to show: an image file, a device, a snapshot.
pub struct Disk {
    /// How places on it are named (`disk.img`, `snap-0abc…`).
    pub name: String,
    pub format: Format,
    reader: Box<dyn BlockReader>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Disk({}, {})", self.name, self.format.name())
    }
}

impl Disk {
    pub fn new(name: String, format: Format, reader: Box<dyn BlockReader>) -> Disk {
        Disk {
            name,
            format,
            reader,
        }
    }

    /// Opens the image file or device at `path` as the virtual disk its format holds. Errors
    /// name what is wrong with it.
    pub fn open(path: &Path) -> io::Result<Disk> {
        let format = sniff(path)?;
        let bad = |e: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", format.name()),
            )
        };
        let reader: Box<dyn BlockReader> = match format {
            Format::Raw => Box::new(raw::Raw::open(path)?),
            Format::Vmdk => vmdk::open(path).map_err(|e| bad(&e))?,
            Format::Vhd | Format::Vhdx | Format::Qcow2 => {
                let f: Arc<dyn Store> = Arc::new(File::open(path)?);
                container(format, f)?
            }
            Format::Ebs | Format::Lvm => unreachable!("sniff never says ebs or lvm"),
        };
        let name = crate::source::tree::display_path(path);
        Ok(Disk::new(name, format, reader))
    }

    /// The virtual disk that `outer` (an image file's bytes, read from anywhere: an object in
    /// S3) holds, by its first and last 512 bytes; `outer` itself when it is a raw image.
    pub fn open_in(name: String, outer: Arc<Disk>) -> io::Result<Disk> {
        let mut head = vec![0u8; 512.min(outer.len() as usize)];
        outer.read_at(&mut head, 0)?;
        let mut tail = vec![0u8; 512.min(outer.len() as usize)];
        let at = outer.len() - tail.len() as u64;
        outer.read_at(&mut tail, at)?;
        let format = sniff_bytes(&head, &tail);
        if format == Format::Raw {
            let outer = Arc::into_inner(outer).ok_or_else(|| invalid("disk in use".into()))?;
            return Ok(Disk::new(name, Format::Raw, outer.reader));
        }
        let reader = container(format, outer)?;
        Ok(Disk::new(name, format, reader))
    }

    /// Size of the virtual disk in bytes.
    pub fn len(&self) -> u64 {
        self.reader.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads at `off` of the virtual disk; short only at its end.
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.len().saturating_sub(off)) as usize;
        let mut n = 0;
        while n < want {
            match self.reader.read_at(&mut buf[n..want], off + n as u64)? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }

    /// A read-only map of a raw image file, for scanning it where the page cache holds it
    /// instead of copying it out; `None` for containers, block devices, snapshots and empty
    /// files, or when the map fails (they are read instead).
    ///
    /// The file must not shrink while it is mapped: reading a page past a new end kills the
    /// process with SIGBUS (`image --no-mmap` reads instead). Disk images and snapshots being
    /// scanned do not change; that is the same bargain ripgrep makes for big files.
    pub fn map(&self) -> Option<memmap2::Mmap> {
        self.reader.map()
    }

    /// The next range at or after `pos` (before `end`) that may hold data: holes of sparse
    /// files, unallocated VMDK grains and qcow2 clusters, unwritten snapshot blocks read as
    /// zeros and are skipped.
    pub fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        self.reader.data(pos, end)
    }

    pub fn remote(&self) -> Option<&remote::Remote> {
        self.reader.remote()
    }
}

/// The container reader of `format` over `store`; errors name the format.
/// The reader of a container `format` over `store`.
pub fn container(format: Format, store: Arc<dyn Store>) -> io::Result<Box<dyn BlockReader>> {
    let bad = |e: &dyn std::fmt::Display| invalid(format!("{}: {e}", format.name()));
    Ok(match format {
        Format::Vmdk => vmdk::open_store(store).map_err(|e| bad(&e))?,
        Format::Vhd => Box::new(vhd::Vhd::open(store).map_err(|e| bad(&e))?),
        Format::Vhdx => vhdx::open_store(store).map_err(|e| bad(&e))?,
        Format::Qcow2 => qcow2::open_store(store).map_err(|e| bad(&e))?,
        Format::Raw | Format::Ebs | Format::Lvm => unreachable!("not a container"),
    })
}

/// A range of a disk (a partition, or a region of the raw pass) as a file of its own.
#[derive(Debug)]
pub struct Slice {
    disk: Arc<Disk>,
    start: u64,
    len: u64,
    pos: u64,
}

impl Slice {
    pub fn new(disk: Arc<Disk>, start: u64, len: u64) -> Slice {
        let len = len.min(disk.len().saturating_sub(start));
        Slice {
            disk,
            start,
            len,
            pos: 0,
        }
    }
}

impl Slice {
    /// Where the next `read` starts, from the slice's start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads at `off` from the slice's start; short only at its end.
    /// Bytes in the slice.
    pub fn size(&self) -> u64 {
        self.len
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.len.saturating_sub(off)) as usize;
        self.disk.read_at(&mut buf[..want], self.start + off)
    }

    /// Fills `buf` from `off`, or says where the slice ends.
    pub fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let n = self.read_at(buf, off)?;
        if n < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "byte {} is past the end ({} bytes)",
                    off + n as u64,
                    self.len
                ),
            ));
        }
        Ok(())
    }
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.disk.read_at(&mut buf[..want], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_to(self.len, self.pos, to)?;
        Ok(self.pos)
    }
}

/// The FAT and GPT readers want a writable disk; keyhound never writes.
impl Write for Slice {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only image",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ext4_view::Ext4Read for Slice {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        if start_byte + dst.len() as u64 > self.len {
            return Err(format!("read past the partition's end at byte {start_byte}").into());
        }
        let n = self.disk.read_at(dst, self.start + start_byte)?;
        if n < dst.len() {
            return Err(format!("image ends before byte {}", self.start + start_byte).into());
        }
        Ok(())
    }
}

/// A slice for ext4-view, read where each read is a system call (an image file). ext4-view
/// reads a file's blocks that lie next to each other on the disk in one read, exactly (the
/// vendored fork's change, `vendor/README.md`), and the rest (inodes, directory and extent
/// blocks) through its block cache, 32 KiB at a time. A read that starts where the last one
/// ended (or, as the next file on the disk does, at the next block) is served from a buffer
/// filled with twice what the sequential run has read so far, up to `READ_AHEAD`: the small
/// files `mkfs.ext4 -d` lays out one after another are read a few hundred KiB at a time, and a
/// short file does not pull in 256 KiB past its end (where the next file is another shard's,
/// nothing else uses it). Scattered reads are made as asked. The four shards of the bench
/// volume read 1.73 GB from the page cache (2.19 GB while ext4-view read every block through
/// its cache, 2.6 GB before the doubling), the whole run 1.10 GB.
pub struct ReadAhead {
    slice: Slice,
    buf: Vec<u8>,
    /// Where `buf[0]` is in the slice.
    at: u64,
    last_end: u64,
    /// Where the current run of sequential reads started.
    run: u64,
}

const READ_AHEAD: usize = 256 << 10;

/// A read is sequential if it starts where the last one ended, or up to this many bytes past
/// it: ext4-view reads a file's whole blocks in one read, and its last block only as far as the
/// file goes, so the next file on the disk starts at the next block.
const TAIL_GAP: u64 = 4096;

impl ReadAhead {
    pub fn new(slice: Slice) -> ReadAhead {
        ReadAhead {
            slice,
            buf: Vec::new(),
            at: 0,
            last_end: u64::MAX,
            run: 0,
        }
    }
}

impl ext4_view::Ext4Read for ReadAhead {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let end = start_byte + dst.len() as u64;
        let buffered = self.at..self.at + self.buf.len() as u64;
        if start_byte >= buffered.start && end <= buffered.end {
            let o = (start_byte - self.at) as usize;
            dst.copy_from_slice(&self.buf[o..o + dst.len()]);
        } else if start_byte
            .checked_sub(self.last_end)
            .is_some_and(|g| g < TAIL_GAP)
            && dst.len() < READ_AHEAD
            && end <= self.slice.len
        {
            // (A run may go on from a read served by an older buffer, before `run`.)
            let ahead = (2 * start_byte.saturating_sub(self.run))
                .clamp(dst.len() as u64, READ_AHEAD as u64);
            let n = (ahead as usize).min((self.slice.len - start_byte) as usize);
            self.buf.resize(n, 0);
            let got = self.slice.read_at(&mut self.buf, start_byte);
            let got = got.inspect_err(|_| self.buf.clear())?;
            self.buf.truncate(got);
            self.at = start_byte;
            if got < dst.len() {
                return Err(format!("image ends before byte {}", self.slice.start + end).into());
            }
            dst.copy_from_slice(&self.buf[..dst.len()]);
        } else {
            ext4_view::Ext4Read::read(&mut self.slice, start_byte, dst)?;
            self.run = start_byte;
        }
        self.last_end = end;
        Ok(())
    }
}

// What the container readers of this crate (`qcow2.rs`, `vhd.rs`) share: big-endian fields,
// and tables read with an error that names the table, where it is, and a cut file.

pub(super) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// A short read of the image file means it was cut short.
pub(super) fn eof_says_truncated(e: io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "past the end of the file (truncated?)".into()
    } else {
        e.to_string()
    }
}

/// Reads `len` bytes of a table at `at`; an error names the table and where it is.
pub(super) fn read_table(f: &dyn Store, what: &str, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut raw = vec![0u8; len];
    f.read_exact_at(&mut raw, at)
        .map_err(|e| invalid(format!("{what} at byte {at}: {}", eof_says_truncated(e))))?;
    Ok(raw)
}

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ext4_view::Ext4Read;
    use std::process::Command;

    /// Sequential reads come from the read-ahead buffer, scattered ones straight from the disk,
    /// and both give the slice's bytes; a read past the slice's end is an error.
    #[test]
    fn read_ahead_gives_the_slices_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk.raw");
        let mut rng = fastrand::Rng::with_seed(11);
        let data: Vec<u8> = (0..(3 << 20) + 1000).map(|_| rng.u8(..)).collect();
        std::fs::write(&path, &data).unwrap();
        let disk = Arc::new(Disk::open(&path).unwrap());
        let (start, len) = (4096u64, (data.len() - 4096 - 300) as u64);
        let part = &data[start as usize..(start + len) as usize];
        let mut r = ReadAhead::new(Slice::new(disk, start, len));
        let mut block = vec![0u8; 4096];
        // A file read block by block, across several refills, then scattered reads (one
        // inside what is buffered, one before it) and a run up to the slice's very end.
        let mut reads: Vec<(u64, usize)> = (0..200).map(|i| (i * 4096, 4096)).collect();
        reads.extend([(100, 17), (4096 * 150 + 5, 4096), (len - 3 * 4096, 4096)]);
        reads.extend([(len - 2 * 4096, 4096), (len - 4096, 4096)]);
        for (at, n) in reads {
            r.read(at, &mut block[..n]).unwrap();
            assert_eq!(&block[..n], &part[at as usize..at as usize + n], "at {at}");
        }
        assert!(r.read(len - 100, &mut block[..4096]).is_err());
        assert!(r.read(len, &mut block[..1]).is_err());
        // A run that goes on from an older buffer, behind the last scattered read.
        let mut r = ReadAhead::new(r.slice);
        for at in [0, 4096, 100_000, 8192, 12288, 16384] {
            r.read(at, &mut block).unwrap();
            assert_eq!(
                &block[..],
                &part[at as usize..at as usize + 4096],
                "at {at}"
            );
        }
    }

    /// Every container `qemu-img convert` writes reads back byte-for-byte as the raw image
    /// it was made from: incompressible, compressible and zero regions, a tail that is not a
    /// whole cluster, qcow2 with zlib and zstd compressed clusters and small clusters.
    #[test]
    fn containers_read_back_as_the_raw_disk() {
        if Command::new("qemu-img").arg("--version").output().is_err() {
            panic!("qemu-img is needed (scripts/test installs qemu-utils)");
        }
        let tmp = tempfile::tempdir().unwrap();
        let raw = tmp.path().join("disk.raw");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut data = vec![0u8; (24 << 20) + 3 * 512];
        for b in &mut data[1 << 20..5 << 20] {
            *b = rng.u8(..); // incompressible
        }
        let text = b"export AWS_REGION=us-east-1 # a line that compresses well\n";
        for (i, b) in data[9 << 20..17 << 20].iter_mut().enumerate() {
            *b = text[i % text.len()];
        }
        for b in &mut data[(24 << 20) - 4096..] {
            *b = rng.u8(b'a'..=b'z'); // up to the unaligned end
        }
        std::fs::write(&raw, &data).unwrap();
        let cases: &[(&str, &[&str], Format)] = &[
            ("mono.vmdk", &["-O", "vmdk"], Format::Vmdk),
            (
                "stream.vmdk",
                &["-O", "vmdk", "-o", "subformat=streamOptimized"],
                Format::Vmdk,
            ),
            (
                "dyn.vhd",
                &["-O", "vpc", "-o", "force_size=on"],
                Format::Vhd,
            ),
            (
                "fixed.vhd",
                &["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
                Format::Vhd,
            ),
            ("d.vhdx", &["-O", "vhdx"], Format::Vhdx),
            ("p.qcow2", &["-O", "qcow2"], Format::Qcow2),
            (
                "v2.qcow2",
                &["-O", "qcow2", "-o", "compat=0.10"],
                Format::Qcow2,
            ),
            ("z.qcow2", &["-c", "-O", "qcow2"], Format::Qcow2),
            (
                "zstd.qcow2",
                &["-c", "-O", "qcow2", "-o", "compression_type=zstd"],
                Format::Qcow2,
            ),
            (
                "small.qcow2",
                &["-c", "-O", "qcow2", "-o", "cluster_size=4096"],
                Format::Qcow2,
            ),
        ];
        for (name, args, format) in cases {
            let out = tmp.path().join(name);
            let st = Command::new("qemu-img")
                .arg("convert")
                .args(*args)
                .arg(&raw)
                .arg(&out)
                .status()
                .unwrap();
            assert!(st.success(), "qemu-img convert {args:?}");
            let disk = Arc::new(Disk::open(&out).unwrap_or_else(|e| panic!("{name}: {e}")));
            assert_eq!(disk.format, *format, "{name}");
            // Only raw files are mapped; containers are decoded.
            assert!(disk.map().is_none(), "{name}");
            assert!(disk.len() >= data.len() as u64, "{name}: {}", disk.len());
            let mut back = Vec::new();
            Slice::new(disk.clone(), 0, disk.len())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len() as u64, disk.len(), "{name}");
            let same = back[..data.len()] == data[..];
            let first = back.iter().zip(&data).position(|(a, b)| a != b);
            assert!(same, "{name}: first difference at {first:?}");
            assert!(back[data.len()..].iter().all(|&b| b == 0), "{name}");
            // A read across a cluster boundary, from the middle.
            let mut mid = vec![0u8; 70_000];
            let off = (9 << 20) - 1000;
            assert_eq!(disk.read_at(&mut mid, off).unwrap(), mid.len());
            assert_eq!(mid[..], data[off as usize..off as usize + 70_000], "{name}");
        }
        // The raw file itself is mapped, whole, with the same bytes.
        let map = Disk::open(&raw)
            .unwrap()
            .map()
            .expect("a raw file is mapped");
        assert_eq!(map[..], data[..]);
        // Sparse VMDKs: the grains before the first data are skipped, and the zero stretch
        // between the incompressible and the text regions.
        for name in ["mono.vmdk", "stream.vmdk"] {
            let v = Disk::open(&tmp.path().join(name)).unwrap();
            let (start, stop) = v.data(0, v.len());
            assert_eq!(start, 1 << 20, "{name}");
            assert_eq!(stop, 5 << 20, "{name}");
            assert_eq!(v.data(stop, v.len()).0, 9 << 20, "{name}");
            assert_eq!(
                v.data(v.len() - 10, v.len()),
                (v.len() - 10, v.len()),
                "{name}"
            );
        }
        // Dynamic VHD (2 MiB blocks): blocks never written are skipped.
        let v = Disk::open(&tmp.path().join("dyn.vhd")).unwrap();
        assert_eq!(v.data(0, v.len()), (0, 6 << 20));
        assert_eq!(v.data(6 << 20, v.len()).0, 8 << 20);
        // qcow2: the unallocated clusters before the first data are skipped.
        let q = Disk::open(&tmp.path().join("p.qcow2")).unwrap();
        let (start, stop) = q.data(0, q.len());
        assert_eq!(start, 1 << 20);
        assert!((5 << 20..9 << 20).contains(&stop), "{stop}");
        // A truncated qcow2 or dynamic VHD (opened from the footer's copy at its start) says
        // where it breaks.
        for name in ["p.qcow2", "dyn.vhd"] {
            let t = tmp.path().join(format!("cut-{name}"));
            let whole = std::fs::read(tmp.path().join(name)).unwrap();
            std::fs::write(&t, &whole[..whole.len() / 2]).unwrap();
            let cut = Disk::open(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut buf = vec![0u8; 1 << 20];
            let err = (0..24)
                .find_map(|m| cut.read_at(&mut buf, m << 20).err())
                .expect("reading past the cut fails");
            assert!(err.to_string().contains("truncated"), "{name}: {err}");
        }
    }
}
