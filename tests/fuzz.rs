//! What fuzzing found, kept found: every input under `fuzz/regressions/<target>/` through the
//! entry point its target drives (`keyhound::fuzzing`), and hostile inputs built here run as
//! their own process, named in a warning, with the peak RSS read from the kernel (wait4).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use common::*;
use keyhound::source::block::Format;
use keyhound::source::fs::FsKind;

/// Runs one fuzz target's entry point on `data`.
fn drive(target: &str, data: &[u8]) {
    use keyhound::fuzzing as f;
    let text = std::str::from_utf8(data).ok();
    match target {
        "archive" => drop(f::archive(data)),
        "partition" => drop(f::partitions(data)),
        "container_qcow2" => drop(f::container(Format::Qcow2, data)),
        "container_vhd" => drop(f::container(Format::Vhd, data)),
        "container_vhdx" => drop(f::container(Format::Vhdx, data)),
        "container_vmdk" => drop(f::container(Format::Vmdk, data)),
        "fs_ext4" => drop(f::filesystem(FsKind::Ext, data)),
        "fs_xfs" => drop(f::filesystem(FsKind::Xfs, data)),
        "fs_fat" => drop(f::filesystem(FsKind::Fat, data)),
        "fs_ntfs" => drop(f::filesystem(FsKind::Ntfs, data)),
        "credential_report" => drop(f::credential_report(data)),
        "detect" | "detect_props" => drop(f::detect(data)),
        "directory" => drop(text.map(f::directory)),
        "config" => drop(text.map(f::config)),
        "rules" => drop(text.map(f::rules)),
        "baseline" => drop(text.map(f::baseline)),
        other => panic!("fuzz/regressions/{other}: no such fuzz target"),
    }
}

/// An ext4 volume of 67 KiB whose `/etc/app.env` claims 192 GiB (found by fuzzing `fs_ext4`:
/// its holes were read as zeros, block by block, for hours). The file is read up to the
/// volume's length.
#[test]
fn a_file_longer_than_its_volume_is_read_to_the_volume_length() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(root.join("fuzz/regressions/fs_ext4/file-claims-192-gib")).unwrap();
    let seen = keyhound::fuzzing::filesystem(FsKind::Ext, &data);
    assert!(seen <= data.len() as u64, "{seen} bytes handed on");
}

/// Harmless means no panic at all: the filesystem walk catches a reader's panic so that a bad
/// volume costs only its own walk, and that would hide a fix undone. So panics are counted by a hook
/// (any other test of this file that panics has failed anyway).
#[test]
fn inputs_fuzzing_found_stay_harmless() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        prev(info)
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let target = dir.file_name().unwrap().to_str().unwrap().to_string();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let before = PANICS.load(Ordering::SeqCst);
            drive(&target, &std::fs::read(&file).unwrap());
            let after = PANICS.load(Ordering::SeqCst);
            assert_eq!(
                before,
                after,
                "{}: a reader panicked (caught)",
                file.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs under {}", root.display());
}

/// keyhound run as a child: (exit code, stderr, peak RSS in MiB from the kernel's rusage).
// The child is reaped by wait4, which std does not know of.
#[allow(clippy::zombie_processes)]
fn measured(dir: &Path, args: &[&str]) -> (i32, String, u64) {
    let mut child = bin()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 reaps our own child, by its pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(
        libc::WIFEXITED(status),
        "keyhound died: status {status}\n{err}"
    );
    (
        libc::WEXITSTATUS(status),
        err,
        usage.ru_maxrss as u64 / 1024,
    )
}

