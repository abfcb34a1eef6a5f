//! The working tree: the `ignore` crate's parallel walker (the one ripgrep uses), .gitignore
//! honoured unless `no_ignore`, `.git/` skipped, hidden files scanned (`.env`, `.aws/` are where
//! keys live), symlinks followed only when asked. Files up to `chunk` bytes are read whole into
//! a buffer each thread reuses; bigger ones stream through overlapping windows.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::{WalkBuilder, WalkState};

use super::{archive, Skip, Stats};
use crate::blob::{Blob, Origin};

pub struct WalkOptions {
    pub no_ignore: bool,
    pub follow_links: bool,
    pub threads: usize,
    /// Largest piece of a file held in memory at once.
    pub chunk: usize,
    /// Bytes shared by consecutive pieces (at least the longest possible match).
    pub overlap: usize,
    /// Archives found among the files (depth 0: scan them as raw bytes).
    pub archives: super::archive::Limits,
    /// Note the git repositories under the roots (`--git-history`): `walk` returns them.
    pub find_repos: bool,
    /// Only the files of this shard (by a hash of their path).
    pub shard: Option<crate::shard::Shard>,
    /// Where the files of git repositories inside archives are copied, for their history
    /// (`--git-history`; the repositories of the tree itself are read where they are).
    pub git: Option<Arc<super::gitcopy::GitCollector>>,
}

/// Walks `roots` on `opts.threads` threads; `make` builds one blob handler per thread.
/// `exclude` gets each file's display path and says whether to skip it. With
/// `opts.find_repos`, returns the git repositories met: each `.git` (a directory, or the file
/// of a linked worktree or submodule) and each bare repository (`HEAD`, `objects/`, `refs/`),
/// sorted.
pub fn walk<F>(
    roots: &[PathBuf],
    opts: &WalkOptions,
    stats: &Stats,
    exclude: &(dyn Fn(&str) -> bool + Sync),
    make: &(dyn Fn() -> F + Sync),
) -> Vec<PathBuf>
where
    F: FnMut(Blob) + Send,
{
    let repos: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>> = Default::default();
    let (found, find, shard) = (repos.clone(), opts.find_repos, opts.shard);
    let mut b = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        b.add(r);
    }
    b.threads(opts.threads)
        .hidden(false)
        .follow_links(opts.follow_links)
        .git_ignore(!opts.no_ignore)
        .git_global(!opts.no_ignore)
        .git_exclude(!opts.no_ignore)
        .ignore(!opts.no_ignore)
        .parents(!opts.no_ignore)
        .require_git(false)
        .filter_entry(move |e| {
            if e.file_name() == ".git" {
                if find {
                    found.lock().unwrap().push(e.path().to_path_buf());
                }
                return false;
            }
            let dir = e.file_type().is_some_and(|t| t.is_dir());
            // Another shard's file is dropped here, before the walker queues it for a thread:
            // each shard lists every directory, and that is all it should spend on the rest.
            if !dir && shard.is_some_and(|s| !s.owns(display_name(e.path()).as_bytes())) {
                return false;
            }
            let bare = find
                && dir
                && e.path().join("HEAD").is_file()
                && e.path().join("objects").is_dir()
                && e.path().join("refs").is_dir();
            if bare {
                found.lock().unwrap().push(e.path().to_path_buf());
            }
            !bare
        });
    b.build_parallel().run(|| {
        let mut handle = make();
        let mut buf = Vec::new();
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    // Every shard walks every directory and meets the error: the shard its
                    // path falls in names it (the first, if it names none), so the parts
                    // count it once, as the single run does.
                    let owner = match error_path(&err) {
                        Some(p) => shard.is_none_or(|s| s.owns(display_path(p).as_bytes())),
                        None => shard.is_none_or(|s| s.index == 0),
                    };
                    if owner {
                        stats.skip(Skip::Unreadable, Some(format!("{}", err)));
                    }
                    return WalkState::Continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                return WalkState::Continue;
            };
            if ft.is_dir() {
                return WalkState::Continue;
            }
            let name = display_path(entry.path());
            // A shard reads, and counts, only its share of the files: `filter_entry` dropped
            // the others, except the roots, which the walker does not filter.
            if entry.depth() == 0 && opts.shard.is_some_and(|s| !s.owns(name.as_bytes())) {
                return WalkState::Continue;
            }
            if ft.is_symlink() {
                stats.skip(Skip::Symlink, None);
                return WalkState::Continue;
            }
            if !ft.is_file() {
                stats.skip(Skip::Special, None);
                return WalkState::Continue;
            }
            if exclude(&name) {
                stats.skip(Skip::Allowlisted, None);
                return WalkState::Continue;
            }
            let origin = Arc::new(Origin::file(name));
            if let Err(e) = read_file(entry.path(), &origin, opts, stats, &mut buf, &mut handle) {
                stats.skip(Skip::Unreadable, Some(format!("{origin}: {e}")));
            }
            WalkState::Continue
        })
    });
    let mut out = std::mem::take(&mut *repos.lock().unwrap());
    out.sort();
    out
}

/// A path as users want to see it: without a leading `./`, with `/` separators.
pub fn display_path(p: &Path) -> String {
    display_name(p).into_owned()
}

/// The path a walk error is about, if it says.
fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::Loop { child, .. } => Some(child),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(v) => v.iter().find_map(error_path),
        _ => None,
    }
}

