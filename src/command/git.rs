//! `keyhound git`: every blob of history (or a branch, a range, every object), with the commit
//! and paths of each finding; with `--staged`, what the next commit adds (the pre-commit check).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::blob::{Blob, Origin};
use crate::detect::Engine;
use crate::finding::Finding;
use crate::pipeline::{finish, progress, scan_blob, DetectPlan, Detector, OutputPlan, EXIT_FOUND};
use crate::source::git::{self, History, HistoryOptions};
use crate::source::gitcopy::GitCollector;
use crate::source::{archive, window};
use crate::source::{Skip, Stats};

pub struct GitPlan {
    pub repo: PathBuf,
    pub history: HistoryOptions,
    /// Scan what is staged instead of history (the pre-commit check).
    pub staged: bool,
    /// A file of repositories (paths or clone URLs) to scan as one.
    pub repos: Option<PathBuf>,
    /// Where URLs are cloned.
    pub clone_dir: Option<PathBuf>,
    /// Archives among the blobs.
    pub archives: crate::source::archive::Limits,
    pub detect: DetectPlan,
    pub output: OutputPlan,
}

/// `keyhound git`: history, or with `staged` the index.
pub fn run(plan: GitPlan) -> Result<u8> {
    if plan.repos.is_some() {
        return run_many(plan);
    }
    let start = Instant::now();
    let repo = git::open(&plan.repo)?;
    let root = {
        let r = repo.to_thread_local();
        r.workdir().unwrap_or_else(|| r.git_dir()).to_path_buf()
    };
    let det = Detector::new(&plan.detect, std::slice::from_ref(&root))?;
    let stats = Arc::new(Stats::default());
    let repo_name = crate::source::tree::display_path(&plan.repo);
    let roots = vec![if repo_name.is_empty() {
        ".".into()
    } else {
        repo_name
    }];
    if plan.staged {
        let files = git::staged(&repo, &stats)?;
        let mut found = Vec::new();
        let local = repo.to_thread_local();
        for f in &files {
            if let Some(big) = &f.big {
                found.extend(staged_big(
                    &det.engine,
                    &local,
                    big,
                    &f.path,
                    plan.archives,
                    &stats,
                ));
                continue;
            }
            let blob = Blob::whole(&f.data, Arc::new(Origin::file(f.path.clone())));
            // Only what this commit adds: a finding on a line HEAD already had is not new.
            found.extend(scan_blob(&det.engine, &blob).into_iter().filter(|fi| {
                fi.parts
                    .iter()
                    .any(|p| !f.old_lines.contains(line_at(&f.data, p.location.line)))
            }));
        }
        let code = finish(&det, found, &stats, start, "staged", roots, &plan.output)?;
        if code == EXIT_FOUND {
            eprintln!(
                "keyhound: commit blocked: the staged changes add secrets.\n  \
                 Unstage a file with `git restore --staged PATH`, remove the secret (use the \
                 environment or a secrets manager) and stage it again.\n  \
                 A false positive? Put `keyhound:allow` on its line, or its fingerprint in \
                 .keyhoundignore.\n  \
                 A secret that was ever pushed must be rotated: history keeps it."
            );
        }
        return Ok(code);
    }
    let mut seen = HashSet::new();
    let progress = progress(&stats, &plan.output);
    // `[allowlist] paths` of the repository's `.keyhound.toml` hold for its history too.
    let opts = HistoryOptions {
        exclude: det.config.path_filter()?,
        ..plan.history.clone()
    };
    let findings = history_findings(
        &det.engine,
        repo,
        &opts,
        plan.archives,
        &stats,
        &mut seen,
        RepoName::Scanned(&plan.repo.display().to_string()),
    )?;
    progress.finish();
    let kind = if plan.history.range.is_some() {
        "pull-request"
    } else {
        "history"
    };
    finish(&det, findings, &stats, start, kind, roots, &plan.output)
}

