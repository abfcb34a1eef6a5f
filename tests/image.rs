//! `keyhound image`: the raw pass over disk images, on sparse files and on a real ext4
//! filesystem built with mkfs.ext4 whose key file is then deleted with debugfs; GPT and MBR
//! (extended) disks made by fixtures/images/make_disk.sh (sgdisk/sfdisk, mkfs.ext4 -d,
//! mkfs.fat + mcopy) walked with paths.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use common::*;
use serde_json::Value;

fn image_json(dir: &std::path::Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["image", "--format", "json", "--show-secrets"];
    a.extend_from_slice(args);
    let (code, out, err) = run(dir, &a);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}")),
    )
}

#[test]
fn sparse_image_keys_at_their_offsets_holes_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("disk.img");
    let mut keys = Keys::new(71);
    let size: u64 = 4 << 30; // 4 GiB, almost all hole
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(size).unwrap();
    // 96 MiB of dense text at 3 GiB, three of the 32 MiB units threads take in turn.
    let dense = 3u64 << 30;
    f.seek(SeekFrom::Start(dense)).unwrap();
    let filler: Vec<u8> = b"lorem ipsum dolor sit amet\n".repeat(4 << 20)[..96 << 20].to_vec();
    f.write_all(&filler).unwrap();
    // Pairs straddle unit boundaries, in holes' data and in the dense stretch.
    let offsets = [
        4096u64,
        (1 << 30) + 12345,
        (2 << 30) - 30,
        dense + (32 << 20) - 20,
        dense + (64 << 20) - 45,
        dense + (96 << 20) - 100,
        size - 200,
    ];
    let mut planted = Vec::new();
    for &off in &offsets {
        let (k, s) = keys.pair();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(format!("{k}:{s}\n").as_bytes()).unwrap();
        planted.push((off, k));
    }
    drop(f);
    let (code, v) = image_json(tmp.path(), &["-j", "2", "disk.img"]);
    assert_eq!(code, 1);
    assert_eq!(creds(&v).len(), offsets.len(), "{v:#}");
    for (off, k) in &planted {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.as_str())
            .unwrap();
        let places = c["places"].as_array().unwrap();
        assert_eq!(places.len(), 1, "reported once: {c}");
        assert_eq!(places[0]["offset"].as_u64().unwrap(), *off);
        assert_eq!(c["rule"], "aws-access-key");
        // Raw bytes have no lines.
        assert!(places[0].get("line").is_none(), "{c}");
    }
    // Holes are skipped: far less than 4 GiB was read.
    assert!(
        v["summary"]["bytes"].as_u64().unwrap() < 160 << 20,
        "{}",
        v["summary"]
    );
    // Read instead of mapped, on one thread or three: the same findings, the same bytes.
    for args in [["-j", "1", "--no-mmap"], ["-j", "3", "--no-mmap"]] {
        let (code, w) = image_json(tmp.path(), &[&args[..], &["disk.img"]].concat());
        assert_eq!(code, 1);
        assert_eq!(w["credentials"], v["credentials"], "{args:?}");
        assert_eq!(w["summary"]["bytes"], v["summary"]["bytes"], "{args:?}");
    }
    let (_, text, _) = run(tmp.path(), &["image", "disk.img"]);
    assert!(
        text.contains(&format!(
            "disk.img @ byte {} (0x{:x})",
            offsets[0], offsets[0]
        )),
        "{text}"
    );

    let (code, out, _) = run(tmp.path(), &["image", "--format", "sarif", "disk.img"]);
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&sarif);
    assert_eq!(
        sarif["runs"][0]["automationDetails"]["id"],
        "keyhound/image/"
    );

    let (code, _, err) = run(tmp.path(), &["image", "missing.img"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.img"), "{err}");
}

#[test]
fn utf16_keys_deep_in_binary_bytes_are_found_at_their_offsets() {
    // 48 MiB of binary-looking bytes (NULs everywhere) with UTF-16LE strings in them, as a
    // Windows volume holds: the decoding covers the places its hints point at, wherever they are.
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut data: Vec<u8> = (0..48 << 20)
        .map(|i| if i % 3 == 0 { 0 } else { rng.u8(..) })
        .collect();
    let mut keys = Keys::new(72);
    let mut planted = Vec::new();
    for off in [1000usize, (17 << 20) + 3, (32 << 20) - 40, (47 << 20) + 999] {
        let (k, s) = keys.pair();
        let text = format!("aws_access_key_id = {k}\r\naws_secret_access_key = {s}\r\n");
        let wide: Vec<u8> = text.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
        data[off..off + wide.len()].copy_from_slice(&wide);
        // The key id starts 20 characters in.
        planted.push((off as u64 + 40, k));
    }
    std::fs::write(tmp.path().join("win.img"), &data).unwrap();
    let (code, v) = image_json(tmp.path(), &["win.img"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(creds(&v).len(), planted.len(), "{v:#}");
    for (off, k) in &planted {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.as_str())
            .unwrap_or_else(|| panic!("{k} not found: {v:#}"));
        assert_eq!(c["places"][0]["offset"].as_u64().unwrap(), *off, "{c}");
        assert!(c["parts"]["secret"].is_string(), "paired: {c}");
        assert_eq!(c["places"][0]["decoded"][0], "utf-16le", "{c}");
    }
}

#[test]
fn a_deleted_files_key_is_found_in_an_ext4_image() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(72).pair();
    write(
        d,
        "root/home/ec2-user/.aws/credentials",
        format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n"),
    );
    write(d, "root/etc/motd", "hello\n");
    tool(
        d,
        &["mkfs.ext4", "-q", "-F", "-d", "root", "ext4.img", "16M"],
    );
    tool(
        d,
        &[
            "debugfs",
            "-w",
            "-R",
            "rm /home/ec2-user/.aws/credentials",
            "ext4.img",
        ],
    );
    // debugfs really removed it: the directory no longer lists the file.
    let ls = Command::new("debugfs")
        .args(["-R", "ls -l /home/ec2-user/.aws", "ext4.img"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("credentials"));

    let (code, v) = image_json(d, &["ext4.img"]);
    assert_eq!(code, 1, "{v:#}");
    let c = creds(&v)
        .iter()
        .find(|c| c["parts"]["key_id"] == k.as_str())
        .expect("deleted key found");
    let off = c["places"][0]["offset"].as_u64().unwrap() as usize;
    let img = std::fs::read(d.join("ext4.img")).unwrap();
    assert_eq!(
        &img[off..off + 20],
        k.as_bytes(),
        "the offset points at the key"
    );
}

/// ext4 files are read a run of blocks at a time (the vendored ext4-view's `File::read_bytes`),
/// as far as the blocks lie next to each other on the disk: a file debugfs wrote into the gaps
/// two deleted files left (three extents), a sparse file (holes read as zeros), a small one.
/// Read through ext4-view with buffers of every awkward size, and seeked into, each gives its
/// bytes; `keyhound image` finds a key astride the fragments' joint and one past a hole, at
/// their lines.
#[test]
fn ext4_files_read_in_runs_across_fragments_and_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(79);
    let (frag_k, sparse_k) = (keys.pair(), keys.pair());
    write(d, "root/motd", "hello\n");
    // 1 MiB of hole between two stretches of text.
    let mut sparse = b"x\n".to_vec();
    sparse.resize((1 << 20) + 3 * 4096 + 10, 0);
    sparse.extend_from_slice(settings(&sparse_k).as_bytes());
    let mut f = std::fs::File::create(write(d, "root/sparse.conf", "")).unwrap();
    f.write_all(b"x\n").unwrap();
    f.seek(SeekFrom::Start((1 << 20) + 3 * 4096 + 10)).unwrap();
    f.write_all(settings(&sparse_k).as_bytes()).unwrap();
    drop(f);
    // 20 KiB of lines, the key pair's first line across byte 8192, where the first of the
    // gaps (8 KiB) ends.
    let mut frag = "some text of a log line\n".repeat(340).into_bytes();
    frag.extend_from_slice(b"-------------------\n");
    assert_eq!(frag.len(), 8192 - 12);
    frag.extend_from_slice(settings(&frag_k).as_bytes());
    while frag.len() < 20 << 10 {
        frag.extend_from_slice(b"more text\n");
    }
    frag.truncate(20 << 10);
    let frag_line = 1 + frag[..8192 - 12].iter().filter(|&&b| b == b'\n').count();
    write(d, "frag", &frag);
    for i in 1..=5 {
        write(d, &format!("a{i}"), vec![b'a' + i as u8; 8192]);
    }
    // 1 KiB blocks (mkfs's choice for a volume this small): a 4 KiB-block volume is what the
    // bench reads.
    tool(
        d,
        &["mkfs.ext4", "-q", "-F", "-d", "root", "ext4.img", "16M"],
    );
    let cmds = "write a1 a1\nwrite a2 a2\nwrite a3 a3\nwrite a4 a4\nwrite a5 a5\n\
                rm a2\nrm a4\nwrite frag frag\n";
    write(d, "cmds", cmds);
    tool(d, &["debugfs", "-w", "-f", "cmds", "ext4.img"]);
    // debugfs's list of a file's extents.
    let extents_of = |path: &str| {
        let o = Command::new("debugfs")
            .args(["-R", &format!("ex {path}"), "ext4.img"])
            .current_dir(d)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let extents = extents_of("/frag");
    assert!(
        extents.contains("3/  3"),
        "frag is in three pieces:\n{extents}"
    );
    // Where its second piece starts on the disk (debugfs: "0/ 0 2/ 3 8 - 15 1197 - 1204 8").
    let second: u64 = extents
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|t| t.len() >= 10 && t[2] == "2/")
        .and_then(|t| t[7].parse().ok())
        .unwrap_or_else(|| panic!("no second extent:\n{extents}"));
    let extents = extents_of("/sparse.conf");
    assert!(
        extents.contains("2/  2"),
        "a hole between two blocks:\n{extents}"
    );

    let fs = ext4_view::Ext4::load_from_path(d.join("ext4.img")).unwrap();
    for (path, want) in [
        ("/frag", &frag),
        ("/sparse.conf", &sparse),
        ("/motd", &b"hello\n".to_vec()),
    ] {
        assert_eq!(&fs.read(path).unwrap(), want, "{path} read whole");
        for size in [1usize, 1000, 1024, 1025, 4096, 8191, 9000, 2 << 20] {
            let mut file = fs.open(path).unwrap();
            let (mut got, mut buf) = (Vec::new(), vec![0u8; size]);
            loop {
                let n = file.read_bytes(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(&got == want, "{path} read {size} bytes at a time");
            // From a block's start, and from inside one, to the end.
            for at in [1024u64, 8000] {
                file.seek_to(at).unwrap();
                let mut rest = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut rest).unwrap();
                let at = (at as usize).min(want.len());
                assert!(rest == want[at..], "{path} from byte {at}, {size}");
            }
        }
    }

    // A volume cut inside that piece: the read of the run fails, and fails again when asked
    // again (the file has not moved past the bytes it could not read); the bytes before it
    // still read, through the block cache: its read of 32 blocks from there runs past the cut
    // and fails, and the block asked for is read alone (inside the first piece, and inside the
    // cut piece's first block).
    let mut cut = std::fs::read(d.join("ext4.img")).unwrap();
    cut.truncate(((second + 3) * 1024) as usize);
    std::fs::write(d.join("cut.img"), &cut).unwrap();
    let fs = ext4_view::Ext4::load_from_path(d.join("cut.img")).unwrap();
    let mut file = fs.open("/frag").unwrap();
    let mut buf = vec![0u8; 64 << 10];
    assert_eq!(file.read_bytes(&mut buf).unwrap(), 8192);
    assert_eq!(&buf[..8192], &frag[..8192]);
    for _ in 0..2 {
        assert!(file.read_bytes(&mut buf).is_err());
        assert_eq!(file.position(), 8192);
    }
    file.seek_to(100).unwrap();
    assert_eq!(file.read_bytes(&mut buf[..1000]).unwrap(), 924);
    assert_eq!(&buf[..924], &frag[100..1024]);
    file.seek_to(8192 + 100).unwrap();
    assert_eq!(file.read_bytes(&mut buf[..500]).unwrap(), 500);
    assert_eq!(&buf[..500], &frag[8192 + 100..8192 + 600]);

    let (code, v) = image_json(d, &["ext4.img"]);
    assert_eq!(code, 1, "{v:#}");
    for (k, path, line) in [
        (&frag_k.0, "/frag", frag_line),
        (&sparse_k.0, "/sparse.conf", 2),
    ] {
        let p = places_of(&v, k);
        assert_eq!(p.len(), 1, "{path}: reported once: {p:#?}");
        assert_eq!(
            p[0]["inner"],
            serde_json::json!(["disk (ext4)", path]),
            "{p:#?}"
        );
        assert_eq!(p[0]["line"], line, "{path}");
    }
}

#[test]
fn every_file_of_a_3000_entry_ext4_directory_is_opened_with_its_path() {
    // `mkfs.ext4 -d` writes directories without htree indexes: files are opened from their
    // directory entries (by inode), not by resolving each path again, which scanned such a
    // directory entry by entry for every file in it.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(73);
    let mut planted = Vec::new();
    for i in 0..3000 {
        let name = format!("root/var/big/f{i:04}.conf");
        if i % 1000 == 0 || i == 2999 {
            let (k, s) = keys.pair();
            write(
                d,
                &name,
                format!("aws_access_key_id = {k}\naws_secret_access_key = {s}\n"),
            );
            planted.push((k, name["root".len()..].to_string()));
        } else {
            write(d, &name, format!("setting = {i}\n"));
        }
    }
    let (k, s) = keys.pair();
    write(
        d,
        "root/var/big/sub/deeper/last.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    planted.push((k, "/var/big/sub/deeper/last.env".to_string()));
    tool(
        d,
        &["mkfs.ext4", "-q", "-F", "-d", "root", "ext4.img", "32M"],
    );

    let (code, v) = image_json(d, &["ext4.img"]);
    assert_eq!(code, 1, "{v:#}");
    for (k, path) in &planted {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.as_str())
            .unwrap_or_else(|| panic!("{path}: {k} not found"));
        let inner: Vec<&str> = c["places"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p["inner"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|x| x.as_str())
            })
            .collect();
        assert!(inner.contains(&path.as_str()), "{path} not in {c:#}");
    }
}

#[test]
fn an_ext4_directory_linked_into_itself_is_walked_once() {
    // debugfs links /a into /a/b: a loop no kernel would make, as a corrupt or crafted volume
    // has. The walk must end (its paths would otherwise grow without end) and find the key.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(79).pair();
    write(d, "root/a/b/.env", ini(&k, &s));
    tool(
        d,
        &["mkfs.ext4", "-q", "-F", "-d", "root", "ext4.img", "8M"],
    );
    tool(d, &["debugfs", "-w", "-R", "ln /a /a/b/loop", "ext4.img"]);
    // Under `timeout`: a walk that loops fails the test instead of hanging it.
    let o = Command::new("timeout")
        .args([
            "120",
            env!("CARGO_BIN_EXE_keyhound"),
            "image",
            "--format",
            "json",
        ])
        .args(["--show-secrets", "ext4.img"])
        .current_dir(d)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let file_places: Vec<&Value> = places_of(&v, &k)
        .iter()
        .filter(|p| p["raw"] != true)
        .collect();
    assert_eq!(file_places.len(), 1, "{v:#}");
    let inner = file_places[0]["inner"].as_array().unwrap();
    assert!(inner.iter().any(|x| x == "/a/b/.env"), "{v:#}");
}

/// A directory block is read by itself, past ext4-view's block cache, whose miss read 32 KiB
/// from the block on (the next directories' blocks too, on a volume `mkfs.ext4 -d` made): each
/// of 20 directories is listed after one read of exactly its block.
#[test]
fn ext4_directory_blocks_are_read_alone() {
    type Reads = std::rc::Rc<std::cell::RefCell<Vec<(u64, usize)>>>;
    struct Counting(std::fs::File, Reads);
    impl ext4_view::Ext4Read for Counting {
        fn read(
            &mut self,
            start: u64,
            dst: &mut [u8],
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.1.borrow_mut().push((start, dst.len()));
            std::os::unix::fs::FileExt::read_exact_at(&self.0, dst, start)?;
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..20 {
        write(d, &format!("root/d{i:02}/f"), "x\n");
    }
    tool(
        d,
        &[
            "mkfs.ext4",
            "-q",
            "-F",
            "-b",
            "4096",
            "-d",
            "root",
            "ext4.img",
            "32M",
        ],
    );
    let reads = Reads::default();
    let img = std::fs::File::open(d.join("ext4.img")).unwrap();
    let fs = ext4_view::Ext4::load(Box::new(Counting(img, reads.clone()))).unwrap();
    let mut dirs = 0;
    for entry in fs.read_dir("/").unwrap() {
        let entry = entry.unwrap();
        let name = String::from_utf8(entry.file_name().as_ref().to_vec()).unwrap();
        if !name.starts_with('d') {
            continue;
        }
        let o = Command::new("debugfs")
            .args(["-R", &format!("blocks /{name}"), "ext4.img"])
            .current_dir(d)
            .output()
            .unwrap();
        let block: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
        reads.borrow_mut().clear();
        let listed: Vec<Vec<u8>> = entry
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().file_name().as_ref().to_vec())
            .collect();
        assert!(listed.contains(&b"f".to_vec()), "{name}: {listed:?}");
        // Its inode (read through the cache, 32 KiB of the inode table at a time) and its block.
        let r = reads.borrow();
        assert!(
            r.contains(&(block * 4096, 4096)),
            "{name} (block {block}): {r:?}"
        );
        dirs += 1;
    }
    assert_eq!(dirs, 20);
}

/// Runs the tool `cmd[0]` with the rest of `cmd` as arguments in `d`, which must succeed.
fn tool(d: &std::path::Path, cmd: &[&str]) {
    let o = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(d)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd[0]));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs fixtures/images/make_disk.sh in `d` with `args`, which must succeed.
fn make_disk_with(d: &std::path::Path, args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_disk.sh");
    tool(d, &[&["bash", script], args].concat());
}

/// `qemu-img convert ARGS SRC DST` in `d`, which must succeed.
fn qemu_convert(d: &std::path::Path, args: &[&str], src: &str, dst: &str) {
    tool(d, &[&["qemu-img", "convert"], args, &[src, dst]].concat());
}

/// An AWS credentials file holding one pair.
fn ini(k: &str, s: &str) -> String {
    format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n")
}

/// Builds `disk.img` in `d` with fixtures/images/make_disk.sh: the ext4 and FAT trees are
/// `ext/` and `fat/`, `deleted.txt` goes into ext4 and is removed.
/// `key` was found once, by the raw pass only, in partition `part` (first sector `lba`), at an
/// offset from the partition's start that points at the key in the raw disk `disk`.
fn raw_place_in(v: &Value, key: &str, part: &str, lba: u64, disk: &[u8], what: &str) {
    let p = places_of(v, key);
    assert_eq!(p.len(), 1, "{what}: {p:#?}");
    assert_eq!(p[0]["inner"], serde_json::json!([part]), "{what}");
    assert_eq!(p[0]["raw"], true, "{what}");
    let off = (p[0]["offset"].as_u64().unwrap() + lba * 512) as usize;
    assert_eq!(
        &disk[off..off + key.len()],
        key.as_bytes(),
        "{what}: the offset points at the deleted key"
    );
}

fn make_disk(d: &std::path::Path, table: &str) {
    make_disk_with(d, &["disk.img", table, "ext", "fat", "deleted.txt"]);
}

fn places_of<'a>(v: &'a Value, key_id: &str) -> &'a Vec<Value> {
    creds(v)
        .iter()
        .find(|c| c["parts"]["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not found: {v:#}"))["places"]
        .as_array()
        .unwrap()
}

