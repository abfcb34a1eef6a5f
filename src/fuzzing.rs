//! The entry points of the fuzz targets (`fuzz/`) and of their regression tests
//! (`tests/fuzz.rs`): each hands bytes in memory to a parser through the function the scanner
//! itself calls, with the budgets it uses (archive budgets scaled down: a fuzzer runs many small
//! inputs). Nothing here is a second parser.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::blob::{Blob, Origin};
use crate::detect::{Detection, Engine, Role, RuleSet};
use crate::source::archive::{self, Expander, Limits};
use crate::source::block::{self, Disk, Format, Memory, Store};
use crate::source::fs::{FsKind, WalkOptions};
use crate::source::partition::{self, lvm, Part};
use crate::source::Stats;

/// The engine with the built-in rules, built once.
pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::new(RuleSet::load(&[]).expect("built-in rules")).expect("engine"))
}

/// The detection engine on arbitrary bytes: every decoding pass (UTF-16, base64, URL, JSON
/// escapes) runs where it applies.
pub fn detect(data: &[u8]) -> Vec<Detection> {
    engine().scan(data)
}

/// `data` scanned as a file and reported in `format` as a user sees it (secrets redacted):
/// detection, findings, grouping, the report writer.
pub fn report(data: &[u8], format: crate::report::Format) -> Vec<u8> {
    let blob = Blob::whole(data, Arc::new(Origin::file("fuzz.txt")));
    let found = crate::finding::from_detections(&blob, detect(data));
    let creds = crate::finding::group(found);
    let report = crate::report::Report {
        kind: "worktree",
        roots: vec!["fuzz.txt".into()],
        credentials: &creds,
        // The rules of what was found (a scan's SARIF lists every loaded rule: with 443 of
        // them, writing that took a second an input in a fuzz build).
        rules: {
            let mut r: Vec<Arc<crate::detect::RuleMeta>> = Vec::new();
            for c in &creds {
                if !r.iter().any(|m| m.id == c.rule.id) {
                    r.push(c.rule.clone());
                }
            }
            r
        },
        summary: crate::report::Summary::default(),
        show_secrets: false,
        plan: None,
    };
    let mut out = Vec::new();
    crate::report::write(&report, format, false, &mut out).expect("report to memory");
    out
}

/// The secrets (values of secret parts) the engine finds in `data`.
pub fn secrets(data: &[u8]) -> Vec<Vec<u8>> {
    detect(data)
        .into_iter()
        .flat_map(|d| d.parts)
        .filter(|p| p.role == Role::Secret)
        .map(|p| p.value)
        .collect()
}

/// An AWS key pair made from `seed` as real ones look (`AKIA` and 16 base32 characters; 40 of
/// base64 with both letter cases), for planting.
pub fn key_pair(seed: u64) -> (String, String) {
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        let id = crate::detect::examples::expand("AKIA{{b32:16}}", &mut rng).expect("template");
        let secret = crate::detect::examples::expand("{{b64:40}}", &mut rng).expect("template");
        if secret.bytes().any(|b| b.is_ascii_uppercase())
            && secret.bytes().any(|b| b.is_ascii_lowercase())
        {
            return (id, secret);
        }
    }
}

/// Archive budgets for fuzzing: the scanner's, smaller.
pub fn limits() -> Limits {
    Limits {
        max_depth: 8,
        max_bytes: 64 << 20,
        max_ratio: 200,
        ratio_after: 1 << 20,
        max_entries: 10_000,
        max_buffer: 16 << 20,
        chunk: 1 << 20,
        overlap: 4096,
    }
}

/// Archive sniffing and expansion (zip, tar, gzip, bzip2, xz, zstd, nested) as for a file in
/// memory; returns the bytes of the members handed on.
pub fn archive(data: &[u8]) -> u64 {
    let Some(kind) = archive::sniff(data) else {
        return 0;
    };
    let stats = Stats::default();
    let mut seen = 0u64;
    let mut f = |b: Blob| seen += b.data.len() as u64;
    let origin = Arc::new(Origin::file("fuzz"));
    Expander::new(limits(), &stats, data.len() as u64, &mut f).bytes(data, kind, &origin);
    seen
}

fn memory_disk(data: &[u8]) -> Arc<Disk> {
    Arc::new(Disk::new(
        "fuzz.img".into(),
        Format::Raw,
        Box::new(Memory(bytes::Bytes::copy_from_slice(data))),
    ))
}

/// Reads every range `disk` says may hold data, as the raw pass does, `cap` bytes at most.
fn read_all(disk: &Disk, cap: u64) -> u64 {
    let end = disk.len();
    let mut buf = vec![0u8; 64 << 10];
    let (mut pos, mut total) = (0u64, 0u64);
    while pos < end && total < cap {
        let (s, e) = disk.data(pos, end);
        if s >= e || e <= pos {
            break;
        }
        let mut p = s.max(pos);
        while p < e && total < cap {
            let n = (e - p).min(buf.len() as u64) as usize;
            match disk.read_at(&mut buf[..n], p) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    total += k as u64;
                    p += k as u64;
                }
            }
        }
        pos = e;
    }
    total
}

