//! A read-only XFS walker (the root filesystem of Amazon Linux 2 and 2023), written here
//! because no crate reads XFS correctly from a device: `xfs-core` wants the whole image in
//! memory and turns an extent's start block into a byte offset as `block × blocksize`, which
//! is only right in the first allocation group, or when the groups' size is a power of two.
//! An XFS block number is `ag << agblklog | block-in-ag`, and `agblklog` is rounded up: with
//! 8,534-block groups every block past the first group would be read from the wrong place.
//!
//! What it reads (the on-disk format of the kernel's `libxfs/xfs_format.h`, v4 and v5):
//! the primary superblock; inodes (v1–v3 cores, 64-bit extent counters); data forks in
//! local, extent-list and B+tree form; directories in all their forms (short-form in the
//! inode, single block, and leaf/node directories, whose data blocks are the ones below the
//! 32 GiB leaf offset); regular files as their extents, holes and unwritten extents reading
//! as zeros. Every field read from the image is bounds-checked: a corrupt inode or block is
//! an error naming it, never a panic (the fuzz test in `tests/image.rs` mutates images).

use std::io::{self, Read};

use super::{Blob, FileScanner, Slice};

/// Limits that keep a corrupt image from costing unbounded time or memory.
const MAX_EXTENTS: usize = 1 << 22;
const MAX_BTREE_DEPTH: u32 = 8;
/// Directory data blocks live below this byte offset of the directory.
const DIR_LEAF_OFFSET: u64 = 32 << 30;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub type Result<T> = std::result::Result<T, String>;

fn short(what: &str) -> String {
    format!("{what} is cut short")
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    blocksize: u64,
    agblocks: u64,
    agblklog: u32,
    agcount: u64,
    inodesize: u64,
    inopblog: u32,
    dirblksize: u64,
    v5: bool,
    ftype: bool,
}

/// One extent of a file: `count` blocks at file block `off`, stored at block `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    off: u64,
    start: u64,
    count: u64,
    unwritten: bool,
}

impl Extent {
    fn parse(rec: &[u8]) -> Option<Extent> {
        let l0 = be64(rec, 0)?;
        let l1 = be64(rec, 8)?;
        Some(Extent {
            off: (l0 & 0x7fff_ffff_ffff_ffff) >> 9,
            start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
            count: l1 & 0x1f_ffff,
            unwritten: l0 >> 63 == 1,
        })
    }
}

#[derive(Debug)]
pub struct Inode {
    pub ino: u64,
    mode: u16,
    format: u8,
    pub size: u64,
    nextents: u64,
    /// The data fork's bytes.
    fork: Vec<u8>,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

/// A directory entry: its name (bytes, as stored) and inode number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub ino: u64,
}

pub struct Xfs {
    dev: Slice,
    g: Geometry,
    /// Size of the filesystem in bytes.
    bytes: u64,
    pub root: u64,
}

impl Xfs {
    pub fn open(dev: Slice) -> Result<Xfs> {
        let mut sb = [0u8; 512];
        dev.read_exact_at(&mut sb, 0)
            .map_err(|e| format!("superblock: {e}"))?;
        let f8 = |at: usize| sb[at] as u32;
        if &sb[..4] != b"XFSB" {
            return Err("no XFS superblock".into());
        }
        let blocksize = be32(&sb, 4).unwrap_or(0) as u64;
        let blocklog = f8(120);
        let agblocks = be32(&sb, 84).unwrap_or(0) as u64;
        let agcount = be32(&sb, 88).unwrap_or(0) as u64;
        let version = be16(&sb, 100).unwrap_or(0);
        let inodesize = be16(&sb, 104).unwrap_or(0) as u64;
        let inopblog = f8(123);
        let agblklog = f8(124);
        let dirblklog = f8(192);
        let v5 = version & 0xf == 5;
        let features2 = be32(&sb, 200).unwrap_or(0);
        let incompat = be32(&sb, 216).unwrap_or(0);
        let sane = (9..=16).contains(&blocklog)
            && blocksize == 1 << blocklog
            && agblocks > 0
            && agblklog < 32
            && agblocks <= 1 << agblklog
            && (agblocks << 1) > (1 << agblklog)
            && agcount > 0
            && (256..=2048).contains(&inodesize)
            && inodesize.is_power_of_two()
            && inopblog < 16
            && blocksize >> inopblog == inodesize
            && dirblklog <= 8;
        if !sane {
            return Err(format!(
                "superblock geometry is corrupt (block size {blocksize}, {agcount} groups of \
                 {agblocks} blocks, inode size {inodesize})"
            ));
        }
        let g = Geometry {
            blocksize,
            agblocks,
            agblklog,
            agcount,
            inodesize,
            inopblog,
            dirblksize: blocksize << dirblklog,
            v5,
            ftype: if v5 {
                incompat & 1 != 0
            } else {
                version & 0x8000 != 0 && features2 & 0x200 != 0
            },
        };
        let root = be64(&sb, 56).unwrap_or(0);
        let bytes = be64(&sb, 8).unwrap_or(0).saturating_mul(blocksize);
        Ok(Xfs {
            dev,
            g,
            bytes,
            root,
        })
    }

