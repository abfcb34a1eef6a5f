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
    let (rows, failed) = crate::aws::audit::audit(
        &session,
        &accounts,
        &record_options(&a, directory.as_ref()),
        wait,
    );
    for (acct, e) in &failed {
        eprintln!("keyhound: error: account {acct}: {e}");
    }
    let report = action_report("audit", Some(&session), &a, rows, failed);
    let sent = deliver(&report, Some(&session), &a)?;
    let mut out = std::io::stdout().lock();
    if a.reports.is_empty() {
        report::actions::markdown(&report, &mut out)?;
    } else {
        let audited = accounts.len() - report.accounts_failed.len();
        writeln!(
            out,
            "{} keys in {audited} account{}: {}",
            report.keys.len(),
            if audited == 1 { "" } else { "s" },
            report.counts()
        )?;
    }
    Ok(if !report.accounts_failed.is_empty() || !sent {
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
