//! Findings (one secret at one place) and credentials (one secret, all its places).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::{Blob, Origin};
use crate::detect::{line_around, Decoding, Detection, Role, RuleMeta};

/// The marker that allows a finding on its line.
pub const ALLOW_MARKER: &[u8] = b"keyhound:allow";

/// Lines and columns start at 1; columns count characters; offsets count bytes of the origin.
/// The raw bytes of a disk image have no lines (places there are byte offsets): line and column
/// are 0, and left out of JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub column: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end_line: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end_column: u64,
    pub offset: u64,
    pub end_offset: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug)]
pub struct FoundPart {
    pub role: Role,
    pub value: String,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub rule: Arc<RuleMeta>,
    pub origin: Arc<Origin>,
    pub parts: Vec<FoundPart>,
    pub decoded: Vec<Decoding>,
    /// The line around the primary part, secrets included: redact before showing.
    pub snippet: String,
    /// The line carries `keyhound:allow`.
    pub allowed_inline: bool,
    pub fingerprint: String,
}

/// Is this credential a real-looking secret or an example/placeholder?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Secret,
    Example,
}

/// What STS said of a key pair (`--verify`), or why it was not asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The key works: STS named its account and identity.
    Live,
    /// Unknown, deleted or deactivated key id (InvalidClientTokenId).
    Invalid,
    /// The key id exists but this is not its secret (SignatureDoesNotMatch, asked twice).
    WrongSecret,
    /// A temporary key whose session token has expired (ExpiredToken).
    Expired,
    /// No answer could be had (network, 5xx, throttling after retries, no error code).
    #[default]
    Unknown,
    /// Not asked; `reason` says why (example, no secret, not in --verify-accounts).
    Skipped,
    /// A canary-token key: never asked, since asking alerts whoever planted it.
    Canary,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Invalid => "invalid",
            State::WrongSecret => "wrong-secret",
            State::Expired => "expired",
            State::Unknown => "unknown",
            State::Skipped => "skipped",
            State::Canary => "canary",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One place a credential was seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Place {
    #[serde(flatten)]
    pub origin: Arc<Origin>,
    #[serde(flatten)]
    pub location: Location,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decoded: Vec<Decoding>,
    /// Which parts of the credential are at this place (a key id may appear without its secret).
    pub parts: Vec<Role>,
    #[serde(skip)]
    pub snippet: String,
}

/// One secret (or key pair) with every place it was found.
#[derive(Clone, Debug)]
pub struct Credential {
    pub fingerprint: String,
    pub rule: Arc<RuleMeta>,
    pub parts: Vec<(Role, String)>,
    pub places: Vec<Place>,
    pub class: Class,
    /// AWS account id decoded offline from the key id, when it can be.
    pub account_id: Option<String>,
    /// With `--verify`: what STS said (AWS key pairs only).
    pub verification: Option<Verification>,
}

impl Credential {
    pub fn is_live(&self) -> bool {
        self.verification
            .as_ref()
            .is_some_and(|v| v.state == State::Live)
    }
}

impl Credential {
    pub fn part(&self, role: Role) -> Option<&str> {
        self.parts
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, v)| v.as_str())
    }
}

