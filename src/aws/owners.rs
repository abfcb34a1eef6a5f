//! `--owners`: for every AWS key the scan found, what the operator's IAM says of it (user,
//! owner tags, status, age, last use), in the key's own account when a role leads there; then
//! one action-report row per key id.

// Without the `aws` feature only the offline parts are used.
#![cfg_attr(not(feature = "aws"), allow(unused_imports, dead_code))]

use std::collections::{BTreeMap, HashMap, HashSet};

use super::actions::{self, KeyRecord, LastUsed, Policy};
use super::directory::Directory;
#[cfg(feature = "aws")]
use super::iam::{self, Unreachable};
use super::iam::{Session, UserFacts};
use crate::detect::Role;
use crate::finding::{Credential, State};

/// What IAM said of one found key.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub account: Option<String>,
    pub user: Option<String>,
    pub last_used: Option<LastUsed>,
    pub facts: Option<UserFacts>,
    pub foreign: bool,
    /// The role into the key's account could not be assumed (`error` says why).
    pub role_failed: bool,
    pub error: Option<String>,
}

/// Settings of the owner columns and of the decision.
pub struct RecordOptions<'a> {
    pub owner_tags: &'a [String],
    pub directory: Option<&'a Directory>,
    pub policy: Policy,
    pub profile: Option<&'a str>,
    pub now: jiff::Timestamp,
}

#[cfg(not(feature = "aws"))]
pub fn lookup(session: &Session, _: &[Credential]) -> (HashMap<String, Lookup>, Vec<String>) {
    session.never()
}

#[cfg(feature = "aws")]
/// Looks up every found key id (before any verification: an STS call counts as a use).
/// Returns the lookups by key id and one warning per account that could not be reached.
pub fn lookup(session: &Session, creds: &[Credential]) -> (HashMap<String, Lookup>, Vec<String>) {
    let mut ids: BTreeMap<String, Option<String>> = BTreeMap::new();
    // Documentation examples and placeholders are nobody's keys: IAM is not asked about them.
    for c in creds
        .iter()
        .filter(|c| c.class == crate::finding::Class::Secret)
    {
        if let Some(id) = c.part(Role::KeyId) {
            ids.entry(id.to_string())
                .or_insert_with(|| c.account_id.clone());
        }
    }
    let jobs: Vec<(String, String)> = ids
        .into_iter()
        .map(|(id, acct)| (id, acct.unwrap_or_else(|| session.operator_account.clone())))
        .collect();
    let results = session
        .rt
        .block_on(iam::bounded(jobs, 8, |(id, account)| async move {
            let l = one(session, &id, &account).await;
            (id, l)
        }));
    let mut warned = HashSet::new();
    let mut warnings = Vec::new();
    for (_, l) in &results {
        if let (true, Some(a), Some(e)) = (l.role_failed, &l.account, &l.error) {
            if warned.insert(a.clone()) {
                warnings.push(format!("account {a}: {e}"));
            }
        }
    }
    (results.into_iter().collect(), warnings)
}

#[cfg(feature = "aws")]
async fn one(session: &Session, key_id: &str, account: &str) -> Lookup {
    let mut l = Lookup {
        account: Some(account.to_string()),
        ..Lookup::default()
    };
    let client = match session.iam(account).await {
        Ok(c) => c,
        Err(Unreachable::Foreign) => {
            l.foreign = true;
            return l;
        }
        Err(Unreachable::Failed(e)) => {
            l.role_failed = true;
            l.error = Some(e);
            return l;
        }
    };
    match iam::last_used(&client, key_id).await {
        Ok((user, used)) => {
            l.user = user;
            l.last_used = Some(used);
        }
        Err(e) => {
            l.error = Some(format!("GetAccessKeyLastUsed: {e}"));
            return l;
        }
    }
    if let Some(u) = &l.user {
        match iam::user_facts(&client, u).await {
            Ok(f) => l.facts = Some(f),
            Err(e) => l.error = Some(format!("user {u}: {e}")),
        }
    }
    l
}

/// The state that says most of a key seen with several secrets (the right one wins).
fn rank(s: State) -> u8 {
    match s {
        State::Live => 0,
        State::Expired => 1,
        State::Canary => 2,
        State::WrongSecret => 3,
        State::Invalid => 4,
        State::Unknown => 5,
        State::Skipped => 6,
    }
}