/// The findings a big staged blob adds: scanned as a stream, in windows, and kept unless
/// HEAD's version of the path (streamed too) held the same secret.
fn staged_big(
    engine: &Engine,
    repo: &gix::Repository,
    big: &git::BigStaged,
    path: &str,
    limits: archive::Limits,
    stats: &Stats,
) -> Vec<Finding> {
    let origin = Arc::new(Origin::file(path.to_string()));
    let findings = |id: gix::ObjectId, size: u64, what: &str| -> Vec<Finding> {
        let Some(mut r) = git::open_blob(repo, id, size) else {
            git::over_memory_bound(stats, &format!("{what} {path} ({id})"), size);
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let (chunk, overlap) = (limits.chunk, limits.overlap.max(engine.max_span));
        let mut each = |b: Blob| out.extend(scan_blob(engine, &b));
        match window::stream(&mut r, &origin, chunk, overlap, &mut buf, &mut each) {
            Ok(n) => stats.read(n),
            Err(e) => stats.skip(Skip::Unreadable, Some(format!("{what} {path} ({id}): {e}"))),
        }
        out
    };
    let secrets = |f: &Finding| f.parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>();
    let before: HashSet<Vec<String>> = big
        .old
        .map(|(id, size)| findings(id, size, "HEAD's"))
        .unwrap_or_default()
        .iter()
        .map(secrets)
        .collect();
    findings(big.id, big.size, "staged")
        .into_iter()
        .filter(|f| !before.contains(&secrets(f)))
        .collect()
}

/// Is this line of `--repos` a clone URL (`https://…`, `git://…`, `ssh://…`, `git@host:path`)?
fn is_url(s: &str) -> bool {
    s.contains("://") || (s.contains('@') && s.contains(':') && !Path::new(s).exists())
}

/// A directory name for a clone of `url`: its last path part, and a hash of the whole so that
/// two repositories named alike do not meet.
fn clone_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo");
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let h = crate::shard::bucket(url.as_bytes(), u32::MAX);
    format!("{safe}-{h:08x}.git")
}

/// A line of a `--repos` file: a path or URL, and a size after it when given (`12345`,
/// `800k`, `1.5g`: bytes, or KiB, MiB, GiB).
fn repo_line(line: &str) -> (&str, Option<u64>) {
    if let Some((target, last)) = line.rsplit_once(char::is_whitespace) {
        if let Some(n) = parse_size(last) {
            return (target.trim_end(), Some(n));
        }
    }
    (line, None)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &s[digits.len()..] {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    let n: f64 = digits.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some((n * unit as f64) as u64)
}

/// The bytes of a local repository's object database (loose objects and packs), as its size for
/// the split.
fn repo_bytes(path: &Path) -> Option<u64> {
    let repo = git::open(path).ok()?.to_thread_local();
    let objects = repo.common_dir().join("objects");
    let mut total = 0;
    for e in ignore::WalkBuilder::new(&objects)
        .standard_filters(false)
        .build()
        .flatten()
    {
        if let Ok(m) = e.metadata() {
            if m.is_file() {
                total += m.len();
            }
        }
    }
    Some(total)
}

/// Which repositories of the list are this shard's: balanced by size (given on the line, else
/// the local object database's; a URL without one counts as the mean of the others, or 1 when
/// none is known), so that one big repository does not make one part the slowest.
fn owned_repos(targets: &[(&str, Option<u64>)], shard: Option<crate::shard::Shard>) -> Vec<bool> {
    let Some(shard) = shard.filter(|s| s.count > 1) else {
        return vec![true; targets.len()];
    };
    let sizes: Vec<Option<u64>> = targets
        .iter()
        .map(|(t, given)| {
            given.or_else(|| (!is_url(t)).then(|| repo_bytes(Path::new(t))).flatten())
        })
        .collect();
    let known: Vec<u64> = sizes.iter().flatten().copied().collect();
    let mean = if known.is_empty() {
        1
    } else {
        (known.iter().sum::<u64>() / known.len() as u64).max(1)
    };
    let items: Vec<(&str, u64)> = targets
        .iter()
        .zip(&sizes)
        .map(|((t, _), s)| (*t, s.unwrap_or(mean)))
        .collect();
    crate::shard::balance(&items, shard.count)
        .into_iter()
        .map(|k| k == shard.index)
        .collect()
}

/// `keyhound git --repos FILE`: every repository of the list as one scan, each blob and commit
/// once across them, places prefixed with the repository as listed. URLs are cloned bare into
/// `--clone-dir` with gix. With a shard, whole repositories are split by size (see
/// `owned_repos`), so that no part walks another's history.
fn run_many(plan: GitPlan) -> Result<u8> {
    let start = Instant::now();
    let list = plan.repos.as_ref().unwrap();
    let text =
        std::fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
    let targets: Vec<(&str, Option<u64>)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(repo_line)
        .collect();
    let owned = owned_repos(&targets, plan.output.shard);
    let lines: Vec<String> = targets.iter().map(|(t, _)| t.to_string()).collect();
    let det = Detector::new(&plan.detect, &[])?;
    let stats = Arc::new(Stats::default());
    let progress = progress(&stats, &plan.output);
    // Each part takes whole repositories; within one, every blob.
    let opts = HistoryOptions {
        shard: None,
        exclude: det.config.path_filter()?,
        ..plan.history
    };
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for (line, _) in lines.iter().zip(&owned).filter(|(_, &mine)| mine) {
        let repo = if is_url(line) {
            let Some(dir) = &plan.clone_dir else {
                stats.skip(
                    Skip::Unreadable,
                    Some(format!("{line}: a URL; pass --clone-dir DIR to clone it")),
                );
                continue;
            };
            clone(line, dir)
        } else {
            git::open(Path::new(line))
        };
        let res = repo.and_then(|r| {
            history_findings(
                &det.engine,
                r,
                &opts,
                plan.archives,
                &stats,
                &mut seen,
                RepoName::Found(line),
            )
        });
        match res {
            Ok(f) => found.extend(f),
            Err(e) => stats.skip(Skip::Unreadable, Some(format!("{line}: {e:#}"))),
        }
    }
    progress.finish();
    finish(&det, found, &stats, start, "history", lines, &plan.output)
}

/// A bare clone of `url` in `dir` (reused when it is there already).
fn clone(url: &str, dir: &Path) -> Result<gix::ThreadSafeRepository> {
    let dest = dir.join(clone_name(url));
    if dest.exists() {
        return git::open(&dest);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut prep =
        gix::prepare_clone_bare(url, &dest).map_err(|e| anyhow::anyhow!("clone: {e}"))?;
    let (repo, _) = prep
        .fetch_only(
            gix::progress::Discard,
            &std::sync::atomic::AtomicBool::new(false),
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&dest);
            anyhow::anyhow!("clone: {e}")
        })?;
    Ok(repo.into_sync())
}

