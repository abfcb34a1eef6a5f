//! An EBS snapshot read in place through the EBS direct APIs, as a `remote::Fetch`:
//! `ListSnapshotBlocks` (paginated) names the written blocks and their tokens once, and
//! `GetSnapshotBlock` fetches a block when it is first needed. No volume is created, nothing is
//! copied to disk, and unwritten blocks are never asked for.
//!
//! Each block is checked: its body's SHA-256 against `x-amz-Checksum` (base64), its length
//! against `x-amz-Data-Length` and the block size. A block that fails is fetched once more,
//! then reported. Throttling (`ThrottlingException`, `RequestThrottledException`) and 5xx
//! answers are retried by the SDK's standard retry strategy (exponential backoff with jitter,
//! `RETRY_ATTEMPTS` attempts), and requests are spaced by `Limits`, shared by every snapshot of
//! the run, to stay under AWS's rates: GetSnapshotBlock 1,000 a second per account (and per
//! snapshot), ListSnapshotBlocks 50 a second per account.
//!
//! The block size is the one the API reports: 512 KiB on AWS, 512 bytes on the moto emulator the
//! tests use.

// Without the `aws` feature only the offline parts are used (parsing, the fuzzed checks).
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "aws")]
use aws_sdk_ebs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

#[cfg(feature = "aws")]
use super::arena::Arenas;
use super::remote::{Fetch, FetchError};

/// Attempts the SDK makes of one request on throttling and 5xx answers.
pub const RETRY_ATTEMPTS: u32 = 8;

/// AWS's documented request rates of the EBS direct APIs, per account.
pub const GET_BLOCKS_PER_SECOND: u32 = 1000;
pub const LISTS_PER_SECOND: u32 = 50;

/// Requests spaced evenly at a rate, shared by every task that waits on it.
pub struct Rate {
    interval: Duration,
    next: tokio::sync::Mutex<Option<Instant>>,
}

impl Rate {
    pub fn per_second(n: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / n.max(1),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The rate limits of one run, per account: one for GetSnapshotBlock, one for the list calls.
pub struct Limits {
    get_per_second: u32,
    accounts: Mutex<HashMap<String, Arc<(Rate, Rate)>>>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(GET_BLOCKS_PER_SECOND)
    }
}

impl Limits {
    /// With GetSnapshotBlock at `get_per_second` per account (AWS's quota is 1,000 unless the
    /// account had it raised).
    pub fn new(get_per_second: u32) -> Limits {
        Limits {
            get_per_second,
            accounts: Mutex::default(),
        }
    }

    /// The (GetSnapshotBlock, ListSnapshotBlocks) rates of `account`.
    pub fn account(&self, account: &str) -> Arc<(Rate, Rate)> {
        self.accounts
            .lock()
            .unwrap()
            .entry(account.to_string())
            .or_insert_with(|| {
                Arc::new((
                    Rate::per_second(self.get_per_second),
                    Rate::per_second(LISTS_PER_SECOND),
                ))
            })
            .clone()
    }
}

/// Why a block could not be had: the request failed (the SDK has already retried it), or its
/// answer is not the block (a bad transfer, or bad data: fetched once more).
pub(crate) enum Fault {
    /// The message, and whether it holds for every block of the snapshot.
    Request(String, bool),
    Body(String),
}

impl Fault {
    pub(crate) fn message(&self) -> &str {
        match self {
            Fault::Request(m, _) | Fault::Body(m) => m,
        }
    }
}

#[cfg(feature = "aws")]
/// A completed snapshot's written blocks, ready to be fetched.
pub struct Snapshot {
    pub id: String,
    client: aws_sdk_ebs::Client,
    rates: Arc<(Rate, Rate)>,
    block_size: u64,
    len: u64,
    written: Vec<u64>,
    /// The block token of each written block (same order).
    tokens: Vec<Box<str>>,
    /// Where the blocks' bodies land.
    arenas: Arenas,
}

#[cfg(feature = "aws")]
/// `code: message` of an AWS SDK error (any service's), or its whole chain when the service
/// said nothing.
pub fn describe<E>(e: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => match e.raw_response() {
            Some(r) => format!("HTTP {} without an AWS error code", r.status().as_u16()),
            None => DisplayErrorContext(e).to_string(),
        },
    }
}

