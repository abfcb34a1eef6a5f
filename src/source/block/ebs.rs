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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ebs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

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
enum Fault {
    /// The message, and whether it holds for every block of the snapshot.
    Request(String, bool),
    Body(String),
}

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
}

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

impl Snapshot {
    /// Lists the written blocks of snapshot `id` (every page).
    pub async fn open(
        client: aws_sdk_ebs::Client,
        id: &str,
        rates: Arc<(Rate, Rate)>,
    ) -> Result<Snapshot, String> {
        let mut blocks: Vec<(u64, Box<str>)> = Vec::new();
        let mut next: Option<String> = None;
        let (mut block_size, mut volume_gib): (u64, u64);
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
            block_size = page.block_size().unwrap_or(0).max(0) as u64;
            volume_gib = page.volume_size().unwrap_or(0).max(0) as u64;
            for b in page.blocks() {
                if let (Some(i), Some(t)) = (b.block_index(), b.block_token()) {
                    if i >= 0 {
                        blocks.push((i as u64, t.into()));
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && !page.blocks().is_empty() => next = Some(t.into()),
                _ => break,
            }
        }
        if block_size == 0 {
            return Err("ListSnapshotBlocks: no block size in the answer".into());
        }
        // The API lists blocks in order; an emulator may not. A block listed twice is one.
        blocks.sort_unstable_by_key(|b| b.0);
        blocks.dedup_by_key(|b| b.0);
        let len = (volume_gib << 30).max(blocks.last().map_or(0, |b| (b.0 + 1) * block_size));
        let (written, tokens) = blocks.into_iter().unzip();
        Ok(Snapshot {
            id: id.to_string(),
            client,
            rates,
            block_size,
            len,
            written,
            tokens,
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
        let body = out
            .block_data
            .collect()
            .await
            .map_err(|e| Fault::Body(format!("reading the body: {e}")))?
            // One segment (the usual case) is handed over without a copy; several are joined.
            // (`AggregatedBytes::to_vec` copies byte by byte: 29% of a snapshot scan's time.)
            .into_bytes();
        if let Some(n) = length {
            if n as usize != body.len() {
                return Err(Fault::Body(format!(
                    "DataLength says {n} bytes, the body has {}",
                    body.len()
                )));
            }
        }
        if body.len() as u64 != self.block_size {
            return Err(Fault::Body(format!(
                "{} bytes, not the block size {}",
                body.len(),
                self.block_size
            )));
        }
        match (checksum, algorithm.as_deref()) {
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
}

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
