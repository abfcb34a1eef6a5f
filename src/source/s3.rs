//! Which objects of S3 to read, and how each one's bytes come: read-only calls, each bucket
//! asked in its own region.
//!
//! - Buckets: named (`s3://bucket[/prefix]`) or every bucket of the account (ListBuckets), each
//!   in its region (the region ListBuckets gives, else GetBucketLocation).
//! - Objects: ListObjectsV2, or in a bucket whose versioning is on (GetBucketVersioning)
//!   ListObjectVersions, so that noncurrent versions and objects behind a delete marker are
//!   read with `--versions` and counted without. Keys are filtered by `--include`/`--exclude`
//!   globs before any GET.
//! - Bytes: one GetObject streamed (`Stream`: resumed from where it broke with a ranged GET
//!   and `If-Match` on the ETag), or, for disk images and big zips, ranged GETs behind a
//!   block reader (`block::s3`).

// Without the `aws` feature only the offline parts are used (parsing, the fuzzed checks).
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::io::{self, Read};

#[cfg(feature = "aws")]
use aws_sdk_s3::error::ProvideErrorMetadata;
#[cfg(feature = "aws")]
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

pub use super::block::s3::Target;
pub use crate::blob::ObjectInfo;

#[cfg(feature = "aws")]
use super::block::ebs::describe;

/// A place to look: `s3://bucket[/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

impl std::str::FromStr for Location {
    type Err = String;
    fn from_str(s: &str) -> Result<Location, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s}: expected s3://bucket[/prefix]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s}: no bucket name"));
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// `--include` and `--exclude` globs on keys. A glob with a `/` is matched against the whole
/// key (`backups/**/*.tgz`); one without, against the key's last part (`*.tar.gz`), as
/// `.gitignore` does. `*` does not cross a `/`; `**` does.
#[derive(Default)]
pub struct KeyFilter {
    include: Option<(GlobSet, GlobSet)>,
    exclude: Option<(GlobSet, GlobSet)>,
}

fn globs(patterns: &[String]) -> Result<Option<(GlobSet, GlobSet)>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let (mut full, mut name) = (GlobSetBuilder::new(), GlobSetBuilder::new());
    for p in patterns {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("{p}: {e}"))?;
        if p.contains('/') {
            full.add(g);
        } else {
            name.add(g);
        }
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| e.to_string());
    Ok(Some((build(full)?, build(name)?)))
}

fn matches(set: &(GlobSet, GlobSet), key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    set.0.is_match(key) || set.1.is_match(name)
}

impl KeyFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<KeyFilter, String> {
        Ok(KeyFilter {
            include: globs(include)?,
            exclude: globs(exclude)?,
        })
    }

    /// Is `key` to be read?
    pub fn wanted(&self, key: &str) -> bool {
        self.include.as_ref().is_none_or(|s| matches(s, key))
            && !self.exclude.as_ref().is_some_and(|s| matches(s, key))
    }
}

/// Storage classes whose objects must be restored before a GET: not read, counted.
pub fn archived(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

/// What to list in one bucket.
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    /// Noncurrent versions too.
    pub versions: bool,
    pub filter: &'a KeyFilter,
    pub requester_pays: bool,
    /// Only this shard's objects (by bucket, key and version), counts included.
    pub shard: Option<crate::shard::Shard>,
}

impl ListQuery<'_> {
    fn ours(&self, bucket: &str, key: &str, version: Option<&str>) -> bool {
        let version = version.filter(|&v| v != "null").unwrap_or("");
        self.shard
            .is_none_or(|s| s.owns(format!("{bucket}/{key}?{version}").as_bytes()))
    }
}

/// The objects of one bucket to read, and what was left out.
#[derive(Default, Debug)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Noncurrent versions (older versions, versions behind a delete marker) not read, for
    /// want of `--versions`, and their bytes.
    pub noncurrent_left: u64,
    pub noncurrent_bytes_left: u64,
    /// Keys (or versions) the globs left out.
    pub excluded: u64,
    /// List requests made.
    pub list_calls: u64,
    /// Something the listing could not do (versions not listable), to tell the user.
    pub note: Option<String>,
}

