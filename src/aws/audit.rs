//! `keyhound audit`: every access key of every account in reach, without scanning anything.
//! Per account: the IAM credential report (generated, polled, parsed as CSV) lists the users,
//! whether each has a password and the root user's keys; `ListAccessKeys`, `ListUserTags`,
//! `GetAccessKeyLastUsed` give each key's id, status, owner and last use;
//! `GetAccountSummary` says whether the root user has keys. Rows go through the same decision
//! table as found keys.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::collections::HashMap;
use std::time::Duration;

use super::actions::{self, KeyRecord, LastUsed};
use super::iam::{self, Session, Unreachable};
use super::owners::{describe_key, RecordOptions};

/// One row of the credential report, by column name.
pub type ReportRow = HashMap<String, String>;

/// Parses the credential report (CSV with a header row).
pub fn parse_report(csv_text: &[u8]) -> Result<Vec<ReportRow>, String> {
    let rows = super::csv_records(csv_text).map_err(|e| e.to_string())?;
    Ok(rows.into_iter().map(|r| r.into_iter().collect()).collect())
}

/// A credential-report value that carries information (`N/A`, `no_information`, `not_supported`
/// and empty cells do not).
fn value<'a>(row: &'a ReportRow, col: &str) -> Option<&'a str> {
    row.get(col)
        .map(String::as_str)
        .filter(|v| !matches!(*v, "" | "N/A" | "no_information" | "not_supported"))
}

/// Rows for the root user's active keys, from the report's `<root_account>` row (their ids are
/// not in any API a non-root caller may use).
pub fn root_rows(row: &ReportRow, account: &str, opts: &RecordOptions) -> Vec<KeyRecord> {
    let mut out = Vec::new();
    for n in ["1", "2"] {
        if value(row, &format!("access_key_{n}_active")) != Some("true") {
            continue;
        }
        let created = value(row, &format!("access_key_{n}_last_rotated")).map(str::to_string);
        let used = value(row, &format!("access_key_{n}_last_used_date")).map(str::to_string);
        let mut r = KeyRecord {
            account: Some(account.to_string()),
            user: Some("<root_account>".into()),
            arn: value(row, "arn").map(str::to_string),
            root: true,
            status: Some("Active".into()),
            age_days: created
                .as_deref()
                .and_then(|c| actions::days_between(c, opts.now)),
            days_unused: used
                .as_deref()
                .or(created.as_deref())
                .and_then(|c| actions::days_between(c, opts.now)),
            created,
            last_used: Some(LastUsed {
                date: used,
                service: value(row, &format!("access_key_{n}_last_used_service"))
                    .map(str::to_string),
                region: value(row, &format!("access_key_{n}_last_used_region")).map(str::to_string),
            }),
            ..KeyRecord::default()
        };
        actions::apply(&mut r, &opts.policy, opts.profile);
        out.push(r);
    }
    out
}

#[cfg(not(feature = "aws"))]
pub fn audit(
    session: &Session,
    _: &[String],
    _: &RecordOptions,
    _: Duration,
) -> (Vec<KeyRecord>, Vec<(String, String)>) {
    session.never()
}

#[cfg(feature = "aws")]
/// Audits each account; returns the rows and, per account that failed, why.
pub fn audit(
    session: &Session,
    accounts: &[String],
    opts: &RecordOptions,
    poll: Duration,
) -> (Vec<KeyRecord>, Vec<(String, String)>) {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for account in accounts {
        match session.rt.block_on(one(session, account, opts, poll)) {
            Ok(r) => rows.extend(r),
            Err(e) => failed.push((account.clone(), e)),
        }
    }
    (rows, failed)
}

