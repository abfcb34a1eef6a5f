//! LVM2 physical volumes, read from their on-disk metadata (no device-mapper, nothing
//! activated): the label (`LABELONE` in one of the first four sectors), the PV header (its
//! UUID and metadata areas), and the newest volume group description in the metadata area's
//! text (a circular buffer). Linear and striped logical volumes (RHEL, Oracle Linux and
//! on-premises images) become block readers of their own, mapped extent by extent onto the
//! physical volumes found on the same disk, so their filesystems are walked with paths:
//! `disk.vmdk › p2 (lvm) › vg0/root (xfs) › /etc/app.env`. Thin, RAID, mirror, snapshot and
//! cache volumes are named and left to the raw pass, which covers every byte of the PV anyway.
//!
//! The formats are those of lvm2's `lib/format_text/layout.h` (label, PV header, metadata area
//! header) and its metadata text (`name = value`, `{ }` sections, `[ ]` lists).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use super::Part;
use crate::source::block::{BlockReader, Disk};

const SECTOR: u64 = 512;
/// A metadata text larger than this is not read (lvm2's own default area is 1 MiB).
const MAX_TEXT: u64 = 64 << 20;

/// A value of the metadata text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Num(i64),
    List(Vec<Value>),
    Section(BTreeMap<String, Value>),
}

impl Value {
    fn get(&self, k: &str) -> Option<&Value> {
        match self {
            Value::Section(m) => m.get(k),
            _ => None,
        }
    }
    fn num(&self, k: &str) -> Option<u64> {
        match self.get(k)? {
            Value::Num(n) if *n >= 0 => Some(*n as u64),
            _ => None,
        }
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses LVM2's metadata text: `key = value` and `name { … }`, values strings, integers or
/// lists; `#` comments.
pub fn parse(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    let m = p.section(0)?;
    p.skip();
    if p.i < p.b.len() {
        return Err(format!("metadata: unexpected '}}' at byte {}", p.i));
    }
    Ok(m)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\r' | b'\n' | 0 => self.i += 1,
                b'#' => {
                    while self.i < self.b.len() && self.b[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn word(&mut self) -> String {
        let s = self.i;
        while self.i < self.b.len()
            && (self.b[self.i].is_ascii_alphanumeric() || b"_-.+".contains(&self.b[self.i]))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.b[s..self.i]).into_owned()
    }

    fn section(&mut self, depth: usize) -> Result<BTreeMap<String, Value>, String> {
        if depth > 16 {
            return Err("metadata: sections nested too deep".into());
        }
        let mut m = BTreeMap::new();
        loop {
            self.skip();
            match self.b.get(self.i) {
                None | Some(b'}') => return Ok(m),
                _ => {}
            }
            let at = self.i;
            let key = self.word();
            if key.is_empty() {
                return Err(format!("metadata: unexpected byte at {at}"));
            }
            self.skip();
            match self.b.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let inner = self.section(depth + 1)?;
                    self.skip();
                    if self.b.get(self.i) != Some(&b'}') {
                        return Err(format!("metadata: section {key} is not closed"));
                    }
                    self.i += 1;
                    m.insert(key, Value::Section(inner));
                }
                Some(b'=') => {
                    self.i += 1;
                    let v = self.value(depth)?;
                    m.insert(key, v);
                }
                _ => return Err(format!("metadata: '=' or '{{' expected after {key}")),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip();
        match self.b.get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let mut s = Vec::new();
                while let Some(&c) = self.b.get(self.i) {
                    self.i += 1;
                    match c {
                        b'"' => return Ok(Value::Str(String::from_utf8_lossy(&s).into_owned())),
                        b'\\' => {
                            if let Some(&n) = self.b.get(self.i) {
                                s.push(n);
                                self.i += 1;
                            }
                        }
                        _ => s.push(c),
                    }
                }
                Err("metadata: a string is not closed".into())
            }
            Some(b'[') => {
                if depth > 16 {
                    return Err("metadata: lists nested too deep".into());
                }
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.skip();
                    match self.b.get(self.i) {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(v));
                        }
                        Some(b',') => self.i += 1,
                        None => return Err("metadata: a list is not closed".into()),
                        _ => v.push(self.value(depth + 1)?),
                    }
                }
            }
            _ => {
                let at = self.i;
                let w = self.word();
                w.parse::<i64>()
                    .map(Value::Num)
                    .map_err(|_| format!("metadata: bad value at byte {at}"))
            }
        }
    }
}

