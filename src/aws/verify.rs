//! `--verify`: each unique AWS key pair signs one STS `GetCallerIdentity` call with a static
//! credentials provider made for that key alone (never the default chain). The secret leaves
//! the process only as a SigV4 signature. Canary-token keys are recognised offline and never
//! called. The tokio runtime and the SDK start only here, so scans without `--verify` (and the
//! pre-commit hook) never pay for them.

// A build without the `aws` feature keeps the offline parts (canary accounts, the plan of
// what would be called) and says that --verify needs the SDK.
#![cfg_attr(not(feature = "aws"), allow(dead_code, unused_imports))]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
#[cfg(feature = "aws")]
use aws_credential_types::Credentials;
#[cfg(feature = "aws")]
use aws_sdk_sts::config::retry::RetryConfig;
#[cfg(feature = "aws")]
use aws_sdk_sts::config::timeout::TimeoutConfig;
#[cfg(feature = "aws")]
use aws_sdk_sts::config::{BehaviorVersion, Region};
#[cfg(feature = "aws")]
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::detect::Role;
use crate::finding::{Class, Credential, State, Verification};

const CANARY_ACCOUNTS: &str = include_str!("../../data/canary-accounts.txt");

/// The canary-token accounts of `data/canary-accounts.txt`.
pub fn canary_accounts() -> HashSet<&'static str> {
    CANARY_ACCOUNTS
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

pub struct VerifyOptions {
    /// Calls in flight at most.
    pub concurrency: usize,
    /// Call canary keys too (they alert whoever planted them).
    pub canaries: bool,
    /// Only call keys whose account is one of these.
    pub accounts: Option<Vec<String>>,
    /// Connect timeout, and the whole call's timeout (retries included).
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Attempts per call (the SDK's standard retry: exponential backoff with jitter on
    /// throttling, 5xx and transient network errors).
    pub attempts: u32,
    /// First retry delay (the SDK doubles it per attempt, with jitter).
    pub initial_backoff: Duration,
    /// STS may refuse a second secret for the same key id for a few seconds: a
    /// SignatureDoesNotMatch is checked once more after this delay.
    pub recheck_delay: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            concurrency: 8,
            canaries: false,
            accounts: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            attempts: 5,
            initial_backoff: Duration::from_secs(1),
            recheck_delay: Duration::from_secs(6),
        }
    }
}

/// The endpoint override, as the SDKs read it: `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`.
fn endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn skipped(reason: &str) -> Verification {
    Verification {
        state: State::Skipped,
        reason: Some(reason.to_string()),
        ..Verification::default()
    }
}

/// Decides, offline, what to do with each credential: `Some(verification)` when settled without
/// a call, `None` when it is to be called.
fn plan(c: &Credential, opts: &VerifyOptions, canaries: &HashSet<&str>) -> Option<Verification> {
    let id = c.part(Role::KeyId)?;
    if c.class == Class::Example {
        return Some(skipped("example"));
    }
    if c.part(Role::Secret).is_none() {
        return Some(skipped("no secret"));
    }
    if let Some(a) = c.account_id.as_deref().filter(|a| canaries.contains(a)) {
        if !opts.canaries {
            return Some(Verification {
                state: State::Canary,
                account: Some(a.to_string()),
                reason: Some("canary-token account: calling would alert its owner".into()),
                ..Verification::default()
            });
        }
    }
    if let Some(allowed) = &opts.accounts {
        match &c.account_id {
            Some(a) if allowed.contains(a) => {}
            Some(a) => return Some(skipped(&format!("account {a} not in --verify-accounts"))),
            None => {
                return Some(skipped(&format!(
                    "the account of {}… cannot be decoded offline (--verify-accounts)",
                    &id[..4.min(id.len())]
                )))
            }
        }
    }
    None
}

#[cfg(not(feature = "aws"))]
pub fn verify(_: &mut [Credential], _: &VerifyOptions) -> Result<Vec<String>> {
    Err(super::unavailable("--verify (STS calls)"))
}