#[cfg(feature = "aws")]
impl Snapshot {
    /// Lists the written blocks of snapshot `id` (every page).
    pub async fn open(
        client: aws_sdk_ebs::Client,
        id: &str,
        rates: Arc<(Rate, Rate)>,
    ) -> Result<Snapshot, String> {
        let mut blocks: Vec<(u64, Box<str>)> = Vec::new();
        let mut next: Option<String> = None;
        let (mut block_size, mut volume_gib): (Option<i32>, Option<i64>);
        loop {
            rates.1.wait().await;
            let page = client
                .list_snapshot_blocks()
                .snapshot_id(id)
                .max_results(10_000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| format!("ListSnapshotBlocks: {}", describe(&e)))?;
            block_size = page.block_size();
            volume_gib = page.volume_size();
            blocks.extend(listed(
                page.blocks()
                    .iter()
                    .map(|b| (b.block_index(), b.block_token())),
            ));
            match page.next_token() {
                Some(t) if !t.is_empty() && !page.blocks().is_empty() => next = Some(t.into()),
                _ => break,
            }
        }
        let Layout {
            block_size,
            len,
            written,
            tokens,
        } = layout(block_size, volume_gib, blocks)?;
        Ok(Snapshot {
            id: id.to_string(),
            client,
            rates,
            block_size,
            len,
            written,
            tokens,
            arenas: Arenas::new(block_size),
        })
    }

    /// One request for block `k` of `written`: its body, or why it is not usable.
    async fn get(&self, k: usize) -> Result<Bytes, Fault> {
        let index = self.written[k];
        self.rates.0.wait().await;
        let out = self
            .client
            .get_snapshot_block()
            .snapshot_id(&self.id)
            .block_index(index as i32)
            .block_token(&*self.tokens[k])
            .send()
            .await
            .map_err(|e| {
                // Access denied (to the snapshot, or to its KMS key) or a snapshot that is
                // gone: no block will come.
                let whole = e.code().is_some_and(|c| {
                    c.starts_with("AccessDenied") || c == "ResourceNotFoundException"
                });
                Fault::Request(format!("GetSnapshotBlock: {}", describe(&e)), whole)
            })?;
        let length = out.data_length();
        let checksum = out.checksum().map(str::to_string);
        let algorithm = out.checksum_algorithm().map(|a| a.as_str().to_string());
        // Each chunk is copied once, into the block's slot of its arena, beside its neighbours
        // (`arena.rs`: the raw pass scans a run of blocks as one piece). Joining the chunks
        // into a buffer of the block's own copied them once too: a 512 KiB body comes in
        // several. (`AggregatedBytes::to_vec` copies byte by byte: 29% of a scan's time.)
        let mut body = out.block_data;
        let mut landing = self.arenas.landing(index);
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Fault::Body(format!("reading the body: {e}")))?
        {
            landing.put(&chunk);
        }
        check_block(
            landing.finish(),
            length,
            checksum,
            algorithm.as_deref(),
            self.block_size,
        )
    }
}

/// A snapshot's blocks as ListSnapshotBlocks gives them (index, token), less any without both
/// or with a negative index.
pub(crate) fn listed<'a, I: Iterator<Item = (Option<i32>, Option<&'a str>)>>(
    blocks: I,
) -> impl Iterator<Item = (u64, Box<str>)> + use<'a, I> {
    blocks.filter_map(|(i, t)| match (i, t) {
        (Some(i), Some(t)) if i >= 0 => Some((i as u64, t.into())),
        _ => None,
    })
}

/// Where a snapshot's written blocks lie, from ListSnapshotBlocks' answers.
pub(crate) struct Layout {
    pub block_size: u64,
    /// Bytes of the volume: its size, or past the last block if a block lies beyond it.
    pub len: u64,
    pub written: Vec<u64>,
    pub tokens: Vec<Box<str>>,
}

/// The layout from the last page's block size and volume size (GiB) and every page's blocks.
/// Sizes the API cannot mean (none, negative, a volume past 2^64 bytes) are errors, not
/// overflows.
pub(crate) fn layout(
    block_size: Option<i32>,
    volume_gib: Option<i64>,
    mut blocks: Vec<(u64, Box<str>)>,
) -> Result<Layout, String> {
    let block_size = match block_size {
        Some(b) if b > 0 => b as u64,
        Some(b) => return Err(format!("ListSnapshotBlocks: block size {b}")),
        None => return Err("ListSnapshotBlocks: no block size in the answer".into()),
    };
    let volume = match volume_gib.unwrap_or(0) {
        v if v < 0 => return Err(format!("ListSnapshotBlocks: volume size {v} GiB")),
        v => (v as u64)
            .checked_mul(1 << 30)
            .ok_or_else(|| format!("ListSnapshotBlocks: volume size {v} GiB"))?,
    };
    // The API lists blocks in order; an emulator may not. A block listed twice is one.
    blocks.sort_unstable_by_key(|b| b.0);
    blocks.dedup_by_key(|b| b.0);
    let end = match blocks.last() {
        Some(b) => (b.0 + 1)
            .checked_mul(block_size)
            .ok_or_else(|| format!("ListSnapshotBlocks: block {} lies past 2^64 bytes", b.0))?,
        None => 0,
    };
    let (written, tokens) = blocks.into_iter().unzip();
    Ok(Layout {
        block_size,
        len: volume.max(end),
        written,
        tokens,
    })
}

