//! `keyhound snapshot`: EBS snapshots read in place through the EBS direct APIs of a moto server
//! on 127.0.0.1 (its blocks are 512 bytes; AWS's 512 KiB). The snapshot is seeded from a GPT
//! disk made with the real tools (mkfs.xfs with a protofile, mkfs.ext4 -d, sgdisk), only its
//! non-zero blocks put, as an uploader does.

// AWS calls: only in a build with the `aws` feature (the default).
#![cfg(feature = "aws")]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::servers::Moto;
use common::*;
use serde_json::Value;

fn tool(d: &Path, cmd: &[&str]) {
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(d)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test installs it)", cmd[0]));
    assert!(st.success(), "{cmd:?}");
}

fn ini(k: &str, s: &str) -> String {
    format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n")
}

/// keyhound against the moto server, as an operator whose credentials are moto's defaults.
fn snapshot(moto: &Moto, d: &Path, args: &[&str]) -> (i32, String, String) {
    snapshot_as(moto, d, ("testing", "testing"), args)
}

fn snapshot_as(moto: &Moto, d: &Path, creds: (&str, &str), args: &[&str]) -> (i32, String, String) {
    run_aws(d, &moto.endpoint, creds, &[&["snapshot"], args].concat())
}

/// A GPT disk: p1 XFS (a home directory with a credentials file, and a deleted file's bytes in
/// free space), p2 ext4 (an app's environment file). Returns the raw disk and p1's first LBA.
fn make_disk(d: &Path, keys: &mut Keys) -> (Vec<u8>, [(String, String); 3]) {
    let live = keys.pair();
    let app = keys.pair();
    let gone = keys.pair();
    write(d, "x/home/ec2-user/.aws/credentials", ini(&live.0, &live.1));
    write(
        d,
        "e/etc/app.env",
        format!(
            "APP=1\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            app.0, app.1
        ),
    );
    write(
        d,
        "deleted.txt",
        format!("# removed\n{}", ini(&gone.0, &gone.1)),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    tool(d, &["bash", script, "xfs.img", "xfs", "x", "deleted.txt"]);
    tool(d, &["bash", script, "ext4.img", "ext4", "e"]);
    let xfs = std::fs::read(d.join("xfs.img")).unwrap();
    let ext4 = std::fs::read(d.join("ext4.img")).unwrap();
    let (p1, p2) = (2048usize, 2048 + xfs.len() / 512);
    let mut disk = vec![0u8; (p2 + ext4.len() / 512 + 2048) * 512];
    std::fs::write(d.join("disk.img"), &disk).unwrap();
    tool(
        d,
        &[
            "sgdisk",
            "-n",
            &format!("1:{p1}:+{}", xfs.len() / 512),
            "-t",
            "1:8300",
            "-n",
            &format!("2:{p2}:+{}", ext4.len() / 512),
            "-t",
            "2:8300",
            "disk.img",
        ],
    );
    let table = std::fs::read(d.join("disk.img")).unwrap();
    disk.copy_from_slice(&table);
    disk[p1 * 512..p1 * 512 + xfs.len()].copy_from_slice(&xfs);
    disk[p2 * 512..p2 * 512 + ext4.len()].copy_from_slice(&ext4);
    std::fs::write(d.join("disk.img"), &disk).unwrap();
    (disk, [live, app, gone])
}

fn places<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    creds(v)
        .iter()
        .filter(|c| {
            c["parts"]["key_id"] == key || c["key_id"] == key || c.to_string().contains(key)
        })
        .flat_map(|c| c["places"].as_array().unwrap())
        .collect()
}

/// How many times each block of `snap` was asked for.
fn block_gets(moto: &Moto, snap: &str) -> HashMap<u64, usize> {
    let prefix = format!("GET /snapshots/{snap}/blocks/");
    let mut n = HashMap::new();
    for r in moto.requests() {
        if let Some(rest) = r.strip_prefix(&prefix) {
            let i: u64 = rest.split(['?', ' ']).next().unwrap().parse().unwrap();
            *n.entry(i).or_default() += 1;
        }
    }
    n
}