/// One action-report row per found AWS key id, decided.
pub fn records(
    creds: &[Credential],
    lookups: Option<&HashMap<String, Lookup>>,
    opts: &RecordOptions,
) -> Vec<KeyRecord> {
    let canaries = super::verify::canary_accounts();
    let mut by_id: BTreeMap<String, KeyRecord> = BTreeMap::new();
    let mut states: HashMap<String, State> = HashMap::new();
    for c in creds {
        let Some(id) = c.part(Role::KeyId) else {
            continue;
        };
        let r = by_id.entry(id.to_string()).or_insert_with(|| KeyRecord {
            key_id: Some(id.to_string()),
            exposed: true,
            ..KeyRecord::default()
        });
        r.secret_found |= c.part(Role::Secret).is_some();
        if r.account.is_none() {
            r.account = c.account_id.clone();
        }
        if let Some(v) = &c.verification {
            let better = states.get(id).is_none_or(|s| rank(v.state) < rank(*s));
            if better {
                states.insert(id.to_string(), v.state);
                r.verification = Some(v.state.as_str().to_string());
                if let Some(a) = &v.account {
                    r.account = Some(a.clone());
                }
                if v.arn.as_deref().is_some_and(|a| a.ends_with(":root")) {
                    r.root = true;
                }
                if v.state == State::Live {
                    r.arn = v.arn.clone();
                }
            }
            r.canary |= v.state == State::Canary;
        }
        for p in &c.places {
            let at = if p.origin.raw {
                format!("{} @ byte {}", p.origin, p.location.offset)
            } else {
                format!("{}:{}", p.origin, p.location.line)
            };
            if !r.places.contains(&at) {
                r.places.push(at);
            }
            if let Some(m) = p
                .origin
                .snapshot
                .as_deref()
                .and_then(|s| machine_owner(s, opts.owner_tags))
            {
                if !r.machine_owners.contains(&m) {
                    r.machine_owners.push(m);
                }
            }
        }
    }
    let mut out: Vec<KeyRecord> = by_id.into_values().collect();
    for r in &mut out {
        r.canary |= r.account.as_deref().is_some_and(|a| canaries.contains(a));
        if let Some(l) = lookups.and_then(|m| m.get(r.key_id.as_deref().unwrap_or_default())) {
            fill(r, l, opts);
        }
        actions::apply(r, &opts.policy, opts.profile);
    }
    out
}

/// Who runs the machine a snapshot came from: the first of `keys` set on its instance, else on
/// its volume, else on the snapshot itself, with where it was read.
pub fn machine_owner(s: &crate::blob::SnapshotInfo, keys: &[String]) -> Option<String> {
    let first = |tags: &std::collections::BTreeMap<String, String>| {
        keys.iter()
            .find_map(|k| tags.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()))
            .map(str::to_string)
    };
    let instance = match (&s.instance_id, &s.instance_name) {
        (Some(i), Some(n)) => format!("instance {i} \"{n}\""),
        (Some(i), None) => format!("instance {i}"),
        _ => String::new(),
    };
    let volume = format!("volume {}", s.volume_id.as_deref().unwrap_or("?"));
    let snapshot = format!("snapshot {}", s.snapshot_id);
    [
        (first(&s.instance_tags), instance),
        (first(&s.volume_tags), volume),
        (first(&s.tags), snapshot),
    ]
    .into_iter()
    .find_map(|(owner, from)| owner.map(|o| format!("{o} ({from})")))
}

/// Copies IAM's facts into the row, with the ages they give.
fn fill(r: &mut KeyRecord, l: &Lookup, opts: &RecordOptions) {
    r.foreign = l.foreign;
    r.lookup_error = l.error.clone();
    if r.account.is_none() {
        r.account = l.account.clone();
    }
    r.user = l.user.clone().or(r.user.take());
    r.last_used = l.last_used.clone();
    if let Some(f) = &l.facts {
        describe_key(r, f, opts);
    }
}

/// Fills status, age, idle days, owner and the user's facts from `f` (for `r.key_id`).
pub fn describe_key(r: &mut KeyRecord, f: &UserFacts, opts: &RecordOptions) {
    if r.arn.is_none() {
        r.arn = f.arn.clone();
    }
    r.user_has_password = f.has_password;
    r.user_active_keys = Some(f.active_keys());
    r.owner = f.owner(opts.owner_tags);
    r.owner_in_directory = match (opts.directory, &r.owner) {
        // A key without an owner tag (or one that names no person) has no one to look up.
        (Some(d), Some(o)) => d.has(o),
        _ => None,
    };
    if let Some((_, status, created)) = f.keys.iter().find(|k| Some(&k.0) == r.key_id.as_ref()) {
        r.status = Some(status.clone());
        r.created = created.clone();
        r.age_days = created
            .as_deref()
            .and_then(|c| actions::days_between(c, opts.now));
        let since = r
            .last_used
            .as_ref()
            .and_then(|l| l.date.clone())
            .or_else(|| created.clone());
        r.days_unused = since
            .as_deref()
            .and_then(|s| actions::days_between(s, opts.now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::SnapshotInfo;

    /// The instance's owner tag wins over the volume's, the volume's over the snapshot's; the
    /// first of the owner tags that is set, blank values skipped.
    #[test]
    fn machine_owner_is_the_instances_then_the_volumes_then_the_snapshots() {
        let tags = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let keys = vec!["owner".to_string(), "email".to_string()];
        let mut s = SnapshotInfo {
            snapshot_id: "snap-1".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            volume_id: Some("vol-1".into()),
            instance_id: Some("i-1".into()),
            instance_name: Some("web-1".into()),
            size_gib: 8,
            start_time: None,
            state: "completed".into(),
            encrypted: false,
            tags: tags(&[("owner", "snap@example.com")]),
            volume_tags: tags(&[("email", "vol@example.com")]),
            instance_tags: tags(&[("owner", " "), ("email", "inst@example.com")]),
        };
        assert_eq!(
            machine_owner(&s, &keys).as_deref(),
            Some("inst@example.com (instance i-1 \"web-1\")")
        );
        s.instance_tags.clear();
        assert_eq!(
            machine_owner(&s, &keys).as_deref(),
            Some("vol@example.com (volume vol-1)")
        );
        s.volume_tags.clear();
        assert_eq!(
            machine_owner(&s, &keys).as_deref(),
            Some("snap@example.com (snapshot snap-1)")
        );
        s.tags.clear();
        assert_eq!(machine_owner(&s, &keys), None);
    }
}
