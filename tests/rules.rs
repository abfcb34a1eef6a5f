//! Every rule's examples, embedded and user-supplied.

mod common;

use common::*;

/// The embedded rules, those off by default included.
fn every_rule() -> keyhound::detect::Engine {
    let all = keyhound::detect::Selection {
        all: true,
        ..Default::default()
    };
    keyhound::command::rules::load_engine(&[], &all, None).unwrap()
}

#[test]
fn every_embedded_rule_passes_its_examples() {
    let engine = every_rule();
    let failures = keyhound::command::rules::check_rules(&engine);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every reportable rule has positive and negative examples.
    for r in engine.rules.rules.iter().filter(|r| r.standalone) {
        assert!(!r.examples.is_empty(), "{}", r.meta.id);
        assert!(!r.negative_examples.is_empty(), "{}", r.meta.id);
    }
}

const USER_RULE: &str = r#"
[[rule]]
id = "acme-token"
name = "ACME token"
description = "A token for the ACME API."
severity = "high"
keywords = ["acme_"]
regex = 'acme_[a-f0-9]{32}'
not_after = '[a-f0-9]'
examples = ['token = acme_{{hex:32}}']
negative_examples = ['acme_{{hex:31}}']
"#;

#[test]
fn user_rules_are_loaded_checked_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "rules/acme.toml", USER_RULE);
    let (code, out, err) = run(tmp.path(), &["rules", "check", "--rules", "rules"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 failures"));
    let (_, out, _) = run(tmp.path(), &["rules", "--rules", "rules"]);
    assert!(out.contains("acme-token"));

    let token = Keys::new(3).gen("acme_{{hex:32}}");
    write(tmp.path(), "src/app.py", format!("TOKEN = '{token}'\n"));
    let (code, v) = json(tmp.path(), &["--rules", "rules", "src"]);
    assert_eq!(code, 1);
    assert_eq!(creds(&v)[0]["rule"], "acme-token");

    // A failing example is reported, with the rule id.
    write(
        tmp.path(),
        "bad/acme.toml",
        USER_RULE.replace("{{hex:31}}", "{{hex:32}}"),
    );
    let (code, out, err) = run(tmp.path(), &["rules", "check", "--rules", "bad"]);
    assert_eq!(code, 1);
    assert!(err.contains("acme-token: negative example"), "{out}{err}");
}

#[test]
fn broken_rule_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "rules/broken.toml", "[[rule]]\nid = 'x'\n");
    let (code, _, err) = run(tmp.path(), &["scan", "--rules", "rules", "."]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.toml"), "{err}");
    write(
        tmp.path(),
        "dup/a.toml",
        USER_RULE.replace("acme-token", "aws-access-key-id"),
    );
    let (code, _, err) = run(tmp.path(), &["scan", "--rules", "dup", "."]);
    assert_eq!(code, 2);
    assert!(
        err.contains("aws-access-key-id") && err.contains("aws.toml"),
        "{err}"
    );
}

