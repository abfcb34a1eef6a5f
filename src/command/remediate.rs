//! `keyhound remediate`: carries out a JSON action report (a dry run unless `--apply`).

use std::path::Path;

use anyhow::Result;

use crate::report;

/// `keyhound remediate PLAN.json`.
pub fn run(
    plan: &Path,
    access: crate::aws::iam::Access,
    opts: crate::aws::remediate::Options,
    log: &Path,
) -> Result<u8> {
    let report = report::actions::ActionReport::read(plan)?;
    // A dry run needs no credentials and makes no call.
    let session = if opts.apply {
        Some(crate::aws::iam::Session::open(access)?)
    } else {
        None
    };
    crate::aws::remediate::run(&report, session.as_ref(), &opts, log)
}
