//! `keyhound image`: the raw pass over disk images, on sparse files and on a real ext4
//! filesystem built with mkfs.ext4 whose key file is then deleted with debugfs.

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
    // Two threads split the image at 2 GiB: one pair straddles that boundary.
    let offsets = [4096u64, (1 << 30) + 12345, (2 << 30) - 30, size - 200];
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
    assert_eq!(creds(&v).len(), 4, "{v:#}");
    for (off, k) in &planted {
        let c = creds(&v)
            .iter()
            .find(|c| c["parts"]["key_id"] == k.as_str())
            .unwrap();
        let places = c["places"].as_array().unwrap();
        assert_eq!(places.len(), 1, "reported once: {c}");
        assert_eq!(places[0]["offset"].as_u64().unwrap(), *off);
        assert_eq!(c["rule"], "aws-access-key");
    }
    // Holes are skipped: far less than 4 GiB was read.
    assert!(
        v["summary"]["bytes"].as_u64().unwrap() < 64 << 20,
        "{}",
        v["summary"]
    );
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
    let ok = |c: &mut Command| {
        let o = c.current_dir(d).output().unwrap();
        assert!(
            o.status.success(),
            "{:?}: {}",
            c,
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(Command::new("mkfs.ext4").args(["-q", "-F", "-d", "root", "ext4.img", "16M"]));
    ok(Command::new("debugfs").args([
        "-w",
        "-R",
        "rm /home/ec2-user/.aws/credentials",
        "ext4.img",
    ]));
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