#[cfg(feature = "aws")]
fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

/// `"etag"` without its quotes, as If-Match takes it back with them.
fn etag(e: Option<&str>) -> Option<String> {
    e.map(str::to_string)
}

#[cfg(feature = "aws")]
/// Lists the objects of `bucket` that `q` asks for (every page).
pub async fn list(
    client: &aws_sdk_s3::Client,
    account: &str,
    region: &str,
    bucket: &str,
    q: &ListQuery<'_>,
) -> Result<Listing, String> {
    let mut out = Listing::default();
    let payer = q
        .requester_pays
        .then_some(aws_sdk_s3::types::RequestPayer::Requester);
    let base = |key: &str| ObjectInfo {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: None,
        latest: true,
        last_modified: None,
        size: 0,
        storage_class: "STANDARD".into(),
        etag: None,
        region: region.to_string(),
        account: account.to_string(),
    };
    // A bucket whose versioning was never turned on has no noncurrent versions: ListObjectsV2.
    // Otherwise (on, suspended, or unknown) ListObjectVersions, which lists current and
    // noncurrent versions at the same price; without s3:ListBucketVersions, ListObjectsV2, and
    // noncurrent versions are neither read nor counted.
    let mut versioned = versioning(client, bucket).await != Some(false);
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    while versioned {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(q.prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .set_request_payer(payer.clone())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if out.list_calls == 0 && denied(&e) => {
                out.note = Some(format!(
                    "s3://{bucket}: ListObjectVersions: {}; listed with ListObjectsV2: \
                     noncurrent versions neither read nor counted",
                    describe(&e)
                ));
                versioned = false;
                break;
            }
            Err(e) => {
                return Err(format!(
                    "s3://{bucket}: ListObjectVersions: {}",
                    describe(&e)
                ))
            }
        };
        out.list_calls += 1;
        {
            for v in page.versions() {
                let Some(key) = v.key() else { continue };
                if !q.ours(bucket, key, v.version_id()) {
                    continue;
                }
                if !q.filter.wanted(key) {
                    out.excluded += 1;
                    continue;
                }
                let latest = v.is_latest().unwrap_or(true);
                let size = v.size().unwrap_or(0).max(0) as u64;
                if !latest && !q.versions {
                    out.noncurrent_left += 1;
                    out.noncurrent_bytes_left += size;
                    continue;
                }
                out.objects.push(ObjectInfo {
                    // `null`: an object written while versioning was off (or never on).
                    version_id: v.version_id().filter(|&v| v != "null").map(str::to_string),
                    latest,
                    last_modified: time(v.last_modified()),
                    size,
                    storage_class: v
                        .storage_class()
                        .map_or("STANDARD".into(), |c| c.as_str().to_string()),
                    etag: etag(v.e_tag()),
                    ..base(key)
                });
            }
        }
        match (page.is_truncated(), page.next_key_marker()) {
            (Some(true), Some(k)) => {
                key_marker = Some(k.to_string());
                version_marker = page.next_version_id_marker().map(str::to_string);
            }
            _ => break,
        }
    }
    if !versioned {
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(q.prefix)
            .set_request_payer(payer)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| format!("s3://{bucket}: ListObjectsV2: {}", describe(&e)))?;
            out.list_calls += 1;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                if !q.ours(bucket, key, None) {
                    continue;
                }
                if !q.filter.wanted(key) {
                    out.excluded += 1;
                    continue;
                }
                out.objects.push(ObjectInfo {
                    last_modified: time(o.last_modified()),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    storage_class: o
                        .storage_class()
                        .map_or("STANDARD".into(), |c| c.as_str().to_string()),
                    etag: etag(o.e_tag()),
                    ..base(key)
                });
            }
        }
    }
    // Keys are directory markers when they end with `/` and hold nothing.
    out.objects
        .retain(|o| !(o.key.ends_with('/') && o.size == 0));
    Ok(out)
}