#[test]
fn gpt_and_mbr_disks_ext4_and_fat_files_with_paths_deleted_by_raw_pass() {
    // (table, ext4 partition, its first sector, FAT partition)
    for (n, (table, ext_part, ext_lba, fat_part)) in [
        ("gpt", "p1 (ext4)", 36864u64, "p128 (fat)"),
        ("mbr", "p5 (ext4)", 38912, "p1 (fat)"),
    ]
    .into_iter()
    .enumerate()
    {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut keys = Keys::new(80 + n as u64);
        let (live_k, live_s) = keys.pair();
        let (gone_k, gone_s) = keys.pair();
        let (efi_k, efi_s) = keys.pair();
        write(
            d,
            "ext/home/ec2-user/.aws/credentials",
            ini(&live_k, &live_s),
        );
        write(d, "ext/etc/motd", "hello\n");
        write(d, "fat/EFI/BOOT/Startup Notes.txt", ini(&efi_k, &efi_s));
        write(d, "deleted.txt", ini(&gone_k, &gone_s));
        make_disk(d, table);

        let (code, v) = image_json(d, &["disk.img"]);
        assert_eq!(code, 1, "{table}: {v:#}");
        // A live file: found with its path, and once (the raw pass saw the same bytes).
        let p = places_of(&v, &live_k);
        assert_eq!(p.len(), 1, "{table}: reported once: {p:#?}");
        assert_eq!(p[0]["path"], "disk.img");
        assert_eq!(
            p[0]["inner"],
            serde_json::json!([ext_part, "/home/ec2-user/.aws/credentials"]),
            "{table}"
        );
        assert_eq!(p[0]["line"], 2);
        let p = places_of(&v, &efi_k);
        assert_eq!(
            p[0]["inner"],
            serde_json::json!([fat_part, "/EFI/BOOT/Startup Notes.txt"]),
            "{table}"
        );
        // The deleted file: only the raw pass, in its partition, at its offset there.
        let img = std::fs::read(d.join("disk.img")).unwrap();
        raw_place_in(&v, &gone_k, ext_part, ext_lba, &img, table);

        let (_, text, _) = run(d, &["image", "disk.img"]);
        assert!(
            text.contains(&format!(
                "disk.img › {ext_part} › /home/ec2-user/.aws/credentials:2:"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("disk.img › {ext_part} @ byte ")),
            "{text}"
        );
    }
}

#[test]
fn unknown_filesystem_is_named_and_still_scanned_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(90).pair();
    let img = d.join("disk.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(8 << 20).unwrap();
    drop(f);
    let o = Command::new("sgdisk")
        .args(["-n", "1:2048:+4M", "-t", "1:8300", "disk.img"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Not a filesystem: text at the partition's start.
    let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(2048 * 512 + 100)).unwrap();
    f.write_all(format!("id={k} secret={s}\n").as_bytes())
        .unwrap();
    drop(f);
    let (code, out, err) = run(d, &["image", "--format", "json", "disk.img"]);
    assert_eq!(code, 2, "a partition was not walked: {err}");
    assert!(
        err.contains("disk.img › p1: unknown filesystem"),
        "names the partition: {err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let p = &creds(&v)[0]["places"][0];
    assert_eq!(p["inner"], serde_json::json!(["p1"]));
    assert_eq!(p["offset"], 100 + "id=".len());
}

#[test]
fn windows_gpt_disk_ntfs_files_with_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(95);
    let (k, s) = keys.pair();
    let (big_k, big_s) = keys.pair();
    write(
        d,
        "ntfs/Users/Administrator/.aws/credentials",
        format!("[default]\r\naws_access_key_id = {k}\r\naws_secret_access_key = {s}\r\n"),
    );
    // Big enough to be stored outside the MFT record (non-resident, in data runs).
    let mut log = "GET /healthz 200\n".repeat(20_000);
    log.push_str(&format!(
        "export AWS_ACCESS_KEY_ID={big_k} AWS_SECRET_ACCESS_KEY={big_s}\n"
    ));
    write(d, "ntfs/ProgramData/App Logs/deploy.log", log);
    make_disk_with(d, &["disk.img", "windows", "ntfs"]);
    let (code, v) = image_json(d, &["disk.img"]);
    // The Microsoft reserved partition holds no filesystem and is not warned about.
    assert_eq!(code, 1, "{v:#}");
    let p = places_of(&v, &k);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        p[0]["inner"],
        serde_json::json!(["p3 (ntfs)", "/Users/Administrator/.aws/credentials"])
    );
    assert_eq!(p[0]["line"], 2);
    let p = places_of(&v, &big_k);
    assert_eq!(
        p[0]["inner"],
        serde_json::json!(["p3 (ntfs)", "/ProgramData/App Logs/deploy.log"])
    );
    assert_eq!(p[0]["line"], 20_001);
}

/// The acceptance matrix: ext4, XFS, FAT and NTFS, each inside a GPT (Amazon Linux 2023
/// layout) and an MBR (logical partition) disk, each as a raw image, a streamOptimized VMDK
/// (what `ec2 export-image` writes), a dynamic VHD and a compressed qcow2, all made with the
/// real tools (fixtures/images/make_disk.sh --fs, qemu-img convert). In every one: the live
/// key file and the end of a multi-megabyte log are found with their paths; the deleted file's
/// key is found by the raw pass, in its partition, at an offset that points at it in the raw
/// disk; nothing is skipped.
#[test]
fn every_filesystem_in_gpt_and_mbr_as_raw_vmdk_vhd_and_qcow2() {
    for (n, fs) in ["ext4", "xfs", "fat", "ntfs"].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut keys = Keys::new(200 + n as u64);
        let (live_k, live_s) = keys.pair();
        let (log_k, log_s) = keys.pair();
        let (gone_k, gone_s) = keys.pair();
        write(
            d,
            "root/home/ec2-user/.aws/credentials",
            ini(&live_k, &live_s),
        );
        // 6 MB of log lines, the key at the end: many extents/clusters/runs, and on XFS in
        // another allocation group than the first (checked with xfs_db below).
        let mut log = String::with_capacity(6 << 20);
        let mut i = 0u64;
        while log.len() < 6 << 20 {
            log.push_str(&format!("{i:08} GET /api/v1/items?page={} 200\n", i % 977));
            i += 1;
        }
        log.push_str(&format!(
            "AWS_ACCESS_KEY_ID={log_k}\nAWS_SECRET_ACCESS_KEY={log_s}\n"
        ));
        write(d, "root/var/log/app.log", log);
        write(
            d,
            "deleted.txt",
            format!("# removed\n{}", ini(&gone_k, &gone_s)),
        );
        for (table, part, lba) in [("gpt", "p1", 36864u64), ("mbr", "p5", 36864)] {
            let raw = format!("{table}.img");
            make_disk_with(d, &[raw.as_str(), table, "--fs", fs, "root", "deleted.txt"]);
            if fs == "xfs" {
                // The log's blocks are past the first allocation group: block numbers and
                // byte offsets differ there.
                let part_img = d.join("part.img");
                let img = std::fs::read(d.join(&raw)).unwrap();
                std::fs::write(&part_img, &img[(lba * 512) as usize..]).unwrap();
                let o = Command::new("xfs_db")
                    .args(["-r", "-c", "path /var/log/app.log", "-c", "bmap"])
                    .arg(&part_img)
                    .output()
                    .unwrap();
                let bmap = String::from_utf8_lossy(&o.stdout);
                assert!(
                    bmap.lines().any(|l| !l.contains("(0/")),
                    "app.log lies in the first AG only: {bmap}"
                );
            }
            let raw_bytes = std::fs::read(d.join(&raw)).unwrap();
            let label = format!("{part} ({fs})");
            for (container, args) in [
                ("img", &[][..]),
                (
                    "vmdk",
                    &["-O", "vmdk", "-o", "subformat=streamOptimized"][..],
                ),
                ("vhd", &["-O", "vpc", "-o", "force_size=on"][..]),
                ("qcow2", &["-c", "-O", "qcow2"][..]),
            ] {
                let file = format!("{table}.{container}");
                if container != "img" {
                    qemu_convert(d, args, &raw, &file);
                }
                let what = format!("{fs} in {table} as {container}");
                let (code, v) = image_json(d, &[file.as_str()]);
                assert_eq!(code, 1, "{what}: {v:#}");
                assert_eq!(v["summary"]["warnings"], serde_json::json!([]), "{what}");
                assert_eq!(v["summary"]["incomplete"], false, "{what}");
                let p = places_of(&v, &live_k);
                assert_eq!(p.len(), 1, "{what}: reported once: {p:#?}");
                assert_eq!(p[0]["path"], file.as_str());
                assert_eq!(
                    p[0]["inner"],
                    serde_json::json!([label, "/home/ec2-user/.aws/credentials"]),
                    "{what}"
                );
                assert_eq!(p[0]["line"], 2, "{what}");
                let p = places_of(&v, &log_k);
                assert_eq!(
                    p[0]["inner"],
                    serde_json::json!([label, "/var/log/app.log"]),
                    "{what}"
                );
                raw_place_in(&v, &gone_k, &label, lba, &raw_bytes, &what);
            }
        }
    }
}

