//! `--notify-sns TOPIC_ARN`: one SNS message per owner with that owner's part of the action
//! report (the Markdown section, readable as plain text in an email). The owner is also a
//! message attribute, so subscriptions can filter on it. Keys that need nothing are left out.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use anyhow::Result;
#[cfg(feature = "aws")]
use aws_sdk_sns::types::MessageAttributeValue;

use super::actions::Action;
use super::iam::Session;
use crate::report::actions::{markdown_owner, ActionReport};

/// The region of `arn:aws:sns:REGION:ACCOUNT:NAME`.
fn topic_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Publishes; returns the number of messages sent and one warning per failure.
#[cfg(not(feature = "aws"))]
pub fn publish(session: &Session, _: &str, _: &ActionReport) -> (usize, Vec<String>) {
    session.never()
}

#[cfg(feature = "aws")]
pub fn publish(session: &Session, topic: &str, report: &ActionReport) -> (usize, Vec<String>) {
    let client = session.sns(topic_region(topic));
    let mut sent = 0;
    let mut warnings = Vec::new();
    for (owner, keys) in report.by_owner() {
        let keys: Vec<_> = keys
            .into_iter()
            .filter(|k| k.action != Action::None)
            .collect();
        if keys.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        if let Err(e) = markdown_owner(&owner, &keys, &mut body) {
            warnings.push(format!("SNS message for {owner}: {e}"));
            continue;
        }
        let urgent = keys.iter().map(|k| k.action).min().unwrap_or(Action::None);
        // SNS subjects: ASCII, at most 100 characters.
        let subject: String = format!(
            "keyhound: {} AWS key{} to act on ({})",
            keys.len(),
            if keys.len() == 1 { "" } else { "s" },
            urgent.label()
        )
        .chars()
        .filter(char::is_ascii)
        .take(100)
        .collect();
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&owner)
            .build();
        let r = session.rt.block_on(
            client
                .publish()
                .topic_arn(topic)
                .subject(subject)
                .message(String::from_utf8_lossy(&body))
                .set_message_attributes(attr.ok().map(|a| [("owner".to_string(), a)].into()))
                .send(),
        );
        match r {
            Ok(_) => sent += 1,
            Err(e) => warnings.push(format!(
                "SNS publish to {topic} for {owner}: {}",
                aws_sdk_sns::error::DisplayErrorContext(&e)
            )),
        }
    }
    (sent, warnings)
}

pub fn run(session: &Session, topic: &str, report: &ActionReport) -> Result<bool> {
    let (sent, warnings) = publish(session, topic, report);
    for w in &warnings {
        eprintln!("keyhound: warning: {w}");
    }
    eprintln!(
        "keyhound: published {sent} message{} to {topic}",
        if sent == 1 { "" } else { "s" }
    );
    Ok(warnings.is_empty())
}