#[cfg(feature = "aws")]
/// Was versioning ever turned on for `bucket` (GetBucketVersioning has a status)? `None` when
/// it cannot be told. An answer the SDK cannot read (an S3-compatible store whose document has
/// another root element, as moto's `GetBucketVersioningResponse`) is read for its `<Status>`.
async fn versioning(client: &aws_sdk_s3::Client, bucket: &str) -> Option<bool> {
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => Some(v.status().is_some()),
        Err(e) => {
            let r = e.raw_response().filter(|r| r.status().is_success())?;
            let body = std::str::from_utf8(r.body().bytes()?).ok()?;
            Some(body.contains("<Status>Enabled</Status>") || body.contains("<Status>Suspended"))
        }
    }
}

#[cfg(feature = "aws")]
/// Refused by policy (not a missing bucket, not an outage).
fn denied<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> bool {
    e.code() == Some("AccessDenied") || e.raw_response().is_some_and(|r| r.status().as_u16() == 403)
}

#[cfg(feature = "aws")]
/// The buckets the account owns, with the region ListBuckets names (when it does).
pub async fn buckets(client: &aws_sdk_s3::Client) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut pages = client.list_buckets().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListBuckets: {}", describe(&e)))?;
        for b in page.buckets() {
            if let Some(n) = b.name() {
                out.push((n.to_string(), b.bucket_region().map(str::to_string)));
            }
        }
    }
    Ok(out)
}

#[cfg(feature = "aws")]
/// The region of `bucket` (GetBucketLocation: no constraint is us-east-1, `EU` eu-west-1).
pub async fn bucket_region(client: &aws_sdk_s3::Client, bucket: &str) -> Result<String, String> {
    let out = client
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| format!("s3://{bucket}: GetBucketLocation: {}", describe(&e)))?;
    Ok(match out.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    })
}

/// Times a stream that broke is resumed from where it broke.
const RESUMES: u32 = 3;

#[cfg(feature = "aws")]
/// An object's bytes as a `Read`: one GetObject streamed, and when the connection breaks,
/// resumed from the byte it broke at (a ranged GET, `If-Match` on the ETag, so a replaced
/// object is not mixed with its old bytes).
pub struct Stream<'a> {
    rt: &'a tokio::runtime::Handle,
    client: &'a aws_sdk_s3::Client,
    target: &'a Target,
    body: Option<ByteStream>,
    chunk: Bytes,
    pos: u64,
    resumes: u32,
}

#[cfg(feature = "aws")]
/// Why an object could not be opened: the message, and whether it was refused (access denied,
/// KMS, requester pays, gone, archived: asking again will not help).
#[derive(Debug)]
pub struct OpenError {
    pub message: String,
    pub refused: bool,
}

#[cfg(feature = "aws")]
impl<'a> Stream<'a> {
    /// Sends the GetObject, for the bytes from `from` on.
    pub fn open(
        rt: &'a tokio::runtime::Handle,
        client: &'a aws_sdk_s3::Client,
        target: &'a Target,
        from: u64,
    ) -> Result<Stream<'a>, OpenError> {
        let mut s = Stream {
            rt,
            client,
            target,
            body: None,
            chunk: Bytes::new(),
            pos: from,
            resumes: 0,
        };
        s.body = Some(s.get((from > 0).then_some(from))?);
        Ok(s)
    }

    fn get(&mut self, from: Option<u64>) -> Result<ByteStream, OpenError> {
        let t = self.target;
        let mut req = self
            .client
            .get_object()
            .bucket(&t.bucket)
            .key(&t.key)
            .set_version_id(t.version_id.clone())
            .set_if_match(t.etag.clone())
            .set_range(from.map(|f| format!("bytes={f}-")));
        if t.requester_pays {
            req = req.request_payer(aws_sdk_s3::types::RequestPayer::Requester);
        }
        let out = self.rt.block_on(req.send()).map_err(|e| {
            let status = e.raw_response().map(|r| r.status().as_u16());
            OpenError {
                message: match (e.code(), status) {
                    // A refusal without an error document (a bucket policy's deny, as moto
                    // answers it; a proxy).
                    (None, Some(403)) => "GetObject: access denied (HTTP 403)".to_string(),
                    _ => format!("GetObject: {}", describe(&e)),
                },
                refused: e.code().is_some()
                    && matches!(status, Some(400..=499))
                    && e.code() != Some("RequestTimeout"),
            }
        })?;
        Ok(out.body)
    }
}