/// A snapshot of a GPT disk with XFS and ext4: keys in files with their in-image paths, the
/// deleted file's key by the raw pass with its partition and offset, each written block asked
/// for once and no unwritten one; the structured snapshot fields in JSON and SARIF.
#[test]
fn snapshot_of_a_gpt_disk_is_scanned_in_place_each_block_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (disk, [live, app, gone]) = make_disk(d, &mut Keys::new(1600));
    let moto = Moto::start_with("moto_ebs.py", &[d.join("disk.img").to_str().unwrap()]);
    let snap = moto.setup["snapshot"].as_str().unwrap().to_string();
    let volume = moto.setup["volume"].as_str().unwrap().to_string();
    let written: Vec<u64> = serde_json::from_value(moto.setup["blocks"].clone()).unwrap();
    let seeded = moto.requests().len();

    let (code, out, err) = snapshot(&moto, d, &[&snap, "--format", "json", "--show-secrets"]);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["summary"]["warnings"], serde_json::json!([]), "{err}");
    assert_eq!(v["summary"]["incomplete"], false);

    let p = places(&v, &live.0);
    assert_eq!(p.len(), 1, "reported once, with its path: {p:#?}");
    assert_eq!(
        p[0]["inner"],
        serde_json::json!(["p1 (xfs)", "/home/ec2-user/.aws/credentials"])
    );
    assert!(p[0]["path"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{snap} ({volume}, us-east-1, ")));
    assert_eq!(p[0]["snapshot"]["snapshot_id"], snap.as_str());
    assert_eq!(p[0]["snapshot"]["volume_id"], volume.as_str());
    assert_eq!(p[0]["snapshot"]["region"], "us-east-1");
    assert_eq!(p[0]["snapshot"]["tags"]["team"], "payments");
    let p = places(&v, &app.0);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        p[0]["inner"],
        serde_json::json!(["p2 (ext4)", "/etc/app.env"])
    );
    // The deleted file: only the raw pass sees it, in p1, at its offset from p1's start.
    let p = places(&v, &gone.0);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0]["inner"], serde_json::json!(["p1 (xfs)"]));
    assert_eq!(p[0]["raw"], true);
    let at = p[0]["offset"].as_u64().unwrap() as usize + 2048 * 512;
    assert_eq!(&disk[at..at + gone.0.len()], gone.0.as_bytes());

    // Each written block once, no unwritten block.
    let gets = block_gets(&moto, &snap);
    let mut asked: Vec<u64> = gets.keys().copied().collect();
    asked.sort();
    assert_eq!(
        asked, written,
        "every written block is read, and only those"
    );
    let twice: Vec<_> = gets.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "blocks asked more than once: {twice:?}");
    assert!(
        err.contains(&format!("{} blocks fetched", written.len())),
        "{err}"
    );
    // Every EBS request keyhound made was one of the two the README's policy allows.
    let policy = readme_policy().to_string();
    for action in ["ebs:ListSnapshotBlocks", "ebs:GetSnapshotBlock"] {
        assert!(
            policy.contains(action),
            "{action} not in the README's policy"
        );
    }
    let list = format!("GET /snapshots/{snap}/blocks?");
    let get = format!("GET /snapshots/{snap}/blocks/");
    let ebs: Vec<String> = moto.requests()[seeded..]
        .iter()
        .filter(|r| r.contains("/snapshots"))
        .cloned()
        .collect();
    assert!(ebs.len() > written.len(), "{ebs:?}");
    for r in &ebs {
        assert!(r.starts_with(&list) || r.starts_with(&get), "{r}");
    }

    // The action report names who runs the machine (here the snapshot's owner tag: moto's
    // StartSnapshot makes a volume without tags and no instance).
    let (code, _, err) = snapshot(&moto, d, &[&snap, "-q", "--report", "actions.json"]);
    assert_eq!(code, 1, "{err}");
    let actions: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("actions.json")).unwrap()).unwrap();
    let row = actions["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == live.0.as_str())
        .unwrap();
    assert_eq!(
        row["machine_owners"],
        serde_json::json!([format!("payments-oncall@example.com (snapshot {snap})")])
    );

    // SARIF carries the snapshot as structured properties.
    let (code, out, _) = snapshot(&moto, d, &[&snap, "--format", "sarif"]);
    assert_eq!(code, 1);
    let s: Value = serde_json::from_str(&out).unwrap();
    validate_sarif(&s);
    let results = s["runs"][0]["results"].as_array().unwrap();
    assert!(results
        .iter()
        .all(|r| r["properties"]["snapshot"]["snapshot_id"] == snap.as_str()));
    assert!(!out.contains(&live.1), "SARIF redacts secrets");
}

