//! Git repositories met where gix cannot open them in place: inside a disk's filesystems (a
//! clone in `/home/ec2-user/app/.git` on an EC2 volume) and inside archives (a home directory's
//! tarball in a backup bucket). Their loose and packed objects are zlib-compressed, so neither
//! the file walk nor the raw pass sees a key that was committed and later removed.
//!
//! Every file history needs (`HEAD`, `packed-refs`, `shallow`, `refs/`, `objects/`) is copied to
//! a temporary directory as the walk or the expansion reads it (each reads every file anyway;
//! nothing is read twice), under one budget for the whole run; gix reads the copies after. A
//! repository whose files pass the budget is named and left to the raw pass.
//!
//! A repository is a `.git` directory (`/home/app/.git/objects/…`), or a bare one: a directory
//! named `*.git` holding `HEAD` (`srv/git/app.git/objects/…`, as git servers keep them).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::blob::Origin;

pub struct GitCollector {
    dir: tempfile::TempDir,
    budget: u64,
    used: AtomicU64,
    /// Repository place (`disk.img › p1 (xfs) › /home/app/.git`) → its copy.
    repos: Mutex<BTreeMap<String, Copy>>,
    over: Mutex<BTreeSet<String>>,
}

struct Copy {
    dir: PathBuf,
    /// Met in an archive: only the shard that expanded it saw it, so that shard reads all of
    /// its history (a filesystem's repositories are met by every shard, and split by object).
    whole: bool,
    /// Its `HEAD` was copied (a `*.git` directory without one is not a repository).
    head: bool,
    bare: bool,
    /// The snapshot or S3 object it was read from, for its findings' places.
    from: Origin,
}

/// A repository copied whole enough to read.
pub struct Copied {
    /// Where it was met: `disk.img › p1 (xfs) › /home/app/.git`, `backup.tgz › app/.git`.
    pub place: String,
    /// Its copy: a bare git directory.
    pub dir: PathBuf,
    /// Its history is this shard's whole (see `Copy::whole`).
    pub whole: bool,
    /// The snapshot or S3 object it was read from (`snapshot`, `object`; the rest is empty).
    pub from: Origin,
}

impl GitCollector {
    pub fn new(budget: u64) -> std::io::Result<GitCollector> {
        Ok(GitCollector {
            dir: tempfile::Builder::new().prefix("keyhound-git-").tempdir()?,
            budget,
            used: AtomicU64::new(0),
            repos: Mutex::default(),
            over: Mutex::default(),
        })
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// A file to copy `name` (a path in a filesystem or an archive member, `len` bytes, met
    /// at `place`, under `base`) into, if it is part of a repository's history. `whole`: met in
    /// an archive.
    pub fn copy(
        &self,
        base: &Origin,
        place: &str,
        name: &str,
        len: u64,
        whole: bool,
    ) -> Option<File> {
        if !name.contains(".git/") {
            return None;
        }
        let dest = self.destination(base, place, name, len, whole)?;
        std::fs::create_dir_all(dest.parent()?).ok()?;
        File::create(dest).ok()
    }

    /// A copy for an archive member (origin `… › backup.tgz › home/app/.git/HEAD`).
    pub fn copy_member(&self, origin: &Origin, len: u64) -> Option<File> {
        let (name, parents) = origin.inner.split_last()?;
        if !name.contains(".git/") {
            return None;
        }
        let mut place = origin.path.clone();
        for p in parents {
            place.push_str(" › ");
            place.push_str(p);
        }
        let mut name = name.as_str();
        while let Some(rest) = name.strip_prefix("./") {
            name = rest;
        }
        self.copy(origin, &place, name, len, true)
    }

    /// Where file `name` goes in the copies, if it is part of a repository's history.
    fn destination(
        &self,
        base: &Origin,
        place: &str,
        name: &str,
        len: u64,
        whole: bool,
    ) -> Option<PathBuf> {
        let (repo, rel, bare) = split(name)?;
        // Not the original's `config` (its includes, its worktree, its hooks are the original
        // machine's business: a plain one is written instead), nor alternates (paths there).
        let wanted = matches!(rel, "HEAD" | "packed-refs" | "shallow")
            || rel.starts_with("refs/")
            || (rel.starts_with("objects/") && !rel.starts_with("objects/info/"));
        if !wanted
            || rel
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return None;
        }
        let key = format!("{place} › {repo}");
        if self.over.lock().unwrap().contains(&key) {
            return None;
        }
        if self.used.fetch_add(len, Ordering::Relaxed) + len > self.budget {
            self.over.lock().unwrap().insert(key);
            return None;
        }
        let mut repos = self.repos.lock().unwrap();
        let n = repos.len();
        let copy = repos.entry(key).or_insert_with(|| {
            let dir = self.dir.path().join(n.to_string());
            let config = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n";
            // `refs/` and `objects/` whether or not a file is met under them (refs all packed,
            // an archive that keeps no empty directories): gix wants both to call it a repository.
            let _ = std::fs::create_dir_all(dir.join("refs"))
                .and_then(|()| std::fs::create_dir_all(dir.join("objects")))
                .and_then(|()| std::fs::write(dir.join("config"), config));
            Copy {
                dir,
                whole,
                head: false,
                bare,
                from: Origin {
                    snapshot: base.snapshot.clone(),
                    object: base.object.clone(),
                    ..Origin::file("")
                },
            }
        });
        copy.head |= rel == "HEAD";
        Some(copy.dir.join(rel))
    }

