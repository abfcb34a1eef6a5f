//! `keyhound s3`: backups in S3 read in place from a moto server on 127.0.0.1 (versioning on).
//! The objects are made with the real tools (tar, zip, mkfs.xfs with a protofile, sgdisk,
//! `qemu-img convert -O vmdk -o subformat=streamOptimized`, as `ec2 export-image` writes) and
//! put by boto3 (tests/aws/moto_s3.py); keys come from the seeded generator.

// AWS calls: only in a build with the `aws` feature (the default).
#![cfg(feature = "aws")]

mod common;

use std::path::Path;
use std::process::Command;

use common::servers::Moto;
use common::*;
use serde_json::{json, Value};

const BUCKET: &str = "acme-backups";

fn tool(d: &Path, cmd: &[&str]) {
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(d)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test installs it)", cmd[0]));
    assert!(st.success(), "{cmd:?}");
}

fn env_file(k: &(String, String)) -> String {
    format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", k.0, k.1)
}

/// keyhound against the moto server, as an operator whose credentials are moto's defaults.
fn s3(moto: &Moto, d: &Path, args: &[&str]) -> (i32, String, String) {
    s3_as(moto, d, ("testing", "testing"), args)
}

fn s3_as(moto: &Moto, d: &Path, creds: (&str, &str), args: &[&str]) -> (i32, String, String) {
    run_aws(d, &moto.endpoint, creds, &[&["s3"], args].concat())
}

fn s3_json(moto: &Moto, d: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut a = args.to_vec();
    a.extend(["--format", "json", "--show-secrets"]);
    let (code, out, err) = s3(moto, d, &a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, err)
}

fn places<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    creds(v)
        .iter()
        .filter(|c| c.to_string().contains(key))
        .flat_map(|c| c["places"].as_array().unwrap())
        .collect()
}

/// The keys of the backup bucket, by where they are.
struct Seeded {
    tgz: (String, String),
    zip: (String, String),
    env: (String, String),
    old: (String, String),
    glacier: (String, String),
    denied: (String, String),
    vmdk: (String, String),
    big_log: (String, String),
    big_zip: (String, String),
    mid_log: (String, String),
    west: (String, String),
    deleted: (String, String),
    vhd: (String, String),
    /// Only in the history of a clone inside the home directory's tarball.
    history: (String, String),
    moto: Moto,
}

/// A GPT disk with one XFS partition holding a credentials file, exported as a
/// streamOptimized VMDK.
fn make_vmdk(d: &Path, key: &(String, String)) {
    write(
        d,
        "x/home/ec2-user/.aws/credentials",
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            key.0, key.1
        ),
    );
    // Bytes that do not compress, so that the export is bigger than what is read whole.
    let mut rng = fastrand::Rng::with_seed(7);
    let noise: Vec<u8> = (0..5 << 20).map(|_| rng.u8(..)).collect();
    write(d, "x/home/ec2-user/backup.bin", noise);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    tool(d, &["bash", script, "xfs.img", "xfs", "x"]);
    let xfs = std::fs::read(d.join("xfs.img")).unwrap();
    let p1 = 2048usize;
    let mut disk = vec![0u8; (p1 + xfs.len() / 512 + 2048) * 512];
    std::fs::write(d.join("disk.img"), &disk).unwrap();
    tool(
        d,
        &[
            "sgdisk",
            "-n",
            &format!("1:{p1}:+{}", xfs.len() / 512),
            "-t",
            "1:8300",
            "disk.img",
        ],
    );
    let table = std::fs::read(d.join("disk.img")).unwrap();
    disk.copy_from_slice(&table);
    disk[p1 * 512..p1 * 512 + xfs.len()].copy_from_slice(&xfs);
    std::fs::write(d.join("disk.img"), &disk).unwrap();
    tool(
        d,
        &[
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "disk.img",
            "disk.vmdk",
        ],
    );
}