#[cfg(feature = "aws")]
impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match self.rt.block_on(body.next()) {
                None => {
                    self.body = None;
                    return Ok(0);
                }
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) if self.resumes < RESUMES => {
                    self.resumes += 1;
                    let at = self.pos;
                    self.body = Some(self.get(Some(at)).map_err(|o| {
                        io::Error::other(format!(
                            "the connection broke at byte {at} ({e}), and resuming failed: {}",
                            o.message
                        ))
                    })?);
                }
                Some(Err(e)) => {
                    return Err(io::Error::other(format!(
                        "the connection broke at byte {} ({e}), {RESUMES} times",
                        self.pos
                    )))
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Does `head` (an object's first bytes) start a disk image: a container (VMDK, VHD, VHDX,
/// qcow2), a partition table (MBR with a partition, GPT), or a filesystem or LVM physical
/// volume without one? Such objects are read by ranges, as `keyhound image` reads a file.
pub fn disk_like(head: &[u8]) -> bool {
    use super::block::{sniff_bytes, Format};
    if sniff_bytes(head, &[]) != Format::Raw {
        return true;
    }
    let at = |o: usize, m: &[u8]| head.get(o..o + m.len()) == Some(m);
    let mbr = at(510, &[0x55, 0xaa])
        && (0..4).any(|i| {
            let e = 446 + 16 * i;
            head.get(e + 4).is_some_and(|&t| t != 0) && matches!(head[e], 0 | 0x80)
        });
    mbr || at(512, b"EFI PART")
        || at(512, b"LABELONE")
        || at(1080, &[0x53, 0xef])
        || at(0, b"XFSB")
        || at(3, b"NTFS    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l: Location = "s3://acme-backups/nightly/x".parse().unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("acme-backups", "nightly/x")
        );
        let l: Location = "s3://acme-backups".parse().unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("acme-backups", ""));
        assert!("acme-backups/x".parse::<Location>().is_err());
        assert!("s3:///x".parse::<Location>().is_err());
    }

    /// A glob without `/` matches the key's last part; one with `/` the whole key; `*` does
    /// not cross `/`, `**` does; exclude wins over include.
    #[test]
    fn key_globs() {
        let f = KeyFilter::new(&["*.tar.gz".into(), "db/**".into()], &["db/tmp/*".into()]).unwrap();
        assert!(f.wanted("nightly/home.tar.gz"));
        assert!(f.wanted("home.tar.gz"));
        assert!(!f.wanted("nightly/home.tar.gz.sig"));
        assert!(f.wanted("db/2026/dump.sql"));
        assert!(!f.wanted("db/tmp/x.sql"));
        assert!(f.wanted("db/tmp/deeper/x.sql"));
        assert!(!f.wanted("other/dump.sql"));
        let all = KeyFilter::new(&[], &["*.log".into()]).unwrap();
        assert!(all.wanted("a/b.txt") && !all.wanted("a/b.log"));
        assert!(KeyFilter::new(&["a[".into()], &[]).is_err());
    }

    /// Disk images by their first bytes; archives and text are not.
    #[test]
    fn disk_images_by_their_first_bytes() {
        let mut mbr = vec![0u8; 4096];
        mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert!(!disk_like(&mbr), "a boot signature without a partition");
        mbr[446 + 4] = 0x83;
        assert!(disk_like(&mbr));
        mbr[446] = 0x12;
        assert!(!disk_like(&mbr), "not a partition entry (boot flag 0x12)");
        let mut gpt = vec![0u8; 4096];
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert!(disk_like(&gpt));
        let mut ext = vec![0u8; 4096];
        ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert!(disk_like(&ext));
        assert!(disk_like(b"KDMV\x01\0\0\0"));
        assert!(disk_like(b"XFSB\0\0\x10\0"));
        assert!(!disk_like(b"PK\x03\x04"));
        assert!(!disk_like(&[0x1f, 0x8b, 0x08, 0]));
        assert!(!disk_like(b"AWS_ACCESS_KEY_ID=..."));
        assert!(!disk_like(&[]));
    }
}