/// Which repository: the one `keyhound git` was asked to scan, or one found inside a scan
/// (`vendor/lib/.git`, `disk.img › p1 (xfs) › /home/app/.git`), whose name prefixes its places.
pub(crate) enum RepoName<'a> {
    Scanned(&'a str),
    Found(&'a str),
}

/// The history of each repository a `GitCollector` copied out of filesystems and archives;
/// places read `disk.img › p1 (xfs) › /home/app/.git @ 1a2b3c4d5e6f › settings.py:1`. A
/// repository met in an archive is read whole (only the shard that expanded it saw it); one
/// met in a filesystem, by `opts.shard` (every shard walks the filesystem).
pub(crate) fn copied_histories(
    engine: &Engine,
    git: &GitCollector,
    opts: &HistoryOptions,
    limits: archive::Limits,
    stats: &Stats,
    seen: &mut HashSet<gix::ObjectId>,
) -> Vec<Finding> {
    let (repos, over) = git.repositories();
    for place in over {
        stats.skip(
            Skip::Unreadable,
            Some(format!(
                "{place}: its history is not read: the git repositories copied for their \
                 history pass {} MiB (its files are scanned either way)",
                git.budget() >> 20
            )),
        );
    }
    let mut out = Vec::new();
    for repo in repos {
        // Allowlisted paths name files of the scanned tree, not of a repository copied out of
        // an image or an archive (whose files are not matched against them either).
        let whole = HistoryOptions {
            shard: None,
            exclude: None,
            ..opts.clone()
        };
        let opts = &HistoryOptions {
            exclude: None,
            ..opts.clone()
        };
        let res = git::open(&repo.dir).and_then(|r| {
            history_findings(
                engine,
                r,
                if repo.whole { &whole } else { opts },
                limits,
                stats,
                seen,
                RepoName::Found(&repo.place),
            )
        });
        match res {
            Ok(found) => out.extend(found.into_iter().map(|mut f| {
                // The snapshot or S3 object it came from, as for the files beside it.
                if repo.from.snapshot.is_some() || repo.from.object.is_some() {
                    let mut o = (*f.origin).clone();
                    o.snapshot = repo.from.snapshot.clone();
                    o.object = repo.from.object.clone();
                    f.origin = Arc::new(o);
                }
                f
            })),
            Err(e) => stats.skip(
                Skip::Unreadable,
                Some(format!("{}: its history cannot be read: {e:#}", repo.place)),
            ),
        }
    }
    out
}

/// The findings of one repository's history: its blobs (those not in `seen` yet, each once)
/// and its commit and tag messages, each finding attributed to its commit and paths. The places
/// of a repository found inside a scan read `vendor/lib/.git @ 1a2b3c4d › settings.py`.
pub(crate) fn history_findings(
    engine: &Engine,
    repo: gix::ThreadSafeRepository,
    opts: &HistoryOptions,
    limits: archive::Limits,
    stats: &Stats,
    seen: &mut HashSet<gix::ObjectId>,
    repo_name: RepoName,
) -> Result<Vec<Finding>> {
    let (name, label) = match repo_name {
        RepoName::Scanned(n) => (n, None),
        RepoName::Found(n) => (n, Some(n)),
    };
    // The whole history (or every object): the packs are read and scanned while the trees are
    // walked, and the walk then says which of those blobs history reaches, and which others
    // (loose, in an alternate) to read by id. A branch or a range reaches a part of the packs
    // only (a pull request's few commits): its blobs are read by id after the walk.
    let whole = opts.branch.is_none() && opts.since_commit.is_none() && opts.range.is_none();
    let by_id: Mutex<Vec<(gix::ObjectId, Finding)>> = Mutex::new(Vec::new());
    let by_index: Mutex<Vec<(usize, Finding)>> = Mutex::new(Vec::new());
    // Each blob: archives inside it expanded, every piece scanned.
    let scan_one = |blob: Blob, emit: &mut dyn FnMut(Vec<Finding>)| {
        let mut each = |b: Blob| {
            let f = scan_blob(engine, &b);
            if !f.is_empty() {
                emit(f);
            }
        };
        let kind = (limits.max_depth > 0)
            .then(|| archive::sniff(blob.data))
            .flatten();
        match kind {
            Some(kind) => {
                let len = blob.data.len() as u64;
                let mut ex = archive::Expander::new(limits, stats, len, &mut each);
                if !ex.bytes(blob.data, kind, &blob.origin) {
                    each(blob);
                }
            }
            None => each(blob),
        }
    };
    let (history, packed) = std::thread::scope(|s| {
        let walk = s.spawn(|| History::enumerate(repo.clone(), opts, stats));
        let packed = if whole {
            git::scan_packs(&repo, opts.threads, opts.shard, &|kind, id, data| {
                let (text, origin) = if kind == gix::object::Kind::Commit {
                    let text = gix::objs::CommitRef::from_bytes(data).ok()?.message;
                    (text.as_ref(), git::commit_message_origin(id))
                } else {
                    // An archive is left to the reads by id, where its path is known for the
                    // warnings about its members.
                    if limits.max_depth > 0 && archive::sniff(data).is_some() {
                        return None;
                    }
                    (data, Arc::new(Origin::file(format!("blob {id}"))))
                };
                let f = scan_blob(engine, &Blob::whole(text, origin));
                if !f.is_empty() {
                    by_id.lock().unwrap().extend(f.into_iter().map(|f| (id, f)));
                }
                Some(text.len() as u64)
            })
        } else {
            HashMap::new()
        };
        let history = walk.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (history, packed)
    });
    release_freed_memory();
    let mut history = history?;
    history.drop_allowlisted(opts, stats);
    history.skip_seen(seen);
    if history.shallow {
        eprintln!(
            "keyhound: warning: {name} is a shallow clone: commits before its shallow boundary \
             are not scanned (fetch with --unshallow for the whole history)"
        );
    }
    if history.submodules > 0 {
        eprintln!(
            "keyhound: note: {} gitlink (submodule) tree entries of {name} were not followed: \
             scan each submodule's own repository",
            history.submodules
        );
    }
    // What the pack pass read and history reaches counts as read; its findings are kept.
    let index = history.blob_indices();
    let rest: Vec<usize> = (0..history.blob_count())
        .filter(|&i| !history.count_read(i, &packed, stats))
        .collect();
    // The pack pass's findings: in blobs history reaches, and in commit messages (kept below
    // for the commits history walks).
    let mut commit_found = Vec::new();
    for (id, f) in by_id.into_inner().unwrap() {
        if f.origin.git.is_some() {
            commit_found.push((id, f));
        } else if let Some(&i) = index.get(&id) {
            by_index.lock().unwrap().push((i, f));
        }
    }
    let by_index_ref = &by_index;
    let scan_one = &scan_one;
    // A big blob, streamed: an archive expanded as it streams, anything else in windows.
    let big = |i: usize, open: &dyn Fn() -> Option<Box<dyn Read>>, size: u64, origin| {
        let mut each = |b: Blob| {
            let f = scan_blob(engine, &b);
            if !f.is_empty() {
                by_index_ref
                    .lock()
                    .unwrap()
                    .extend(f.into_iter().map(|f| (i, f)))
            }
        };
        let Some(r) = open() else { return };
        let (head, r) = match archive::peek(r) {
            Ok(x) => x,
            Err(e) => return stats.skip(Skip::Unreadable, Some(format!("{origin}: {e}"))),
        };
        let kind = (limits.max_depth > 0)
            .then(|| archive::sniff(&head))
            .flatten();
        let mut r = std::io::Cursor::new(head).chain(r);
        if let Some(kind) = kind {
            let mut ex = archive::Expander::new(limits, stats, size, &mut each);
            if ex.reader(&mut r, kind, &origin) {
                stats.read(size);
                return;
            }
            // Not expanded at all: its raw bytes, from the start again.
            match open() {
                Some(again) => r = std::io::Cursor::new(Vec::new()).chain(again),
                None => return,
            }
        }
        let mut buf = Vec::new();
        let (chunk, overlap) = (limits.chunk, limits.overlap.max(engine.max_span));
        match window::stream(&mut r, &origin, chunk, overlap, &mut buf, &mut each) {
            Ok(n) => stats.read(n),
            Err(e) => stats.skip(Skip::Unreadable, Some(format!("{origin}: {e}"))),
        }
    };
    history.scan(
        &rest,
        opts.threads,
        stats,
        &|| {
            move |i: usize, blob: Blob| {
                scan_one(blob, &mut |f| {
                    by_index_ref
                        .lock()
                        .unwrap()
                        .extend(f.into_iter().map(|f| (i, f)))
                });
            }
        },
        &big,
    );
    // Commit and annotated tag messages: their origins are whole already.
    let mut messages: Vec<Finding> = Vec::new();
    let keep = history.messages(stats, seen, &packed, &mut |b: Blob| {
        messages.extend(scan_blob(engine, &b))
    });
    messages.extend(
        commit_found
            .into_iter()
            .filter(|(id, _)| keep.contains(id))
            .map(|(_, f)| f),
    );
    for f in &mut messages {
        let Some(g) = f.origin.git.as_ref() else {
            continue;
        };
        if g.commit.is_none() && g.message.as_deref() == Some("commit") {
            let mut g = (**g).clone();
            g.commit = history.commit_info(&g.blob);
            let mut o = (*f.origin).clone();
            o.git = Some(Arc::new(g));
            f.origin = Arc::new(o);
        }
    }
    let found = by_index.into_inner().unwrap();
    let mut ids: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
    ids.sort_unstable();
    ids.dedup();
    let origins = history.attribute(&ids, opts.threads);
    let mut findings: Vec<Finding> = found
        .into_iter()
        .map(|(i, mut f)| {
            // The commit and paths of the blob, and the chain inside it (archive members).
            let mut o = (*origins[&i]).clone();
            o.inner = f.origin.inner.clone();
            f.origin = Arc::new(o);
            f
        })
        .chain(messages)
        .collect();
    if let Some(label) = label {
        for f in &mut findings {
            let mut o = (*f.origin).clone();
            let at = o
                .git
                .as_ref()
                .and_then(|g| g.commit.as_ref())
                .map_or("(no commit)".to_string(), |c| {
                    c.id[..c.id.len().min(12)].to_string()
                });
            o.inner.insert(0, std::mem::take(&mut o.path));
            o.path = format!("{label} @ {at}");
            f.origin = Arc::new(o);
        }
    }
    Ok(findings)
}

/// Hands what the pack pass's threads and the walk freed back to the system: glibc keeps it in
/// each thread's arena otherwise, and what comes after adds to it (on git/git the attribution
/// raised the peak by some 110 MB).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The bytes of 1-based line `n` of `data`.
fn line_at(data: &[u8], n: u64) -> &[u8] {
    let mut rest = data;
    for _ in 1..n {
        match memchr::memchr(b'\n', rest) {
            Some(p) => rest = &rest[p + 1..],
            None => return &[],
        }
    }
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_lines_with_sizes() {
        assert_eq!(
            repo_line("git://h/a.git 5g"),
            ("git://h/a.git", Some(5 << 30))
        );
        assert_eq!(
            repo_line("/srv/my repo  800k"),
            ("/srv/my repo", Some(800 << 10))
        );
        assert_eq!(repo_line("/srv/a 1.5m"), ("/srv/a", Some(3 << 19)));
        assert_eq!(repo_line("/srv/a 4096"), ("/srv/a", Some(4096)));
        assert_eq!(repo_line("/srv/my repo"), ("/srv/my repo", None));
        assert_eq!(repo_line("/srv/a 12x"), ("/srv/a 12x", None));
        assert_eq!(repo_line("12k"), ("12k", None));
    }
}