/// Bad images: a disk cut short inside its partition, an XFS superblock with corrupt
/// geometry, a qcow2 cut short. Each is named in a warning, the scan goes on (the raw pass
/// still finds the keys that are there) and ends incomplete (exit 2).
#[test]
fn truncated_and_corrupt_images_are_named_and_scanned_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(300).pair();
    write(
        d,
        "root/home/ec2-user/.aws/credentials",
        format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n"),
    );
    write(
        d,
        "root/var/lib/blob.bin",
        "0123456789abcdef".repeat(1 << 20),
    );
    for fs in ["ext4", "xfs"] {
        make_disk_with(d, &[&format!("{fs}.img"), "gpt", "--fs", fs, "root"]);
    }
    let warned = |file: &str, expect: &str| {
        let (code, out, err) = run(d, &["image", "--format", "json", "--show-secrets", file]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains(expect), "{file}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["summary"]["incomplete"], true);
        v
    };

    // Cut 8 MiB into the 32 MiB ext4 partition (it starts at 18 MiB): the credentials file,
    // written first, is still there.
    let img = std::fs::read(d.join("ext4.img")).unwrap();
    std::fs::write(d.join("cut.img"), &img[..26 << 20]).unwrap();
    let v = warned(
        "cut.img",
        "cut.img › p1 (ext4): the image ends 25165824 bytes before this partition does",
    );
    assert!(!places_of(&v, &k).is_empty());

    // XFS with agcount 0: named, its files not walked, its key found raw in p1.
    let mut img = std::fs::read(d.join("xfs.img")).unwrap();
    let sb = 36864 * 512;
    img[sb + 88..sb + 92].copy_from_slice(&[0; 4]);
    std::fs::write(d.join("bad-sb.img"), &img).unwrap();
    let v = warned(
        "bad-sb.img",
        "bad-sb.img › p1 (xfs): xfs: superblock geometry is corrupt",
    );
    let p = places_of(&v, &k);
    assert_eq!(p[0]["inner"], serde_json::json!(["p1 (xfs)"]));
    assert_eq!(p[0]["raw"], true);

    // A compressed qcow2 cut short: the clusters past the cut are named.
    qemu_convert(d, &["-c", "-O", "qcow2"], "ext4.img", "whole.qcow2");
    let q = std::fs::read(d.join("whole.qcow2")).unwrap();
    std::fs::write(d.join("cut.qcow2"), &q[..q.len() * 2 / 3]).unwrap();
    let (code, _, err) = run(d, &["image", "cut.qcow2"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("keyhound: warning: cut.qcow2")
                && (l.contains("cluster at byte") || l.contains("truncated"))),
        "names the image and the cluster: {err}"
    );
}