/// A physical volume found on a partition.
#[derive(Clone, Debug)]
pub struct Pv {
    /// Without dashes, as the PV header stores it.
    pub uuid: String,
    /// The partition's start on the disk.
    pub start: u64,
    /// The volume group's metadata text, parsed: `(vg name, vg section)`.
    pub vg: Option<(String, Value)>,
    /// Why the metadata could not be read.
    pub error: Option<String>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read(disk: &Disk, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    let n = disk.read_at(&mut b, off)?;
    if n < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the disk ends before byte {}", off + len as u64),
        ));
    }
    Ok(b)
}

/// The PV label's sector and its PV header, if the partition at `start` is an LVM2 PV.
pub fn sniff(first: &[u8]) -> bool {
    (0..4).any(|s| {
        let o = s * SECTOR as usize;
        first.get(o..o + 8) == Some(b"LABELONE") && first.get(o + 24..o + 32) == Some(b"LVM2 001")
    })
}

/// Reads the PV on the partition at `start` (which `sniff` accepted).
pub fn read_pv(disk: &Disk, start: u64, len: u64) -> Pv {
    let mut pv = Pv {
        uuid: String::new(),
        start,
        vg: None,
        error: None,
    };
    if let Err(e) = read_pv_into(disk, start, len, &mut pv) {
        pv.error = Some(e);
    }
    pv
}

fn read_pv_into(disk: &Disk, start: u64, len: u64, pv: &mut Pv) -> Result<(), String> {
    let head = read(disk, start, 4 * SECTOR as usize).map_err(|e| e.to_string())?;
    let label = (0..4)
        .map(|s| s * SECTOR as usize)
        .find(|&o| &head[o..o + 8] == b"LABELONE")
        .ok_or("no LVM2 label")?;
    let hdr = label + le32(&head, label + 20) as usize;
    if hdr + 40 > head.len() {
        return Err("PV header out of place".into());
    }
    pv.uuid = String::from_utf8_lossy(&head[hdr..hdr + 32]).into_owned();
    // Data areas, then metadata areas: (offset, size) lists, each ended by a zero entry.
    let mut at = hdr + 40;
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if at + 16 > head.len() {
                return Err("PV header runs past its sectors".into());
            }
            let (o, s) = (le64(&head, at), le64(&head, at + 8));
            at += 16;
            if o == 0 && s == 0 {
                break;
            }
            list.push((o, s));
        }
    }
    let Some(&(mda, mda_size)) = lists[1].first() else {
        return Err("no metadata area on this PV (its VG is described on another)".into());
    };
    if mda + mda_size > len {
        return Err(format!(
            "metadata area at byte {mda} is past the partition's end"
        ));
    }
    let mh = read(disk, start + mda, SECTOR as usize).map_err(|e| e.to_string())?;
    if &mh[4..20] != b" LVM2 x[5A%r0N*>" {
        return Err(format!("no metadata area header at byte {mda}"));
    }
    // The first raw location is the current metadata: (offset in the area, size).
    let (off, size) = (le64(&mh, 40), le64(&mh, 48));
    if size == 0 || size > MAX_TEXT.min(mda_size) || off >= mda_size {
        return Err(format!(
            "metadata text of {size} bytes at {off} of a {mda_size}-byte area"
        ));
    }
    // A circular buffer after the area's first sector: the text may wrap to its start.
    let first = (mda_size - off).min(size);
    let mut text = read(disk, start + mda + off, first as usize).map_err(|e| e.to_string())?;
    if first < size {
        let rest =
            read(disk, start + mda + SECTOR, (size - first) as usize).map_err(|e| e.to_string())?;
        text.extend(rest);
    }
    let text = String::from_utf8_lossy(&text);
    let parsed = parse(&text)?;
    let (name, vg) = parsed
        .into_iter()
        .find(|(_, v)| matches!(v, Value::Section(_)))
        .ok_or("no volume group in the metadata")?;
    pv.vg = Some((name, vg));
    Ok(())
}

/// One stripe of a segment: a PV (its data start on the disk) and the extent it starts at.
#[derive(Clone, Debug)]
struct Stripe {
    pv_data: u64,
    extent: u64,
}

#[derive(Clone, Debug)]
struct Segment {
    start_extent: u64,
    extents: u64,
    /// Bytes of a stripe before the next (striped with more than one stripe).
    stripe_bytes: u64,
    stripes: Vec<Stripe>,
}

