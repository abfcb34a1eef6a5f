//! An object in S3 read by ranges, as a `remote::Fetch`: a disk image (`ec2 export-image`'s
//! VMDK, VHD or raw) or a big zip is read where it lies, a block at a time, each block one
//! ranged `GetObject` (`Range: bytes=a-b`), with the object's ETag as `If-Match` so that an
//! object replaced while it is read fails instead of mixing two versions. Nothing is
//! downloaded whole; `block::remote` keeps a bounded cache and fetches each block once.
//!
//! Each answer is checked: a 206 whose body is exactly the range asked for. Throttling
//! (`SlowDown`) and 5xx answers are retried by the SDK's standard strategy (`client`); access
//! denied, a key or version gone, or a changed ETag stop the object (`whole_disk`).

// Without the `aws` feature only the offline parts are used (parsing, the fuzzed checks).
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "aws")]
use aws_sdk_s3::error::ProvideErrorMetadata;
use bytes::Bytes;
use futures_util::future::BoxFuture;

#[cfg(feature = "aws")]
use super::ebs::describe;
use super::remote::{Fetch, FetchError};

/// Attempts the SDK makes of one request on throttling (503 SlowDown) and 5xx answers.
pub const RETRY_ATTEMPTS: u32 = 8;

/// Bytes a ranged read asks for at once: big enough that a disk image's raw pass is not
/// dominated by request overhead (and GETs cost money), small enough that a filesystem walk's
/// scattered reads do not pull in much it does not need.
pub const BLOCK: u64 = 1 << 20;

/// Which object, and how its requests are made.
#[derive(Clone, Debug)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// `x-amz-request-payer: requester` (`--request-payer`).
    pub requester_pays: bool,
}

#[cfg(feature = "aws")]
/// One object as a disk of `BLOCK`-byte blocks, every one of them "written".
pub struct Object {
    client: aws_sdk_s3::Client,
    target: Target,
    len: u64,
    block: u64,
    written: Vec<u64>,
    /// Ranged requests that succeeded, and their bytes.
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

#[cfg(feature = "aws")]
impl Object {
    pub fn new(client: aws_sdk_s3::Client, target: Target, len: u64, block: u64) -> Object {
        let block = block.max(512);
        Object {
            client,
            target,
            len,
            block,
            written: (0..len.div_ceil(block)).collect(),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    async fn get(&self, index: u64) -> Result<Bytes, FetchError> {
        let start = index * self.block;
        let end = (start + self.block).min(self.len);
        if start >= end {
            return Err(FetchError::block(format!("block {index} is past the end")));
        }
        let body = range(&self.client, &self.target, start, end).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }
}

#[cfg(feature = "aws")]
/// Bytes `start..end` of the object, by one ranged GetObject, checked to be exactly those.
pub async fn range(
    client: &aws_sdk_s3::Client,
    t: &Target,
    start: u64,
    end: u64,
) -> Result<Bytes, FetchError> {
    {
        let mut req = client
            .get_object()
            .bucket(&t.bucket)
            .key(&t.key)
            .range(format!("bytes={start}-{}", end - 1))
            .set_version_id(t.version_id.clone())
            .set_if_match(t.etag.clone());
        if t.requester_pays {
            req = req.request_payer(aws_sdk_s3::types::RequestPayer::Requester);
        }
        let out = req.send().await.map_err(|e| {
            let whole = e.code().is_some_and(|c| {
                matches!(
                    c,
                    "AccessDenied"
                        | "NoSuchKey"
                        | "NoSuchVersion"
                        | "NoSuchBucket"
                        | "PreconditionFailed"
                        | "InvalidObjectState"
                        | "KMS.AccessDeniedException"
                )
            }) || e
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 403 | 404 | 412));
            FetchError {
                message: format!("GetObject {}: {}", range_name(start, end), describe(&e)),
                whole_disk: whole,
            }
        })?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| FetchError::block(format!("reading the body: {e}")))?
            .into_bytes();
        if body.len() as u64 != end - start {
            return Err(FetchError::block(format!(
                "GetObject {}: {} bytes in the answer, not {}",
                range_name(start, end),
                body.len(),
                end - start
            )));
        }
        Ok(body)
    }
}

fn range_name(start: u64, end: u64) -> String {
    format!("bytes {start}-{}", end - 1)
}

#[cfg(feature = "aws")]
impl Fetch for Object {
    fn len(&self) -> u64 {
        self.len
    }
    fn block_size(&self) -> u64 {
        self.block
    }
    fn written(&self) -> &[u64] {
        &self.written
    }
    fn fetch(&self, index: u64) -> BoxFuture<'_, Result<Bytes, FetchError>> {
        Box::pin(async move {
            match self.get(index).await {
                // A short body may be a bad transfer: once more.
                Err(e) if !e.whole_disk => self.get(index).await,
                r => r,
            }
        })
    }
}

#[cfg(feature = "aws")]
/// An S3 client for `region` on the operator's configuration, retrying throttling and 5xx.
/// With an endpoint override (`AWS_ENDPOINT_URL`: an emulator, a VPC endpoint by address)
/// buckets are addressed by path, since `bucket.host` names would not resolve.
pub fn client(conf: &aws_config::SdkConfig, region: &str) -> aws_sdk_s3::Client {
    let c = aws_sdk_s3::config::Builder::from(conf)
        .region(aws_config::Region::new(region.to_string()))
        .force_path_style(
            conf.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some(),
        )
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(RETRY_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .build();
    aws_sdk_s3::Client::from_conf(c)
}