/// A GPT disk with one ext4 partition holding an environment file, exported as a fixed VHD
/// (raw bytes and a footer: told from a raw disk by its last 512 bytes).
fn make_vhd(d: &Path, key: &(String, String)) {
    write(d, "v/etc/app.env", env_file(key));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    tool(d, &["bash", script, "ext4.img", "ext4", "v"]);
    let fs = std::fs::read(d.join("ext4.img")).unwrap();
    let p1 = 2048usize;
    let mut disk = vec![0u8; (p1 + fs.len() / 512 + 2048) * 512];
    std::fs::write(d.join("vdisk.img"), &disk).unwrap();
    let part = format!("1:{p1}:+{}", fs.len() / 512);
    tool(d, &["sgdisk", "-n", &part, "-t", "1:8300", "vdisk.img"]);
    let table = std::fs::read(d.join("vdisk.img")).unwrap();
    disk.copy_from_slice(&table);
    disk[p1 * 512..p1 * 512 + fs.len()].copy_from_slice(&fs);
    std::fs::write(d.join("vdisk.img"), &disk).unwrap();
    let args = [
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
    ];
    tool(
        d,
        &[
            &["qemu-img", "convert"],
            &args[..],
            &["vdisk.img", "disk.vhd"],
        ]
        .concat(),
    );
}

/// The README's IAM policy for `s3`.
fn readme_policy() -> Value {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("\"Sid\": \"KeyhoundS3Scan\"")
        .expect("policy in README");
    let start = readme[..at].rfind("```json").unwrap() + "```json".len();
    let end = start + readme[start..].find("```").unwrap();
    serde_json::from_str(&readme[start..end]).unwrap()
}

/// The backup bucket: a tgz of a home directory, a zip, a plain `.env`, an ini whose key was
/// removed in a later version, a GLACIER object, a prefix the bucket policy denies, a VMDK
/// export, a log and a zip bigger than one window (streamed; read by ranges); and a second
/// bucket in us-west-2.
fn seed(d: &Path, seed: u64, extra: &[&str]) -> Seeded {
    let mut keys = Keys::new(seed);
    let mut k = || keys.pair();
    let (tgz, zip, env, old, glacier, denied, vmdk, big_log, big_zip, mid_log, west) =
        (k(), k(), k(), k(), k(), k(), k(), k(), k(), k(), k());
    let deleted = k();
    let vhd = k();
    let history = k();
    write(d, "home/deploy/.aws/credentials", env_file(&tgz));
    write(d, "home/deploy/notes.txt", "nothing here\n");
    repo_with_removed_file(&d.join("home/deploy/app"), "app.env", &env_file(&history));
    tool(d, &["tar", "czf", "home.tar.gz", "home"]);
    write(d, "app/settings.env", env_file(&zip));
    tool(d, &["zip", "-q", "-r", "config.zip", "app"]);
    write(d, "dot.env", env_file(&env));
    write(d, "app-v1.ini", env_file(&old));
    write(d, "app-v2.ini", "# the key was moved to a vault\n");
    write(d, "glacier.env", env_file(&glacier));
    write(d, "denied.env", env_file(&denied));
    write(d, "west.env", env_file(&west));
    write(d, "deleted.env", env_file(&deleted));
    make_vmdk(d, &vmdk);
    make_vhd(d, &vhd);
    // Bigger than one 4 MiB window: streamed (the log) and read where it lies (the zip).
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut log = String::new();
    while log.len() < 6 << 20 {
        log.push_str(&format!(
            "{} GET /health 200 {}\n",
            rng.u64(..),
            rng.u32(..)
        ));
    }
    log.push_str(&env_file(&big_log));
    write(d, "big.log", &log);
    // Read whole (under 4 MiB), but more than a broken connection's first half.
    let mut mid = log[..2 << 20].to_string();
    mid.push_str(&env_file(&mid_log));
    write(d, "mid.log", &mid);
    let noise: Vec<u8> = (0..5 << 20).map(|_| rng.u8(..)).collect();
    write(d, "bigzip/noise.bin", noise);
    write(d, "bigzip/deploy/.env", env_file(&big_zip));
    tool(d, &["zip", "-q", "-0", "-r", "big.zip", "bigzip"]);

    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let put = |key: &str, f: &str| json!({"put": format!("{BUCKET}/{key}"), "file": p(f)});
    let spec = json!({
        "buckets": [
            {"name": BUCKET, "region": "us-east-1", "versioning": true, "deny_prefix": "secret/"},
            {"name": "west-logs", "region": "us-west-2"},
        ],
        "ops": [
            put("nightly/home.tar.gz", "home.tar.gz"),
            put("exports/config.zip", "config.zip"),
            put("app/.env", "dot.env"),
            put("config/app.ini", "app-v1.ini"),
            put("config/app.ini", "app-v2.ini"),
            {"put": format!("{BUCKET}/archive/2019.env"), "file": p("glacier.env"),
             "storage_class": "GLACIER"},
            put("secret/creds.env", "denied.env"),
            put("exports/vm-disk.vmdk", "disk.vmdk"),
            put("exports/web.vhd", "disk.vhd"),
            put("logs/big.log", "big.log"),
            put("logs/mid.log", "mid.log"),
            put("exports/big.zip", "big.zip"),
            {"put": "west-logs/app/west.env", "file": p("west.env")},
            put("config/removed.env", "deleted.env"),
            {"delete": format!("{BUCKET}/config/removed.env")},
        ],
    });
    write(d, "spec.json", spec.to_string());
    let mut args = vec![p("spec.json")];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let moto = Moto::start_with("moto_s3.py", &args);
    Seeded {
        tgz,
        zip,
        env,
        old,
        glacier,
        denied,
        vmdk,
        big_log,
        big_zip,
        mid_log,
        west,
        deleted,
        vhd,
        history,
        moto,
    }
}