/// `display_path` borrowed from `p` where it can be (a UTF-8 path, `/` separators): what a
/// shard hashes for every file it walks past, without copying each name.
fn display_name(p: &Path) -> Cow<'_, str> {
    // The usual case, a UTF-8 path under `./` or none, without parsing its components
    // (`strip_prefix` and `to_string_lossy`'s checks were a tenth of a shard's walk).
    #[cfg(unix)]
    if let Some(s) = p.to_str() {
        // An absolute path is never under `.`: it is named as it is. (A scan of the directory
        // a job mounts, `/data`, had every shard parse and check every path it walked past.)
        if s.starts_with('/') {
            return Cow::Borrowed(s);
        }
        let rest = s.strip_prefix("./").unwrap_or(s);
        if !rest.is_empty() && !rest.starts_with(['.', '/']) && !rest.ends_with('/') {
            return Cow::Borrowed(rest);
        }
    }
    let p = p.strip_prefix(".").unwrap_or(p);
    let s = p.to_string_lossy();
    if std::path::MAIN_SEPARATOR == '\\' {
        Cow::Owned(s.replace('\\', "/"))
    } else {
        s
    }
}

fn read_file<F: FnMut(Blob)>(
    path: &Path,
    origin: &Arc<Origin>,
    opts: &WalkOptions,
    stats: &Stats,
    buf: &mut Vec<u8>,
    handle: &mut F,
) -> io::Result<()> {
    let mut f = File::open(path)?;
    let archives = opts.archives.max_depth > 0;
    // Most files are read whole, without asking their size first: `metadata` and std's
    // `read_to_end` (which asks again, and where the file is) were 3 of 8 system calls a file.
    let n = read_head(&mut f, buf, opts.chunk + 1)?;
    if n <= opts.chunk {
        let data = &buf[..n];
        stats.read(n as u64);
        if let Some(kind) = archive::sniff(data).filter(|_| archives) {
            let mut ex = archive::Expander::new(opts.archives, stats, n as u64, handle)
                .git(opts.git.as_deref());
            if ex.bytes(data, kind, origin) {
                return Ok(());
            }
        }
        handle(Blob::whole(data, origin.clone()));
        return Ok(());
    }
    if archives {
        if let Some(kind) = archive::sniff(&buf[..n.min(512)]) {
            let len = f.metadata()?.len().max(n as u64);
            f.seek(io::SeekFrom::Start(0))?;
            stats.read(len);
            let mut ex =
                archive::Expander::new(opts.archives, stats, len, handle).git(opts.git.as_deref());
            if ex.file(f, kind, origin) {
                return Ok(());
            }
            // Unreadable from its first bytes: scan it as raw bytes instead, from the start.
            f = File::open(path)?;
            buf.clear();
            stats
                .files
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            stats
                .bytes
                .fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
        }
    }
    // The bytes read so far start the first window: a big file is read once.
    buf.truncate(n);
    let n = super::window::stream_after(&mut f, origin, opts.chunk, opts.overlap, buf, handle)?;
    stats.read(n);
    Ok(())
}

/// Reads `f` into `buf` until it ends or `limit` bytes are in; returns how many. `buf` keeps
/// its length from call to call (zeroed as it grows, never cleared), so a thread's files are
/// read into memory already written, in as few reads as the file takes plus the one that sees
/// its end.
fn read_head(f: &mut File, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    const FIRST: usize = 64 << 10;
    let mut n = 0;
    loop {
        if n == buf.len().min(limit) {
            if n >= limit {
                return Ok(n);
            }
            buf.resize((n * 2).clamp(FIRST, limit), 0);
        }
        let end = buf.len().min(limit);
        match f.read(&mut buf[n..end]) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut names every path as the components' way does.
    #[test]
    fn display_names_as_components_give_them() {
        let slow = |p: &Path| {
            let p = p.strip_prefix(".").unwrap_or(p);
            p.to_string_lossy().into_owned()
        };
        for p in [
            "a/b.rs",
            "./a/b.rs",
            ".",
            "./",
            "./.env",
            ".env",
            "././x",
            ".//x",
            "./a/",
            "/abs/x",
            "/",
            "/abs/",
            "//x",
            "/./x",
            "/a/../b//c",
            "/ä/ö.txt",
            "a/./b",
            "./a//b",
            "x",
            "./x",
            "../up/x",
            "./../x",
            "./ä/ö.txt",
        ] {
            assert_eq!(display_name(Path::new(p)), slow(Path::new(p)), "{p}");
        }
    }

    /// A file is read whole up to the limit and no further, whatever the buffer held before
    /// (longer, shorter, another file's bytes).
    #[test]
    fn heads_are_read_whole_up_to_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let limit = 200_001;
        let mut buf = Vec::new();
        for (i, size) in [
            0, 1, 65_535, 65_536, 65_537, 131_072, 200_000, 200_001, 200_002, 3,
        ]
        .into_iter()
        .enumerate()
        {
            let data: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
            let path = tmp.path().join(format!("f{i}"));
            std::fs::write(&path, &data).unwrap();
            let n = read_head(&mut File::open(&path).unwrap(), &mut buf, limit).unwrap();
            assert_eq!(n, size.min(limit), "{size}");
            assert_eq!(&buf[..n], &data[..n], "{size}");
        }
        // After a stream left the buffer longer than the limit.
        buf.resize(500_000, 1);
        let path = tmp.path().join("g");
        std::fs::write(&path, vec![9u8; 300_000]).unwrap();
        assert_eq!(
            read_head(&mut File::open(&path).unwrap(), &mut buf, limit).unwrap(),
            limit
        );
        assert!(buf[..limit].iter().all(|&b| b == 9));
    }
}