/// A FAT volume whose subdirectory `B` is its own parent `A` (its directory entry points at
/// A's cluster): fatfs follows it forever, and the walk made an ever longer path until memory
/// ran out (found by fuzzing `fs_fat`). Now: named, the walk stops, memory stays small.
#[test]
fn fat_directory_loop_is_named_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let img = d.join("loop.img");
    let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(std::process::Command::new("mkfs.fat")
        .args(["-C", img.to_str().unwrap(), "1024"])
        .stdout(Stdio::null()));
    for dir in ["::/A", "::/A/B"] {
        ok(std::process::Command::new("mmd")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", img.to_str().unwrap(), dir]));
    }
    let mut data = std::fs::read(&img).unwrap();
    // FAT12/16: the root directory follows the FATs; a cluster's bytes follow the root.
    let u16_at = |d: &[u8], o: usize| u16::from_le_bytes([d[o], d[o + 1]]) as usize;
    let sector = u16_at(&data, 11);
    let per_cluster = data[13] as usize;
    let reserved = u16_at(&data, 14);
    let fats = data[16] as usize;
    let root_entries = u16_at(&data, 17);
    let fat_sectors = u16_at(&data, 22);
    let root = (reserved + fats * fat_sectors) * sector;
    let first_data = root + root_entries * 32;
    let entry = |d: &[u8], at: usize, name: &[u8]| {
        (at..at + 64 * 32)
            .step_by(32)
            .find(|&o| &d[o..o + 11] == name)
            .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(name)))
    };
    let a = entry(&data, root, b"A          ");
    let a_cluster = u16_at(&data, a + 26);
    let a_at = first_data + (a_cluster - 2) * per_cluster * sector;
    let b = entry(&data, a_at, b"B          ");
    data[b + 26..b + 28].copy_from_slice(&(a_cluster as u16).to_le_bytes());
    std::fs::write(&img, &data).unwrap();

    let found = keyhound::fuzzing::filesystem(FsKind::Fat, &data);
    assert_eq!(found, 0);
    let (code, err, rss) = measured(d, &["image", "loop.img"]);
    assert!(err.contains("directories loop"), "{err}");
    assert!(err.contains("loop.img"), "{err}");
    assert!(code <= 2, "{err}");
    assert!(rss < 256, "peak RSS {rss} MiB");
}

/// A tar member that claims 2^63 - 1 bytes (a base-256 size field): named as a corrupt
/// archive, nothing allocated for it.
#[test]
fn archive_member_claiming_2_63_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut header = [0u8; 512];
    header[..8].copy_from_slice(b"huge.env");
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    // Size: base-256 (high bit of the first byte set), 2^63 - 1.
    header[124] = 0x80;
    header[128..136].copy_from_slice(&(i64::MAX as u64).to_be_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(&[b'x'; 4096]);
    write(d, "huge.tar", &tar);
    let (code, err, rss) = measured(d, &["scan", "huge.tar"]);
    assert!(err.contains("huge.tar"), "{err}");
    assert!(code <= 2, "{err}");
    assert!(rss < 256, "peak RSS {rss} MiB");
}

