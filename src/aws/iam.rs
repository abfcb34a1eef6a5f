//! The operator's own AWS access, for `--owners`, `audit`, `remediate` and `--notify-sns`:
//! credentials from the SDK's default chain (environment, profiles, SSO, instance role) or
//! `--profile`, the endpoint from `AWS_ENDPOINT_URL(_IAM/_STS/_SNS)` as every SDK reads it, and
//! with `--assume-role NAME` one `arn:aws:iam::{account}:role/NAME` session per member account
//! (aws-config's AssumeRoleProvider, which also refreshes it). Found keys never sign anything
//! here: they are only looked up.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::collections::HashMap;

#[cfg(feature = "aws")]
use anyhow::Context;
use anyhow::Result;
#[cfg(feature = "aws")]
use aws_config::{BehaviorVersion, Region, SdkConfig};
#[cfg(feature = "aws")]
use aws_credential_types::provider::ProvideCredentials;
#[cfg(feature = "aws")]
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
#[cfg(feature = "aws")]
use aws_sdk_iam::types::StatusType;

use super::actions::LastUsed;

/// How to reach AWS as the operator.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub profile: Option<String>,
    /// Role name assumed in every account other than the operator's.
    pub assume_role: Option<String>,
}

/// Why an account's IAM cannot be asked.
#[derive(Clone, Debug)]
pub enum Unreachable {
    /// Not the operator's account and no `--assume-role`: not ours to act on.
    Foreign,
    /// The role could not be assumed (the message says why).
    Failed(String),
}

#[cfg(feature = "aws")]
pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub base: SdkConfig,
    pub operator_account: String,
    pub operator_arn: String,
    pub access: Access,
    configs: tokio::sync::Mutex<HashMap<String, Result<SdkConfig, Unreachable>>>,
}

/// A build without the `aws` feature has no session: `open` says so, and nothing can hold one
/// (every function that takes a session is unreachable there).
#[cfg(not(feature = "aws"))]
pub struct Session {
    pub operator_account: String,
    pub operator_arn: String,
    never: std::convert::Infallible,
}

#[cfg(not(feature = "aws"))]
impl Session {
    pub fn open(_: Access) -> Result<Session> {
        Err(super::unavailable("AWS calls"))
    }

    pub fn never(&self) -> ! {
        match self.never {}
    }
}

#[cfg(feature = "aws")]
/// `code: message` of an SDK error, or its whole chain when the service said nothing.
pub fn describe<E>(e: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), e.message(), e.raw_response()) {
        (Some(c), Some(m), _) => format!("{c}: {m}"),
        (Some(c), None, _) => c.to_string(),
        // An answer without an AWS error document (a proxy, an outage, an emulator's crash).
        (None, _, Some(r)) => format!("HTTP {} without an AWS error code", r.status().as_u16()),
        _ => format!("{}", aws_sdk_iam::error::DisplayErrorContext(e)),
    }
}

#[cfg(feature = "aws")]
impl Session {
    /// Loads the operator's configuration and asks STS who the operator is.
    pub fn open(access: Access) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (base, arn, account) = rt.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(p) = &access.profile {
                loader = loader.profile_name(p);
            }
            let mut base = loader.load().await;
            if base.region().is_none() {
                // IAM is global; STS and SNS still want a region to sign for.
                base = base
                    .into_builder()
                    .region(Region::from_static("us-east-1"))
                    .build();
            }
            let me = aws_sdk_sts::Client::new(&base)
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe(&e)))
                .context(
                    "cannot reach AWS with the operator's credentials (environment, profile, SSO \
                     or instance role; --profile NAME)",
                )?;
            anyhow::Ok((
                base,
                me.arn().unwrap_or_default().to_string(),
                me.account().unwrap_or_default().to_string(),
            ))
        })?;
        Ok(Session {
            rt,
            base,
            operator_account: account,
            operator_arn: arn,
            access,
            configs: Default::default(),
        })
    }

    /// The IAM client for `account`: the operator's own, or through the assumed role.
    pub async fn iam(&self, account: &str) -> Result<aws_sdk_iam::Client, Unreachable> {
        Ok(aws_sdk_iam::Client::new(&self.config(account).await?))
    }

    /// The SDK configuration for `account`: the operator's own, or with the credentials of
    /// `arn:aws:iam::{account}:role/{--assume-role}` (assumed once, refreshed by the SDK).
    pub async fn config(&self, account: &str) -> Result<SdkConfig, Unreachable> {
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(account) {
            return c.clone();
        }
        let c = self.connect(account).await;
        configs.insert(account.to_string(), c.clone());
        c
    }

    async fn connect(&self, account: &str) -> Result<SdkConfig, Unreachable> {
        if account == self.operator_account {
            return Ok(self.base.clone());
        }
        let Some(role) = &self.access.assume_role else {
            return Err(Unreachable::Foreign);
        };
        let arn = format!("arn:aws:iam::{account}:role/{role}");
        let provider = aws_config::sts::AssumeRoleProvider::builder(&arn)
            .session_name("keyhound")
            .configure(&self.base)
            .build()
            .await;
        // Assume now, so that a refused role is one clear message for the account.
        if let Err(e) = provider.provide_credentials().await {
            return Err(Unreachable::Failed(format!(
                "cannot assume {arn}: {}",
                aws_sdk_iam::error::DisplayErrorContext(&e)
            )));
        }
        Ok(self
            .base
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build())
    }

    /// The SNS client for a topic's region.
    pub fn sns(&self, region: Option<&str>) -> aws_sdk_sns::Client {
        let mut b = aws_sdk_sns::config::Builder::from(&self.base);
        if let Some(r) = region {
            b = b.region(Region::new(r.to_string()));
        }
        aws_sdk_sns::Client::from_conf(b.build())
    }
}