/// LVM2: a GPT disk whose two partitions are physical volumes of one volume group, made with
/// the real lvm2 tools (fixtures/images/make_lvm.sh): an XFS root in two linear segments and an
/// ext4 volume striped over both PVs. Their files are found with their paths, as a raw disk
/// and as the streamOptimized VMDK `ec2 export-image` writes; nothing is skipped.
#[test]
fn lvm_linear_and_striped_volumes_walked_with_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(1700);
    let (rk, rs) = keys.pair();
    let (dk, ds) = keys.pair();
    write(
        d,
        "r/etc/app.env",
        format!("AWS_ACCESS_KEY_ID={rk}\nAWS_SECRET_ACCESS_KEY={rs}\n"),
    );
    // Past the first stripe (64 KiB) of the striped volume: a file of 300 KiB, key at its end.
    let mut big = "log line\n".repeat((300 << 10) / 9);
    big.push_str(&ini(&dk, &ds));
    write(d, "d/srv/app/big.log", big);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_lvm.sh");
    tool(d, &["bash", script, "disk.img", "r", "d"]);
    qemu_convert(
        d,
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        "disk.img",
        "disk.vmdk",
    );
    for file in ["disk.img", "disk.vmdk"] {
        let (code, v) = image_json(d, &[file]);
        assert_eq!(code, 1, "{file}: {v:#}");
        assert_eq!(v["summary"]["warnings"], serde_json::json!([]), "{file}");
        let p = places_of(&v, &rk);
        assert_eq!(p.len(), 1, "{file}: {p:#?}");
        assert_eq!(
            p[0]["inner"],
            serde_json::json!(["p1 (lvm)", "vg0/root (xfs)", "/etc/app.env"]),
            "{file}"
        );
        let p = places_of(&v, &dk);
        assert_eq!(p.len(), 1, "{file}: {p:#?}");
        assert_eq!(
            p[0]["inner"],
            serde_json::json!(["p1 (lvm)", "vg0/data (ext4)", "/srv/app/big.log"]),
            "{file}"
        );
    }
}