/// A linear or striped logical volume as a block reader over the disk its PVs are on.
pub struct Lv {
    disk: Arc<Disk>,
    extent_bytes: u64,
    segments: Vec<Segment>,
    len: u64,
}

impl Lv {
    /// Where byte `off` of the LV is on the disk, and how many bytes from there are contiguous.
    fn map(&self, off: u64) -> Option<(u64, u64)> {
        let e = off / self.extent_bytes;
        let s = self
            .segments
            .iter()
            .find(|s| e >= s.start_extent && e < s.start_extent + s.extents)?;
        let o = off - s.start_extent * self.extent_bytes;
        let seg_end = s.extents * self.extent_bytes - o;
        let n = s.stripes.len() as u64;
        if n == 1 {
            let st = &s.stripes[0];
            return Some((st.pv_data + st.extent * self.extent_bytes + o, seg_end));
        }
        let chunk = o / s.stripe_bytes;
        let within = o % s.stripe_bytes;
        let st = &s.stripes[(chunk % n) as usize];
        let row = chunk / n;
        let at = st.pv_data + st.extent * self.extent_bytes + row * s.stripe_bytes + within;
        Some((at, (s.stripe_bytes - within).min(seg_end)))
    }
}

impl BlockReader for Lv {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        if off >= self.len || buf.is_empty() {
            return Ok(0);
        }
        match self.map(off) {
            Some((at, run)) => {
                let n = (buf.len() as u64).min(run).min(self.len - off) as usize;
                self.disk.read_at(&mut buf[..n], at)
            }
            // An extent no segment maps (corrupt metadata) reads as zeros.
            None => {
                let n = (buf.len() as u64).min(self.extent_bytes - off % self.extent_bytes);
                let n = n.min(self.len - off) as usize;
                buf[..n].fill(0);
                Ok(n)
            }
        }
    }
}

/// What the volume groups on a disk hold: logical volumes to walk (`vg/lv`, reader), and
/// messages naming those left to the raw pass or that could not be mapped.
pub struct Volumes {
    pub lvs: Vec<(String, Lv)>,
    pub skipped: Vec<String>,
}

/// The logical volumes of the VGs whose PVs are on `disk` (`pvs`, each with its partition
/// label for messages).
pub fn logical_volumes(disk: &Arc<Disk>, pvs: &[(Pv, &Part)]) -> Volumes {
    let mut out = Volumes {
        lvs: Vec::new(),
        skipped: Vec::new(),
    };
    let by_uuid: BTreeMap<String, u64> =
        pvs.iter().map(|(p, _)| (p.uuid.clone(), p.start)).collect();
    let mut done = std::collections::BTreeSet::new();
    for (pv, part) in pvs {
        if let Some(e) = &pv.error {
            out.skipped
                .push(format!("{}: LVM metadata: {e}", part.label()));
        }
        let Some((name, vg)) = &pv.vg else { continue };
        if !done.insert(name.clone()) {
            continue; // another PV of the same VG described it
        }
        let extent_bytes = vg.num("extent_size").unwrap_or(0) * SECTOR;
        if extent_bytes == 0 {
            out.skipped
                .push(format!("{}: VG {name}: no extent size", part.label()));
            continue;
        }
        // pv0 → where its data starts on this disk (pe_start is in sectors).
        let mut pv_data: BTreeMap<String, Option<u64>> = BTreeMap::new();
        if let Some(Value::Section(m)) = vg.get("physical_volumes") {
            for (k, p) in m {
                let uuid = p.str("id").unwrap_or("").replace('-', "");
                let at = by_uuid
                    .get(&uuid)
                    .map(|s| s + p.num("pe_start").unwrap_or(0) * SECTOR);
                pv_data.insert(k.clone(), at);
            }
        }
        let Some(Value::Section(lvs)) = vg.get("logical_volumes") else {
            continue;
        };
        for (lv_name, lv) in lvs {
            let shown = format!("{name}/{lv_name}");
            match segments(lv, &pv_data) {
                Ok(segments) => {
                    let extents = segments
                        .iter()
                        .map(|s| s.start_extent + s.extents)
                        .max()
                        .unwrap_or(0);
                    out.lvs.push((
                        shown,
                        Lv {
                            disk: disk.clone(),
                            extent_bytes,
                            segments,
                            len: extents * extent_bytes,
                        },
                    ));
                }
                Err(why) => out
                    .skipped
                    .push(format!("{} › {shown}: {why}", part.label())),
            }
        }
    }
    out
}

