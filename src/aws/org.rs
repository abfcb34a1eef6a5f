//! `--organization`: the member accounts of the operator's AWS Organization (ListAccounts, from
//! the management account or a delegated administrator), each then reached with
//! `--assume-role`.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use anyhow::Result;
#[cfg(feature = "aws")]
use anyhow::{anyhow, Context};

#[cfg(feature = "aws")]
use super::iam::describe;
use super::iam::Session;

#[cfg(not(feature = "aws"))]
pub fn accounts(session: &Session) -> Result<Vec<String>> {
    session.never()
}

#[cfg(feature = "aws")]
/// The ids of the organization's active accounts, sorted.
pub fn accounts(session: &Session) -> Result<Vec<String>> {
    session.rt.block_on(async {
        let client = aws_sdk_organizations::Client::new(&session.base);
        let mut out = Vec::new();
        let mut pages = client.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| anyhow!(describe(&e)))
                .context("Organizations ListAccounts (run from the management account or a delegated administrator)")?;
            for a in page.accounts() {
                let active = a
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| a.status().map(|s| s.as_str() == "ACTIVE"))
                    .unwrap_or(true);
                if let (Some(id), true) = (a.id(), active) {
                    out.push(id.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    })
}