    /// Byte offset of filesystem block `fsb` (`ag << agblklog | block`).
    fn block_byte(&self, fsb: u64) -> Result<u64> {
        let ag = fsb >> self.g.agblklog;
        let b = fsb & ((1 << self.g.agblklog) - 1);
        if ag >= self.g.agcount || b >= self.g.agblocks {
            return Err(format!("block {fsb} is outside the filesystem"));
        }
        (ag * self.g.agblocks + b)
            .checked_mul(self.g.blocksize)
            .ok_or_else(|| format!("block {fsb} is outside the filesystem"))
    }

    fn read_block(&self, fsb: u64) -> Result<Vec<u8>> {
        let mut b = vec![0u8; self.g.blocksize as usize];
        let at = self.block_byte(fsb)?;
        self.dev
            .read_exact_at(&mut b, at)
            .map_err(|e| format!("block {fsb}: {e}"))?;
        Ok(b)
    }

    pub fn inode(&self, ino: u64) -> Result<Inode> {
        let g = &self.g;
        let agino_bits = g.agblklog + g.inopblog;
        let ag = ino >> agino_bits;
        let agino = ino & ((1 << agino_bits) - 1);
        let (b, slot) = (agino >> g.inopblog, agino & ((1 << g.inopblog) - 1));
        if ag >= g.agcount || b >= g.agblocks {
            return Err(format!("inode {ino} is outside the filesystem"));
        }
        let at = (ag * g.agblocks + b) * g.blocksize + slot * g.inodesize;
        let mut raw = vec![0u8; g.inodesize as usize];
        self.dev
            .read_exact_at(&mut raw, at)
            .map_err(|e| format!("inode {ino}: {e}"))?;
        let bad = |what: &str| format!("inode {ino}: {what}");
        if &raw[..2] != b"IN" {
            return Err(bad("bad magic (not an inode)"));
        }
        let version = raw[4];
        let core = match version {
            1 | 2 => 100,
            3 => 176,
            v => return Err(bad(&format!("unknown inode version {v}"))),
        };
        let mode = be16(&raw, 2).unwrap_or(0);
        let format = raw[5];
        let size = be64(&raw, 56).unwrap_or(0);
        let flags2 = if version == 3 {
            be64(&raw, 120).unwrap_or(0)
        } else {
            0
        };
        let nextents = if flags2 & (1 << 4) != 0 {
            be64(&raw, 24).unwrap_or(0) // 64-bit extent counters
        } else {
            be32(&raw, 76).unwrap_or(0) as u64
        };
        let forkoff = raw[82] as usize * 8;
        let end = if forkoff > 0 {
            core + forkoff
        } else {
            raw.len()
        };
        let fork = raw
            .get(core..end.min(raw.len()))
            .ok_or_else(|| bad("attribute fork offset past the inode"))?
            .to_vec();
        if size > i64::MAX as u64 {
            return Err(bad("size is corrupt"));
        }
        Ok(Inode {
            ino,
            mode,
            format,
            size,
            nextents,
            fork,
        })
    }

