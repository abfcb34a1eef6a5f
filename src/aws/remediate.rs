//! `keyhound remediate PLAN.json [--apply] [--delete]`: carries out an action report. A dry run
//! (the default) prints each call it would make. `--apply` sets the keys whose action
//! deactivates (DEACTIVATE NOW, DEACTIVATE (owner left), DEACTIVATE THEN DELETE) Inactive with
//! `UpdateAccessKey`; `--delete` also deletes those whose action is a deletion (DELETE,
//! DEACTIVATE THEN DELETE). Each key's current state is read first (`ListAccessKeys`), so a
//! second run is a no-op. Every call and its result is appended to a JSONL audit log. One
//! key's failure does not stop the others. Root keys and REMOVE USER stay manual: their
//! commands are in the report.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
#[cfg(feature = "aws")]
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
#[cfg(feature = "aws")]
use aws_sdk_iam::types::StatusType;
use serde_json::json;

use super::actions::KeyRecord;
use super::iam::{self, Session, Unreachable};
use crate::report::actions::{key_label, ActionReport};

pub struct Options {
    pub apply: bool,
    pub delete: bool,
}

/// What one key needs: `Inactive`, deletion, or both.
fn wanted(k: &KeyRecord, o: &Options) -> (bool, bool) {
    (k.action.deactivates(), o.delete && k.action.deletes())
}

struct Log {
    file: std::fs::File,
}

impl Log {
    fn open(path: &Path) -> Result<Log> {
        Ok(Log {
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open audit log {}", path.display()))?,
        })
    }

    #[cfg(feature = "aws")]
    /// The call's answer; a failure is logged and becomes this key's error.
    fn checked<T, E>(&mut self, k: &KeyRecord, call: &str, r: Result<T, SdkError<E>>) -> Result<T>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        r.or_else(|e| {
            let e = iam::describe(&e);
            self.call(k, call, "error", &e)?;
            anyhow::bail!("{call}: {e}")
        })
    }

    fn call(&mut self, k: &KeyRecord, call: &str, result: &str, detail: &str) -> Result<()> {
        let line = json!({
            "time": jiff::Timestamp::now().to_string(),
            "account": k.account,
            "user": k.user,
            "key_id": k.key_id,
            "action": k.action,
            "call": call,
            "result": result,
            "detail": detail,
        });
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        Ok(())
    }
}

/// Returns the exit code: 0 when every planned call succeeded or had nothing to do, 2 if any
/// failed.
pub fn run(
    plan: &ActionReport,
    session: Option<&Session>,
    opts: &Options,
    log_path: &Path,
) -> Result<u8> {
    let mut errors = 0;
    let mut log = match opts.apply {
        true => Some(Log::open(log_path)?),
        false => None,
    };
    let mut planned = 0;
    for k in &plan.keys {
        let (deactivate, delete) = wanted(k, opts);
        if !deactivate && !delete {
            continue;
        }
        let label = key_label(k);
        let (Some(id), Some(user)) = (&k.key_id, &k.user) else {
            println!("skip  {label}: no key id or user in the plan");
            continue;
        };
        if k.root {
            println!("skip  {label}: a root key can only be changed by the root user (see the report's commands)");
            continue;
        }
        planned += 1;
        let acct = k.account.as_deref().unwrap_or("?");
        let (Some(session), Some(log)) = (session, log.as_mut()) else {
            if deactivate {
                println!("would UpdateAccessKey UserName={user} AccessKeyId={id} Status=Inactive (account {acct}; {})", k.action.label());
            }
            if delete {
                println!(
                    "would DeleteAccessKey UserName={user} AccessKeyId={id} (account {acct}; {})",
                    k.action.label()
                );
            }
            continue;
        };
        #[cfg(not(feature = "aws"))]
        {
            let _ = (log, &mut errors);
            session.never()
        }
        #[cfg(feature = "aws")]
        {
            let account = k
                .account
                .clone()
                .unwrap_or_else(|| session.operator_account.clone());
            let r = session
                .rt
                .block_on(one(session, &account, k, id, user, deactivate, delete, log));
            if let Err(e) = r {
                errors += 1;
                eprintln!("keyhound: error: {label} (user {user}, account {account}): {e}");
            }
        }
    }
    if !opts.apply {
        println!(
            "dry run: {planned} key{} to change; nothing was changed (pass --apply)",
            if planned == 1 { "" } else { "s" }
        );
    }
    Ok(if errors > 0 { 2 } else { 0 })
}

#[cfg(feature = "aws")]
#[allow(clippy::too_many_arguments)]
async fn one(
    session: &Session,
    account: &str,
    k: &KeyRecord,
    id: &str,
    user: &str,
    deactivate: bool,
    delete: bool,
    log: &mut Log,
) -> Result<()> {
    let label = key_label(k);
    let client = match session.iam(account).await {
        Ok(c) => c,
        Err(Unreachable::Foreign) => {
            let e = format!("account {account} is not the operator's; pass --assume-role NAME");
            log.call(k, "AssumeRole", "error", &e)?;
            anyhow::bail!(e)
        }
        Err(Unreachable::Failed(e)) => {
            log.call(k, "AssumeRole", "error", &e)?;
            anyhow::bail!(e)
        }
    };
    // Where the key stands now: the run is idempotent. (One user has at most two keys: one
    // page.)
    let out = log.checked(
        k,
        "ListAccessKeys",
        client.list_access_keys().user_name(user).send().await,
    )?;
    let status = out
        .access_key_metadata()
        .iter()
        .find(|m| m.access_key_id() == Some(id))
        .map(|m| m.status().cloned());
    let shown = match &status {
        None => "absent",
        Some(st) => st.as_ref().map_or("unknown", |x| x.as_str()),
    };
    log.call(k, "ListAccessKeys", "ok", &format!("key is {shown}"))?;
    let Some(status) = status else {
        println!("done  {label}: already deleted");
        log.call(k, "none", "no-op", "the key no longer exists")?;
        return Ok(());
    };
    if deactivate {
        if status == Some(StatusType::Inactive) {
            println!("done  {label}: already Inactive");
            log.call(k, "UpdateAccessKey", "no-op", "already Inactive")?;
        } else {
            let r = client
                .update_access_key()
                .user_name(user)
                .access_key_id(id)
                .status(StatusType::Inactive)
                .send()
                .await;
            log.checked(k, "UpdateAccessKey", r)?;
            println!("apply {label}: UpdateAccessKey Status=Inactive (user {user})");
            log.call(k, "UpdateAccessKey", "ok", "Status=Inactive")?;
        }
    }
    if delete {
        let r = client
            .delete_access_key()
            .user_name(user)
            .access_key_id(id)
            .send()
            .await;
        log.checked(k, "DeleteAccessKey", r)?;
        println!("apply {label}: DeleteAccessKey (user {user})");
        log.call(k, "DeleteAccessKey", "ok", "")?;
    }
    Ok(())
}