/// Discovery: a volume id resolves to its latest completed snapshot, an instance id to its
/// volumes' snapshots (moto's CreateSnapshot makes them without blocks: `--list` shows them),
/// `--all` with a tag filter, another account through an assumed role, the accounts of an
/// organization, a volume without snapshots named; `--plan` counts the
/// written blocks and their cost; `--max-gib` refuses; a block whose stored checksum is wrong
/// is fetched twice and named; a snapshot that does not exist is named. Exit 2 for those.
#[test]
fn discovery_plan_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(1601);
    let (k, s) = keys.pair();
    // A bare ext4 volume with one key file.
    write(
        d,
        "e/etc/app.env",
        format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    tool(d, &["bash", script, "ext4.img", "ext4", "e"]);
    let moto = Moto::start_with(
        "moto_ebs.py",
        &[d.join("ext4.img").to_str().unwrap(), "--bad-block", "-1"],
    );
    let set = &moto.setup;
    let snap = set["snapshot"].as_str().unwrap();
    let volume = set["volume"].as_str().unwrap();
    let instance = set["instance"].as_str().unwrap();
    let isnap = set["instance_snapshot"].as_str().unwrap();
    let written = set["blocks"].as_array().unwrap().len() as u64;

    // A volume id: its snapshot. An instance id: its root volume's, with the instance named.
    let (code, out, err) = snapshot(&moto, d, &[volume, instance, "--list", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot_id"].as_str().unwrap())
        .collect();
    let mut want = vec![snap, isnap];
    want.sort();
    assert_eq!(ids, want, "{out}");
    let inst = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["snapshot_id"] == isnap)
        .unwrap();
    assert_eq!(inst["instance_id"], instance);
    assert_eq!(inst["instance_name"], "web-1");
    assert_eq!(inst["instance_tags"]["owner"], "ops@example.com");

    // --all with a tag filter: only the seeded snapshot carries team=payments.
    let (code, out, err) = snapshot(
        &moto,
        d,
        &["--all", "--filter", "tag:team=payments", "--list"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(snap), "{out}");

    // Another account, through a role assumed there.
    let member = set["member_account"].as_str().unwrap();
    let msnap = set["member_snapshot"].as_str().unwrap();
    let (code, out, err) = snapshot(
        &moto,
        d,
        &[
            "--all",
            "--accounts",
            member,
            "--assume-role",
            "KeyhoundScan",
            "--list",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(msnap) && out.contains(member), "{out}");
    // The same through the organization: ListAccounts names the member, the role reaches it,
    // and the operator's own (management) account is searched as well.
    let (code, out, err) = snapshot(
        &moto,
        d,
        &[
            "--all",
            "--organization",
            "--assume-role",
            "KeyhoundScan",
            "--list",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(msnap) && out.contains(snap), "{out}");
    // A volume with no completed snapshot is named.
    let bare = set["bare_volume"].as_str().unwrap();
    let (code, _, err) = snapshot(&moto, d, &[bare, "--list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{bare}: no completed snapshot")),
        "{err}"
    );

    // --plan: the written blocks and what they cost, nothing read.
    let before = block_gets(&moto, snap).len();
    let (code, out, err) = snapshot(&moto, d, &[snap, "--plan", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["snapshots"], 1);
    assert_eq!(plan["written_blocks"], written);
    assert_eq!(plan["bytes"], written * 512);
    let usd = plan["usd"].as_f64().unwrap();
    assert!(
        (usd - (written as f64 * 0.003 + 0.0006) / 1000.0).abs() < 1e-9,
        "{usd}"
    );
    assert_eq!(
        block_gets(&moto, snap).len(),
        before,
        "--plan reads no block"
    );
    // --max-gib refuses a larger read.
    let (code, _, err) = snapshot(&moto, d, &[snap, "--max-gib", "0.000001"]);
    assert_eq!(code, 2);
    assert!(err.contains("--max-gib"), "{err}");

    // The scan: the key is found; the bad block is fetched twice, then named; exit 2.
    let bad = set["bad_block"].as_u64().unwrap();
    let (code, out, err) = snapshot(&moto, d, &[snap, "--format", "json", "--show-secrets"]);
    assert_eq!(code, 2, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        places(&v, &k)
            .iter()
            .any(|p| p["inner"][1] == "/etc/app.env"),
        "{v:#}"
    );
    let warnings = v["summary"]["warnings"].to_string();
    assert!(
        warnings.contains(&format!("block {bad}: checksum mismatch")),
        "{warnings}"
    );
    assert_eq!(
        block_gets(&moto, snap)[&bad],
        2,
        "fetched again, then reported"
    );

    // A snapshot that is nowhere: named, exit 2.
    let (code, _, err) = snapshot(&moto, d, &["snap-0123456789abcdef0", "--list"]);
    assert_eq!(code, 2);
    assert!(err.contains("snap-0123456789abcdef0: not found"), "{err}");
}

/// The actions of the README's IAM policy for `snapshot`.
fn readme_policy() -> Value {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("\"Sid\": \"KeyhoundSnapshotScan\"")
        .expect("policy in README");
    let start = readme[..at].rfind("```json").unwrap() + "```json".len();
    let end = start + readme[start..].find("```").unwrap();
    serde_json::from_str(&readme[start..end]).unwrap()
}

/// The README's IAM policy is all discovery needs: with moto checking every call against the
/// caller's policy, a user holding exactly that policy resolves volume and instance ids and
/// lists every region; the same policy without ec2:DescribeSnapshots is refused (so the check
/// is real), named, exit 2. (The EBS calls are checked against the policy from moto's request
/// log in the first test: moto's signature check refuses every EBS request once its
/// authentication is on.)
#[test]
fn the_readmes_iam_policy_allows_every_call_discovery_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("policy.json"), readme_policy().to_string()).unwrap();
    write(d, "e/etc/motd", "hello\n");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    tool(d, &["bash", script, "ext4.img", "ext4", "e"]);
    let moto = Moto::start_with(
        "moto_ebs.py",
        &[
            d.join("ext4.img").to_str().unwrap(),
            "--policy",
            d.join("policy.json").to_str().unwrap(),
        ],
    );
    let set = &moto.setup;
    let user = |n: &str| {
        let u = &set["users"][n];
        (
            u["key_id"].as_str().unwrap().to_string(),
            u["secret"].as_str().unwrap().to_string(),
        )
    };
    let ids = [
        set["volume"].as_str().unwrap(),
        set["instance"].as_str().unwrap(),
    ];
    let (id, secret) = user("scanner");
    let creds = (id.as_str(), secret.as_str());
    let (code, out, err) = snapshot_as(&moto, d, creds, &[ids[0], ids[1], "--list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, err) = snapshot_as(&moto, d, creds, &["--all", "--regions", "all", "--list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(set["snapshot"].as_str().unwrap()), "{out}");

    let (id, secret) = user("scanner-no-describe");
    let (code, _, err) = snapshot_as(&moto, d, (&id, &secret), &[ids[0], "--list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DescribeSnapshots: AccessDenied"), "{err}");
}

/// Five snapshots with keys (the GPT disk and four ext4 volumes) in 4 shards, each reading its
/// share of the snapshots (by id): merged, the single run's credentials and places, with the
/// findings in more than one part.
#[test]
fn snapshots_in_four_shards_merge_to_the_single_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut keys = Keys::new(1602);
    make_disk(d, &mut keys);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/images/make_fs.sh");
    let mut extra = Vec::new();
    for i in 0..4 {
        let (k, s) = keys.pair();
        write(
            d,
            &format!("v{i}/etc/app.env"),
            format!("AWS_ACCESS_KEY_ID={k}\nAWS_SECRET_ACCESS_KEY={s}\n"),
        );
        let img = format!("v{i}.img");
        tool(d, &["bash", script, &img, "ext4", &format!("v{i}")]);
        extra.push(d.join(img).to_str().unwrap().to_string());
    }
    let mut args = vec![d.join("disk.img").to_str().unwrap().to_string()];
    for e in &extra {
        args.extend(["--extra".to_string(), e.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let moto = Moto::start_with("moto_ebs.py", &args);
    let mut ids: Vec<String> = vec![moto.setup["snapshot"].as_str().unwrap().to_string()];
    ids.extend(
        moto.setup["extra"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string()),
    );
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut a = ids.clone();
    a.extend(["--format", "json", "--show-secrets"]);
    let (code, out, err) = snapshot(&moto, d, &a);
    assert_eq!(code, 1, "{err}");
    let single: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(creds(&single).len(), 7, "{single:#}");
    let parts = tempfile::tempdir().unwrap();
    let mut found = Vec::new();
    for k in 1..=4 {
        let f = parts.path().join(format!("{k}.json"));
        let shard = format!("{k}/4");
        let mut a = ids.clone();
        a.extend([
            "--shard",
            &shard,
            "--format",
            "json",
            "--show-secrets",
            "-o",
        ]);
        a.push(f.to_str().unwrap());
        let (code, _, err) = snapshot(&moto, d, &a);
        assert!(code <= 1, "{err}");
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        found.push(creds(&v).len());
    }
    assert!(found.iter().filter(|&&n| n > 0).count() > 1, "{found:?}");
    let merged = merged(d, parts.path());
    assert_eq!(place_keys(&merged), place_keys(&single));

    // A snapshot that is nowhere: every shard looks for it, the first names it, and the merge
    // counts it once, as the single run does.
    let nowhere = "snap-0123456789abcdef0";
    let a = [ids[1], nowhere, "--format", "json", "--show-secrets"];
    let (code, out, err) = snapshot(&moto, d, &a);
    assert_eq!(code, 2, "{err}");
    let single: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(single["summary"]["skipped"]["unreadable"], 1, "{single:#}");
    let parts = tempfile::tempdir().unwrap();
    let named = four_parts(parts.path(), &a[..2], nowhere, |a| snapshot(&moto, d, a));
    assert_eq!(named, 1);
    let (code, merged) = merge_parts(d, parts.path());
    assert_eq!(code, 2);
    assert_eq!(merged["summary"]["skipped"], single["summary"]["skipped"]);
    assert_eq!(place_keys(&merged), place_keys(&single));
}

/// A snapshot still being taken: named with its state, exit 2, no block asked for; a volume
/// whose only snapshot is pending has none to read. moto's snapshots are completed as soon as
/// they exist, so here every call goes to a canned server answering each action as EC2 and STS
/// would; any other request (an EBS read) would be counted under the caller's key.
#[test]
fn a_pending_snapshot_is_named_and_not_read() {
    use common::servers::{ok_body, Canned, Reply};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (account, snap, vol) = (
        "123456789012",
        "snap-0a1b2c3d4e5f60718",
        "vol-0a1b2c3d4e5f60718",
    );
    let aws = Canned::start(
        Reply::Error {
            status: 400,
            code: Some("UnexpectedCall".into()),
        },
        std::time::Duration::ZERO,
    );
    let ns = "http://ec2.amazonaws.com/doc/2016-11-15/";
    aws.answer(
        "GetCallerIdentity",
        &ok_body(account, &format!("arn:aws:iam::{account}:user/operator")),
    );
    aws.answer(
        "DescribeSnapshots",
        &format!(
            "<DescribeSnapshotsResponse xmlns=\"{ns}\"><requestId>1</requestId><snapshotSet><item>\
             <snapshotId>{snap}</snapshotId><volumeId>{vol}</volumeId><status>pending</status>\
             <startTime>2026-11-28T09:00:00.000Z</startTime><progress>42%</progress>\
             <ownerId>{account}</ownerId><volumeSize>8</volumeSize><encrypted>false</encrypted>\
             </item></snapshotSet></DescribeSnapshotsResponse>"
        ),
    );
    aws.answer(
        "DescribeVolumes",
        &format!("<DescribeVolumesResponse xmlns=\"{ns}\"><requestId>2</requestId><volumeSet/></DescribeVolumesResponse>"),
    );
    aws.answer(
        "DescribeInstances",
        &format!("<DescribeInstancesResponse xmlns=\"{ns}\"><requestId>3</requestId><reservationSet/></DescribeInstancesResponse>"),
    );
    let creds = ("testing", "testing");

    // Listed as it is (a fan-out sees the state), then refused when read.
    let (code, out, err) = run_aws(
        d,
        &aws.endpoint,
        creds,
        &["snapshot", snap, "--list", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["snapshot_id"], snap, "{out}");
    assert_eq!(list[0]["state"], "pending", "{out}");
    let (code, _, err) = run_aws(d, &aws.endpoint, creds, &["snapshot", snap]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(snap) && err.contains("the snapshot is pending, not completed"),
        "{err}"
    );
    // A volume: its only snapshot is pending.
    let (code, _, err) = run_aws(d, &aws.endpoint, creds, &["snapshot", vol, "--list"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{vol}: no completed snapshot")),
        "{err}"
    );
    // Nothing but the actions above was asked: no EBS read, no other call.
    assert_eq!(aws.calls("testing"), 0, "{:?}", aws.all_calls());
    assert!(
        aws.calls("action:DescribeSnapshots") >= 3,
        "{:?}",
        aws.all_calls()
    );
}
