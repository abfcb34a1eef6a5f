//! `keyhound audit`: the action report of whole accounts, from IAM, without scanning.

use std::io::Write;

use anyhow::Result;

use crate::pipeline::{
    action_report, deliver, load_directory, record_options, ActionPlan, EXIT_CLEAN, EXIT_ERROR,
    EXIT_FOUND,
};
use crate::report;

/// `keyhound audit`: the action report of whole accounts.
pub fn run(
    accounts: Vec<String>,
    organization: bool,
    a: ActionPlan,
    wait: std::time::Duration,
    plan: crate::report::PlanId,
) -> Result<u8> {
    let session = crate::aws::iam::Session::open(a.access.clone())?;
    let directory = load_directory(&a)?;
    let accounts = if organization {
        crate::aws::org::accounts(&session)?
    } else if accounts.is_empty() {
        vec![session.operator_account.clone()]
    } else {
        accounts
    };
    // A part of a sharded audit: the accounts whose id hashes to this shard.
    let total = accounts.len();
    let accounts: Vec<String> = match plan.shard {
        Some(s) => accounts
            .into_iter()
            .filter(|a| s.owns(a.as_bytes()))
            .collect(),
        None => accounts,
    };
    if let Some(s) = plan.shard {
        eprintln!(
            "keyhound: shard {}: {} of {total} accounts",
            s.label(),
            accounts.len()
        );
    }
    let (mut rows, failed) = crate::aws::audit::audit(
        &session,
        &accounts,
        &record_options(&a, directory.as_ref()),
        wait,
    );
    // Rows by account id (each account's in IAM's order), however the accounts were listed: the
    // order a sharded audit's merge gives too.
    rows.sort_by(|x, y| x.account.cmp(&y.account));
    for (acct, e) in &failed {
        eprintln!("keyhound: error: account {acct}: {e}");
    }
    let report = action_report("audit", Some(&session), &a, rows, failed, &plan);
    let audited = accounts.len() - report.accounts_failed.len();
    let line = format!(
        "{} keys in {audited} account{}",
        report.keys.len(),
        if audited == 1 { "" } else { "s" }
    );
    conclude(&report, Some(&session), &a, &line, false)
}

/// An action report written (`--report`, else Markdown on standard output) and sent; the exit
/// status: 2 when an account (or, `failed`, anything else) could not be read or a message not
/// sent, 1 when a key needs action, else 0. Shared with `merge`.
pub(crate) fn conclude(
    report: &report::actions::ActionReport,
    session: Option<&crate::aws::iam::Session>,
    a: &ActionPlan,
    line: &str,
    failed: bool,
) -> Result<u8> {
    let sent = deliver(report, session, a)?;
    let mut out = std::io::stdout().lock();
    if a.reports.is_empty() {
        report::actions::markdown(report, &mut out)?;
    } else {
        writeln!(out, "{line}: {}", report.counts())?;
    }
    Ok(if failed || !report.accounts_failed.is_empty() || !sent {
        EXIT_ERROR
    } else if report
        .keys
        .iter()
        .any(|k| k.action != crate::aws::actions::Action::None)
    {
        EXIT_FOUND
    } else {
        EXIT_CLEAN
    })
}