/// A git clone on a filesystem image (ext4 by mkfs.ext4 -d, XFS by mkfs.xfs with a protofile):
/// a key only in a packed object (committed, removed, `git gc`) and another only in a loose
/// object (committed and removed after it): zlib-compressed, so neither the file walk nor the
/// raw pass sees them; the history read from the repository's files does, with the place
/// `image › fs › /home/ec2-user/app/.git @ commit › settings.py`; so is a clone inside a
/// backup tarball on the volume (`… › /backup/old-app.tgz › old/app/.git @ commit`).
/// `--no-git-history` turns it off.
#[test]
fn git_clones_inside_filesystem_images_have_their_history_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut g = Keys::new(2004);
    let (packed, loose, tarred) = (g.pair(), g.pair(), g.pair());
    let app = d.join("root/home/ec2-user/app");
    let loose_commit = repo_with_removed_keys(&app, &packed, &loose);
    let counts = git(&app, &["count-objects", "-v"]);
    assert!(
        counts.contains("in-pack: ") && !counts.contains("\ncount: 0"),
        "{counts}"
    );
    // A backup tarball on the volume with another clone inside: read as history too.
    repo_with_removed_file(&d.join("old/app"), "settings.py", &settings(&tarred));
    std::fs::create_dir_all(d.join("root/backup")).unwrap();
    tool(d, &["tar", "czf", "root/backup/old-app.tgz", "old"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    for fs in ["ext4", "xfs"] {
        let img = format!("{fs}.img");
        tool(d, &["bash", script, &img, fs, "root"]);
        let (code, v) = image_json(d, &[&img]);
        assert_eq!(code, 1, "{fs}: {v:#}");
        for (k, what) in [(&packed, "packed"), (&loose, "loose")] {
            let c = creds(&v)
                .iter()
                .find(|c| c["parts"]["key_id"] == k.0.as_str())
                .unwrap_or_else(|| panic!("{fs}: the {what} key: {v:#}"));
            assert_eq!(c["parts"]["secret"], k.1.as_str());
            let p = &c["places"][0];
            let path = p["path"].as_str().unwrap();
            assert!(path.starts_with(&format!("{img} › ")), "{path}");
            assert!(path.contains("/home/ec2-user/app/.git @ "), "{path}");
            assert_eq!(p["inner"], serde_json::json!(["settings.py"]), "{p}");
            if what == "loose" {
                assert!(
                    path.ends_with(&format!(".git @ {}", &loose_commit[..12])),
                    "{path}"
                );
            }
        }
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == tarred.0.as_str())
            .unwrap_or_else(|| panic!("{fs}: the tarball's key: {v:#}"));
        let path = c["places"][0]["path"].as_str().unwrap();
        assert!(
            path.starts_with(&format!("{img} › "))
                && path.contains(" › /backup/old-app.tgz › old/app/.git @ "),
            "{path}"
        );
        let (code, v) = image_json(d, &[&img, "--no-git-history"]);
        assert_eq!(
            code, 0,
            "{fs}: compressed objects hide the keys from the walk: {v:#}"
        );
    }
}

