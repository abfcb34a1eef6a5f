//! A read-only VHD reader (Virtual PC / Hyper-V disks, one of `ec2 export-image`'s formats):
//! fixed and dynamic disks. Written here because `vhd-core` reads the whole file into memory
//! when it opens it (a 300 MB VHD cost 343 MB of RSS; a 20 GB one would not fit), and reads
//! only what is asked for here: the footer, the dynamic header and the block allocation table.
//! Differencing disks (whose missing sectors are in a parent) are refused with a message.
//!
//! Layout (Microsoft's "Virtual Hard Disk Image Format Specification"), all big-endian: a
//! 512-byte footer at the end of the file (cookie `conectix`, the data offset at 16, the
//! current size at 48, the disk type at 60: 2 fixed, 3 dynamic, 4 differencing). A fixed disk
//! is its bytes followed by the footer. A dynamic disk has a header at the data offset (cookie
//! `cxsparse`, the table offset at 16, the number of entries at 28, the block size at 32) and a
//! table of 32-bit sector numbers, one per block, `0xFFFFFFFF` for a block never written
//! (read as zeros); a block's sector bitmap comes first, rounded up to whole sectors, then its
//! data.

use std::io;
use std::sync::Arc;

use super::{be32, be64, eof_says_truncated, invalid, read_table, BlockReader, Store};

impl BlockReader for Vhd {
    fn len(&self) -> u64 {
        self.disk_size()
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        Vhd::read_at(self, buf, off)
    }
    fn data(&self, pos: u64, end: u64) -> (u64, u64) {
        self.allocated(pos, end)
    }
}

const UNUSED: u32 = 0xffff_ffff;
/// Block allocation tables past this many entries (16 MiB of table; with the usual 2 MiB blocks,
/// 8 TiB, four times the largest VHD) are refused: a corrupt size must not cost a huge table.
const MAX_BLOCKS: u64 = 4 << 20;

pub struct Vhd {
    f: Arc<dyn Store>,
    size: u64,
    /// For a dynamic disk: (block size, bytes of sector bitmap before each block, the table).
    dynamic: Option<(u64, u64, Vec<u32>)>,
}

impl Vhd {
    pub fn open(f: Arc<dyn Store>) -> io::Result<Vhd> {
        let len = f.size()?;
        if len < 512 {
            return Err(invalid("not a VHD (shorter than its footer)".into()));
        }
        let mut footer = [0u8; 512];
        f.read_exact_at(&mut footer, len - 512)?;
        if &footer[..8] != b"conectix" {
            // A dynamic disk copies its footer at the start; a cut one has only that copy.
            f.read_exact_at(&mut footer, 0)?;
            if &footer[..8] != b"conectix" {
                return Err(invalid("not a VHD (no conectix footer)".into()));
            }
        }
        let size = be64(&footer, 48);
        let dynamic =
            match be32(&footer, 60) {
                2 => None,
                3 => Some(Self::table(&*f, be64(&footer, 16), size)?),
                4 => return Err(invalid(
                    "a differencing VHD: its unchanged sectors are in its parent; scan the parent"
                        .into(),
                )),
                t => {
                    return Err(invalid(format!(
                        "VHD disk type {t} is not fixed or dynamic"
                    )))
                }
            };
        Ok(Vhd { f, size, dynamic })
    }

    /// Reads a dynamic disk's header at `at` and its block allocation table.
    fn table(f: &dyn Store, at: u64, size: u64) -> io::Result<(u64, u64, Vec<u32>)> {
        let h = read_table(f, "dynamic header", at, 40)?;
        if &h[..8] != b"cxsparse" {
            return Err(invalid(format!(
                "no dynamic header (cxsparse) at byte {at}"
            )));
        }
        let (table_at, entries, block) = (
            be64(&h, 16),
            u64::from(be32(&h, 28)),
            u64::from(be32(&h, 32)),
        );
        if block < 512 || block % 512 != 0 {
            return Err(invalid(format!(
                "VHD block size {block} is not whole sectors"
            )));
        }
        let needed = size.div_ceil(block);
        if entries < needed || needed > MAX_BLOCKS {
            return Err(invalid(format!(
                "VHD block table has {entries} entries for a disk of {needed} blocks"
            )));
        }
        let raw = read_table(f, "block table", table_at, needed as usize * 4)?;
        let bat = raw.chunks_exact(4).map(|c| be32(c, 0)).collect();
        // One bit a sector, in whole sectors.
        let bitmap = (block / 512).div_ceil(8).div_ceil(512) * 512;
        Ok((block, bitmap, bat))
    }

    /// Size of the virtual disk in bytes.
    pub fn disk_size(&self) -> u64 {
        self.size
    }

    /// Reads at `off` of the virtual disk; short only at its end.
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.size.saturating_sub(off)) as usize;
        let buf = &mut buf[..want];
        let Some((block, bitmap, bat)) = &self.dynamic else {
            self.f
                .read_exact_at(buf, off)
                .map_err(|e| invalid(format!("byte {off}: {}", eof_says_truncated(e))))?;
            return Ok(want);
        };
        let mut done = 0;
        while done < want {
            let pos = off + done as u64;
            let (i, within) = (pos / block, pos % block);
            let n = ((block - within) as usize).min(want - done);
            let part = &mut buf[done..done + n];
            match bat[i as usize] {
                UNUSED => part.fill(0),
                sector => {
                    let at = u64::from(sector) * 512 + bitmap + within;
                    self.f.read_exact_at(part, at).map_err(|e| {
                        invalid(format!("block {i} at byte {at}: {}", eof_says_truncated(e)))
                    })?;
                }
            }
            done += n;
        }
        Ok(want)
    }

    /// The next range at or after `pos` (before `end`) in blocks that were written.
    pub fn allocated(&self, pos: u64, end: u64) -> (u64, u64) {
        let Some((block, _, bat)) = &self.dynamic else {
            return (pos, end);
        };
        let used = |i: u64| bat.get(i as usize).is_some_and(|&s| s != UNUSED);
        let mut i = pos / block;
        while i * block < end && !used(i) {
            i += 1;
        }
        let start = (i * block).max(pos);
        if start >= end {
            return (end, end);
        }
        let mut j = i;
        while j * block < end && used(j) {
            j += 1;
        }
        (start, (j * block).min(end))
    }
}
