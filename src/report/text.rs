//! The human report: one block per credential, most severe first, then a summary.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use anyhow::Result;

use super::Report;
use crate::detect::{Role, Severity};
use crate::finding::{Class, State};

fn sev_style(s: Severity) -> Style {
    let c = match s {
        Severity::Critical => AnsiColor::BrightRed,
        Severity::High => AnsiColor::Red,
        Severity::Medium => AnsiColor::Yellow,
        Severity::Low => AnsiColor::Cyan,
    };
    Style::new().fg_color(Some(c.into())).bold()
}

fn role_label(r: Role) -> &'static str {
    match r {
        Role::KeyId => "key id",
        Role::Secret => "secret",
        Role::SessionToken => "token",
        Role::Value => "value",
    }
}

pub fn write(r: &Report, color: bool, out: &mut dyn Write) -> Result<()> {
    write_credentials(r, color, out)?;
    write_summary(r, out)
}

/// One block per credential.
pub fn write_credentials(r: &Report, color: bool, out: &mut dyn Write) -> Result<()> {
    let paint = |style: Style, s: &str| -> String {
        if color {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    };
    let dim = Style::new().dimmed();
    let bold = Style::new().bold();
    for c in r.credentials {
        let sev = c.rule.severity;
        write!(
            out,
            "{} {}",
            paint(sev_style(sev), &format!("[{}]", sev.as_str())),
            paint(bold, &c.rule.name)
        )?;
        if let Some(a) = &c.account_id {
            write!(out, "  account {a}")?;
        }
        if c.class == Class::Example {
            write!(out, "  {}", paint(dim, "(example)"))?;
        }
        writeln!(
            out,
            "  {}",
            paint(dim, &format!("{} {}", c.rule.id, c.fingerprint))
        )?;
        for (role, v) in &c.parts {
            writeln!(out, "  {:<7} {}", role_label(*role), r.value(*role, v))?;
        }
        if let Some(v) = &c.verification {
            let style = match v.state {
                State::Live => sev_style(Severity::Critical),
                State::Canary | State::Unknown => sev_style(Severity::Medium),
                _ => dim,
            };
            let mut line = paint(style, v.state.as_str());
            for x in [&v.arn, &v.account, &v.user_id]
                .into_iter()
                .flatten()
                .take(1)
            {
                line.push_str(&format!("  {x}"));
            }
            if let Some(why) = &v.reason {
                line.push_str(&format!("  ({why})"));
            }
            writeln!(out, "  {:<7} {}", "state", line)?;
        }
        for p in &c.places {
            let mut extra = Vec::new();
            if !p.decoded.is_empty() {
                let d: Vec<&str> = p.decoded.iter().map(|d| d.as_str()).collect();
                extra.push(format!("decoded: {}", d.join(" › ")));
            }
            if p.parts.len() < c.parts.len() {
                let d: Vec<&str> = p.parts.iter().map(|x| role_label(*x)).collect();
                extra.push(format!("only {}", d.join(", ")));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!("  ({})", extra.join("; "))
            };
            // Lines mean nothing in a disk image: its places are byte offsets.
            let at = if p.origin.raw {
                format!(" @ byte {} (0x{:x})", p.location.offset, p.location.offset)
            } else {
                format!(":{}:{}", p.location.line, p.location.column)
            };
            writeln!(
                out,
                "  {} {}{}{}",
                paint(dim, "at"),
                paint(
                    Style::new().fg_color(Some(AnsiColor::Green.into())),
                    &p.origin.to_string()
                ),
                at,
                extra
            )?;
            if let Some(g) = &p.origin.git {
                writeln!(out, "      {}", history_line(g))?;
            }
            let snip = r.snippet(c, p.snippet.trim());
            if !snip.is_empty() {
                writeln!(out, "      {}", paint(dim, &snip))?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The closing summary: what was found, read, skipped, hidden and suppressed.
pub fn write_summary(r: &Report, out: &mut dyn Write) -> Result<()> {
    let s = &r.summary;
    let n = r.credentials.len();
    if n == 0 {
        writeln!(out, "No secrets found.")?;
    } else {
        let by: Vec<String> = r
            .by_rule()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            out,
            "{n} credential{} in {} place{} ({}).",
            plural(n as u64),
            r.places(),
            plural(r.places() as u64),
            by.join(", ")
        )?;
    }
    if !s.shards.is_empty() {
        let (b, t) = (
            s.shards.iter().map(|l| l.bytes),
            s.shards.iter().map(|l| l.duration_ms),
        );
        writeln!(
            out,
            "Merged {} parts: {} to {} each, {:.2}s to {:.2}s.",
            s.shards.len(),
            human_bytes(b.clone().min().unwrap_or(0)),
            human_bytes(b.max().unwrap_or(0)),
            t.clone().min().unwrap_or(0) as f64 / 1000.0,
            t.max().unwrap_or(0) as f64 / 1000.0,
        )?;
    }
    let unit = if r.kind == "worktree" { "file" } else { "blob" };
    let commits = if s.commits > 0 {
        format!(" from {} commit{}", s.commits, plural(s.commits))
    } else {
        String::new()
    };
    writeln!(
        out,
        "Scanned {} {unit}{}{commits}, {} in {:.2}s ({:.1} MiB/s).",
        s.files,
        plural(s.files),
        human_bytes(s.bytes),
        s.elapsed.as_secs_f64(),
        s.throughput_mib_s()
    )?;
    if !s.skipped.is_empty() {
        let v: Vec<String> = s
            .skipped
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        writeln!(out, "Skipped: {}.", v.join(", "))?;
    }
    if s.examples_hidden > 0 {
        writeln!(
            out,
            "{} example or placeholder credential{} not shown (--include-examples shows them).",
            s.examples_hidden,
            plural(s.examples_hidden)
        )?;
    }
    if !s.suppressed.is_empty() {
        let v: Vec<String> = s
            .suppressed
            .iter()
            .map(|(k, n)| format!("{n} by {}", k.as_str()))
            .collect();
        writeln!(out, "Suppressed: {}.", v.join(", "))?;
    }
    if !s.baseline_missing.is_empty() {
        writeln!(
            out,
            "{} baseline credential{} no longer seen: {}.",
            s.baseline_missing.len(),
            plural(s.baseline_missing.len() as u64),
            s.baseline_missing.join(", ")
        )?;
    }
    if s.incomplete {
        writeln!(
            out,
            "The scan is incomplete: some inputs could not be read (see warnings)."
        )?;
    }
    Ok(())
}

/// `commit 1a2b3c4d 2024-05-01T10:00:00+00:00 Jane <jane@example.com>: summary (still at HEAD)`
pub fn history_line(g: &crate::blob::GitInfo) -> String {
    let mut s = match &g.commit {
        Some(c) => format!(
            "commit {} {} {} <{}>: {}",
            &c.id[..c.id.len().min(12)],
            c.date,
            c.author,
            c.email,
            c.summary
        ),
        None => format!("blob {} (in no commit)", g.blob),
    };
    if let Some(m) = &g.message {
        // A message stays in history for good: rewriting it is the only removal.
        s.push_str(&format!(" (in the {m} message)"));
    } else if g.at_head {
        s.push_str(" (still at HEAD)");
    } else if let Some(r) = &g.removed_in {
        s.push_str(&format!(
            " (history only: removed in {})",
            &r.id[..r.id.len().min(12)]
        ));
    } else {
        s.push_str(" (history only)");
    }
    if g.paths.len() > 1 {
        s.push_str(&format!("; also at {}", g.paths[1..].join(", ")));
    }
    s
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