/// `follows` runs a rule's regex only in the windows of keyword hits it matches right after (a
/// window that reaches another hit searches it too: here they are kept apart);
/// `url_decode = false` keeps a rule's keyword hits from asking for URL decoding.
#[test]
fn follows_and_url_decode_gate_keyword_hits() {
    let tmp = tempfile::tempdir().unwrap();
    let rule = |id: &str, extra: &str| {
        format!(
            r#"
[[rule]]
id = "{id}"
name = "ACME key"
description = "An ACME key."
severity = "high"
keywords = ["acme_"]
regex = 'acme_(?:live_|test_)?[A-Za-z0-9/]{{32}}'
not_after = '[A-Za-z0-9/]'
window = [0, 40]
{extra}
"#
        )
    };
    let mut keys = Keys::new(5);
    let live = keys.gen("acme_live_{{alnum:32}}");
    let test = keys.gen("acme_test_{{alnum:32}}");
    let (a, b) = (keys.gen("{{alnum:16}}"), keys.gen("{{alnum:15}}"));
    // Only in its percent-decoded form is this a key: `/` is escaped.
    let escaped = format!("https://api.example.com/?k=acme_{a}%2F{b}&x=1");
    // Windows end in the padding, so each searches only its own line.
    let pad = " ".repeat(64);
    write(
        tmp.path(),
        "src/app.env",
        format!("LIVE={live}\n{pad}\nTEST={test}\n{pad}\nURL={escaped}\n"),
    );
    let found = |rules: &str| {
        write(tmp.path(), "rules/acme.toml", rules);
        let (code, v) = json(tmp.path(), &["--rules", "rules", "src"]);
        assert!(code <= 1, "{v}");
        let mut lines: Vec<u64> = creds(&v)
            .iter()
            .filter(|c| c["rule"] == "acme")
            .map(|c| c["places"][0]["line"].as_u64().unwrap())
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(found(&rule("acme", "")), [1, 3, 5]);
    assert_eq!(found(&rule("acme", "follows = 'live_'")), [1]);
    assert_eq!(found(&rule("acme", "url_decode = false")), [1, 3]);

    // A bad `follows`, or one on a rule without keywords, is an error naming the rule.
    write(tmp.path(), "bad/a.toml", rule("acme", "follows = '('"));
    let (code, _, err) = run(tmp.path(), &["scan", "--rules", "bad", "src"]);
    assert_eq!(code, 2);
    assert!(err.contains("acme") && err.contains("follows"), "{err}");
    let near = rule("acme", "follows = 'x'")
        .replace(r#"keywords = ["acme_"]"#, r#"near = "aws-access-key-id""#);
    write(tmp.path(), "bad/a.toml", near);
    let (code, _, err) = run(tmp.path(), &["scan", "--rules", "bad", "src"]);
    assert_eq!(code, 2);
    assert!(err.contains("follows needs keywords"), "{err}");
}

/// `--disable-rule`, `--min-confidence`, `--generic`/`--enable-rule` and their
/// `.keyhound.toml` forms choose the rules; `rules list` shows family, confidence and keywords.
#[test]
fn rules_are_chosen_by_id_family_and_confidence() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = Keys::new(11);
    let gh = keys.gen("ghp_{{crc62:30}}");
    let url = keys.gen("postgres://app:{{alnum:12}}7q@db.internal:5432/app");
    let generic = keys.gen("{{alnum:8}}7{{alnum:14}}");
    write(
        tmp.path(),
        "src/app.env",
        format!("GH={gh}\nDB={url}\nAPP_PASSWORD={generic}\n"),
    );
    let rules_of = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("src");
        let (code, v) = json(tmp.path(), &a);
        assert!(code <= 1, "{v}");
        let mut r: Vec<String> = creds(&v)
            .iter()
            .map(|c| c["rule"].as_str().unwrap().to_string())
            .collect();
        r.sort();
        r
    };
    assert_eq!(rules_of(&[]), ["github-token", "url-credentials"]);
    assert_eq!(rules_of(&["--disable-rule", "github"]), ["url-credentials"]);
    assert_eq!(
        rules_of(&["--disable-rule", "url-credentials"]),
        ["github-token"]
    );
    assert_eq!(rules_of(&["--min-confidence", "high"]), ["github-token"]);
    assert_eq!(
        rules_of(&["--generic"]),
        ["generic-secret", "github-token", "url-credentials"]
    );
    assert_eq!(
        rules_of(&[
            "--enable-rule",
            "generic-secret",
            "--min-confidence",
            "medium"
        ]),
        ["github-token", "url-credentials"]
    );
    // The same from the config; the command line's minimum confidence wins over the file's.
    write(
        tmp.path(),
        "src/.keyhound.toml",
        "[detect]\nenable_rules = [\"generic\"]\ndisable_rules = [\"github-token\"]\nmin_confidence = \"medium\"\n",
    );
    assert_eq!(rules_of(&[]), ["url-credentials"]);
    assert_eq!(
        rules_of(&["--min-confidence", "low"]),
        ["generic-secret", "url-credentials"]
    );
    std::fs::remove_file(tmp.path().join("src/.keyhound.toml")).unwrap();

    // An unknown name is an error that says where to look.
    let (code, _, err) = run(tmp.path(), &["scan", "--disable-rule", "nope", "src"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("\"nope\"") && err.contains("rules list"),
        "{err}"
    );

    let (code, out, _) = run(tmp.path(), &["rules", "list"]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("generic-secret"))
        .unwrap();
    for want in ["generic", "low", "off", "password"] {
        assert!(line.contains(want), "{line}");
    }
    let line = out.lines().find(|l| l.starts_with("github-token")).unwrap();
    assert!(line.contains("high") && line.contains("ghp_"), "{line}");
}

/// A gitleaks config passed to `--rules` is translated; what does not map is named, all at once.
#[test]
fn gitleaks_configs_are_translated() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "gitleaks.toml",
        r#"
title = "team"
[extend]
useDefault = true
[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''(?i)acme[_-]?api[_-]?key\s*[:=]\s*["']?([a-f0-9]{40})'''
secretGroup = 1
keywords = ["acme"]
[[rules.allowlists]]
stopwords = ["deadbeef"]
"#,
    );
    let mut keys = Keys::new(12);
    let k1 = keys.gen("{{hex:40}}");
    let k2 = format!("deadbeef{}", keys.gen("{{hex:32}}"));
    write(
        tmp.path(),
        "src/settings.py",
        format!("ACME_API_KEY = \"{k1}\"\nacme_api_key: {k2}\n"),
    );
    let (code, v) = json(tmp.path(), &["--rules", "gitleaks.toml", "src"]);
    assert_eq!(code, 1, "{v}");
    let c = creds(&v);
    assert_eq!(c.len(), 1, "{v}");
    assert_eq!(c[0]["rule"], "acme-api-key");
    assert_eq!(c[0]["family"], "gitleaks");
    assert_eq!(c[0]["places"][0]["line"], 1);
    // `rules check` passes for rules without examples that came from gitleaks.
    let (code, out, err) = run(tmp.path(), &["rules", "check", "--rules", "gitleaks.toml"]);
    assert_eq!(code, 0, "{out}{err}");

    write(
        tmp.path(),
        "bad.toml",
        "[[rules]]\nid = \"x\"\nregex = 'x[0-9]{9}'\npath = 'a'\n[allowlist]\npaths = ['b']\n",
    );
    let (code, _, err) = run(tmp.path(), &["scan", "--rules", "bad.toml", "src"]);
    assert_eq!(code, 2);
    for want in [
        "bad.toml",
        "rule x: no keywords",
        "rule x: path",
        "[allowlist]",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }

    // A .gitleaksignore is not read, and keyhound says so.
    write(
        tmp.path(),
        "src/.gitleaksignore",
        "abc:settings.py:acme-api-key:1\n",
    );
    let (_, _, err) = run(tmp.path(), &["scan", "--rules", "gitleaks.toml", "src"]);
    assert!(err.contains(".gitleaksignore is not read"), "{err}");
}

/// The README's rule table (scripts/rule-table) lists every family with its confidences.
#[test]
fn the_readme_lists_every_family_with_its_confidence() {
    use std::collections::{BTreeMap, BTreeSet};
    let engine = every_rule();
    let set = &engine.rules;
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let metas = set
        .rules
        .iter()
        .filter(|r| r.standalone)
        .map(|r| &r.meta)
        .chain(set.pairs.iter().map(|p| &p.meta));
    for m in metas {
        want.entry(m.family.clone())
            .or_default()
            .insert(m.confidence.as_str().to_string());
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("<!-- rule-table -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /rule-table -->").next())
        .expect("README has the rule table");
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let rows = table.lines().filter(|l| l.starts_with('|')).skip(2);
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        got.insert(
            cells[1].to_string(),
            cells[2].split(", ").map(str::to_string).collect(),
        );
    }
    assert_eq!(got, want, "run scripts/rule-table");
    assert!(want.len() >= 250, "{} families", want.len());
}