    /// The repositories copied whole enough to read, and the places of those over the budget.
    pub fn repositories(&self) -> (Vec<Copied>, Vec<String>) {
        let over = self.over.lock().unwrap().clone();
        let repos = self
            .repos
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, c)| !over.contains(*k) && (c.head || !c.bare))
            .map(|(k, c)| Copied {
                place: k.clone(),
                dir: c.dir.clone(),
                whole: c.whole,
                from: c.from.clone(),
            })
            .collect();
        (repos, over.into_iter().collect())
    }
}

/// `name` split into its repository, the path inside it, and whether the repository is bare:
/// the first `.git` component (`/home/app/.git`, `HEAD`), else the first `*.git` one
/// (`srv/app.git`, `objects/pack/p.pack`).
fn split(name: &str) -> Option<(&str, &str, bool)> {
    let mut bare = None;
    let mut start = 0;
    for (i, _) in name.match_indices('/') {
        let component = &name[start..i];
        if component == ".git" {
            return Some((&name[..i], &name[i + 1..], false));
        }
        if bare.is_none() && component.len() > 4 && component.ends_with(".git") {
            bare = Some(i);
        }
        start = i + 1;
    }
    bare.map(|i| (&name[..i], &name[i + 1..], true))
}

/// A reader that copies what it reads into a file (a repository's file, for its history), up
/// to the length the budget was charged for: a member that inflates past its stated size is
/// not copied on (the copy is left incomplete, and gix says so).
pub struct Tee<'a> {
    r: &'a mut dyn Read,
    out: Option<File>,
    left: u64,
}

impl<'a> Tee<'a> {
    pub fn new(r: &'a mut dyn Read, out: Option<File>, len: u64) -> Tee<'a> {
        Tee { r, out, left: len }
    }

    pub fn copying(&self) -> bool {
        self.out.is_some()
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        if let Some(f) = &mut self.out {
            let over = n as u64 > self.left;
            self.left = self.left.saturating_sub(n as u64);
            if over || std::io::Write::write_all(f, &buf[..n]).is_err() {
                // A copy that cannot be written leaves the repository incomplete; gix says so.
                self.out = None;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{split, Tee};
    use std::io::Read;

    /// A member that inflates past the size it stated (and was charged for) is not copied on.
    #[test]
    fn a_copy_stops_at_the_stated_length() {
        let dir = tempfile::tempdir().unwrap();
        let (mut data, path) = (&b"0123456789"[..], dir.path().join("copy"));
        let mut tee = Tee::new(&mut data, Some(std::fs::File::create(&path).unwrap()), 4);
        let mut out = Vec::new();
        tee.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"0123456789", "what is scanned is all of it");
        assert!(!tee.copying());
        assert!(std::fs::metadata(&path).unwrap().len() <= 4);
        let (mut data, path) = (&b"0123"[..], dir.path().join("whole"));
        let mut tee = Tee::new(&mut data, Some(std::fs::File::create(&path).unwrap()), 4);
        tee.read_to_end(&mut Vec::new()).unwrap();
        assert!(tee.copying());
        assert_eq!(std::fs::read(&path).unwrap(), b"0123");
    }

    #[test]
    fn a_repository_is_the_first_dot_git_else_the_first_bare_one() {
        assert_eq!(
            split("/home/app/.git/objects/pack/p.pack"),
            Some(("/home/app/.git", "objects/pack/p.pack", false))
        );
        assert_eq!(split(".git/HEAD"), Some((".git", "HEAD", false)));
        // A clone in a directory named like a bare repository is the clone.
        assert_eq!(
            split("home/foo.git/.git/HEAD"),
            Some(("home/foo.git/.git", "HEAD", false))
        );
        // A branch whose name ends in `.git` stays in its repository.
        assert_eq!(
            split("a/.git/refs/heads/b.git/c"),
            Some(("a/.git", "refs/heads/b.git/c", false))
        );
        assert_eq!(
            split("srv/git/app.git/refs/heads/main"),
            Some(("srv/git/app.git", "refs/heads/main", true))
        );
        assert_eq!(split("src/.gitignore"), None);
        assert_eq!(split("x/.git"), None);
        assert_eq!(split("x/.git.d/HEAD"), None);
    }
}
