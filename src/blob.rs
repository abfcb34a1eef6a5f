//! A blob: bytes to scan plus where they came from.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where bytes came from: an outer place (a file path, relative to where the scan started when
/// it can be), the places inside it, outermost first (archive members, partitions…), and for
/// git history, the commit and paths of the blob.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<Arc<GitInfo>>,
    /// The raw bytes of a disk image or partition, not a file: places are byte offsets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
    /// An EBS snapshot the bytes were read from (`path` is its `place()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Arc<SnapshotInfo>>,
    /// An object in S3 the bytes were read from (`path` is its `place()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Arc<ObjectInfo>>,
}

impl Origin {
    pub fn file(path: impl Into<String>) -> Origin {
        Origin {
            path: path.into(),
            inner: Vec::new(),
            git: None,
            raw: false,
            snapshot: None,
            object: None,
        }
    }
}

/// Everything known of one snapshot: where it is and whose machine it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub snapshot_id: String,
    pub account: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The instance's `Name` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    /// GiB.
    pub size_gib: u64,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub state: String,
    pub encrypted: bool,
    /// The snapshot's tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_tags: BTreeMap<String, String>,
}

impl SnapshotInfo {
    /// `snap-0abc… (vol-0def…, i-0123… "web-1", us-east-1, 123456789012)`.
    pub fn place(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.volume_id {
            parts.push(v.clone());
        }
        match (&self.instance_id, &self.instance_name) {
            (Some(i), Some(n)) => parts.push(format!("{i} \"{n}\"")),
            (Some(i), None) => parts.push(i.clone()),
            _ => {}
        }
        parts.push(self.region.clone());
        parts.push(self.account.clone());
        format!("{} ({})", self.snapshot_id, parts.join(", "))
    }
}

/// One object (or one version of it) in S3, where it is and what S3 said of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    /// In a versioned bucket: the version read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The current version (false: a noncurrent one, or one behind a delete marker).
    pub latest: bool,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    pub size: u64,
    pub storage_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub region: String,
    pub account: String,
}

impl ObjectInfo {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// `s3://bucket/key`, and for a noncurrent version `s3://bucket/key (version V of DATE)`.
    pub fn place(&self) -> String {
        match (&self.version_id, self.latest) {
            (Some(v), false) => format!(
                "{} (version {v} of {})",
                self.url(),
                self.last_modified.as_deref().unwrap_or("unknown date")
            ),
            _ => self.url(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub author: String,
    pub email: String,
    /// ISO 8601, author time.
    pub date: String,
    pub summary: String,
}

/// Where a blob with findings lives in history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GitInfo {
    pub blob: String,
    /// The oldest commit that has the blob at `paths[0]`; `None` for a blob no commit reaches.
    pub commit: Option<CommitInfo>,
    /// Every path the blob was seen under.
    pub paths: Vec<String>,
    /// Is the blob still in HEAD's tree?
    pub at_head: bool,
    /// The commit on HEAD's first-parent line that removed it from `paths[0]`, when known.
    pub removed_in: Option<CommitInfo>,
    /// Not a blob but a message: `commit` (the commit's own message, `commit` is that
    /// commit), `tag NAME` (an annotated tag's, `commit` is what it points at), `note`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        for i in &self.inner {
            write!(f, " › {i}")?;
        }
        Ok(())
    }
}

/// A window of bytes from one origin. Big inputs arrive as several overlapping blobs; each
/// reports only the detections that start in its `own` range, so none is reported twice.
pub struct Blob<'a> {
    pub data: &'a [u8],
    pub origin: Arc<Origin>,
    /// Offset of `data[0]` in the whole input.
    pub offset: u64,
    /// Newlines in the whole input before `data[0]`.
    pub line: u64,
    /// Characters between the start of `data[0]`'s line and `data[0]` (a window that starts
    /// inside a long line: columns continue from there).
    pub column: u64,
    /// The part of `data` whose detections this blob reports.
    pub own: Range<usize>,
}

impl<'a> Blob<'a> {
    pub fn whole(data: &'a [u8], origin: Arc<Origin>) -> Blob<'a> {
        Blob {
            data,
            origin,
            offset: 0,
            line: 0,
            column: 0,
            own: 0..data.len(),
        }
    }
}