/// What IAM says of one user.
#[derive(Clone, Debug, Default)]
pub struct UserFacts {
    pub arn: Option<String>,
    pub tags: Vec<(String, String)>,
    /// `None` when it could not be read.
    pub has_password: Option<bool>,
    /// (key id, status, created RFC 3339)
    pub keys: Vec<(String, String, Option<String>)>,
}

impl UserFacts {
    pub fn active_keys(&self) -> u32 {
        self.keys.iter().filter(|k| k.1 == "Active").count() as u32
    }

    /// The first tag among `keys` (in their order) that is set.
    pub fn owner(&self, keys: &[String]) -> Option<String> {
        keys.iter().find_map(|k| {
            self.tags
                .iter()
                .find(|(t, v)| t == k && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        })
    }
}

#[cfg(feature = "aws")]
pub fn rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()
}

#[cfg(feature = "aws")]
/// `GetAccessKeyLastUsed`: the key's user and its last use. Read before any STS call with the
/// key, which would itself count as a use.
pub async fn last_used(
    iam: &aws_sdk_iam::Client,
    key_id: &str,
) -> Result<(Option<String>, LastUsed), String> {
    let out = iam
        .get_access_key_last_used()
        .access_key_id(key_id)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let lu = out.access_key_last_used();
    let known = |s: &str| (!s.is_empty() && s != "N/A").then(|| s.to_string());
    Ok((
        out.user_name().map(str::to_string),
        LastUsed {
            date: lu.and_then(|l| l.last_used_date()).and_then(rfc3339),
            service: lu.and_then(|l| known(l.service_name())),
            region: lu.and_then(|l| known(l.region())),
        },
    ))
}

#[cfg(feature = "aws")]
/// `ListAccessKeys`, `ListUserTags` (all pages, through the SDK's paginators) and
/// `GetLoginProfile` for one user.
pub async fn user_facts(iam: &aws_sdk_iam::Client, user: &str) -> Result<UserFacts, String> {
    let mut facts = UserFacts::default();
    let keys = iam
        .list_access_keys()
        .user_name(user)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| describe(&e))?;
    for k in keys {
        facts.keys.push((
            k.access_key_id().unwrap_or_default().to_string(),
            match k.status() {
                Some(StatusType::Active) => "Active".to_string(),
                Some(s) => s.as_str().to_string(),
                None => "Unknown".to_string(),
            },
            k.create_date().and_then(rfc3339),
        ));
    }
    let tags = iam
        .list_user_tags()
        .user_name(user)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| describe(&e))?;
    facts.tags = tags
        .into_iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    facts.has_password = match iam.get_login_profile().user_name(user).send().await {
        Ok(_) => Some(true),
        Err(e) if e.code() == Some("NoSuchEntity") => Some(false),
        Err(_) => None,
    };
    Ok(facts)
}

/// Runs `f` over `items` with at most `limit` in flight (IAM throttles bursts).
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(items.into_iter().map(f))
        .buffered(limit.max(1))
        .collect()
        .await
}
