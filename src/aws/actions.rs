//! The action decision: what to do with each AWS access key, from what the scan, STS and IAM
//! said of it. One table, first matching row wins (the README repeats it):
//!
//! | # | when                                                        | action                  |
//! |---|-------------------------------------------------------------|-------------------------|
//! | 1 | the key belongs to a canary-token account                   | INVESTIGATE             |
//! | 2 | exposed, and its account is not one we can act in           | REPORT                  |
//! | 3 | a root user's key (STS ARN ends in `:root`, or the account has root keys) | DELETE ROOT KEY |
//! | 4 | exposed and live (STS answered; or IAM says Active and its secret was found unverified) | DEACTIVATE NOW |
//! | 5 | exposed and Inactive in IAM                                 | DELETE                  |
//! | 6 | exposed and invalid (STS: no such key)                      | REMOVE FROM SOURCE      |
//! | 7 | Active, and its owner is not in `--directory`               | DEACTIVATE (owner left) |
//! | 8 | its user has no password and no Active key                  | REMOVE USER             |
//! | 9 | Inactive                                                    | DELETE                  |
//! | 10 | Active and unused for `--max-unused` days (never used: since creation) | DEACTIVATE THEN DELETE |
//! | 11 | Active and at least `--max-age` days old                   | ROTATE                  |
//! | 12 | exposed, nothing else known (no --verify, no --owners)      | REVIEW                  |
//! | 13 | otherwise                                                   | NONE                    |
//!
//! "Exposed" means the scan found the key. Every action carries the exact commands to run.

use serde::{Deserialize, Serialize};

/// What to do with a key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    DeactivateNow,
    DeleteRootKey,
    Investigate,
    DeactivateOwnerLeft,
    DeactivateThenDelete,
    Delete,
    RemoveFromSource,
    RemoveUser,
    Rotate,
    Report,
    Review,
    #[default]
    None,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::DeactivateNow => "DEACTIVATE NOW",
            Action::DeleteRootKey => "DELETE ROOT KEY",
            Action::Investigate => "INVESTIGATE",
            Action::DeactivateOwnerLeft => "DEACTIVATE (owner left)",
            Action::DeactivateThenDelete => "DEACTIVATE THEN DELETE",
            Action::Delete => "DELETE",
            Action::RemoveFromSource => "REMOVE FROM SOURCE",
            Action::RemoveUser => "REMOVE USER",
            Action::Rotate => "ROTATE",
            Action::Report => "REPORT",
            Action::Review => "REVIEW",
            Action::None => "NONE",
        }
    }

    /// Whether `keyhound remediate --apply` sets the key Inactive.
    pub fn deactivates(self) -> bool {
        matches!(
            self,
            Action::DeactivateNow | Action::DeactivateOwnerLeft | Action::DeactivateThenDelete
        )
    }

    /// Whether `keyhound remediate --apply --delete` deletes the key (deletion is the decided
    /// action, not a step after a rotation the owner must do first).
    pub fn deletes(self) -> bool {
        matches!(self, Action::Delete | Action::DeactivateThenDelete)
    }
}

/// When a key was last used (IAM `GetAccessKeyLastUsed` or the credential report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastUsed {
    /// RFC 3339; absent when never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One step of an action: what to do, and the command that does it when there is one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Everything known of one key (or of one user without keys, for REMOVE USER): a row of the
/// action report. The access key id is an identifier, not a secret (CloudTrail logs it): it is
/// kept whole here so that the commands run; the secret is never part of the action report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KeyRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default)]
    pub root: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// With `--directory`: whether the owner is an active person in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_in_directory: Option<bool>,
    /// IAM status: `Active` or `Inactive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<LastUsed>,
    /// Days since last use, or since creation when never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_unused: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_has_password: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_active_keys: Option<u32>,
    /// The scan found this key.
    #[serde(default)]
    pub exposed: bool,
    /// Where: origin chains with line (or byte offset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<String>,
    /// Who runs the machines the key was found on (an EBS snapshot's instance, then volume,
    /// then snapshot tags, by `--owner-tags`): `ops@example.com (instance i-0123 "web-1")`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_owners: Vec<String>,
    /// What STS said (`--verify`): live, invalid, wrong-secret, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// The secret was found with the key id.
    #[serde(default)]
    pub secret_found: bool,
    #[serde(default)]
    pub canary: bool,
    /// The key's account is one keyhound cannot act in (not the operator's, no role into it).
    #[serde(default)]
    pub foreign: bool,
    /// Why IAM could not be asked about this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_error: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// The thresholds of the table.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub max_age_days: i64,
    pub max_unused_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_age_days: 90,
            max_unused_days: 90,
        }
    }
}