/// The segments of a linear or striped LV, or why it is left to the raw pass.
fn segments(lv: &Value, pvs: &BTreeMap<String, Option<u64>>) -> Result<Vec<Segment>, String> {
    let Value::Section(m) = lv else {
        return Err("not a section".into());
    };
    let mut segs = Vec::new();
    // `segment1 { … }`, `segment2 { … }` (not `segment_count = 2`).
    let sections = m
        .iter()
        .filter(|(k, v)| k.starts_with("segment") && matches!(v, Value::Section(_)));
    for (k, s) in sections {
        let kind = s.str("type").unwrap_or("?");
        if kind != "striped" {
            let what = match kind {
                "thin" | "thin-pool" => "thin volume",
                "snapshot" => "snapshot volume",
                k if k.starts_with("raid") || k == "mirror" => "RAID or mirror volume",
                _ => "volume",
            };
            return Err(format!(
                "{what} ({kind}): only its raw bytes are scanned (in its PV's partition)"
            ));
        }
        let Some(Value::List(list)) = s.get("stripes") else {
            return Err(format!("{k}: no stripes"));
        };
        let mut stripes = Vec::new();
        for pair in list.chunks(2) {
            let (Some(Value::Str(pv)), Some(Value::Num(e))) = (pair.first(), pair.get(1)) else {
                return Err(format!("{k}: bad stripe list"));
            };
            let Some(Some(pv_data)) = pvs.get(pv) else {
                return Err(format!("{k}: its physical volume {pv} is not on this disk"));
            };
            stripes.push(Stripe {
                pv_data: *pv_data,
                extent: (*e).max(0) as u64,
            });
        }
        let n = stripes.len() as u64;
        let stripe_bytes = s.num("stripe_size").unwrap_or(0) * SECTOR;
        let extents = s.num("extent_count").unwrap_or(0);
        if stripes.is_empty() || (n > 1 && stripe_bytes == 0) || extents == 0 {
            return Err(format!("{k}: bad striping"));
        }
        segs.push(Segment {
            start_extent: s.num("start_extent").unwrap_or(0),
            // A striped segment's extents are spread over its stripes.
            extents,
            stripe_bytes: stripe_bytes.max(1),
            stripes,
        });
    }
    if segs.is_empty() {
        return Err("no segments".into());
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_text_parses() {
        let t = r#"vg0 {
id = "abc"
seqno = 3
extent_size = 8192 # 4 MiB
status = ["RESIZEABLE", "READ"]
physical_volumes {
pv0 {
id = "x1-y2"
pe_start = 2048
}
}
}
# Generated by LVM2
contents = "Text Format Volume Group"
version = 1
"#;
        let m = parse(t).unwrap();
        let vg = &m["vg0"];
        assert_eq!(vg.num("extent_size"), Some(8192));
        assert_eq!(vg.str("id"), Some("abc"));
        assert_eq!(
            vg.get("status"),
            Some(&Value::List(vec![
                Value::Str("RESIZEABLE".into()),
                Value::Str("READ".into())
            ]))
        );
        assert_eq!(
            vg.get("physical_volumes")
                .unwrap()
                .get("pv0")
                .unwrap()
                .num("pe_start"),
            Some(2048)
        );
        assert!(parse("a { b = ").is_err());
        // A thin volume is named, not mapped; a stripe on a PV not on the disk is named.
        let lv = |seg: &str| {
            parse(&format!("lv {{ segment_count = 1\nsegment1 {{ {seg} }} }}"))
                .unwrap()
                .remove("lv")
                .unwrap()
        };
        let pvs = BTreeMap::from([
            ("pv0".to_string(), Some(1 << 20)),
            ("pv1".to_string(), None),
        ]);
        let thin = lv(r#"start_extent = 0 extent_count = 4 type = "thin" thin_pool = "pool""#);
        assert!(segments(&thin, &pvs).unwrap_err().contains("thin volume"));
        let gone = lv(
            r#"start_extent = 0 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["pv1", 0]"#,
        );
        assert!(segments(&gone, &pvs)
            .unwrap_err()
            .contains("pv1 is not on this disk"));
        let ok = lv(
            r#"start_extent = 0 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["pv0", 2]"#,
        );
        let segs = segments(&ok, &pvs).unwrap();
        assert_eq!((segs[0].extents, segs[0].stripes[0].extent), (4, 2));
        assert!(parse("a = [1, 2").is_err());
        assert!(parse(&"a { ".repeat(100)).is_err());
    }
}