/// One bucket read in place: each kind of backup found with its chain, the VMDK export walked
/// by ranged GETs (fewer bytes than its disk, none twice), the GLACIER object skipped and
/// counted by class, the denied prefix named (exit 2), the noncurrent version counted but not
/// read; JSON and SARIF carry the object's bucket, key, region and account.
#[test]
fn bucket_backups_found_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = seed(d, 1700, &[]);
    let moto = &s.moto;
    let vmdk_size = moto.setup["sizes"][format!("{BUCKET}/exports/vm-disk.vmdk")]
        .as_u64()
        .unwrap();
    moto.record();
    let (code, v, err) = s3_json(moto, d, &[&format!("s3://{BUCKET}")]);
    let recorded = moto.recorded();
    assert_eq!(
        code, 2,
        "the denied prefix makes the scan incomplete: {err}"
    );

    let one = |k: &(String, String)| {
        let p = places(&v, &k.0);
        assert_eq!(p.len(), 1, "{}: {p:#?}\n{err}", k.0);
        assert!(
            creds(&v)
                .iter()
                .any(|c| c.to_string().contains(&k.0) && c.to_string().contains(&k.1)),
            "the pair is whole"
        );
        p[0].clone()
    };
    let p = one(&s.tgz);
    assert_eq!(p["path"], format!("s3://{BUCKET}/nightly/home.tar.gz"));
    assert_eq!(p["inner"], json!(["home/deploy/.aws/credentials"]));
    assert_eq!(p["line"], 1);
    assert_eq!(p["object"]["bucket"], BUCKET);
    assert_eq!(p["object"]["key"], "nightly/home.tar.gz");
    assert_eq!(p["object"]["region"], "us-east-1");
    assert_eq!(p["object"]["account"], "123456789012");
    assert_eq!(p["object"]["latest"], true);
    // A clone inside the tarball: its history read (the key is only there).
    let p = one(&s.history);
    let path = p["path"].as_str().unwrap();
    let repo = format!("s3://{BUCKET}/nightly/home.tar.gz › home/deploy/app/.git @ ");
    assert!(path.starts_with(&repo), "{path}");
    assert_eq!(p["inner"], json!(["app.env"]));
    assert_eq!(p["object"]["key"], "nightly/home.tar.gz", "{p}");
    let p = one(&s.zip);
    assert_eq!(p["path"], format!("s3://{BUCKET}/exports/config.zip"));
    assert_eq!(p["inner"], json!(["app/settings.env"]));
    let p = one(&s.env);
    assert_eq!(p["path"], format!("s3://{BUCKET}/app/.env"));
    let p = one(&s.big_log);
    assert_eq!(p["path"], format!("s3://{BUCKET}/logs/big.log"));
    assert!(p["line"].as_u64().unwrap() > 100_000, "{p}");
    let p = one(&s.big_zip);
    assert_eq!(p["inner"], json!(["bigzip/deploy/.env"]));
    let p = one(&s.vmdk);
    assert_eq!(p["path"], format!("s3://{BUCKET}/exports/vm-disk.vmdk"));
    assert_eq!(
        p["inner"],
        json!(["p1 (xfs)", "/home/ec2-user/.aws/credentials"])
    );
    let p = one(&s.vhd);
    assert_eq!(p["path"], format!("s3://{BUCKET}/exports/web.vhd"));
    assert_eq!(p["inner"], json!(["p1 (ext4)", "/etc/app.env"]));
    assert!(err.contains("web.vhd: a vhd disk image of"), "{err}");
    for gone in [&s.old, &s.glacier, &s.denied, &s.west, &s.deleted] {
        assert!(places(&v, &gone.0).is_empty(), "{} not read", gone.0);
    }

    let summary = &v["summary"];
    assert_eq!(
        summary["skipped"]["in an archive storage class (not restored)"],
        1
    );
    assert_eq!(
        summary["skipped"]["noncurrent version (read with --versions)"],
        2
    );
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "1 object in GLACIER not read (restore them to scan them): s3://{BUCKET}/archive/2019.env"
        )),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!(
            "s3://{BUCKET}/secret/creds.env: GetObject: access denied (HTTP 403)"
        )),
        "{warnings}"
    );

    // The VMDK was read by ranges, each byte of it at most once, never whole.
    let vmdk_gets: Vec<&Value> = recorded
        .iter()
        .filter(|r| {
            r["method"] == "GET" && r["url"].as_str().unwrap().contains("/exports/vm-disk.vmdk")
        })
        .collect();
    assert!(!vmdk_gets.is_empty());
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for r in &vmdk_gets {
        let range = r["headers"]["Range"]
            .as_str()
            .unwrap_or_else(|| panic!("a GET without a range: {r}"));
        let (a, b) = range
            .strip_prefix("bytes=")
            .and_then(|x| x.split_once('-'))
            .unwrap();
        let a: u64 = a.parse().unwrap();
        let b: u64 = b.parse().unwrap();
        ranges.push((a, b + 1));
    }
    ranges.sort();
    // The first 64 KiB by themselves told what the object is; then blocks, each once.
    assert_eq!(ranges[0], (0, 64 << 10), "{ranges:?}");
    ranges.remove(0);
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "a byte asked twice: {ranges:?}");
    }
    let read: u64 = ranges.iter().map(|r| r.1 - r.0).sum();
    assert!(read <= vmdk_size, "{read} > {vmdk_size}");
    assert!(err.contains("a vmdk disk image of"), "{err}");

    // `--no-git-history`: the tarball's files only.
    let nightly = format!("s3://{BUCKET}/nightly/");
    let (code, v, err) = s3_json(moto, d, &[&nightly, "--no-git-history"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(places(&v, &s.tgz.0).len(), 1, "{err}");
    assert!(places(&v, &s.history.0).is_empty(), "{v:#}");

    // The action report names the bucket and object as the place of exposure.
    let (code, _, err) = s3(
        moto,
        d,
        &[
            &format!("s3://{BUCKET}/nightly/"),
            "-q",
            "--report",
            "actions.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let actions: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("actions.json")).unwrap()).unwrap();
    let row = actions["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == s.tgz.0.as_str())
        .unwrap();
    assert_eq!(
        row["places"],
        json!([format!(
            "s3://{BUCKET}/nightly/home.tar.gz › home/deploy/.aws/credentials:1"
        )])
    );

    // SARIF: s3:// artifact URIs and the object as properties; secrets redacted.
    let (code, out, _) = s3(
        moto,
        d,
        &[&format!("s3://{BUCKET}/exports/"), "--format", "sarif"],
    );
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&sarif);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{out}");
    for r in results {
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(uri.starts_with(&format!("s3://{BUCKET}/exports/")), "{uri}");
        assert_eq!(r["properties"]["s3"]["bucket"], BUCKET);
    }
    assert!(!out.contains(&s.vmdk.1));
}

/// `--versions` reads the noncurrent version (its place names the version id and date);
/// `--include`/`--exclude` leave keys out before any GET; `--all-buckets` finds the us-west-2
/// bucket through GetBucketLocation; `--max-object-mib 0` leaves every object out but the disk
/// image; `--plan` counts without reading; `--max-gib` refuses.
#[test]
fn versions_filters_buckets_and_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = seed(d, 1701, &[]);
    let moto = &s.moto;
    let url = format!("s3://{BUCKET}/config/");

    let (code, v, err) = s3_json(moto, d, &[&url]);
    assert_eq!(code, 0, "{err}");
    assert!(places(&v, &s.old.0).is_empty());
    assert!(places(&v, &s.deleted.0).is_empty());
    assert_eq!(
        v["summary"]["skipped"]["noncurrent version (read with --versions)"], 2,
        "the old ini and the object behind its delete marker"
    );
    let (code, v, err) = s3_json(moto, d, &[&url, "--versions"]);
    assert_eq!(code, 1, "{err}");
    let p = places(&v, &s.deleted.0);
    assert_eq!(p.len(), 1, "behind a delete marker: {p:#?}");
    assert_eq!(p[0]["object"]["latest"], false);
    let p = places(&v, &s.old.0);
    assert_eq!(p.len(), 1, "{p:#?}");
    let v1 = moto.setup["versions"][format!("{BUCKET}/config/app.ini")][0]
        .as_str()
        .unwrap();
    assert_eq!(p[0]["object"]["version_id"], v1);
    assert_eq!(p[0]["object"]["latest"], false);
    let path = p[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with(&format!("s3://{BUCKET}/config/app.ini (version {v1} of 20")),
        "{path}"
    );

    // Globs: only `.env` files, not under secret/: nothing denied, nothing else read.
    moto.record();
    let (code, v, err) = s3_json(
        moto,
        d,
        &[
            &format!("s3://{BUCKET}"),
            "--include",
            "*.env",
            "--exclude",
            "secret/**",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(places(&v, &s.env.0).len(), 1);
    assert_eq!(creds(&v).len(), 1, "{v:#}");
    let gets: Vec<String> = moto
        .recorded()
        .iter()
        .filter(|r| r["method"] == "GET")
        .map(|r| r["url"].as_str().unwrap().to_string())
        .filter(|u| {
            // GetObject: a key after the bucket (lists and locations have none).
            let path = u.split('?').next().unwrap();
            path.split_once(&format!("/{BUCKET}/"))
                .is_some_and(|(_, key)| !key.is_empty())
        })
        .collect();
    assert_eq!(gets.len(), 1, "one GET, for app/.env: {gets:?}");

    // Every bucket, each in its region.
    let (code, v, err) = s3_json(moto, d, &["--all-buckets", "--include", "*.env"]);
    assert_eq!(code, 2, "the denied prefix: {err}");
    let p = places(&v, &s.west.0);
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0]["object"]["region"], "us-west-2");
    assert_eq!(p[0]["path"], "s3://west-logs/app/west.env");

    // Too big to read, except the disk image.
    let (code, v, err) = s3_json(
        moto,
        d,
        &[&format!("s3://{BUCKET}/exports/"), "--max-object-mib", "0"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(creds(&v).len(), 2, "only the disk images' keys: {v:#}");
    assert_eq!(places(&v, &s.vmdk.0).len(), 1);
    assert_eq!(places(&v, &s.vhd.0).len(), 1);
    assert_eq!(v["summary"]["skipped"]["over --max-object-mib"], 2);

    // The plan: what would be read and what it costs, nothing read.
    let (code, out, err) = s3(
        moto,
        d,
        &[&format!("s3://{BUCKET}"), "--plan", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let sizes = moto.setup["sizes"].as_object().unwrap();
    let readable: u64 = sizes
        .iter()
        .filter(|(k, _)| {
            k.starts_with(BUCKET) && !k.ends_with("2019.env") && !k.ends_with("removed.env")
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    let big = sizes
        .iter()
        .filter(|(k, n)| k.starts_with(BUCKET) && n.as_u64().unwrap() > 4 << 20)
        .count();
    assert_eq!(
        big, 4,
        "the log, the big zip, the VMDK and the VHD: {sizes:?}"
    );
    assert_eq!(plan["objects"], 10, "{plan:#}");
    assert_eq!(plan["bytes"], readable, "{plan:#}");
    assert_eq!(plan["get_calls"], 10 + 4);
    assert_eq!(plan["list_calls"], 1, "{plan:#}");
    assert_eq!(plan["skipped"]["GLACIER"], 1);
    assert_eq!(
        plan["skipped"]["noncurrent version (read with --versions)"],
        2
    );
    let usd = plan["usd"].as_f64().unwrap();
    assert!(
        (usd - (14.0 * 0.0004 + 0.005) / 1000.0).abs() < 1e-12,
        "{usd}"
    );
    let (code, _, err) = s3(moto, d, &[&format!("s3://{BUCKET}"), "--max-gib", "0.001"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("more than --max-gib 0.001; nothing was read"),
        "{err}"
    );
    let (code, _, err) = s3(moto, d, &["s3://no-such-bucket"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("s3://no-such-bucket: GetBucketLocation: NoSuchBucket"),
        "{err}"
    );
}

/// The README's IAM policy is all a scan needs: with moto checking every call against the
/// caller's policy, a user holding exactly that policy reads every bucket and every version
/// (`--all-buckets --versions`) and finds what the default credentials find; without
/// s3:GetObjectVersion the noncurrent version is refused, named, exit 2 (so the check is real).
#[test]
fn the_readmes_iam_policy_allows_every_call_a_scan_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "policy.json", readme_policy().to_string());
    let policy = d.join("policy.json");
    let s = seed(d, 1702, &["--policy", policy.to_str().unwrap()]);
    let moto = &s.moto;
    let user = |n: &str| {
        let u = &moto.setup["users"][n];
        (
            u["key_id"].as_str().unwrap().to_string(),
            u["secret"].as_str().unwrap().to_string(),
        )
    };
    let scanner = user("scanner");
    let args = [
        "--all-buckets",
        "--versions",
        "--format",
        "json",
        "--show-secrets",
    ];
    let out = s3_as(moto, d, (&scanner.0, &scanner.1), &args);
    let (code, out, err) = out;
    assert_eq!(code, 2, "only the denied prefix is missing: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let all = [
        &s.tgz, &s.zip, &s.env, &s.old, &s.vmdk, &s.big_log, &s.big_zip, &s.mid_log,
    ];
    for k in all.into_iter().chain([&s.mid_log, &s.west, &s.deleted]) {
        assert_eq!(places(&v, &k.0).len(), 1, "{}: {err}", k.0);
    }
    let warnings = v["summary"]["warnings"].as_array().unwrap();
    assert_eq!(
        warnings.len(),
        2,
        "the GLACIER object and the denied prefix: {warnings:#?}"
    );

    let narrow = user("scanner-no-versions");
    let url = format!("s3://{BUCKET}/config/");
    let (code, out, err) = s3_as(
        moto,
        d,
        (&narrow.0, &narrow.1),
        &[&url, "--versions", "--format", "json"],
    );
    assert_eq!(code, 2, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(places(&v, &s.old.0).is_empty());
    let v1 = moto.setup["versions"][format!("{BUCKET}/config/app.ini")][0]
        .as_str()
        .unwrap();
    assert!(
        v["summary"]["warnings"]
            .to_string()
            .contains(&format!("s3://{BUCKET}/config/app.ini (version {v1} of "))
            && v["summary"]["warnings"]
                .to_string()
                .contains("AccessDenied"),
        "{err}"
    );
}

/// The proxy of tests/aws/flaky_proxy.py in front of moto: its port, and its log of requests.
struct Flaky {
    child: std::process::Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Flaky {
    fn start(moto: &Moto) -> Flaky {
        use std::io::BufRead;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(dir.join(".venv/bin/python"))
            .arg(dir.join("tests/aws/flaky_proxy.py"))
            .arg(&moto.endpoint)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(serde_json::from_str(&l).unwrap());
            }
        });
        Flaky {
            child,
            port: first["port"].as_u64().unwrap() as u16,
            log,
        }
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// S3 under load: every first GetObject answered 503 SlowDown (retried with backoff), and a
/// connection dropped half-way through a whole object and through a streamed one (resumed from
/// the byte it broke at with a ranged GET): every key found, nothing named, exit 1.
#[test]
fn slow_down_and_broken_connections_are_retried_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = seed(d, 1703, &[]);
    let flaky = Flaky::start(&s.moto);
    let out = bin()
        .args([
            "s3",
            &format!("s3://{BUCKET}/logs/"),
            "--format",
            "json",
            "--show-secrets",
        ])
        .current_dir(d)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", flaky.port),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["summary"]["warnings"], json!([]), "{err}");
    assert_eq!(places(&v, &s.big_log.0).len(), 1, "{err}");
    assert_eq!(places(&v, &s.mid_log.0).len(), 1, "{err}");
    let log = flaky.log.lock().unwrap().clone();
    for key in ["logs/big.log", "logs/mid.log"] {
        let reqs: Vec<&Value> = log
            .iter()
            .filter(|r| r["path"] == format!("/{BUCKET}/{key}"))
            .collect();
        assert_eq!(reqs[0]["status"], 503, "{key}: {reqs:#?}");
        let cut = reqs
            .iter()
            .position(|r| r.get("cut").is_some())
            .unwrap_or_else(|| panic!("{key}: no broken connection: {reqs:#?}"));
        let at = reqs[cut]["cut"].as_u64().unwrap();
        let from = reqs[cut]["range"]
            .as_str()
            .map_or(0, |r| r[6..r.len() - 1].parse::<u64>().unwrap());
        let resumed = &reqs[cut + 1];
        assert_eq!(
            resumed["range"],
            format!("bytes={}-", from + at),
            "{key}: resumed where it broke: {reqs:#?}"
        );
        assert_eq!(resumed["status"], 206);
    }
}

/// The bucket in 4 shards (each reads its share of the objects, by bucket, key and version)
/// merged by `keyhound merge`: the single run's credentials, places and counts.
#[test]
fn a_bucket_in_four_shards_merges_to_the_single_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = seed(d, 1704, &[]);
    let moto = &s.moto;
    let url = format!("s3://{BUCKET}");
    let args = [url.as_str(), "--versions", "--exclude", "secret/**"];
    let (code, single, err) = s3_json(moto, d, &args);
    assert_eq!(code, 1, "{err}");
    let parts = tempfile::tempdir().unwrap();
    let mut found = Vec::new();
    for k in 1..=4 {
        let file = parts.path().join(format!("{k}.json"));
        let shard = format!("{k}/4");
        let mut a = args.to_vec();
        a.extend([
            "--shard",
            &shard,
            "--format",
            "json",
            "--show-secrets",
            "-o",
        ]);
        a.push(file.to_str().unwrap());
        let (code, _, err) = s3(moto, d, &a);
        assert!(code <= 1, "{err}");
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        found.push(creds(&v).len());
    }
    assert!(found.iter().filter(|&&n| n > 0).count() > 1, "{found:?}");
    let merged = merged(d, parts.path());
    assert_eq!(place_keys(&merged), place_keys(&single));

    // The parts uploaded to a bucket, as a fan-out's jobs leave them, merged from there.
    let files: Vec<String> = (1..=4)
        .map(|k| parts.path().join(format!("{k}.json")).display().to_string())
        .collect();
    let mut a = vec![moto.endpoint.as_str(), "keyhound-reports", "run-1/"];
    a.extend(files.iter().map(String::as_str));
    common::servers::python("put_files.py", &a);
    let prefix = [
        "merge",
        "--format",
        "json",
        "--show-secrets",
        "s3://keyhound-reports/run-1/",
    ];
    let (code, out, err) = run_aws(d, &moto.endpoint, ("testing", "testing"), &prefix);
    assert_eq!(code, 1, "{err}");
    let from_s3: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(place_keys(&from_s3), place_keys(&single));
    for f in ["files", "bytes", "places", "skipped"] {
        assert_eq!(merged["summary"][f], single["summary"][f], "{f}");
    }

    // A bucket none can list: every shard meets it, the first names it, and the merge counts
    // it once, as the single run does.
    let args = [
        url.as_str(),
        "s3://no-such-bucket",
        "--exclude",
        "secret/**",
    ];
    let (code, single, err) = s3_json(moto, d, &args);
    assert_eq!(code, 2, "{err}");
    assert_eq!(single["summary"]["skipped"]["unreadable"], 1, "{single:#}");
    let parts = tempfile::tempdir().unwrap();
    let needle = "s3://no-such-bucket: ";
    let named = four_parts(parts.path(), &args, needle, |a| s3(moto, d, a));
    assert_eq!(named, 1);
    let (code, merged) = merge_parts(d, parts.path());
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(place_keys(&merged), place_keys(&single));
}