/// The fingerprint of a secret: from the rule id and the secret's values, never the place, so
/// it stays the same when the line moves and can be put in `.keyhoundignore` or a baseline.
pub fn fingerprint(rule: &str, values: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for v in values {
        h.update([0]);
        h.update(v.as_bytes());
    }
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Lines and columns of the offsets a blob's detections need, computed in one pass over the
/// offsets in order: a minified file with thousands of keys on one line costs one count of that
/// line, not one per key.
struct Lines {
    /// (offset, 0-based line, 1-based column in characters), sorted by offset.
    at: Vec<(usize, u64, u64)>,
}

impl Lines {
    fn new(data: &[u8], mut offsets: Vec<usize>) -> Lines {
        offsets.sort_unstable();
        offsets.dedup();
        let (mut pos, mut line, mut col) = (0usize, 0u64, 1u64);
        let mut at = Vec::with_capacity(offsets.len());
        for off in offsets {
            let seg = &data[pos..off.min(data.len())];
            match memchr::memrchr(b'\n', seg) {
                Some(nl) => {
                    line += memchr::memchr_iter(b'\n', seg).count() as u64;
                    col = 1 + chars(&seg[nl + 1..]);
                }
                None => col += chars(seg),
            }
            pos = off.min(data.len());
            at.push((off, line, col));
        }
        Lines { at }
    }

    /// (0-based line in the blob, 1-based column) of offset `off`, one of those given to `new`.
    /// UTF-16 text counts two bytes a character.
    fn at(&self, off: usize, utf16: bool) -> (u64, u64) {
        let i = self.at.partition_point(|a| a.0 < off);
        let (_, line, col) = self.at[i];
        (line, if utf16 { (col - 1) / 2 + 1 } else { col })
    }
}

/// Characters in `b`: UTF-8 characters, each invalid byte counting as one.
pub(crate) fn chars(b: &[u8]) -> u64 {
    // Every byte that does not continue a UTF-8 sequence starts a character (or is invalid).
    b.iter().filter(|&&c| (c as i8) >= -0x40).count() as u64
}

/// Turns a blob's detections into findings, keeping those the blob owns.
pub fn from_detections(blob: &Blob, dets: Vec<Detection>) -> Vec<Finding> {
    // Raw image bytes have no lines: no need to count them.
    let lines = (!blob.origin.raw).then(|| {
        let offsets = dets
            .iter()
            .flat_map(|d| d.parts.iter().flat_map(|p| [p.start, p.end]))
            .collect();
        Lines::new(blob.data, offsets)
    });
    let mut out = Vec::with_capacity(dets.len());
    for d in dets {
        if !blob.own.contains(&d.parts[0].start) {
            continue;
        }
        let utf16 = d
            .decoded
            .iter()
            .any(|x| matches!(x, Decoding::Utf16Le | Decoding::Utf16Be));
        let mut allowed = false;
        let parts: Vec<FoundPart> = d
            .parts
            .iter()
            .map(|p| {
                let (line, column, end_line, end_column) = match &lines {
                    Some(lines) => {
                        // On the window's first line, columns continue the line's start,
                        // which may lie in an earlier window.
                        let shift = if utf16 { blob.column / 2 } else { blob.column };
                        let (l, c) = lines.at(p.start, utf16);
                        let (el, ec) = lines.at(p.end, utf16);
                        let c = if l == 0 { c + shift } else { c };
                        let ec = if el == 0 { ec + shift } else { ec };
                        (blob.line + l + 1, c, blob.line + el + 1, ec)
                    }
                    None => (0, 0, 0, 0),
                };
                allowed |=
                    memchr::memmem::find(line_around(blob.data, p.start, p.end), ALLOW_MARKER)
                        .is_some();
                FoundPart {
                    role: p.role,
                    value: String::from_utf8_lossy(&p.value).into_owned(),
                    location: Location {
                        line,
                        column,
                        end_line,
                        end_column,
                        offset: blob.offset + p.start as u64,
                        end_offset: blob.offset + p.end as u64,
                    },
                }
            })
            .collect();
        let snippet = match &d.context {
            Some(c) => c.clone(),
            None => line_around(blob.data, d.parts[0].start, d.parts[0].end).to_vec(),
        };
        allowed |= memchr::memmem::find(&snippet, ALLOW_MARKER).is_some();
        let values: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
        out.push(Finding {
            fingerprint: fingerprint(&d.rule.id, &values),
            rule: d.rule,
            origin: blob.origin.clone(),
            parts,
            decoded: d.decoded,
            snippet: String::from_utf8_lossy(&snippet).into_owned(),
            allowed_inline: allowed,
        });
    }
    out
}

/// Groups findings by fingerprint. A key id seen alone at some places and with its secret at
/// others is one credential: its lone places are folded into the pair.
pub fn group(findings: Vec<Finding>) -> Vec<Credential> {
    let mut by_fp: HashMap<String, Credential> = HashMap::new();
    for f in findings {
        let place = Place {
            origin: f.origin.clone(),
            location: f.parts[0].location,
            decoded: f.decoded.clone(),
            parts: f.parts.iter().map(|p| p.role).collect(),
            snippet: f.snippet.clone(),
        };
        by_fp
            .entry(f.fingerprint.clone())
            .or_insert_with(|| Credential {
                fingerprint: f.fingerprint.clone(),
                rule: f.rule.clone(),
                parts: f.parts.iter().map(|p| (p.role, p.value.clone())).collect(),
                places: Vec::new(),
                class: Class::Secret,
                account_id: None,
                verification: None,
            })
            .places
            .push(place);
    }
    let mut creds: Vec<Credential> = by_fp.into_values().collect();
    creds.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    // Fold lone key ids into the first pair that has the same id.
    let pair_of_id: HashMap<String, usize> = creds
        .iter()
        .enumerate()
        .filter(|(_, c)| c.parts.len() > 1)
        .filter_map(|(i, c)| c.part(Role::KeyId).map(|id| (id.to_string(), i)))
        .rev()
        .collect();
    let mut folded = vec![false; creds.len()];
    for i in 0..creds.len() {
        if creds[i].parts.len() != 1 || creds[i].parts[0].0 != Role::KeyId {
            continue;
        }
        if let Some(&p) = pair_of_id.get(&creds[i].parts[0].1) {
            let places = std::mem::take(&mut creds[i].places);
            creds[p].places.extend(places);
            folded[i] = true;
        }
    }
    let mut i = 0;
    creds.retain(|_| {
        i += 1;
        !folded[i - 1]
    });
    for c in &mut creds {
        c.places
            .sort_by(|a, b| (&a.origin, a.location.offset).cmp(&(&b.origin, b.location.offset)));
        c.places
            .dedup_by(|a, b| a.origin == b.origin && a.location.offset == b.location.offset);
    }
    creds.sort_by(|a, b| {
        b.rule
            .severity
            .cmp(&a.rule.severity)
            .then_with(|| a.places[0].origin.cmp(&b.places[0].origin))
            .then_with(|| {
                a.places[0]
                    .location
                    .offset
                    .cmp(&b.places[0].location.offset)
            })
    });
    creds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_rule_and_values_only() {
        let a = fingerprint("r", &["x", "y"]);
        assert_eq!(a, fingerprint("r", &["x", "y"]));
        assert_ne!(a, fingerprint("r", &["xy"]));
        assert_ne!(a, fingerprint("s", &["x", "y"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn columns_count_characters() {
        let data = "ä\nxx é key\nab".as_bytes();
        let key = data.len() - 6;
        let l = Lines::new(data, vec![data.len(), key, 0, 1]);
        assert_eq!(l.at(key, false), (1, 6));
        assert_eq!(l.at(0, false), (0, 1));
        assert_eq!(l.at(data.len(), false), (2, 3));
        // An invalid byte counts as one character.
        let l = Lines::new(b"\xff\xfeab", vec![3]);
        assert_eq!(l.at(3, false), (0, 4));
    }
}