/// A GPT disk (ext4, FAT, a deleted file's key, a git clone whose key is only in history) in 4
/// shards — the raw pass by 32 MiB unit, files by path, history by object id — merged: the
/// single run's credentials and places (a key seen in a file and by the raw pass of another
/// part is still reported once, with its path).
#[test]
fn a_disk_in_four_shards_merges_to_the_single_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(2103);
    let mut files = Vec::new();
    for i in 0..8 {
        let (k, s) = keys.pair();
        write(d, &format!("ext/home/u{i}/.aws/credentials"), ini(&k, &s));
        files.push(k);
    }
    let (efi_k, efi_s) = keys.pair();
    write(d, "fat/EFI/BOOT/notes.txt", ini(&efi_k, &efi_s));
    let (gone_k, gone_s) = keys.pair();
    write(d, "deleted.txt", ini(&gone_k, &gone_s));
    let app = d.join("ext/srv/app");
    std::fs::create_dir_all(&app).unwrap();
    git(&app, &["init", "-q"]);
    let (h_k, h_s) = keys.pair();
    write(
        &app,
        "settings.py",
        format!("KEY = '{h_k}'\nSECRET = '{h_s}'\n"),
    );
    git(&app, &["add", "."]);
    git(&app, &["commit", "-qm", "settings"]);
    write(&app, "settings.py", "KEY = os.environ['KEY']\n");
    git(&app, &["commit", "-qam", "from the environment"]);
    make_disk(d, "gpt");
    let (code, single) = image_json(d, &["disk.img"]);
    assert_eq!(code, 1, "{single:#}");
    assert_eq!(creds(&single).len(), 11, "{single:#}");
    let parts = tempfile::tempdir().unwrap();
    for k in 1..=4 {
        let f = parts.path().join(format!("{k}.json"));
        let (code, _, err) = run(
            d,
            &[
                "image",
                "disk.img",
                "--shard",
                &format!("{k}/4"),
                "--format",
                "json",
                "--show-secrets",
                "-o",
                f.to_str().unwrap(),
            ],
        );
        assert!(code <= 1, "{err}");
    }
    let merged = merged(d, parts.path());
    assert_eq!(place_keys(&merged), place_keys(&single));
    assert_eq!(merged["summary"]["bytes"], single["summary"]["bytes"]);
    assert_eq!(merged["summary"]["files"], single["summary"]["files"]);
}