/// The row of the table that applies, and why.
pub fn decide(r: &KeyRecord, p: &Policy) -> (Action, String) {
    let active = r.status.as_deref() == Some("Active");
    let inactive = r.status.as_deref() == Some("Inactive");
    let verified = r.verification.as_deref();
    if r.canary {
        return (
            Action::Investigate,
            "a canary-token key: whoever holds this copy is being watched; find how it got here"
                .into(),
        );
    }
    if r.exposed && r.foreign {
        return (
            Action::Report,
            format!(
                "exposed, but account {} is not ours to act on: tell its owner (or AWS)",
                r.account.as_deref().unwrap_or("(unknown)")
            ),
        );
    }
    if r.root {
        return (
            Action::DeleteRootKey,
            "a root user's access key: root keys should not exist".into(),
        );
    }
    if r.exposed && verified == Some("live") {
        return (
            Action::DeactivateNow,
            "exposed and live (STS answered to it)".into(),
        );
    }
    if r.exposed
        && active
        && r.secret_found
        && !matches!(verified, Some("invalid" | "wrong-secret"))
    {
        return (
            Action::DeactivateNow,
            "exposed with its secret and Active in IAM".into(),
        );
    }
    if r.exposed && inactive {
        return (Action::Delete, "exposed and already Inactive".into());
    }
    if r.exposed && verified == Some("invalid") {
        return (
            Action::RemoveFromSource,
            "exposed but invalid (deleted or never real): clean it up".into(),
        );
    }
    if active && r.owner_in_directory == Some(false) {
        return (
            Action::DeactivateOwnerLeft,
            format!(
                "owner {} is not an active person in the directory",
                r.owner.as_deref().unwrap_or("(none)")
            ),
        );
    }
    if r.user_has_password == Some(false) && r.user_active_keys == Some(0) && r.user.is_some() {
        return (
            Action::RemoveUser,
            "the user has no password and no Active key".into(),
        );
    }
    if inactive {
        return (
            Action::Delete,
            "Inactive keys only wait to be deleted".into(),
        );
    }
    if active {
        if let Some(d) = r.days_unused.filter(|d| *d >= p.max_unused_days) {
            let since = if r.last_used.as_ref().is_some_and(|l| l.date.is_some()) {
                "unused"
            } else {
                "never used, created"
            };
            return (
                Action::DeactivateThenDelete,
                format!("{since} {d} days ago (--max-unused {})", p.max_unused_days),
            );
        }
        if let Some(a) = r.age_days.filter(|a| *a >= p.max_age_days) {
            return (
                Action::Rotate,
                format!("{a} days old (--max-age {})", p.max_age_days),
            );
        }
    }
    if r.exposed {
        let why = match verified {
            Some("wrong-secret") => {
                "exposed; the key id is real but the secret found is not its own"
            }
            Some(_) => "exposed; STS could not say whether it is live",
            None => "exposed; liveness unknown (run with --verify and --owners)",
        };
        return (Action::Review, why.into());
    }
    (Action::None, "nothing to do".into())
}

