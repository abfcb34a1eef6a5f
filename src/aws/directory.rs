//! `--directory FILE`: the people who are still here, from an identity provider's export, to
//! find keys whose owner has left. CSV (a header row) or JSON (an array of objects, nested
//! objects flattened with dots, as Okta's `profile.email`). Columns are found by name:
//!
//! - email: `email`, `mail`, `primaryEmail`, `profile.email`, `Email Address [Required]`,
//!   `userPrincipalName`, `login`, `profile.login`… (every such column of a row counts);
//! - status (optional): `status`, `Status [READ ONLY]`, `accountEnabled`, `suspended`. Okta's
//!   SUSPENDED/DEPROVISIONED/STAGED, Google's Suspended, Azure's accountEnabled=false and
//!   suspended=true mean gone; anything else, or no status column, means active.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The active people's identities, lower-cased.
#[derive(Debug, Default)]
pub struct Directory {
    active: HashSet<String>,
}

fn is_identity_column(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let last = n.rsplit('.').next().unwrap_or(&n);
    let last = last.split(" [").next().unwrap_or(last).trim();
    matches!(
        last,
        "email"
            | "mail"
            | "e-mail"
            | "email address"
            | "primaryemail"
            | "primary email"
            | "userprincipalname"
            | "user principal name"
            | "login"
            | "secondemail"
    )
}

/// Whether a row is someone still here, from its status columns.
fn is_active(column: &str, value: &str) -> Option<bool> {
    let n = column.to_ascii_lowercase();
    let last = n.rsplit('.').next().unwrap_or(&n);
    let last = last.split(" [").next().unwrap_or(last).trim();
    let v = value.trim().to_ascii_lowercase();
    match last {
        "status" | "account status" => Some(!matches!(
            v.as_str(),
            "suspended"
                | "deprovisioned"
                | "staged"
                | "inactive"
                | "disabled"
                | "deleted"
                | "terminated"
        )),
        "accountenabled" | "account enabled" | "enabled" | "active" => {
            Some(!matches!(v.as_str(), "false" | "no" | "0"))
        }
        "suspended" | "archived" | "disabled" => Some(!matches!(v.as_str(), "true" | "yes" | "1")),
        _ => None,
    }
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?;
        Directory::parse(&text, &path.display().to_string())
    }

    /// A directory's text (CSV, or JSON); `name` says where it came from in errors.
    pub fn parse(text: &str, name: &str) -> Result<Directory> {
        let rows = if text.trim_start().starts_with(['[', '{']) {
            json_rows(text).with_context(|| format!("directory {name}"))?
        } else {
            super::csv_records(text.as_bytes()).with_context(|| format!("directory {name}"))?
        };
        let mut d = Directory::default();
        let mut identities = 0;
        for row in rows {
            let active = row.iter().filter_map(|(k, v)| is_active(k, v)).all(|a| a);
            for (k, v) in &row {
                if is_identity_column(k) && !v.trim().is_empty() {
                    identities += 1;
                    if active {
                        d.active.insert(v.trim().to_lowercase());
                    }
                }
            }
        }
        if identities == 0 {
            bail!(
                "directory {name}: no email column (looked for email, mail, primaryEmail, userPrincipalName, login…)"
            );
        }
        Ok(d)
    }

    /// Whether `owner` (a tag value: an email, `Name <email>`, or several separated by commas,
    /// spaces or semicolons) names an active person. `None` when the owner is not an identity at all.
    pub fn has(&self, owner: &str) -> Option<bool> {
        let ids: Vec<String> = owner
            .split([',', ';', ' '])
            .map(|s| s.trim().trim_matches(['<', '>', '"']).to_lowercase())
            .filter(|s| s.contains('@'))
            .collect();
        if ids.is_empty() {
            return None;
        }
        Some(ids.iter().any(|i| self.active.contains(i)))
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

type Row = Vec<(String, String)>;

fn json_rows(text: &str) -> Result<Vec<Row>> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    // An array of people, or an object holding one (`{"users": […]}`, `{"value": […]}`).
    let list = match &v {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(o) => o
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_else(|| vec![v.clone()]),
        _ => bail!("expected an array of people"),
    };
    let mut rows = Vec::new();
    for item in list {
        let mut row = Vec::new();
        flatten("", &item, &mut row);
        rows.push(row);
    }
    Ok(rows)
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Row) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                flatten(prefix, x, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        serde_json::Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        serde_json::Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> Directory {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        Directory::load(&p).unwrap()
    }

    #[test]
    fn okta_csv_with_statuses() {
        let d = load(
            "okta.csv",
            "id,status,login,email,firstName\n\
             1,ACTIVE,alice@example.com,alice@example.com,Alice\n\
             2,DEPROVISIONED,carol@example.com,carol@example.com,Carol\n\
             3,PASSWORD_EXPIRED,\"dave@example.com\",dave@example.com,\"Dave, Jr\"\n",
        );
        assert_eq!(d.has("alice@example.com"), Some(true));
        assert_eq!(d.has("Alice@Example.com"), Some(true));
        assert_eq!(d.has("carol@example.com"), Some(false));
        assert_eq!(d.has("dave@example.com"), Some(true));
        assert_eq!(d.has("team-payments"), None);
        assert_eq!(d.has("gone@example.com, alice@example.com"), Some(true));
        assert_eq!(d.has("Alice Smith <alice@example.com>"), Some(true));
    }

    #[test]
    fn google_workspace_csv() {
        let d = load(
            "gws.csv",
            "First Name [Required],Email Address [Required],Status [READ ONLY]\n\
             Alice,alice@example.com,Active\nBob,bob@example.com,Suspended\n",
        );
        assert_eq!(d.has("alice@example.com"), Some(true));
        assert_eq!(d.has("bob@example.com"), Some(false));
    }

    #[test]
    fn okta_and_azure_json() {
        let d = load(
            "okta.json",
            r#"[{"status":"ACTIVE","profile":{"login":"a@x.io","email":"alice@example.com"}},
                {"status":"SUSPENDED","profile":{"email":"bob@example.com"}}]"#,
        );
        assert_eq!(d.has("alice@example.com"), Some(true));
        assert_eq!(d.has("a@x.io"), Some(true));
        assert_eq!(d.has("bob@example.com"), Some(false));
        let d = load(
            "azure.json",
            r#"{"value":[{"userPrincipalName":"alice@example.com","accountEnabled":true},
                         {"userPrincipalName":"carol@example.com","accountEnabled":false}]}"#,
        );
        assert_eq!(d.has("alice@example.com"), Some(true));
        assert_eq!(d.has("carol@example.com"), Some(false));
    }

    #[test]
    fn no_email_column_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("people.csv");
        std::fs::write(&p, "name,team\nAlice,payments\n").unwrap();
        let e = format!("{:#}", Directory::load(&p).unwrap_err());
        assert!(
            e.contains("people.csv") && e.contains("no email column"),
            "{e}"
        );
    }
}