    /// The data fork's extents, in file order.
    fn extents(&self, ino: &Inode) -> Result<Vec<Extent>> {
        let bad = |what: &str| format!("inode {}: {what}", ino.ino);
        let mut out = Vec::new();
        match ino.format {
            2 => {
                let n = ino.nextents as usize;
                if n.saturating_mul(16) > ino.fork.len() {
                    return Err(bad(&format!("{n} extents do not fit in the inode")));
                }
                out.extend(ino.fork.chunks_exact(16).take(n).filter_map(Extent::parse));
            }
            3 => {
                // The B+tree root in the inode: level, count, keys, then pointers.
                let f = &ino.fork;
                let level = be16(f, 0).ok_or_else(|| bad(&short("btree root")))? as u32;
                let n = be16(f, 2).ok_or_else(|| bad(&short("btree root")))? as usize;
                let maxrecs = f.len().saturating_sub(4) / 16;
                if level == 0 || level > MAX_BTREE_DEPTH || n > maxrecs {
                    return Err(bad("corrupt extent btree root"));
                }
                for i in 0..n {
                    let ptr = be64(f, 4 + maxrecs * 8 + i * 8)
                        .ok_or_else(|| bad(&short("btree root")))?;
                    self.btree(ptr, level - 1, &mut out).map_err(|e| bad(&e))?;
                }
            }
            1 => {} // local: the data is in the inode (directories) or it is tiny
            f => return Err(bad(&format!("unknown data fork format {f}"))),
        }
        // File offsets past 2^63 bytes cannot be (and would overflow the arithmetic).
        let max_blocks = (i64::MAX as u64) / self.g.blocksize;
        if out.iter().any(|e| e.off + e.count > max_blocks) {
            return Err(bad("an extent lies past the largest possible file"));
        }
        out.sort_by_key(|e| e.off);
        Ok(out)
    }

    fn btree(&self, fsb: u64, level: u32, out: &mut Vec<Extent>) -> Result<()> {
        let b = self.read_block(fsb)?;
        let (magic, hdr) = if self.g.v5 {
            (b"BMA3", 72)
        } else {
            (b"BMAP", 24)
        };
        if b.get(..4) != Some(&magic[..]) {
            return Err(format!("extent btree block {fsb}: bad magic"));
        }
        let blevel = be16(&b, 4).unwrap_or(u16::MAX) as u32;
        let n = be16(&b, 6).unwrap_or(0) as usize;
        let maxrecs = (b.len() - hdr) / 16;
        if blevel != level || n > maxrecs {
            return Err(format!("extent btree block {fsb}: corrupt header"));
        }
        if level == 0 {
            if out.len() + n > MAX_EXTENTS {
                return Err("more extents than keyhound reads in one file".into());
            }
            out.extend(
                b[hdr..hdr + n * 16]
                    .chunks_exact(16)
                    .filter_map(Extent::parse),
            );
            return Ok(());
        }
        for i in 0..n {
            let ptr = be64(&b, hdr + maxrecs * 8 + i * 8).unwrap_or(0);
            self.btree(ptr, level - 1, out)?;
        }
        Ok(())
    }

