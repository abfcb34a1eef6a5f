//! A blob: bytes to scan plus where they came from.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

/// Where bytes came from: an outer place (a file path, relative to where the scan started when
/// it can be) and the places inside it, outermost first (archive members, partitions…).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Origin {
    pub path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<String>,
}

impl Origin {
    pub fn file(path: impl Into<String>) -> Origin {
        Origin {
            path: path.into(),
            inner: Vec::new(),
        }
    }
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
            own: 0..data.len(),
        }
    }
}