/// Partition tables (GPT, MBR with extended partitions) and LVM2 physical volumes: the volumes
/// found, and each logical volume read.
pub fn partitions(data: &[u8]) -> usize {
    let disk = memory_disk(data);
    let parts = partition::volumes(&disk);
    let pvs: Vec<(lvm::Pv, &Part)> = parts
        .iter()
        .filter(|p| p.fs == Some(FsKind::Lvm))
        .map(|p| (lvm::read_pv(&disk, p.start, p.len), p))
        .collect();
    if !pvs.is_empty() {
        for (name, lv) in lvm::logical_volumes(&disk, &pvs).lvs {
            read_all(&Disk::new(name, Format::Lvm, Box::new(lv)), 16 << 20);
        }
    }
    parts.len()
}

/// A container format (qcow2, VHD, VHDX, VMDK sparse or streamOptimized) opened over bytes in
/// memory and read where it says data is, 16 MiB at most.
pub fn container(format: Format, data: &[u8]) -> Option<u64> {
    let store: Arc<dyn Store> = memory_disk(data);
    let reader = block::container(format, store).ok()?;
    let disk = Disk::new("fuzz".into(), format, reader);
    Some(read_all(&disk, 16 << 20))
}

/// A filesystem (ext4, XFS, FAT, NTFS) at the start of the bytes, walked as `image` walks one:
/// every file read and handed on. Returns the bytes handed on.
pub fn filesystem(kind: FsKind, data: &[u8]) -> u64 {
    let disk = memory_disk(data);
    let part = Part {
        name: "disk".into(),
        start: 0,
        len: disk.len(),
        fs: Some(kind),
        expect_fs: true,
        missing: 0,
    };
    let opts = WalkOptions {
        chunk: 1 << 20,
        overlap: 4096,
        archives: limits(),
        threads: 1,
        queue_bytes: 4 << 20,
        git: None,
        shard: None,
    };
    let stats = Stats::default();
    let seen = AtomicU64::new(0);
    let make = || {
        |b: Blob| {
            seen.fetch_add(b.data.len() as u64, Ordering::Relaxed);
        }
    };
    crate::source::fs::walk_files(
        &disk,
        &Origin::file("fuzz.img"),
        &part,
        &opts,
        &stats,
        &make,
    );
    seen.load(Ordering::Relaxed)
}

/// What EBS answered, as the snapshot reader takes it: ListSnapshotBlocks' block size, volume
/// size and blocks (index, token), then one GetSnapshotBlock answer for the first block (its
/// body, `DataLength`, checksum and algorithm; `right_checksum`: the body's own SHA-256).
pub struct EbsAnswer<'a> {
    pub block_size: Option<i32>,
    pub volume_gib: Option<i64>,
    pub blocks: Vec<(Option<i32>, Option<String>)>,
    pub body: &'a [u8],
    pub data_length: Option<i32>,
    pub checksum: Option<String>,
    pub right_checksum: bool,
    pub algorithm: Option<String>,
}

/// The snapshot reader's handling of EBS's answers: the layout from the listing, then the
/// block's checks. Errors are the messages a user would see.
pub fn ebs(a: EbsAnswer) -> Result<u64, String> {
    use crate::source::block::ebs;
    let blocks = ebs::listed(a.blocks.iter().map(|(i, t)| (*i, t.as_deref()))).collect();
    let listing = ebs::layout(a.block_size, a.volume_gib, blocks)?;
    let checksum = if a.right_checksum {
        use base64::Engine as _;
        use sha2::Digest as _;
        Some(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(a.body)))
    } else {
        a.checksum
    };
    let body = bytes::Bytes::copy_from_slice(a.body);
    ebs::check_block(
        body,
        a.data_length,
        checksum,
        a.algorithm.as_deref(),
        listing.block_size,
    )
    .map_err(|e| e.message().to_string())?;
    Ok(listing.len)
}

/// IAM's credential report (CSV), as `audit` reads it.
pub fn credential_report(data: &[u8]) -> usize {
    crate::aws::audit::parse_report(data).map_or(0, |r| r.len())
}

/// A people directory (CSV or JSON), as `--directory` reads it.
pub fn directory(text: &str) -> bool {
    crate::aws::directory::Directory::parse(text, "fuzz.csv").is_ok()
}

/// `.keyhound.toml`, as every scan reads it (its allowlist regexes compiled).
pub fn config(text: &str) -> bool {
    crate::suppress::Config::parse(text, "fuzz.toml")
        .and_then(|c| c.path_filter().map(|_| ()))
        .is_ok()
}

/// A rule file (`--rules`, keyhound's format or a gitleaks config), compiled into an engine as
/// a scan would and run on its own text. Alone: with the 443 built-in rules beside it, loading
/// took milliseconds an input, and the fuzzer tried a few hundred inputs a second.
pub fn rules(text: &str) -> bool {
    let Ok(set) = RuleSet::from_sources(&[("fuzz.toml".into(), text.to_string())]) else {
        return false;
    };
    match Engine::new(set) {
        Ok(e) => {
            e.scan(text.as_bytes());
            true
        }
        Err(_) => false,
    }
}

/// A baseline (an earlier JSON report), as `--baseline` reads it.
pub fn baseline(text: &str) -> usize {
    crate::suppress::parse_baseline(text, "fuzz.json").map_or(0, |b| b.len())
}