    /// The entries of directory `dir`, without `.` and `..`.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if dir.format == 1 {
            self.short_form(dir, &mut out)?;
        } else {
            let bs = self.g.blocksize;
            let per = self.g.dirblksize / bs; // fs blocks per directory block
            let leaf = DIR_LEAF_OFFSET / bs;
            let extents = self.extents(dir)?;
            let mut done = std::collections::HashSet::new();
            for e in &extents {
                let mut b = e.off;
                while b < (e.off + e.count).min(leaf) {
                    if done.len() as u64 > self.bytes / self.g.dirblksize {
                        return Err(format!("inode {}: more directory blocks than fit", dir.ino));
                    }
                    let first = b - b % per;
                    if done.insert(first) {
                        let block = self.dir_block(dir, &extents, first)?;
                        self.data_entries(dir.ino, &block, &mut out)?;
                    }
                    b = first + per;
                }
            }
        }
        out.retain(|e| e.name != b"." && e.name != b"..");
        Ok(out)
    }

    fn short_form(&self, dir: &Inode, out: &mut Vec<Entry>) -> Result<()> {
        let f = &dir.fork;
        let bad = || format!("inode {}: short-form directory is corrupt", dir.ino);
        let count = *f.first().ok_or_else(bad)? as usize;
        let i8count = *f.get(1).ok_or_else(bad)? as usize;
        let wide = i8count > 0;
        let inum = if wide { 8 } else { 4 };
        let mut at = 2 + inum; // header: counts and the parent's inode number
        for _ in 0..count {
            let namelen = *f.get(at).ok_or_else(bad)? as usize;
            let name = f.get(at + 3..at + 3 + namelen).ok_or_else(bad)?.to_vec();
            at += 3 + namelen + self.g.ftype as usize;
            let ino = if wide {
                be64(f, at).ok_or_else(bad)?
            } else {
                be32(f, at).ok_or_else(bad)? as u64
            };
            at += inum;
            out.push(Entry { name, ino });
        }
        Ok(())
    }

    /// Directory block starting at directory file block `first`.
    fn dir_block<'a>(&'a self, dir: &Inode, extents: &'a [Extent], first: u64) -> Result<Vec<u8>> {
        let mut r = FileReader::new(self, extents, dir.size.max(DIR_LEAF_OFFSET));
        r.pos = first * self.g.blocksize;
        let mut b = vec![0u8; self.g.dirblksize as usize];
        r.read_exact(&mut b)
            .map_err(|e| format!("inode {}: directory block {first}: {e}", dir.ino))?;
        Ok(b)
    }

    fn data_entries(&self, ino: u64, b: &[u8], out: &mut Vec<Entry>) -> Result<()> {
        let bad = |what: &str| format!("inode {ino}: directory block: {what}");
        let (hdr, block_magic, data_magic) = if self.g.v5 {
            (64, b"XDB3", b"XDD3")
        } else {
            (16, b"XD2B", b"XD2D")
        };
        let magic = b.get(..4).ok_or_else(|| bad("too small"))?;
        let end = if magic == block_magic {
            // A single-block directory: the hash leaf and its tail close the block.
            let n = be32(b, b.len() - 8).unwrap_or(u32::MAX) as usize;
            b.len()
                .checked_sub(8 + n.saturating_mul(8))
                .filter(|&e| e >= hdr)
                .ok_or_else(|| bad("leaf count is corrupt"))?
        } else if magic == data_magic {
            b.len()
        } else if magic == [0; 4] {
            return Ok(()); // a hole in a sparse directory
        } else {
            return Err(bad("bad magic"));
        };
        let mut at = hdr;
        while at + 8 <= end {
            if be16(b, at) == Some(0xffff) {
                // Unused space: its length follows the tag.
                let len = be16(b, at + 2).unwrap_or(0) as usize;
                if len < 8 || !len.is_multiple_of(8) {
                    return Err(bad("corrupt free space record"));
                }
                at += len;
                continue;
            }
            let ino = be64(b, at).ok_or_else(|| bad(&short("entry")))?;
            let namelen = *b.get(at + 8).ok_or_else(|| bad(&short("entry")))? as usize;
            if namelen == 0 {
                return Err(bad("empty name"));
            }
            let name = b
                .get(at + 9..at + 9 + namelen)
                .ok_or_else(|| bad(&short("name")))?;
            out.push(Entry {
                name: name.to_vec(),
                ino,
            });
            at += (8 + 1 + namelen + self.g.ftype as usize + 2).next_multiple_of(8);
        }
        Ok(())
    }

    /// A reader of a regular file's bytes.
    pub fn open_file(&self, ino: &Inode) -> Result<FileReader<'_>> {
        if ino.format == 1 {
            // Tiny file data kept in the inode (rare for regular files).
            let data = ino.fork[..(ino.size as usize).min(ino.fork.len())].to_vec();
            let mut r = FileReader::new(self, &[][..], ino.size);
            r.inline = Some(data);
            return Ok(r);
        }
        let extents = self.extents(ino)?;
        // A trailing hole holds nothing; a corrupt size must not stream zeros for ever.
        let end = extents
            .last()
            .map_or(0, |e| (e.off + e.count) * self.g.blocksize);
        let len = ino.size.min(end);
        if len > self.bytes.saturating_mul(64) {
            return Err(format!(
                "inode {}: {len} bytes of data in a {}-byte filesystem (corrupt extents?)",
                ino.ino, self.bytes
            ));
        }
        Ok(FileReader::new(self, extents, len))
    }
}

/// Reads a file (or directory) through its extents; holes and unwritten extents read as
/// zeros.
pub struct FileReader<'a> {
    fs: &'a Xfs,
    extents: std::borrow::Cow<'a, [Extent]>,
    size: u64,
    pos: u64,
    inline: Option<Vec<u8>>,
}

