//! A read-only qcow2 reader (QEMU's image format, versions 2 and 3), written here because the
//! crate for it misreads compressed clusters (see `disk.rs`). It reads what `qemu-img convert`
//! and `qemu-img create` write: standard L1/L2 tables, zero clusters, and compressed clusters
//! in zlib (raw deflate) or zstd. Backing files, encryption, external data files and extended
//! L2 entries are refused with a message saying which.
//!
//! Layout (QEMU's `docs/interop/qcow2.txt`): a big-endian header; an L1 table whose entries
//! point at L2 tables of one cluster each; an L2 entry is either a standard descriptor (bits
//! 9–55 the host offset, bit 0 "reads as zeros") or, with bit 62 set, a compressed one: with
//! `x = 62 − (cluster_bits − 8)`, bits 0…x−1 are the host byte offset and bits x…61 the number
//! of 512-byte sectors it spans beyond the first.

use std::io::{self, Read};
use std::sync::Arc;

use super::{
    be32, be64, eof_says_truncated, invalid, read_table, BlockReader, Handle, Pooled, Store,
};

/// Opens a qcow2 image with a pool of handles (each caches its last L2 table and cluster).
pub fn open_store(store: Arc<dyn Store>) -> io::Result<Box<dyn BlockReader>> {
    let mut q = Qcow2::open(store.clone())?;
    q.check_tables()?;
    let len = q.disk_size();
    let open = move || Qcow2::open(store.clone());
    Ok(Box::new(Pooled::new(q, len, Box::new(open))))
}

impl Handle for Qcow2 {
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        Qcow2::read_at(self, buf, off)
    }
    fn data(&mut self, pos: u64, end: u64) -> (u64, u64) {
        self.allocated(pos, end)
    }
}

const L2_COMPRESSED: u64 = 1 << 62;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

pub struct Qcow2 {
    f: Arc<dyn Store>,
    size: u64,
    cluster_bits: u32,
    l1: Vec<u64>,
    l1_offset: u64,
    zstd: bool,
    /// The last L2 table read: (its host offset, its entries).
    l2: Option<(u64, Vec<u64>)>,
    /// The last compressed cluster decoded: (its virtual cluster index, its bytes).
    cluster: Option<(u64, Vec<u8>)>,
}