/// A corrupt directory and a corrupt inode are met by every shard's walk (each walks every
/// directory and looks at every file): only the shard each falls in by path names it, so the
/// merge counts and names them as the single run does (each of 4 parts counted both before).
/// The same for a partition cut short, which every shard finds (the first names it).
#[test]
fn what_every_shard_meets_is_named_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (k, s) = Keys::new(2131).pair();
    write(d, "root/d1/.env", ini(&k, &s));
    for i in 0..6 {
        write(d, &format!("root/d1/f{i}.txt"), format!("file {i}\n"));
        write(d, &format!("root/d2/g{i}.txt"), format!("other {i}\n"));
    }
    let args = ["-q", "-F", "-b", "1024", "-d", "root", "ext4.img", "8M"];
    tool(d, &[&["mkfs.ext4"][..], &args].concat());
    let debugfs = |req: &str| {
        let o = Command::new("debugfs")
            .args(["-R", req, "ext4.img"])
            .current_dir(d)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // "located at block 101, offset 0x0200"
    let imap = debugfs("imap /d1/f3.txt");
    let (block, off) = imap
        .split_once("located at block ")
        .and_then(|(_, r)| r.trim().split_once(", offset 0x"))
        .unwrap_or_else(|| panic!("{imap}"));
    let inode = block.parse::<usize>().unwrap() * 1024 + usize::from_str_radix(off, 16).unwrap();
    let dir_block: usize = debugfs("blocks /d2").trim().parse().unwrap();
    let mut img = std::fs::read(d.join("ext4.img")).unwrap();
    img[inode + 0x10] ^= 0xFF; // i_mtime: the inode's checksum fails
    img[dir_block * 1024 + 40] ^= 0x5A; // an entry's name: the block's checksum fails
    std::fs::write(d.join("bad.img"), &img).unwrap();

    let (code, single) = image_json(d, &["bad.img"]);
    assert_eq!(code, 2, "{single:#}");
    let warnings = &single["summary"]["warnings"];
    assert_eq!(warnings.as_array().unwrap().len(), 2, "{single:#}");
    assert_eq!(single["summary"]["skipped"]["unreadable"], 2);
    assert_eq!(creds(&single).len(), 1);
    let parts = tempfile::tempdir().unwrap();
    let needle = "keyhound: warning: bad.img";
    let named = four_parts(parts.path(), &["image", "bad.img"], needle, |a| run(d, a));
    assert_eq!(named, 2, "each named once");
    let (code, merged) = merge_parts(d, parts.path());
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(merged["summary"]["files"], single["summary"]["files"]);
    assert_eq!(merged["summary"]["incomplete"], true);
    let sorted = |v: &Value| {
        let mut w: Vec<String> = serde_json::from_value(v.clone()).unwrap();
        w.sort();
        w
    };
    // The merge adds a line for each part that did not scan everything.
    let (parts_named, rest): (Vec<String>, Vec<String>) = sorted(&merged["summary"]["warnings"])
        .into_iter()
        .partition(|w| w.ends_with("that part did not scan everything (see its warnings)"));
    assert_eq!(rest, sorted(warnings));
    assert!(!parts_named.is_empty() && parts_named.len() <= 2);
    assert_eq!(place_keys(&merged), place_keys(&single));

    // A disk cut short inside its partition: what is wrong with the volume itself is named by
    // the first part; the files past the cut by the parts they fall in.
    make_disk_with(d, &["disk.img", "gpt", "--fs", "ext4", "root"]);
    let img = std::fs::read(d.join("disk.img")).unwrap();
    std::fs::write(d.join("cut.img"), &img[..26 << 20]).unwrap();
    let (code, single) = image_json(d, &["cut.img"]);
    assert_eq!(code, 2, "{single:#}");
    let parts = tempfile::tempdir().unwrap();
    let needle = "before this partition does";
    let named = four_parts(parts.path(), &["image", "cut.img"], needle, |a| run(d, a));
    assert_eq!(named, 1);
    let (code, merged) = merge_parts(d, parts.path());
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(place_keys(&merged), place_keys(&single));
}