impl<'a> FileReader<'a> {
    fn new(
        fs: &'a Xfs,
        extents: impl Into<std::borrow::Cow<'a, [Extent]>>,
        size: u64,
    ) -> FileReader<'a> {
        FileReader {
            fs,
            extents: extents.into(),
            size,
            pos: 0,
            inline: None,
        }
    }

    /// The bytes the reader gives: the file's size, less a trailing hole.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if let Some(d) = &self.inline {
            let at = self.pos as usize;
            let n = buf.len().min(d.len().saturating_sub(at));
            buf[..n].copy_from_slice(&d[at..at + n]);
            let n = if n == 0 {
                // Past the inline bytes but inside the size: zeros.
                let z = (buf.len() as u64).min(left) as usize;
                buf[..z].fill(0);
                z
            } else {
                n
            };
            self.pos += n as u64;
            return Ok(n);
        }
        let bs = self.fs.g.blocksize;
        let blk = self.pos / bs;
        let want = (buf.len() as u64).min(left);
        // The extent holding `blk`, or the next one after it.
        let i = self.extents.partition_point(|e| e.off + e.count <= blk);
        let n = match self.extents.get(i) {
            Some(e) if e.off <= blk && !e.unwritten => {
                let ext_end = (e.off + e.count) * bs;
                let n = want.min(ext_end - self.pos) as usize;
                let within = self.pos - e.off * bs;
                let at = self
                    .fs
                    .block_byte(e.start)
                    .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?
                    + within;
                self.fs.dev.read_exact_at(&mut buf[..n], at)?;
                n
            }
            Some(e) if e.off <= blk => {
                let n = want.min((e.off + e.count) * bs - self.pos) as usize;
                buf[..n].fill(0);
                n
            }
            next => {
                let hole_end = next.map_or(self.size, |e| e.off * bs);
                let n = want.min(hole_end.saturating_sub(self.pos)).max(1) as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Walks every regular file of the filesystem, each directory and inode once.
pub(super) fn walk<F: FnMut(Blob)>(slice: Slice, files: &mut FileScanner<F>) -> Result<()> {
    let fs = Xfs::open(slice).map_err(|e| format!("xfs: {e}"))?;
    let root = fs
        .inode(fs.root)
        .map_err(|e| format!("xfs: root directory: {e}"))?;
    let mut seen = std::collections::HashSet::from([root.ino]);
    let mut dirs = vec![(String::new(), root)];
    while let Some((prefix, dir)) = dirs.pop() {
        let entries = match fs.read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                files.warn(&format!("{prefix}/"), &e);
                continue;
            }
        };
        for entry in entries {
            let shown = format!("{prefix}/{}", String::from_utf8_lossy(&entry.name));
            if !seen.insert(entry.ino) {
                continue; // a hard link, or a loop in a corrupt directory
            }
            let inode = match fs.inode(entry.ino) {
                Ok(i) => i,
                Err(e) => {
                    files.warn(&shown, &e);
                    continue;
                }
            };
            if inode.is_dir() {
                dirs.push((shown, inode));
            } else if inode.is_file() {
                match fs.open_file(&inode) {
                    Ok(mut r) => files.file(&shown, r.len(), &mut r),
                    Err(e) => files.warn(&shown, &e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::blob::{Blob, Origin};
    use crate::source::block::Disk;
    use crate::source::fs::{walk_files, FsKind, WalkOptions, QUEUE_BYTES};
    use crate::source::partition::Part;
    use crate::source::Stats;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An XFS image made by mkfs.xfs (make_fs.sh) from a tree with a short-form, a block, a
    /// leaf and a node (B+tree-mapped) directory and files of a few sizes.
    fn image(dir: &std::path::Path) -> Vec<u8> {
        let root = dir.join("root");
        let write = |rel: String, data: Vec<u8>| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        write("etc/hostname".into(), b"ip-10-0-0-1\n".to_vec());
        for i in 0..40 {
            write(format!("block/{i}.conf"), vec![b'a' + (i % 26) as u8; 100]);
        }
        for i in 0..400 {
            write(
                format!("leaf/entry-{i:04}.txt"),
                format!("{i}\n").into_bytes(),
            );
        }
        for i in 0..3000 {
            write(
                format!("node/a-long-file-name-{i:05}.json"),
                b"{}\n".to_vec(),
            );
        }
        write(
            "var/big.bin".into(),
            (0..3_000_000u32).map(|i| i as u8).collect(),
        );
        let out = dir.join("xfs.img");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/images/make_fs.sh");
        let o = std::process::Command::new("bash")
            .arg(script)
            .arg(&out)
            .arg("xfs")
            .arg(&root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    }

    /// Walks the XFS image at `path`, with at most `queue_bytes` of files waiting for the
    /// scanning threads: (files read, bytes read, warnings).
    fn walk(path: &std::path::Path, queue_bytes: usize) -> (usize, u64, usize) {
        let disk = Arc::new(Disk::open(path).unwrap());
        let part = Part {
            name: "disk".into(),
            start: 0,
            len: disk.len(),
            fs: Some(FsKind::Xfs),
            expect_fs: true,
            missing: 0,
        };
        let opts = WalkOptions {
            chunk: 1 << 20,
            overlap: 4096,
            archives: Default::default(),
            threads: 2,
            queue_bytes,
            git: None,
            shard: None,
        };
        let stats = Stats::default();
        let (files, bytes) = (AtomicUsize::new(0), AtomicU64::new(0));
        walk_files(
            &disk,
            &Origin::file("xfs.img"),
            &part,
            &opts,
            &stats,
            &|| {
                |b: Blob| {
                    files.fetch_add(usize::from(b.offset == 0), Ordering::Relaxed);
                    bytes.fetch_add(b.own.len() as u64, Ordering::Relaxed);
                }
            },
        );
        (
            files.into_inner(),
            bytes.into_inner(),
            stats.warnings().len(),
        )
    }

    #[test]
    fn every_directory_form_and_file_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        image(tmp.path());
        let path = tmp.path().join("xfs.img");
        let (files, bytes, warnings) = walk(&path, QUEUE_BYTES);
        // With a 1-byte queue, the walking thread scans all but one batch at a time itself:
        // the same files and bytes either way.
        assert_eq!(walk(&path, 1), (files, bytes, warnings));
        assert_eq!(warnings, 0);
        assert_eq!(files, 1 + 40 + 400 + 3000 + 1);
        let expect = 12
            + 40 * 100
            + (0..400)
                .map(|i: u32| i.to_string().len() as u64 + 1)
                .sum::<u64>()
            + 3000 * 3
            + 3_000_000;
        assert_eq!(bytes, expect);
    }

    /// Fuzzing with a fixed seed: bytes of the metadata blocks (superblocks, AG headers,
    /// inodes, directory and B+tree blocks) are changed at random, 600 times; the walker must
    /// never panic, and report what it cannot read as warnings.
    #[test]
    fn mutated_metadata_never_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let img = image(tmp.path());
        let magics: [&[u8]; 12] = [
            b"XFSB", b"XAGF", b"XAGI", b"XAFL", b"IN", b"XDB3", b"XDD3", b"XDL3", b"XDN3", b"BMA3",
            b"IAB3", b"FIB3",
        ];
        // Metadata 512-byte sectors (inodes are 512 bytes; the rest starts a 4 KiB block).
        let meta: Vec<usize> = (0..img.len() / 512)
            .filter(|s| magics.iter().any(|m| img[s * 512..].starts_with(m)))
            .collect();
        assert!(meta.len() > 3000, "{} metadata sectors", meta.len());
        let mut rng = fastrand::Rng::with_seed(4);
        let path = tmp.path().join("mutated.img");
        std::fs::write(&path, &img).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let (mut warned, mut read_some) = (0, 0);
        for round in 0..600 {
            // Change a few bytes; they are put back after the walk.
            let mut changed = Vec::new();
            for _ in 0..rng.usize(1..=6) {
                let s = meta[rng.usize(..meta.len())];
                // Mostly the headers' fields, where the structure is.
                let at = s * 512
                    + if rng.bool() {
                        rng.usize(..256)
                    } else {
                        rng.usize(..512)
                    };
                let b = match rng.u8(..3) {
                    0 => rng.u8(..),
                    1 => img[at] ^ (1 << rng.u8(..8)),
                    _ => 0xff,
                };
                f.write_all_at(&[b], at as u64).unwrap();
                changed.push(at);
            }
            let r = std::panic::catch_unwind(|| walk(&path, QUEUE_BYTES));
            let (files, _, warnings) = r.unwrap_or_else(|_| panic!("panic in round {round}"));
            for at in changed {
                f.write_all_at(&img[at..at + 1], at as u64).unwrap();
            }
            warned += usize::from(warnings > 0);
            read_some += usize::from(files > 0);
        }
        eprintln!("{warned} of 600 rounds warned; {read_some} read files");
        // The mutations reach the parser: many rounds warn, and most still read files.
        assert!(warned > 60, "{warned} rounds warned");
        assert!(read_some > 300, "{read_some} rounds read files");
    }
}