impl Qcow2 {
    pub fn open(f: Arc<dyn Store>) -> io::Result<Qcow2> {
        let mut h = [0u8; 112];
        let n = f.read_at(&mut h, 0)?;
        if n < 72 || &h[..4] != b"QFI\xfb" {
            return Err(invalid(
                "not a qcow2 image (header too short or bad magic)".into(),
            ));
        }
        let version = be32(&h, 4);
        if !(2..=3).contains(&version) {
            return Err(invalid(format!("qcow2 version {version} is not supported")));
        }
        if be64(&h, 8) != 0 {
            return Err(invalid(
                "has a backing file: scan the backing image (this one holds only changes)".into(),
            ));
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(format!("bad cluster size 2^{cluster_bits}")));
        }
        let size = be64(&h, 24);
        if be32(&h, 32) != 0 {
            return Err(invalid(
                "encrypted: only its container bytes can be scanned".into(),
            ));
        }
        let l1_size = be32(&h, 36) as u64;
        let l1_offset = be64(&h, 40);
        let mut zstd = false;
        if version == 3 && n >= 104 {
            let incompatible = be64(&h, 72);
            if incompatible & 0b100 != 0 {
                return Err(invalid("uses an external data file".into()));
            }
            if incompatible & 0b1_0000 != 0 {
                return Err(invalid("uses extended L2 entries (subclusters)".into()));
            }
            if incompatible & !0b1_1111 != 0 {
                return Err(invalid(format!(
                    "unknown incompatible features {incompatible:#x}"
                )));
            }
            if incompatible & 0b1000 != 0 {
                let header_len = be32(&h, 100);
                zstd = header_len > 104 && n > 104 && h[104] == 1;
            }
        }
        // The L1 table covers the disk: at most one entry per L2 table's worth of clusters.
        let per_l2 = 1u64 << (cluster_bits - 3);
        let need = size.div_ceil(1 << cluster_bits).div_ceil(per_l2);
        // QEMU's own limit (QCOW_MAX_L1_SIZE): 32 MiB of L1 table, 4 Mi entries.
        if l1_size < need || l1_size > (4 << 20) {
            return Err(invalid(format!(
                "L1 table of {l1_size} entries for a {size}-byte disk"
            )));
        }
        let raw = read_table(&*f, "L1 table", l1_offset, l1_size as usize * 8)?;
        let l1 = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        Ok(Qcow2 {
            f,
            size,
            cluster_bits,
            l1,
            l1_offset,
            zstd,
            l2: None,
            cluster: None,
        })
    }

    /// Every host cluster the active tables use (the header's, the L1 table's, each L2 table,
    /// each standard data cluster) is used once: QEMU never maps one cluster twice within one
    /// set of tables (a cluster shared with an internal snapshot is still mapped once here). A
    /// table pointing at itself, at the L1 table or at another table, or two disk clusters
    /// sharing one host cluster, is a corrupt or hostile image: a file of four clusters could
    /// otherwise present a terabyte of the same bytes. Refused when opened, naming the
    /// cluster. Reads each L2 table once (metadata the scan reads anyway); holds 8 bytes per
    /// cluster used, and never more uses than the file has clusters (more is itself sharing).
    /// Tables and clusters past the end of a cut file are left to the reads, which name it.
    /// Compressed clusters are not counted: several of them share a host cluster by design.
    pub fn check_tables(&mut self) -> io::Result<()> {
        let cs = self.cluster_size();
        let file_len = self.f.size()?;
        let file_clusters = file_len.div_ceil(cs);
        let mut used: Vec<u64> = Vec::new();
        // Clusters past the end of the file are left to the reads, which say "truncated".
        let push = |used: &mut Vec<u64>, host: u64| {
            if host >= file_len {
                return Ok(());
            }
            if used.len() as u64 >= file_clusters {
                return Err(invalid(format!(
                    "its tables map more clusters than the file's {file_clusters}, so clusters \
                     are used twice by its tables (tables pointing at themselves or at each \
                     other): a corrupt image"
                )));
            }
            used.push(host / cs);
            Ok(())
        };
        push(&mut used, 0)?; // the header
        let l1_end = self.l1_offset + self.l1.len() as u64 * 8; // read whole at open: no overflow
        for c in self.l1_offset / cs..l1_end.div_ceil(cs) {
            push(&mut used, c * cs)?;
        }
        for i in 0..self.l1.len() {
            let table = self.l1[i] & OFFSET_MASK;
            if table == 0 || table >= file_len {
                continue;
            }
            push(&mut used, table)?;
            let per_l2 = 1u64 << (self.cluster_bits - 3);
            // Loads the table (entry() keeps the last one); one cut short is left to the reads.
            if self.entry(i as u64 * per_l2).is_err() {
                continue;
            }
            let entries = &self.l2.as_ref().expect("loaded").1;
            for &e in entries {
                if e & L2_COMPRESSED == 0 && e & OFFSET_MASK != 0 {
                    push(&mut used, e & OFFSET_MASK)?;
                }
            }
        }
        used.sort_unstable();
        if let Some(w) = used.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!(
                "the host cluster at byte {} is used twice by its tables (a table pointing \
                 at itself or at another, or two disk clusters sharing one): a corrupt image",
                w[0] * cs
            )));
        }
        Ok(())
    }

    /// Size of the virtual disk in bytes.
    pub fn disk_size(&self) -> u64 {
        self.size
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The L2 entry of virtual cluster `c`, 0 when unallocated.
    fn entry(&mut self, c: u64) -> io::Result<u64> {
        let per_l2 = 1u64 << (self.cluster_bits - 3);
        let Some(&l1e) = self.l1.get((c / per_l2) as usize) else {
            return Ok(0);
        };
        let table = l1e & OFFSET_MASK;
        if table == 0 {
            return Ok(0);
        }
        if self.l2.as_ref().map(|(o, _)| *o) != Some(table) {
            let mut raw = vec![0u8; self.cluster_size() as usize];
            self.f.read_exact_at(&mut raw, table).map_err(|e| {
                invalid(format!(
                    "L2 table at byte {table}: {}",
                    eof_says_truncated(e)
                ))
            })?;
            self.l2 = Some((table, raw.chunks_exact(8).map(|c| be64(c, 0)).collect()));
        }
        Ok(self.l2.as_ref().unwrap().1[(c % per_l2) as usize])
    }

    /// Reads at virtual offset `off`, up to the end of its cluster.
    pub fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        if off >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let cs = self.cluster_size();
        let c = off >> self.cluster_bits;
        let within = off & (cs - 1);
        let n = (buf.len() as u64).min(cs - within).min(self.size - off) as usize;
        let buf = &mut buf[..n];
        let e = self.entry(c)?;
        if e & L2_COMPRESSED != 0 {
            if self.cluster.as_ref().map(|(k, _)| *k) != Some(c) {
                let data = self.decompress(e)?;
                self.cluster = Some((c, data));
            }
            let data = &self.cluster.as_ref().unwrap().1;
            buf.copy_from_slice(&data[within as usize..within as usize + n]);
        } else if e & 1 != 0 || e & OFFSET_MASK == 0 {
            buf.fill(0); // a zero cluster, or unallocated
        } else {
            let host = (e & OFFSET_MASK) + within;
            let mut got = 0;
            while got < n {
                match self.f.read_at(&mut buf[got..], host + got as u64)? {
                    0 => {
                        return Err(invalid(format!(
                            "cluster at byte {host} is past the end of the file (truncated?)"
                        )))
                    }
                    k => got += k,
                }
            }
        }
        Ok(n)
    }

    fn decompress(&self, e: u64) -> io::Result<Vec<u8>> {
        let x = 62 - (self.cluster_bits - 8);
        let host = e & ((1u64 << x) - 1);
        let sectors = ((e >> x) & ((1u64 << (62 - x)) - 1)) + 1;
        let len = (sectors * 512 - (host & 511)) as usize;
        let mut raw = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.f.read_at(&mut raw[got..], host + got as u64)? {
                0 => break, // the last compressed cluster may end early
                k => got += k,
            }
        }
        let cs = self.cluster_size() as usize;
        let mut out = Vec::with_capacity(cs);
        let r = if self.zstd {
            zstd::stream::read::Decoder::new(&raw[..got])
                .and_then(|d| d.take(cs as u64).read_to_end(&mut out))
        } else {
            flate2::read::DeflateDecoder::new(&raw[..got])
                .take(cs as u64)
                .read_to_end(&mut out)
        };
        r.map_err(|err| invalid(format!("compressed cluster at byte {host}: {err}")))?;
        out.resize(cs, 0);
        Ok(out)
    }

    /// The next run of allocated clusters at or after `pos` (before `end`): unallocated and
    /// zero clusters read as zeros and are skipped.
    pub fn allocated(&mut self, pos: u64, end: u64) -> (u64, u64) {
        let cs = self.cluster_size();
        let end = end.min(self.size);
        let mut c = pos >> self.cluster_bits;
        let has = |q: &mut Qcow2, c: u64| match q.entry(c) {
            Ok(e) => e & L2_COMPRESSED != 0 || (e & 1 == 0 && e & OFFSET_MASK != 0),
            Err(_) => true, // let the read report it
        };
        let per_l2 = 1u64 << (self.cluster_bits - 3);
        while c * cs < end && !has(self, c) {
            // A whole unallocated L2 table is skipped at once.
            let l1 = self.l1.get((c / per_l2) as usize).copied().unwrap_or(0);
            c = if l1 & OFFSET_MASK == 0 {
                (c / per_l2 + 1) * per_l2
            } else {
                c + 1
            };
        }
        let start = (c * cs).max(pos).min(end);
        let mut stop = c;
        while stop * cs < end && has(self, stop) {
            stop += 1;
        }
        (start, (stop * cs).min(end).max(start))
    }
}