/// A file bigger than a shard's piece (32 MiB) is dealt among the shards by piece: each part
/// scans its pieces, with their line numbers, and the merge is the single run's report, one
/// key across the pieces' edge included.
#[test]
fn a_big_file_s_pieces_are_dealt_among_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(2117);
    std::fs::create_dir_all(d.join("root/var/log")).unwrap();
    // Lines of a log, with keys at a few places.
    let mut f = std::fs::File::create(d.join("root/var/log/big.log")).unwrap();
    let line = format!("{}\n", "-".repeat(63));
    f.write_all(line.repeat((34 << 20) / 64).as_bytes())
        .unwrap();
    let mut pairs = Vec::new();
    for at in [1000u64, (32 << 20) - 40, (33 << 20) + 5] {
        let (k, s) = keys.pair();
        f.seek(SeekFrom::Start(at)).unwrap();
        write!(
            f,
            "\nline\nAWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"
        )
        .unwrap();
        pairs.push(k);
    }
    drop(f);
    tool(d, &["mkfs.ext4", "-q", "-F", "-d", "root", "fs.img", "48M"]);
    // Read once first: ext4 reports the stretches mkfs left unwritten (zeros) as holes to
    // `SEEK_DATA` until their pages are in the page cache, so the bytes the raw pass counts
    // (not what it finds) would differ between the first run and the next.
    std::fs::read(d.join("fs.img")).unwrap();
    let (code, single) = image_json(d, &["fs.img"]);
    assert_eq!(code, 1, "{single:#}");
    let with_lines = |v: &Value| {
        let mut p: Vec<String> = creds(v)
            .iter()
            .flat_map(|c| c["places"].as_array().unwrap().iter())
            .map(|p| format!("{} {} {} {}", p["inner"], p["offset"], p["line"], p["raw"]))
            .collect();
        p.sort();
        p
    };
    for k in &pairs {
        let p = places_of(&single, k);
        assert!(p.iter().any(|p| p["line"].as_u64() > Some(1)), "{p:#?}");
    }
    let parts = tempfile::tempdir().unwrap();
    let mut found = Vec::new();
    // The part that holds the file's first piece (and counts the file).
    let mut first_part = 0;
    for k in 1..=4 {
        let f = parts.path().join(format!("{k}.json"));
        let shard = format!("{k}/4");
        let args = ["image", "fs.img", "--shard", &shard, "--format", "json"];
        let (code, _, err) = run(
            d,
            &[&args[..], &["--show-secrets", "-o", f.to_str().unwrap()]].concat(),
        );
        assert!(code <= 1, "{err}");
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        // Places in the file (not the raw pass's, which any part may hold).
        let in_file = creds(&v)
            .iter()
            .flat_map(|c| c["places"].as_array().unwrap().iter())
            .filter(|p| p["inner"].to_string().contains("/var/log/big.log"))
            .count();
        found.push(in_file);
        if creds(&v).iter().any(|c| {
            c["parts"]["key_id"] == pairs[0].as_str()
                && c["places"].to_string().contains("/var/log/big.log")
        }) {
            first_part = k;
        }
    }
    assert_ne!(first_part, 0, "the first piece's key is in a part");
    assert_eq!(found.iter().sum::<usize>(), 3, "{found:?}");
    assert!(found.iter().filter(|&&n| n > 0).count() > 1, "{found:?}");
    let merged = merged(d, parts.path());
    assert_eq!(with_lines(&merged), with_lines(&single));
    for what in ["bytes", "files"] {
        assert_eq!(merged["summary"][what], single["summary"][what], "{what}");
    }

    // The image cut before the block of the file's last key (in its second piece): the file
    // reads up to there, then fails. The shards (a shard reads a big file only as far as its
    // last piece) count what the single run counts, and the error is named once, by the shard
    // of the piece it falls in.
    let mut img = std::fs::read(d.join("fs.img")).unwrap();
    let at = img
        .windows(pairs[2].len())
        .position(|w| w == pairs[2].as_bytes())
        .unwrap();
    img.truncate(at / 4096 * 4096);
    std::fs::write(d.join("cut.img"), &img).unwrap();
    let (code, single) = image_json(d, &["cut.img"]);
    assert_eq!(
        code, 2,
        "an error reading a file leaves the scan incomplete"
    );
    let errors = |v: &Value| {
        v["summary"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w.as_str().unwrap().contains("/var/log/big.log"))
            .count()
    };
    assert_eq!(errors(&single), 1, "{:#}", single["summary"]);
    let cut_parts = tempfile::tempdir().unwrap();
    let mut named = Vec::new();
    for k in 1..=4 {
        let f = cut_parts.path().join(format!("{k}.json"));
        let shard = format!("{k}/4");
        let args = ["image", "cut.img", "--shard", &shard, "--format", "json"];
        let (code, _, err) = run(d, &[&args[..], &["-o", f.to_str().unwrap()]].concat());
        assert!(code <= 2, "{err}");
        let v = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        named.extend(std::iter::repeat_n(k, errors(&v)));
    }
    // Named once, by the part after the first piece's (pieces are dealt in turn): the first
    // piece's part stops reading at its piece's end and never meets the error.
    assert_eq!(
        named,
        vec![first_part % 4 + 1],
        "the error is named by the second piece's part"
    );
    // Parts that name an error are incomplete: the merge says so and exits 2.
    let (code, out, err) = run(
        d,
        &[
            "merge",
            "--format",
            "json",
            cut_parts.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did not scan everything"), "{err}");
    let cut: Value = serde_json::from_str(&out).unwrap();
    for what in ["bytes", "files", "skipped"] {
        assert_eq!(cut["summary"][what], single["summary"][what], "{what}");
    }
    assert_eq!(with_lines(&cut), with_lines(&single));
}