#[cfg(feature = "aws")]
/// Verifies every AWS key pair among `creds`, filling `verification`; returns warnings.
pub fn verify(creds: &mut [Credential], opts: &VerifyOptions) -> Result<Vec<String>> {
    let canaries = canary_accounts();
    let mut warnings = Vec::new();
    let mut jobs = Vec::new();
    for (i, c) in creds.iter_mut().enumerate() {
        if c.part(Role::KeyId).is_none() {
            continue; // not an AWS key: nothing to verify
        }
        match plan(c, opts, &canaries) {
            Some(v) => c.verification = Some(v),
            None => {
                if c.account_id
                    .as_deref()
                    .is_some_and(|a| canaries.contains(a))
                {
                    warnings.push(format!(
                        "calling STS with canary-token key {}: its owner will be alerted",
                        crate::report::redact(Role::KeyId, c.part(Role::KeyId).unwrap())
                    ));
                }
                jobs.push((
                    i,
                    c.part(Role::KeyId).unwrap().to_string(),
                    c.part(Role::Secret).unwrap().to_string(),
                    c.part(Role::SessionToken).map(str::to_string),
                ));
            }
        }
    }
    if jobs.is_empty() {
        return Ok(warnings);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = {
        let mut b = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.attempts)
                    .with_initial_backoff(opts.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .operation_timeout(opts.timeout)
                    .build(),
            );
        if let Some(e) = endpoint() {
            b = b.endpoint_url(e);
        }
        b
    };
    let results = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
        let mut handles = Vec::with_capacity(jobs.len());
        for (i, id, secret, token) in jobs {
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            let conf = base
                .clone()
                .credentials_provider(Credentials::new(id, secret, token, None, "keyhound"))
                .build();
            let delay = opts.recheck_delay;
            handles.push(tokio::spawn(async move {
                let client = aws_sdk_sts::Client::from_conf(conf);
                let mut v = call(&client).await;
                if v.state == State::WrongSecret {
                    // Possibly STS's short refusal of a second secret for one id: ask again.
                    tokio::time::sleep(delay).await;
                    v = call(&client).await;
                }
                drop(permit);
                (i, v)
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(r) = h.await {
                out.push(r);
            }
        }
        out
    });
    for (i, v) in results {
        creds[i].verification = Some(v);
    }
    Ok(warnings)
}

#[cfg(feature = "aws")]
async fn call(client: &aws_sdk_sts::Client) -> Verification {
    match client.get_caller_identity().send().await {
        Ok(o) => Verification {
            state: State::Live,
            account: o.account,
            arn: o.arn,
            user_id: o.user_id,
            reason: None,
        },
        Err(e) => classify(&e),
    }
}

#[cfg(feature = "aws")]
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
) -> Verification {
    let unknown = |reason: String| Verification {
        state: State::Unknown,
        reason: Some(reason),
        ..Verification::default()
    };
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se
                .err()
                .code()
                .map(str::to_string)
                .or_else(|| se.raw().body().bytes().and_then(code_from_body));
            let state = match code.as_deref() {
                Some("InvalidClientTokenId") => State::Invalid,
                Some("SignatureDoesNotMatch") => State::WrongSecret,
                Some("ExpiredToken") => State::Expired,
                Some(c) => return unknown(format!("STS answered {c} (HTTP {status})")),
                None => return unknown(format!("STS answered HTTP {status} with no error code")),
            };
            Verification {
                state,
                reason: code,
                ..Verification::default()
            }
        }
        SdkError::TimeoutError(_) => unknown("timed out".into()),
        SdkError::DispatchFailure(d) => unknown(format!("could not reach STS: {d:?}")),
        SdkError::ResponseError(_) => unknown("unreadable answer from STS".into()),
        other => unknown(other.to_string()),
    }
}

/// `<Code>…</Code>` of an AWS query-protocol error body.
fn code_from_body(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let start = s.find("<Code>")? + "<Code>".len();
    let end = s[start..].find("</Code>")? + start;
    Some(s[start..end].trim().to_string()).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_list_is_loaded() {
        let c = canary_accounts();
        assert_eq!(c.len(), 26);
        assert!(c
            .iter()
            .all(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())));
        assert!(c.contains("052310077262") && c.contains("982842642351"));
    }

    #[test]
    fn error_code_from_an_xml_body() {
        let body = b"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code></Error></ErrorResponse>";
        assert_eq!(code_from_body(body).as_deref(), Some("ExpiredToken"));
        assert_eq!(code_from_body(b"<html>403</html>"), None);
    }
}