/// A GetSnapshotBlock answer's body, checked: its length against `DataLength` and the block
/// size, its SHA-256 against `x-amz-Checksum`.
pub(crate) fn check_block(
    body: Bytes,
    length: Option<i32>,
    checksum: Option<String>,
    algorithm: Option<&str>,
    block_size: u64,
) -> Result<Bytes, Fault> {
    if let Some(n) = length {
        if usize::try_from(n).ok() != Some(body.len()) {
            return Err(Fault::Body(format!(
                "DataLength says {n} bytes, the body has {}",
                body.len()
            )));
        }
    }
    if body.len() as u64 != block_size {
        return Err(Fault::Body(format!(
            "{} bytes, not the block size {block_size}",
            body.len(),
        )));
    }
    match (checksum, algorithm) {
        (Some(want), Some("SHA256") | None) => {
            let got = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
            if got != want {
                return Err(Fault::Body(format!(
                    "checksum mismatch (x-amz-Checksum {want}, body {got})"
                )));
            }
        }
        (Some(_), Some(other)) => {
            return Err(Fault::Body(format!("unknown checksum algorithm {other}")));
        }
        (None, _) => return Err(Fault::Body("no x-amz-Checksum in the answer".into())),
    }
    Ok(body)
}

#[cfg(feature = "aws")]
impl Fetch for Snapshot {
    fn len(&self) -> u64 {
        self.len
    }
    fn block_size(&self) -> u64 {
        self.block_size
    }
    fn written(&self) -> &[u64] {
        &self.written
    }
    fn arenas(&self) -> Option<&Arenas> {
        Some(&self.arenas)
    }
    fn fetch(&self, index: u64) -> BoxFuture<'_, Result<Bytes, FetchError>> {
        Box::pin(async move {
            let k = self
                .written
                .binary_search(&index)
                .map_err(|_| FetchError::block(format!("block {index} was not written")))?;
            let request = |message, whole_disk| FetchError {
                message,
                whole_disk,
            };
            match self.get(k).await {
                Ok(b) => Ok(b),
                // A bad body may be a bad transfer: once more, then it is reported.
                Err(Fault::Body(first)) => self.get(k).await.map_err(|e| match e {
                    Fault::Body(e) => {
                        FetchError::block(format!("{e} (fetched twice; first: {first})"))
                    }
                    Fault::Request(e, whole) => request(e, whole),
                }),
                // The SDK has retried the request already.
                Err(Fault::Request(e, whole)) => Err(request(e, whole)),
            }
        })
    }
}

#[cfg(feature = "aws")]
/// An EBS client for `region` on the operator's configuration (`AWS_ENDPOINT_URL_EBS` or
/// `AWS_ENDPOINT_URL` honoured as the SDK reads them), retrying throttling and 5xx answers.
pub fn client(conf: &aws_config::SdkConfig, region: &str) -> aws_sdk_ebs::Client {
    let c = aws_sdk_ebs::config::Builder::from(conf)
        .region(aws_config::Region::new(region.to_string()))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(RETRY_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .build();
    aws_sdk_ebs::Client::from_conf(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes no volume has are errors, not overflows (a volume size of 2^33 GiB or more used to
    /// wrap `volume_gib << 30`; seen while writing the `ebs_response` fuzz target).
    #[test]
    fn layout_of_impossible_sizes() {
        let blocks = |v: &[u64]| v.iter().map(|&i| (i, "t".into())).collect::<Vec<_>>();
        let l = layout(Some(524288), Some(8), blocks(&[3, 1, 3])).unwrap();
        assert_eq!((l.len, l.written), (8 << 30, vec![1, 3]));
        let past = layout(Some(512), Some(0), blocks(&[9])).unwrap();
        assert_eq!(
            past.len,
            10 * 512,
            "a block past the volume's size extends it"
        );
        assert!(layout(Some(512), Some(i64::MAX), blocks(&[])).is_err());
        assert!(layout(Some(512), Some(-1), blocks(&[])).is_err());
        assert!(layout(Some(0), Some(1), blocks(&[])).is_err());
        assert!(layout(None, Some(1), blocks(&[])).is_err());
        assert!(layout(Some(i32::MAX), Some(0), blocks(&[u64::MAX / 2])).is_err());
        let body = Bytes::from_static(&[7u8; 512]);
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        assert!(check_block(body.clone(), Some(512), Some(sum.clone()), None, 512).is_ok());
        assert!(check_block(body.clone(), Some(-1), Some(sum.clone()), None, 512).is_err());
        assert!(check_block(body.clone(), None, Some(sum), Some("CRC32"), 512).is_err());
        assert!(check_block(body, None, None, None, 512).is_err());
    }
}