/// The steps (and exact commands) of an action. `profile` is appended to every `aws` command.
pub fn steps(r: &KeyRecord, action: Action, profile: Option<&str>) -> Vec<Step> {
    let prof = profile
        .map(|p| format!(" --profile {}", shell_word(p)))
        .unwrap_or_default();
    let key = r.key_id.as_deref().unwrap_or("ACCESS_KEY_ID");
    let user = r
        .user
        .as_deref()
        .map(shell_word)
        .unwrap_or("USER_NAME".into());
    let aws = |cmd: String| Some(format!("aws iam {cmd}{prof}"));
    let deactivate = || Step {
        what: "deactivate the key".into(),
        command: aws(format!(
            "update-access-key --user-name {user} --access-key-id {key} --status Inactive"
        )),
    };
    let delete = || Step {
        what: "delete the key".into(),
        command: aws(format!(
            "delete-access-key --user-name {user} --access-key-id {key}"
        )),
    };
    let rotate = || Step {
        what: "create a new key, deploy it where the old one was used, then retire the old one"
            .into(),
        command: aws(format!("create-access-key --user-name {user}")),
    };
    let purge = || {
        Step {
        what: "remove it from every place listed, and purge it from git history (git filter-repo --replace-text) and backups".into(),
        command: None,
    }
    };
    let cloudtrail = Step {
        what: "see what the key did".into(),
        command: Some(format!(
            "aws cloudtrail lookup-events --lookup-attributes AttributeKey=AccessKeyId,AttributeValue={key}{prof}"
        )),
    };
    match action {
        Action::DeactivateNow => vec![deactivate(), cloudtrail, rotate(), delete(), purge()],
        Action::DeleteRootKey => vec![
            Step {
                what: "signed in as the root user (root keys can only be managed by root), delete the key; give automation an IAM role instead".into(),
                command: Some(format!("aws iam delete-access-key --access-key-id {key}{prof}")),
            },
            cloudtrail,
        ],
        Action::Investigate => vec![
            Step {
                what: "do not use or verify the key: it is a tripwire; find who copied it here and why".into(),
                command: None,
            },
            purge(),
        ],
        Action::DeactivateOwnerLeft => vec![
            deactivate(),
            Step {
                what: "find a new owner for what used the key, or delete it".into(),
                command: aws(format!("tag-user --user-name {user} --tags Key=owner,Value=NEW_OWNER")),
            },
        ],
        Action::DeactivateThenDelete => vec![
            deactivate(),
            Step {
                what: "wait a few days for anything that still needed it to complain, then".into(),
                command: None,
            },
            delete(),
        ],
        Action::Delete => vec![delete()],
        Action::RemoveFromSource => vec![purge()],
        Action::RemoveUser => {
            let mut s = vec![Step {
                what: "list what the user still has".into(),
                command: aws(format!("list-access-keys --user-name {user}")),
            }];
            if r.key_id.is_some() {
                s.push(delete());
            }
            s.push(Step {
                what: "detach its policies and groups, then delete the user".into(),
                command: aws(format!("delete-user --user-name {user}")),
            });
            s
        }
        Action::Rotate => vec![
            rotate(),
            deactivate(),
            Step {
                what: "once nothing breaks".into(),
                command: delete().command,
            },
        ],
        Action::Report => vec![Step {
            what: format!(
                "tell the owner of account {} (or AWS: aws-security@amazon.com); remove it from source",
                r.account.as_deref().unwrap_or("(unknown)")
            ),
            command: None,
        }, purge()],
        Action::Review => vec![
            Step {
                what: "find out whether the key is live and whose it is".into(),
                command: Some("keyhound scan --verify --owners …".into()),
            },
            purge(),
        ],
        Action::None => Vec::new(),
    }
}