#[cfg(feature = "aws")]
async fn one(
    session: &Session,
    account: &str,
    opts: &RecordOptions<'_>,
    poll: Duration,
) -> Result<Vec<KeyRecord>, String> {
    let client = match session.iam(account).await {
        Ok(c) => c,
        Err(Unreachable::Foreign) => {
            return Err(format!(
                "not the operator's account ({}); pass --assume-role NAME to reach it",
                session.operator_account
            ))
        }
        Err(Unreachable::Failed(e)) => return Err(e),
    };
    let report = credential_report(&client, poll).await?;
    let table = parse_report(&report).map_err(|e| format!("credential report: {e}"))?;
    let mut out = Vec::new();
    let mut root_seen = false;
    let mut users = Vec::new();
    for row in &table {
        match row.get("user").map(String::as_str) {
            Some("<root_account>") => {
                root_seen = true;
                out.extend(root_rows(row, account, opts));
            }
            Some(u) => users.push((u.to_string(), row)),
            None => {}
        }
    }
    // The account summary says whether root has keys even when the report lacks its row.
    if !root_seen {
        let summary = client
            .get_account_summary()
            .send()
            .await
            .map_err(|e| format!("GetAccountSummary: {}", iam::describe(&e)))?;
        let present = summary
            .summary_map()
            .and_then(|m| m.get(&aws_sdk_iam::types::SummaryKeyType::AccountAccessKeysPresent))
            .copied()
            .unwrap_or(0);
        if present > 0 {
            let mut r = KeyRecord {
                account: Some(account.to_string()),
                user: Some("<root_account>".into()),
                root: true,
                status: Some("Active".into()),
                ..KeyRecord::default()
            };
            actions::apply(&mut r, &opts.policy, opts.profile);
            out.push(r);
        }
    }
    let client = &client;
    let per_user = iam::bounded(users, 8, |(user, row)| async move {
        let facts = iam::user_facts(client, &user).await;
        let mut used = Vec::new();
        if let Ok(f) = &facts {
            for (id, _, _) in &f.keys {
                used.push(iam::last_used(client, id).await.map(|x| x.1));
            }
        }
        (user, row, facts, used)
    })
    .await;
    for (user, row, facts, used) in per_user {
        let base = KeyRecord {
            account: Some(account.to_string()),
            user: Some(user.clone()),
            arn: value(row, "arn").map(str::to_string),
            ..KeyRecord::default()
        };
        // One user that cannot be read is a row saying so; the others go on.
        let mut facts = match facts {
            Ok(f) => f,
            Err(e) => {
                let mut r = base;
                r.lookup_error = Some(e);
                actions::apply(&mut r, &opts.policy, opts.profile);
                out.push(r);
                continue;
            }
        };
        facts.arn = value(row, "arn").map(str::to_string);
        // The report knows about passwords without one GetLoginProfile per user.
        if let Some(p) = value(row, "password_enabled") {
            facts.has_password = Some(p == "true");
        }
        if facts.keys.is_empty() {
            let mut r = base.clone();
            describe_key(&mut r, &facts, opts);
            actions::apply(&mut r, &opts.policy, opts.profile);
            if r.action != actions::Action::None {
                out.push(r);
            }
            continue;
        }
        for ((id, _, _), lu) in facts.keys.iter().zip(used) {
            let mut r = base.clone();
            r.key_id = Some(id.clone());
            match lu {
                Ok(l) => r.last_used = Some(l),
                Err(e) => r.lookup_error = Some(format!("GetAccessKeyLastUsed: {e}")),
            }
            describe_key(&mut r, &facts, opts);
            actions::apply(&mut r, &opts.policy, opts.profile);
            out.push(r);
        }
    }
    Ok(out)
}

/// Generates the credential report and waits for it (IAM builds it asynchronously; a report
/// less than four hours old is reused).
#[cfg(feature = "aws")]
async fn credential_report(
    client: &aws_sdk_iam::Client,
    poll: Duration,
) -> Result<Vec<u8>, String> {
    let deadline = std::time::Instant::now() + poll;
    let mut wait = Duration::from_millis(200);
    loop {
        let g = client
            .generate_credential_report()
            .send()
            .await
            .map_err(|e| format!("GenerateCredentialReport: {}", iam::describe(&e)))?;
        if g.state() == Some(&aws_sdk_iam::types::ReportStateType::Complete) {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "the credential report was not ready after {} s",
                poll.as_secs()
            ));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    let r = client
        .get_credential_report()
        .send()
        .await
        .map_err(|e| format!("GetCredentialReport: {}", iam::describe(&e)))?;
    Ok(r.content().map(|b| b.as_ref().to_vec()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::actions::{Action, Policy};

    /// The header and root row as AWS writes them (documented format).
    const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n\
<root_account>,arn:aws:iam::123456789012:root,2019-01-01T00:00:00+00:00,not_supported,2026-11-01T00:00:00+00:00,not_supported,not_supported,true,true,2020-02-01T00:00:00+00:00,2026-11-20T00:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
bob,arn:aws:iam::123456789012:user/bob,2024-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2024-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n";

    #[test]
    fn root_keys_from_the_credential_report() {
        let rows = parse_report(REPORT.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["password_enabled"], "false");
        let opts = RecordOptions {
            owner_tags: &[],
            directory: None,
            policy: Policy::default(),
            profile: None,
            now: "2026-11-21T00:00:00Z".parse().unwrap(),
        };
        let roots = root_rows(&rows[0], "123456789012", &opts);
        assert_eq!(roots.len(), 1, "one active root key");
        let r = &roots[0];
        assert!(r.root);
        assert_eq!(r.action, Action::DeleteRootKey);
        assert_eq!(r.days_unused, Some(1));
        assert_eq!(r.last_used.as_ref().unwrap().service.as_deref(), Some("s3"));
        assert!(r.age_days.unwrap() > 2000);
        assert_eq!(value(&rows[1], "access_key_1_last_used_date"), None);
    }
}
