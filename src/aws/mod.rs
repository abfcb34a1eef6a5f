//! Enrichment: what keyhound can say about a found credential beyond where it is. Offline
//! facts, STS verification, IAM owners and audit, the action decision and remediation.

pub mod actions;
pub mod audit;
pub mod directory;
pub mod iam;
pub mod notify;
pub mod offline;
pub mod org;
pub mod owners;
pub mod remediate;
pub mod verify;

use crate::detect::Role;
use crate::finding::{Class, Credential};

/// The error of an AWS command or flag in a build without the `aws` feature
/// (`cargo install --no-default-features`): what needs it and how to get a build that has it.
pub fn unavailable(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} need the AWS SDK, which this keyhound was built without (cargo's \
         --no-default-features); install the default build: `pip install keyhound`, a release \
         binary, or `cargo install keyhound`"
    )
}

/// Offline enrichment: example/placeholder class and the account id decoded from the key id.
pub fn enrich_offline(creds: &mut [Credential]) {
    for c in creds {
        c.class = if offline::is_example_credential(c.parts.iter().map(|(_, v)| v.as_str())) {
            Class::Example
        } else {
            Class::Secret
        };
        c.account_id = c.part(Role::KeyId).and_then(offline::account_id);
    }
}

/// The records of a CSV file with a header row, each as (column, value) pairs in column order
/// (rows may be shorter or longer than the header: exports are not always tidy).
pub(crate) fn csv_records(text: &[u8]) -> Result<Vec<Vec<(String, String)>>, csv::Error> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let headers: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            Ok(headers
                .iter()
                .cloned()
                .zip(rec?.iter().map(str::to_string))
                .collect())
        })
        .collect()
}