/// A qcow2 of four 64 KiB clusters whose tables present a 1 TiB disk: every L1 entry points
/// at the one L2 table, every L2 entry at the one data cluster (`shared`), or every L1 entry
/// at the L1 table itself (`self`). Read as its tables say, it is a terabyte of the same bytes
/// (hours of raw pass); now refused when opened, naming the cluster used twice, in a process
/// that stays small.
#[test]
fn qcow2_whose_tables_point_at_themselves_is_refused() {
    const CS: u64 = 1 << 16;
    const COPIED: u64 = 1 << 63;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(51).pair();
    for (name, l1_entry) in [("shared", 2 * CS), ("self", CS)] {
        let mut img = vec![0u8; 4 * CS as usize];
        img[..4].copy_from_slice(b"QFI\xfb");
        img[4..8].copy_from_slice(&2u32.to_be_bytes()); // version 2
        img[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster_bits
        img[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes()); // 1 TiB
        let l1_size = (1u64 << 40) / (CS / 8 * CS); // entries: one per 512 MiB
        img[36..40].copy_from_slice(&(l1_size as u32).to_be_bytes());
        img[40..48].copy_from_slice(&CS.to_be_bytes()); // L1 table at cluster 1
        for i in 0..l1_size as usize {
            let at = CS as usize + 8 * i;
            img[at..at + 8].copy_from_slice(&(COPIED | l1_entry).to_be_bytes());
        }
        for i in 0..(CS / 8) as usize {
            let at = 2 * CS as usize + 8 * i;
            img[at..at + 8].copy_from_slice(&(COPIED | (3 * CS)).to_be_bytes());
        }
        let data = format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n");
        img[3 * CS as usize..3 * CS as usize + data.len()].copy_from_slice(data.as_bytes());
        let file = format!("{name}.qcow2");
        write(d, &file, &img);
        let (code, err, rss) = measured(d, &["image", &file]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains(&file) && err.contains("used twice by its tables"),
            "{name}: {err}"
        );
        assert!(rss < 256, "{name}: peak RSS {rss} MiB");
    }
}

/// A monolithicSparse VMDK made by `qemu-img convert`, its header then made hostile: a grain
/// table of 2^30 entries, a capacity of 2^50 sectors (a grain directory far past any cap), a
/// grain of 2^40 sectors, and the largest grain directory accepted (16 MiB) pointing past the
/// end of the 64 KiB file. Each is named and refused (exit 2) in a process that stays small:
/// no table is allocated from what a header claims.
#[test]
fn vmdk_whose_header_claims_huge_tables_is_refused_small() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::File::create(d.join("raw.img"))
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "vmdk", "raw.img", "s.vmdk"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let base = std::fs::read(d.join("s.vmdk")).unwrap();
    assert_eq!(&base[..4], b"KDMV", "a sparse extent header");
    // (name, byte offset in the SparseExtentHeader, value, its width in bytes)
    for (name, at, value, width) in [
        ("gtes", 44, 1u64 << 30, 4),
        ("capacity", 12, 1 << 50, 8),
        ("grain", 20, 1 << 40, 8),
        ("directory", 12, 1 << 38, 8),
    ] {
        let mut img = base.clone();
        img[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        let file = format!("{name}.vmdk");
        write(d, &file, &img);
        let (code, err, rss) = measured(d, &["image", &file]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(&file) && err.contains("vmdk"), "{name}: {err}");
        assert!(rss < 256, "{name}: peak RSS {rss} MiB");
    }
}

/// One line of 1 GiB (zeros, sparse, then a key pair at its end): found where it is, in a
/// process that stays small (the file is read in windows, never whole). Its column was the
/// window's (4 MiB and some) until this test.
#[test]
fn key_at_the_end_of_a_one_gib_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (id, secret) = Keys::new(2111).pair();
    let f = std::fs::File::create(d.join("one-line.txt")).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("one-line.txt"))
        .unwrap();
    use std::io::Write;
    write!(f, "AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret}").unwrap();
    drop(f);
    let (code, err, rss) = measured(
        d,
        &[
            "scan",
            "one-line.txt",
            "--format",
            "json",
            "--show-secrets",
            "-o",
            "r.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let c = creds(&v)
        .iter()
        .find(|c| c["parts"]["key_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(c["places"][0]["line"], 1);
    assert_eq!(c["places"][0]["offset"], (1u64 << 30) + 18);
    // The column counts from the line's start, windows before it included.
    assert_eq!(c["places"][0]["column"], (1u64 << 30) + 19);
    assert!(rss < 256, "peak RSS {rss} MiB");
}

/// Git blobs bigger than memory should hold: one of 2 GiB and some (past 2^31: sizes are not
/// 32-bit) written by `git fast-import` into a pack (undeltified: it is over fast-import's
/// big-file threshold), and one of 80 MiB added as a loose object, each with a key pair at its
/// very end. Both are inflated as streams, through windows: found at their offsets, attributed
/// to their commits and paths, in a process that stays small.
#[test]
fn git_blobs_bigger_than_memory_are_streamed() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(2113);
    let (packed, loose) = (keys.pair(), keys.pair());
    git(d, &["init", "-q"]);
    let tail = |k: &(String, String)| {
        format!(
            "\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            k.0, k.1
        )
    };
    let big_tail = tail(&packed);
    let big = (1u64 << 31) + 4096 + big_tail.len() as u64;
    let mut fi = std::process::Command::new("git")
        .args(["-c", "fastimport.unpackLimit=0", "fast-import", "--quiet"])
        .current_dir(d)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut w = std::io::BufWriter::new(fi.stdin.take().unwrap());
        write!(w, "blob\nmark :1\ndata {big}\n").unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut left = big - big_tail.len() as u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            w.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        w.write_all(big_tail.as_bytes()).unwrap();
        write!(
            w,
            "\ncommit refs/heads/main\nmark :2\ncommitter Dev <dev@example.com> 1700000000 +0000\n\
             data 9\nbackups\n\nM 100644 :1 backup.img\n\n"
        )
        .unwrap();
    }
    assert!(fi.wait().unwrap().success());
    git(d, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    git(d, &["read-tree", "HEAD"]);
    let mut mid = vec![0u8; 80 << 20];
    mid.extend_from_slice(tail(&loose).as_bytes());
    write(d, "dump.sql", &mid);
    drop(mid);
    git(d, &["add", "dump.sql"]);
    git(d, &["commit", "-qm", "a dump"]);
    let counts = git(d, &["count-objects", "-v"]);
    assert!(
        counts.contains("in-pack: 3") && counts.contains("count: 3"),
        "{counts}"
    );
    std::fs::remove_file(d.join("dump.sql")).unwrap();

    let (code, err, rss) = measured(
        d,
        &[
            "git",
            ".",
            "--format",
            "json",
            "--show-secrets",
            "-o",
            "r.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    for (k, path, size) in [
        (&packed, "backup.img", big),
        (&loose, "dump.sql", (80 << 20) + tail(&loose).len() as u64),
    ] {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.0.as_str())
            .unwrap_or_else(|| panic!("{path}: {v:#}\n{err}"));
        assert_eq!(c["parts"]["secret"], k.1.as_str(), "the pair is whole");
        let p = &c["places"][0];
        assert_eq!(p["path"], path, "{p}");
        assert!(p["git"]["commit"]["id"].is_string(), "{p}");
        let at = p["offset"].as_u64().unwrap();
        assert!(
            at > size - 100 && at < size,
            "{path}: offset {at} of {size}"
        );
    }
    assert!(rss < 256, "peak RSS {rss} MiB");
}

/// A big file staged for commit (the pre-commit check): 300 MiB with two key pairs at its end,
/// over HEAD's 70 MiB version that already held one of them. Both versions are read as
/// streams; only the pair this commit adds is reported, in a process that stays small (the
/// staged blob was held whole, and copied, before).
#[test]
fn a_big_staged_file_is_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(2117);
    let (old, new) = (keys.pair(), keys.pair());
    let pair = |k: &(String, String)| {
        format!(
            "\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            k.0, k.1
        )
    };
    git(d, &["init", "-q"]);
    let mut data = vec![0u8; 70 << 20];
    data.extend_from_slice(pair(&old).as_bytes());
    write(d, "dump.sql", &data);
    git(d, &["add", "dump.sql"]);
    git(d, &["commit", "-qm", "a dump"]);
    data.resize(300 << 20, 0);
    data.extend_from_slice(pair(&old).as_bytes());
    data.extend_from_slice(pair(&new).as_bytes());
    write(d, "dump.sql", &data);
    drop(data);
    git(d, &["add", "dump.sql"]);
    let (code, err, rss) = measured(
        d,
        &[
            "git",
            "--staged",
            "--format",
            "json",
            "--show-secrets",
            "-o",
            "r.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let ids: Vec<&str> = creds(&v)
        .iter()
        .map(|c| c["parts"]["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new.0.as_str()], "only what the commit adds: {v:#}");
    let p = &creds(&v)[0]["places"][0];
    assert_eq!(p["path"], "dump.sql");
    assert!(p["offset"].as_u64().unwrap() > 300 << 20, "{p}");
    assert!(rss < 256, "peak RSS {rss} MiB");
}