/// Fills `action`, `reason` and `steps`.
pub fn apply(r: &mut KeyRecord, p: &Policy, profile: Option<&str>) {
    let (a, why) = decide(r, p);
    r.action = a;
    r.reason = why;
    r.steps = steps(r, a, profile);
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whole days from `from` (RFC 3339) to `now`.
pub fn days_between(from: &str, now: jiff::Timestamp) -> Option<i64> {
    let t: jiff::Timestamp = from.parse().ok()?;
    Some(now.duration_since(t).as_secs().max(0) / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyRecord {
        KeyRecord {
            key_id: Some("AKIAEXAMPLEEXAMPLE00".into()),
            account: Some("123456789012".into()),
            user: Some("alice".into()),
            status: Some("Active".into()),
            age_days: Some(10),
            days_unused: Some(1),
            last_used: Some(LastUsed {
                date: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            user_has_password: Some(true),
            user_active_keys: Some(1),
            ..Default::default()
        }
    }

    fn decided(f: impl FnOnce(&mut KeyRecord)) -> Action {
        let mut r = key();
        f(&mut r);
        decide(&r, &Policy::default()).0
    }

    #[test]
    fn every_row_of_the_table() {
        // 1 canary wins over everything, even live and exposed.
        assert_eq!(
            decided(|r| {
                r.canary = true;
                r.exposed = true;
                r.verification = Some("live".into());
            }),
            Action::Investigate
        );
        // 2 foreign and exposed.
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.foreign = true;
                r.verification = Some("live".into());
            }),
            Action::Report
        );
        // A foreign key that is not exposed is not reported (audit never lists one).
        assert_ne!(decided(|r| r.foreign = true), Action::Report);
        // 3 root key, exposed or not.
        assert_eq!(decided(|r| r.root = true), Action::DeleteRootKey);
        assert_eq!(
            decided(|r| {
                r.root = true;
                r.exposed = true;
                r.verification = Some("live".into());
            }),
            Action::DeleteRootKey
        );
        // 4 exposed + live; exposed + Active with its secret, not verified.
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.verification = Some("live".into());
            }),
            Action::DeactivateNow
        );
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.secret_found = true;
            }),
            Action::DeactivateNow
        );
        // …but not when only the key id was found, nor with a wrong secret.
        assert_eq!(decided(|r| r.exposed = true), Action::Review);
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.secret_found = true;
                r.verification = Some("wrong-secret".into());
            }),
            Action::Review
        );
        // 5 exposed + Inactive.
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.status = Some("Inactive".into());
            }),
            Action::Delete
        );
        // 6 exposed + invalid (IAM no longer knows it).
        assert_eq!(
            decided(|r| {
                r.exposed = true;
                r.status = None;
                r.verification = Some("invalid".into());
            }),
            Action::RemoveFromSource
        );
        // 7 owner left.
        assert_eq!(
            decided(|r| r.owner_in_directory = Some(false)),
            Action::DeactivateOwnerLeft
        );
        assert_eq!(decided(|r| r.owner_in_directory = Some(true)), Action::None);
        // 8 no password, no active key.
        assert_eq!(
            decided(|r| {
                r.status = Some("Inactive".into());
                r.user_has_password = Some(false);
                r.user_active_keys = Some(0);
            }),
            Action::RemoveUser
        );
        // A user-only row (no key at all).
        assert_eq!(
            decided(|r| {
                r.key_id = None;
                r.status = None;
                r.user_has_password = Some(false);
                r.user_active_keys = Some(0);
            }),
            Action::RemoveUser
        );
        // 9 inactive, user still has a password.
        assert_eq!(
            decided(|r| r.status = Some("Inactive".into())),
            Action::Delete
        );
        // 10 unused (and never used: counted from creation), before rotation.
        assert_eq!(
            decided(|r| {
                r.days_unused = Some(90);
                r.age_days = Some(400);
            }),
            Action::DeactivateThenDelete
        );
        assert_eq!(
            decided(|r| {
                r.last_used = None;
                r.days_unused = Some(120);
            }),
            Action::DeactivateThenDelete
        );
        assert_eq!(decided(|r| r.days_unused = Some(89)), Action::None);
        // 11 old.
        assert_eq!(decided(|r| r.age_days = Some(90)), Action::Rotate);
        assert_eq!(decided(|r| r.age_days = Some(89)), Action::None);
        // 12 exposed, nothing known.
        assert_eq!(
            decided(|r| {
                *r = KeyRecord {
                    exposed: true,
                    secret_found: true,
                    ..Default::default()
                }
            }),
            Action::Review
        );
    }

    #[test]
    fn thresholds_are_configurable() {
        let p = Policy {
            max_age_days: 0,
            max_unused_days: 30,
        };
        let mut r = key();
        r.age_days = Some(0);
        r.days_unused = Some(0);
        assert_eq!(decide(&r, &p).0, Action::Rotate);
    }

    #[test]
    fn commands_name_the_key_and_user() {
        let mut r = key();
        r.exposed = true;
        r.verification = Some("live".into());
        apply(&mut r, &Policy::default(), Some("sec ops"));
        assert_eq!(r.action, Action::DeactivateNow);
        assert_eq!(
            r.steps[0].command.as_deref(),
            Some("aws iam update-access-key --user-name alice --access-key-id AKIAEXAMPLEEXAMPLE00 --status Inactive --profile 'sec ops'")
        );
        assert!(r.steps.iter().any(|s| s
            .command
            .as_deref()
            .is_some_and(|c| c.starts_with("aws iam delete-access-key"))));
        r.user = Some("it's".into());
        assert!(steps(&r, Action::Delete, None)[0]
            .command
            .as_deref()
            .unwrap()
            .contains(r"--user-name 'it'\''s'"));
    }

    #[test]
    fn days() {
        let now: jiff::Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        assert_eq!(days_between("2026-08-23T12:00:00+00:00", now), Some(90));
        assert_eq!(days_between("2026-11-21T11:59:00Z", now), Some(0));
        assert_eq!(days_between("N/A", now), None);
    }
}
