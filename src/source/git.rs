//! Git: history (every blob reachable from all refs, a branch or a range, or every object in the
//! database), and the staged index for pre-commit.
//!
//! Each unique blob is scanned once (deduplicated by object id), in parallel. Only blobs with
//! findings are attributed: the commit that introduced them at a path, every path they appear
//! under, whether they are still at HEAD and which commit removed them.
//!
//! The whole history is read in two passes at once: `scan_packs` decodes every object of the
//! packs in pack order (gix's delta-tree traversal) and scans blobs and commit messages, while
//! `History::enumerate` walks the commits' trees to learn which blobs history reaches and where.
//! A branch or range reads its blobs by id after the walk. On git/git's master (82k commits,
//! 161k blobs, 5.6 GB), 2 cores: 11.2 s, where the walk then reading by id took 22.4 s and `git
//! cat-file --batch-all-objects --batch --unordered` takes 6.0 s (`bench/history.sh`).
//!
//! Library: gix, chosen by measurement over git2. Reading all 262,343 blobs (8.11 GB) of git/git
//! on 2 threads: gix 14.0 s, git2 (libgit2) 19.3 s; for reference `git cat-file
//! --batch-all-objects --batch` (all 849k objects) takes 61.3 s, 23.9 s with `--unordered`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use gix::bstr::{BStr, ByteSlice};
use gix::objs::{CommitRefIter, TreeRefIter};
use gix::prelude::{FindExt, HeaderExt};
use gix::ObjectId;

use super::{Skip, Stats};
use crate::blob::{Blob, CommitInfo, GitInfo, Origin};

/// What to scan of a repository's history.
#[derive(Clone, Default)]
pub struct HistoryOptions {
    /// Every object in the database, unreachable ones included.
    pub all_objects: bool,
    /// Only commits reachable from this revision.
    pub branch: Option<String>,
    /// Only commits not reachable from this one.
    pub since_commit: Option<String>,
    /// `A..B`: the commits B has that A has not (what a pull request adds).
    pub range: Option<String>,
    pub threads: usize,
    /// Only the blobs (and messages) of this shard, by object id; every shard walks history.
    pub shard: Option<crate::shard::Shard>,
    /// `.keyhound.toml`'s `[allowlist] paths`: a blob every path of which matches is not read.
    pub exclude: Option<regex::RegexSet>,
    /// What the repository's paths are matched under: the place of a repository found inside
    /// a scanned tree (`vendor/lib`), so that a path reads as it does in the tree; empty for the
    /// repository `keyhound git` scans.
    pub exclude_under: String,
}

/// Memory for decoded delta bases while walking trees.
const DELTA_BASE_CACHE: usize = 64 << 20;

/// Paths kept per blob (a vendored file copied a thousand times needs no thousand paths).
const MAX_PATHS: usize = 16;

struct BlobEntry {
    id: ObjectId,
    /// Index into `History::commits`; `u32::MAX`: reached by no commit.
    commit: u32,
    paths: Vec<String>,
}

/// A tree's bytes and where each of its entries starts.
#[derive(Default)]
struct LastTree {
    data: Vec<u8>,
    starts: Vec<u32>,
}

/// The unique blobs to scan, with what is needed to attribute them later.
pub struct History {
    repo: gix::ThreadSafeRepository,
    /// Commits walked, oldest first.
    commits: Vec<ObjectId>,
    shard: Option<crate::shard::Shard>,
    blobs: Vec<BlobEntry>,
    pub shallow: bool,
    pub submodules: usize,
}

/// Opens a repository (work tree, bare, linked worktree or shallow clone), naming the path when
/// it is none.
pub fn open(path: &Path) -> Result<gix::ThreadSafeRepository> {
    let repo = gix::discover(path)
        .map_err(|e| anyhow!("{} is not a git repository: {e}", path.display()))?;
    Ok(repo.into_sync())
}

fn peel_to_commit(repo: &gix::Repository, spec: &str) -> Result<ObjectId> {
    let id = repo
        .rev_parse_single(spec)
        .with_context(|| format!("unknown revision {spec:?}"))?;
    let commit = id
        .object()?
        .peel_to_commit()
        .with_context(|| format!("{spec:?} is not a commit"))?;
    Ok(commit.id)
}

impl History {
    /// Lists the commits and unique blobs to scan.
    pub fn enumerate(
        sync: gix::ThreadSafeRepository,
        opts: &HistoryOptions,
        stats: &Stats,
    ) -> Result<History> {
        let mut repo = sync.to_thread_local();
        // Trees are read in history order, not pack order: keep delta bases decoded, as git
        // does (core.deltaBaseCacheLimit, 96 MiB by default). Measured on git/git: the walk
        // takes 18 s with this cache, 38 s with gix's default 64-entry one.
        repo.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                DELTA_BASE_CACHE,
            ))
        });
        // Every shard walks the whole history and meets every error in it: the shard an
        // object falls in by id names it (the first shard one with no id), so the parts count
        // it once, as the single run does.
        let names = |id: &ObjectId| opts.shard.is_none_or(|s| s.owns(id.as_bytes()));
        let first = opts.shard.is_none_or(|s| s.index == 0);
        let mut tagged_blobs: Vec<(ObjectId, String)> = Vec::new();
        let mut commits: Vec<ObjectId>;
        if opts.all_objects {
            commits = Vec::new();
            let mut times = Vec::new();
            let mut buf = Vec::new();
            for id in repo.objects.iter()?.filter_map(Result::ok) {
                let kind = match repo.objects.header(id) {
                    Ok(h) => h.kind(),
                    Err(e) => {
                        if names(&id) {
                            stats.skip(Skip::Unreadable, Some(format!("object {id}: {e}")));
                        }
                        continue;
                    }
                };
                match kind {
                    gix::object::Kind::Commit => {
                        let t = repo
                            .objects
                            .find(&id, &mut buf)
                            .ok()
                            .and_then(|d| CommitRefIter::from_bytes(d.data).committer().ok())
                            .map_or(0, |s| s.seconds());
                        times.push((t, id));
                    }
                    gix::object::Kind::Blob => tagged_blobs.push((id, String::new())),
                    _ => {}
                }
            }
            times.sort();
            commits.extend(times.into_iter().map(|(_, id)| id));
        } else {
            let (tips, hidden) = tips(&repo, opts, &mut tagged_blobs)?;
            commits = Vec::new();
            if !tips.is_empty() {
                let walk = repo
                    .rev_walk(tips)
                    .with_hidden(hidden)
                    .sorting(gix::revision::walk::Sorting::ByCommitTime(
                        gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
                    ))
                    .all()?;
                for info in walk {
                    match info {
                        Ok(i) => commits.push(i.id),
                        Err(e) if first => {
                            stats.skip(Skip::Unreadable, Some(format!("commit walk: {e}")))
                        }
                        Err(_) => {}
                    }
                }
            }
            commits.reverse();
        }
        stats
            .commits
            .store(commits.len() as u64, std::sync::atomic::Ordering::Relaxed);

        // Walk each commit's tree, each tree once.
        let mut index: gix::hashtable::HashMap<ObjectId, usize> = Default::default();
        let mut blobs: Vec<BlobEntry> = Vec::new();
        let mut seen_trees: gix::hashtable::HashSet = Default::default();
        let mut submodules = 0;
        let (mut cbuf, mut tbuf) = (Vec::new(), Vec::new());
        let mut stack: Vec<(ObjectId, String)> = Vec::new();
        // The last tree walked at each path.
        let mut last: HashMap<String, LastTree> = HashMap::new();
        for (ci, cid) in commits.iter().enumerate() {
            let tree = match repo
                .objects
                .find(cid, &mut cbuf)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    CommitRefIter::from_bytes(d.data)
                        .tree_id()
                        .map_err(|e| e.to_string())
                }) {
                Ok(t) => t,
                Err(e) => {
                    if names(cid) {
                        stats.skip(Skip::Unreadable, Some(format!("commit {cid}: {e}")));
                    }
                    continue;
                }
            };
            stack.push((tree, String::new()));
            while let Some((tid, prefix)) = stack.pop() {
                if !seen_trees.insert(tid) {
                    continue;
                }
                let data = match repo.objects.find(&tid, &mut tbuf) {
                    Ok(d) => d.data,
                    Err(e) => {
                        if names(&tid) {
                            stats.skip(
                                Skip::Unreadable,
                                Some(format!("tree {tid} ({prefix:?} in commit {cid}): {e}")),
                            );
                        }
                        continue;
                    }
                };
                // An entry whose bytes the last tree at the same path also has, at an entry's
                // place, was looked at with that tree (most of a new tree: a commit changes a
                // few entries of each directory on its way).
                let prev = last.get(prefix.as_str());
                let (same_head, same_tail, grew) = prev.map_or((0, 0, 0), |p| {
                    (
                        common_prefix(data, &p.data),
                        common_suffix(data, &p.data),
                        data.len() as isize - p.data.len() as isize,
                    )
                });
                let unchanged = |start: usize, end: usize| {
                    end <= same_head
                        || (start >= data.len() - same_tail
                            && prev.is_some_and(|p| {
                                p.starts
                                    .binary_search(&((start as isize - grew) as u32))
                                    .is_ok()
                            }))
                };
                let mut starts = Vec::new();
                let mut at = 0;
                let mut whole = true;
                for entry in TreeRefIter::from_bytes(data) {
                    let Ok(e) = entry else {
                        if names(&tid) {
                            let why = format!("tree {tid}: corrupt entry");
                            stats.skip(Skip::Unreadable, Some(why));
                        }
                        whole = false;
                        break;
                    };
                    let (start, end) = (
                        at,
                        e.oid.as_bytes().as_ptr() as usize - data.as_ptr() as usize
                            + e.oid.as_bytes().len(),
                    );
                    at = end;
                    starts.push(start as u32);
                    if e.mode.is_commit() {
                        submodules += 1;
                        continue;
                    }
                    if unchanged(start, end) {
                        continue;
                    }
                    if e.mode.is_tree() {
                        if !seen_trees.contains(e.oid) {
                            stack.push((e.oid.to_owned(), join(&prefix, e.filename)));
                        }
                    } else {
                        match index.get(e.oid) {
                            Some(&b) => {
                                // Most re-visits are the same path: compare without allocating.
                                let paths = &mut blobs[b].paths;
                                if paths.len() < MAX_PATHS
                                    && !paths.iter().any(|p| is_join(p, &prefix, e.filename))
                                {
                                    paths.push(join(&prefix, e.filename));
                                }
                            }
                            None => {
                                let id = e.oid.to_owned();
                                index.insert(id, blobs.len());
                                blobs.push(BlobEntry {
                                    id,
                                    commit: ci as u32,
                                    paths: vec![join(&prefix, e.filename)],
                                });
                            }
                        }
                    }
                }
                // Only a tree read to its end stands for the next one at its path.
                if whole {
                    let slot = last.entry(prefix).or_default();
                    slot.data.clear();
                    slot.data.extend_from_slice(data);
                    slot.starts = starts;
                } else {
                    last.remove(prefix.as_str());
                }
            }
        }
        for (id, name) in tagged_blobs {
            if !index.contains_key(&id) {
                index.insert(id, blobs.len());
                blobs.push(BlobEntry {
                    id,
                    commit: u32::MAX,
                    paths: if name.is_empty() { vec![] } else { vec![name] },
                });
            }
        }
        if let Some(s) = opts.shard {
            blobs.retain(|b| s.owns(b.id.as_bytes()));
        }
        // Object-id order reads packs with good locality (measured: as fast as pack order).
        blobs.sort_unstable_by_key(|b| b.id);
        let shallow = repo.is_shallow();
        Ok(History {
            repo: sync,
            commits,
            shard: opts.shard,
            blobs,
            shallow,
            submodules,
        })
    }

    /// Drops the blobs every path of which `opts.exclude` allowlists, counting each: they are
    /// not read, and the pack pass's findings in them are not kept. A blob also found at a path
    /// not allowlisted stays, and one reached by no commit (`--all-objects`) has no path to
    /// match.
    pub fn drop_allowlisted(&mut self, opts: &HistoryOptions, stats: &Stats) {
        let Some(set) = &opts.exclude else { return };
        let under = opts.exclude_under.trim_end_matches('/');
        let allowed = |path: &String| {
            if under.is_empty() || under == "." {
                set.is_match(path)
            } else {
                set.is_match(&format!("{under}/{path}"))
            }
        };
        self.blobs.retain(|b| {
            let drop = !b.paths.is_empty() && b.paths.iter().all(allowed);
            if drop {
                stats.skip(Skip::Allowlisted, None);
            }
            !drop
        });
    }

    /// Drops the blobs already in `seen` (scanned in another repository of the same scan),
    /// and adds the rest.
    pub fn skip_seen(&mut self, seen: &mut HashSet<ObjectId>) {
        self.blobs.retain(|b| seen.insert(b.id));
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The index of each blob to scan, by id.
    pub fn blob_indices(&self) -> HashMap<ObjectId, usize> {
        self.blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id, i))
            .collect()
    }

    /// Scans the blobs `which` (indices), each once, on `threads` threads, reading each by its
    /// id; `make` builds one handler per thread, called with the blob's index and its bytes.
    /// A blob over `STREAM_BLOB` that git stored whole goes to `big` instead, with its place and
    /// a way to open it as a stream (twice, if the first read finds an archive it cannot
    /// expand); one stored as a delta is read whole up to `MAX_DELTA_BLOB`, and named and
    /// skipped past that.
    pub fn scan<F>(
        &self,
        which: &[usize],
        threads: usize,
        stats: &Stats,
        make: &(dyn Fn() -> F + Sync),
        big: &BigBlobHandler<'_>,
    ) where
        F: FnMut(usize, Blob) + Send,
    {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    // Each blob is read once: no decoded-object cache.
                    let mut repo = self.repo.to_thread_local();
                    repo.object_cache_size(0);
                    let mut handle = make();
                    let mut buf = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = which.get(n) else { break };
                        let b = &self.blobs[i];
                        let size = repo.find_header(b.id).map(|h| h.size()).unwrap_or(0);
                        if size > STREAM_BLOB {
                            let origin = Arc::new(Origin::file(self.display_path(b)));
                            let dir = repo.objects.store_ref().path().to_path_buf();
                            let open = || open_whole_blob(&dir, b.id, size);
                            if open().is_some() {
                                big(i, &open, size, origin);
                                continue;
                            }
                            if size > MAX_DELTA_BLOB {
                                let what = format!("blob {} ({})", b.id, origin.path);
                                over_memory_bound(stats, &what, size);
                                continue;
                            }
                        }
                        match repo.objects.find(&b.id, &mut buf) {
                            Ok(d) => {
                                stats.read(d.data.len() as u64);
                                let origin = Arc::new(Origin::file(self.display_path(b)));
                                handle(i, Blob::whole(d.data, origin));
                            }
                            Err(e) => stats.skip(
                                Skip::Unreadable,
                                Some(format!("blob {} ({}): {e}", b.id, self.display_path(b))),
                            ),
                        }
                    }
                });
            }
        });
    }

    /// The size of blob `i`, when the pack pass read it: counted as read.
    pub fn count_read(&self, i: usize, packed: &HashMap<ObjectId, u64>, stats: &Stats) -> bool {
        match packed.get(&self.blobs[i].id) {
            Some(&len) => {
                stats.read(len);
                true
            }
            None => false,
        }
    }

    fn display_path(&self, b: &BlobEntry) -> String {
        b.paths
            .first()
            .cloned()
            .unwrap_or_else(|| format!("(unreachable blob {})", b.id))
    }

    /// Where each of the blobs `indices` lives: introducing commit, paths, HEAD, removal.
    pub fn attribute(&self, indices: &[usize], threads: usize) -> HashMap<usize, Arc<Origin>> {
        let repo = self.repo.to_thread_local();
        let head_blobs = head_blobs(&repo);
        let gone: HashSet<usize> = indices
            .iter()
            .copied()
            .filter(|&i| !head_blobs.contains(&self.blobs[i].id) && !self.blobs[i].paths.is_empty())
            .collect();
        let removed = self.removals(gone, threads);
        let mut cache: HashMap<ObjectId, CommitInfo> = HashMap::new();
        let mut info = |id: ObjectId| -> Option<CommitInfo> {
            if let Some(c) = cache.get(&id) {
                return Some(c.clone());
            }
            let c = commit_info(&repo, id)?;
            cache.insert(id, c.clone());
            Some(c)
        };
        indices
            .iter()
            .map(|&i| {
                let b = &self.blobs[i];
                let commit = self.commits.get(b.commit as usize).and_then(|&c| info(c));
                let git = GitInfo {
                    blob: b.id.to_string(),
                    commit,
                    paths: b.paths.clone(),
                    at_head: head_blobs.contains(&b.id),
                    removed_in: removed.get(&i).and_then(|&c| info(c)),
                    message: None,
                };
                let mut o = Origin::file(self.display_path(b));
                o.git = Some(Arc::new(git));
                (i, Arc::new(o))
            })
            .collect()
    }
}

impl History {
    /// The author, date and summary of commit `id` (hex).
    pub fn commit_info(&self, id: &str) -> Option<CommitInfo> {
        let id = ObjectId::from_hex(id.as_bytes()).ok()?;
        commit_info(&self.repo.to_thread_local(), id)
    }

    /// Every commit message of the walk and every annotated tag's message (each object once),
    /// as blobs whose origin names the commit or tag: `commit 1a2b3c4d… › message`, `tag v1.0
    /// (1a2b3c4d…) › message`. Notes are blobs, scanned with the rest. The messages of commits
    /// in `packed` were scanned by the pack pass: they are counted here, and returned as the
    /// commits whose findings to keep.
    pub fn messages(
        &self,
        stats: &Stats,
        seen: &mut HashSet<ObjectId>,
        packed: &HashMap<ObjectId, u64>,
        handle: &mut dyn FnMut(Blob),
    ) -> HashSet<ObjectId> {
        let repo = self.repo.to_thread_local();
        let mut buf = Vec::new();
        let mut keep = HashSet::new();
        let ours = |id: &ObjectId| self.shard.is_none_or(|s| s.owns(id.as_bytes()));
        for &id in &self.commits {
            if !ours(&id) || !seen.insert(id) {
                continue;
            }
            if let Some(&len) = packed.get(&id) {
                stats.bytes.fetch_add(len, Ordering::Relaxed);
                keep.insert(id);
                continue;
            }
            let Ok(d) = repo.objects.find(&id, &mut buf) else {
                continue;
            };
            let Ok(c) = gix::objs::CommitRef::from_bytes(d.data) else {
                stats.skip(Skip::Unreadable, Some(format!("commit {id}: corrupt")));
                continue;
            };
            let text = c.message.to_vec();
            // Counted as bytes read, not as files.
            stats.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
            handle(Blob::whole(&text, commit_message_origin(id)));
        }
        let Ok(refs) = repo.references() else {
            return keep;
        };
        let Ok(tags) = refs.tags() else { return keep };
        for r in tags.filter_map(Result::ok) {
            let name = r.name().shorten().to_string();
            let mut id = r.id().detach();
            // A tag may point at a tag: each message once.
            while ours(&id) && seen.insert(id) {
                let Ok(d) = repo.objects.find(&id, &mut buf) else {
                    break;
                };
                if d.kind != gix::object::Kind::Tag {
                    break;
                }
                let Ok(t) = gix::objs::TagRef::from_bytes(d.data) else {
                    stats.skip(
                        Skip::Unreadable,
                        Some(format!("tag {name} ({id}): corrupt")),
                    );
                    break;
                };
                let (text, target) = (t.message.to_vec(), t.target());
                let commit = commit_info(&repo, target);
                // Counted as bytes read, not as files.
                stats.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                handle(Blob::whole(
                    &text,
                    message_origin(format!("tag {name}"), commit, id.to_string(), true),
                ));
                id = target;
            }
        }
        keep
    }
}

/// Where a message is: `commit 1a2b3c4d…` or `tag v1.0 (1a2b3c4d…)`, then `message`.
fn message_origin(
    what: String,
    commit: Option<CommitInfo>,
    object: String,
    tag: bool,
) -> Arc<Origin> {
    let git = GitInfo {
        blob: object.clone(),
        commit,
        paths: Vec::new(),
        at_head: false,
        removed_in: None,
        message: Some(what.clone()),
    };
    let mut o = Origin::file(if tag {
        format!("{what} ({object})")
    } else {
        format!("commit {object}")
    });
    o.inner.push("message".into());
    o.git = Some(Arc::new(git));
    Arc::new(o)
}

/// The place of commit `id`'s own message. Its author and summary are looked up only for a
/// message with findings (`History::commit_info`): for all of git/git's commits that took a
/// third of a second.
pub fn commit_message_origin(id: ObjectId) -> Arc<Origin> {
    message_origin("commit".into(), None, id.to_string(), false)
}

/// A blob over this many bytes that git stored whole (a loose object, or a pack's base entry:
/// git stores files over `core.bigFileThreshold`, 512 MiB by default, that way) is inflated as
/// a stream through windows, so memory stays at the window size whatever its size.
pub const STREAM_BLOB: u64 = 64 << 20;
/// A blob stored as a delta is rebuilt whole in memory, up to this size; a bigger one is named
/// and skipped.
pub const MAX_DELTA_BLOB: u64 = 512 << 20;

/// Counts and names a blob stored as a delta past `MAX_DELTA_BLOB`, which is not read.
pub fn over_memory_bound(stats: &Stats, what: &str, size: u64) {
    stats.skip(
        Skip::OverMemoryBound,
        Some(format!(
            "{what}: {} MiB stored as a delta, over the {} MiB a delta is rebuilt in memory up \
             to: not read",
            size >> 20,
            MAX_DELTA_BLOB >> 20
        )),
    );
}

/// What `History::scan` hands a big blob to: its index, an opener of its bytes as a stream
/// (each call starts again), its size and its place.
pub type BigBlobHandler<'a> =
    dyn Fn(usize, &dyn Fn() -> Option<Box<dyn std::io::Read>>, u64, Arc<Origin>) + Sync + 'a;

/// Blob `id` of `size` bytes as a stream of its content, when git stored it whole in the
/// object directory `dir`: a loose object (zlib: `blob SIZE\0` and the content) or a base
/// entry of one of its packs (zlib of the content). `None` if it is a delta, or elsewhere.
fn open_whole_blob(dir: &Path, id: ObjectId, size: u64) -> Option<Box<dyn std::io::Read>> {
    use std::io::{BufReader, Read, Seek, SeekFrom};
    let hex = id.to_hex().to_string();
    if let Ok(f) = std::fs::File::open(dir.join(&hex[..2]).join(&hex[2..])) {
        let mut z = flate2::read::ZlibDecoder::new(BufReader::with_capacity(1 << 16, f));
        // `blob 123\0`: at most 32 bytes, one at a time.
        let mut header = Vec::new();
        let mut byte = [0u8; 1];
        while header.len() < 32 && z.read_exact(&mut byte).is_ok() && byte[0] != 0 {
            header.push(byte[0]);
        }
        if byte[0] != 0 || !header.starts_with(b"blob ") {
            return None;
        }
        return Some(Box::new(z.take(size)));
    }
    let packs = std::fs::read_dir(dir.join("pack")).ok()?;
    for path in packs.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let Ok(bundle) = gix::odb::pack::Bundle::at(&path, id.kind()) else {
            continue;
        };
        let Some(at) = bundle.index.lookup(id) else {
            continue;
        };
        let offset = bundle.index.pack_offset_at_index(at);
        if offset as usize >= bundle.pack.data_len() {
            return None;
        }
        let entry = bundle.pack.entry(offset).ok()?;
        if entry.header != gix::odb::pack::data::entry::Header::Blob {
            return None;
        }
        let mut f = std::fs::File::open(bundle.pack.path()).ok()?;
        f.seek(SeekFrom::Start(entry.data_offset)).ok()?;
        let z = flate2::read::ZlibDecoder::new(BufReader::with_capacity(1 << 16, f));
        return Some(Box::new(z.take(size)));
    }
    None
}

/// Whether the pack holds an object that may decode to more than `STREAM_BLOB` bytes, which the
/// delta-tree traversal would hold whole: bounded from the entries' headers alone (a base is
/// its size; a delta is at most its base's bound plus its own size). A bound that cannot be
/// told (a damaged entry, a delta on an object outside the pack) counts as big: the objects are
/// then read by id, big ones as streams.
fn holds_big_object(bundle: &gix::odb::pack::Bundle) -> bool {
    use gix::odb::pack::data::entry::Header;
    let pack = &bundle.pack;
    let mut offsets: Vec<u64> = bundle.index.iter().map(|e| e.pack_offset).collect();
    offsets.sort_unstable();
    let mut bounds: Vec<u64> = Vec::with_capacity(offsets.len());
    for &off in &offsets {
        if off as usize >= pack.data_len() {
            return true;
        }
        let Ok(e) = pack.entry(off) else { return true };
        let base = match e.header {
            Header::OfsDelta { base_distance } => off.checked_sub(base_distance),
            Header::RefDelta { base_id } => bundle
                .index
                .lookup(base_id)
                .map(|i| bundle.index.pack_offset_at_index(i)),
            _ => None,
        };
        let bound = match (e.header.is_delta(), base) {
            (false, _) => e.decompressed_size,
            (true, Some(b)) => match offsets.binary_search(&b) {
                Ok(j) if j < bounds.len() => bounds[j].saturating_add(e.decompressed_size),
                _ => return true,
            },
            (true, None) => return true,
        };
        if bound > STREAM_BLOB {
            return true;
        }
        bounds.push(bound);
    }
    false
}

/// What `scan_packs` hands each blob and commit to: its kind, id and bytes; it answers with the
/// bytes it scanned, if it took the object.
pub type PackHandler<'a> = dyn Fn(gix::object::Kind, ObjectId, &[u8]) -> Option<u64> + Sync + 'a;

/// Every blob in the packs of the repository's own object directory, each decoded once, in
/// pack order, on `threads` threads: gix's delta-tree traversal (how `gix verify` and `git
/// index-pack` resolve a pack) decodes each delta from its base just decoded, where reading blob
/// by blob in id order resolves delta chains again and again. It runs while `History::enumerate`
/// walks the trees, so it cannot know which blobs history reaches: the caller keeps what the
/// walk reaches. `handle` gets each blob and commit (of `shard`, if any) with its id, and says
/// how many bytes it scanned, if it took it; the returned map has them by id. Objects elsewhere
/// (loose objects, alternates, a pack that cannot be read) are not in it: the caller reads
/// those by id.
pub fn scan_packs(
    sync: &gix::ThreadSafeRepository,
    threads: usize,
    shard: Option<crate::shard::Shard>,
    handle: &PackHandler<'_>,
) -> HashMap<ObjectId, u64> {
    use gix::odb::pack::index::traverse::{with_index, SafetyCheck};
    let repo = sync.to_thread_local();
    let hash = repo.object_hash();
    let dir = repo.objects.store_ref().path().join("pack");
    let mut idx: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    idx.sort();
    let scanned: std::sync::Mutex<HashMap<ObjectId, u64>> = Default::default();
    for path in idx {
        // A pack that does not open or decode is read object by object by the caller, which
        // names what it cannot read.
        let Ok(bundle) = gix::odb::pack::Bundle::at(&path, hash) else {
            continue;
        };
        // A pack with a big object is read by id instead, where a big blob is a stream.
        if holds_big_object(&bundle) {
            continue;
        }
        let scanned = &scanned;
        let map = bundle.pack.entry_slice(0..bundle.pack.data_len() as u64);
        let (map, done) = (
            map.map(|m| (m.as_ptr() as usize, m.len())),
            &AtomicUsize::new(0),
        );
        let _ = bundle.index.traverse_with_index(
            &bundle.pack,
            move |kind,
                  data: &[u8],
                  entry: &gix::odb::pack::index::Entry,
                  _: &dyn gix::Progress| {
                // The pack's pages read so far are the kernel's page cache, mapped: they would
                // count as this process's memory until the map goes (the whole pack, 300 MB of
                // git/git's). Every 512 MiB decoded they are unmapped; what is read again
                // comes back from the page cache.
                let n = done.fetch_add(data.len(), Ordering::Relaxed);
                #[cfg(unix)]
                if let Some((ptr, len)) = map {
                    if (n + data.len()) >> 29 != n >> 29 {
                        // SAFETY: the range is the pack's read-only file map, alive for the
                        // traversal; MADV_DONTNEED on a shared file map drops this process's
                        // page table entries only, and a later read sees the same bytes.
                        unsafe {
                            libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_DONTNEED);
                        }
                    }
                }
                // Packs are traversed one after another, and an object is once in a pack: no
                // other thread can be scanning the same object.
                if matches!(kind, gix::object::Kind::Blob | gix::object::Kind::Commit)
                    && shard.is_none_or(|s| s.owns(entry.oid.as_bytes()))
                    && !scanned.lock().unwrap().contains_key(&entry.oid)
                {
                    if let Some(len) = handle(kind, entry.oid, data) {
                        scanned.lock().unwrap().insert(entry.oid, len);
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            },
            &mut gix::progress::Discard,
            &std::sync::atomic::AtomicBool::new(false),
            with_index::Options {
                check: SafetyCheck::SkipFileAndObjectChecksumVerificationAndNoAbortOnDecodeError,
                thread_limit: Some(threads.max(1)),
            },
        );
    }
    scanned.into_inner().unwrap()
}

/// Is `path` the join of `prefix` and `name`?
fn is_join(path: &str, prefix: &str, name: &BStr) -> bool {
    let p = path.as_bytes();
    if prefix.is_empty() {
        return p == name.as_bytes();
    }
    p.len() == prefix.len() + 1 + name.len()
        && p.starts_with(prefix.as_bytes())
        && p[prefix.len()] == b'/'
        && p.ends_with(name.as_bytes())
}

impl History {
    /// For blobs gone from HEAD: the commit on HEAD's first-parent line that removed each from
    /// its first path (walking back from HEAD, the child of the newest commit that still had it).
    /// The line is cut into `threads` stretches searched at once, each from its newest end.
    fn removals(&self, pending: HashSet<usize>, threads: usize) -> HashMap<usize, ObjectId> {
        let mut removed = HashMap::new();
        if pending.is_empty() {
            return removed;
        }
        let repo = self.repo.to_thread_local();
        let Ok(head) = repo.head_id() else {
            return removed;
        };
        let Ok(walk) = repo.rev_walk([head.detach()]).first_parent_only().all() else {
            return removed;
        };
        // (commit, its tree), newest first.
        let mut line: Vec<(ObjectId, ObjectId)> = Vec::new();
        for info in walk.filter_map(Result::ok) {
            let Some(tree) = info
                .object()
                .ok()
                .and_then(|c| c.tree_id().ok())
                .map(|t| t.detach())
            else {
                break;
            };
            line.push((info.id, tree));
        }
        let pending: Vec<usize> = pending.into_iter().collect();
        let stretch = line.len().div_ceil(threads.max(1)).max(1);
        // For each stretch: where in it (index into `line`) each blob was seen first.
        let found: Vec<HashMap<usize, usize>> = std::thread::scope(|s| {
            let parts: Vec<_> = line
                .chunks(stretch)
                .enumerate()
                .map(|(k, part)| {
                    let pending = &pending;
                    s.spawn(move || {
                        let mut repo = self.repo.to_thread_local();
                        // Trees along the line, in history order (see `enumerate`): on
                        // git/git, 16 MiB of delta bases took the search from 2.4 s to 1.4 s.
                        repo.objects.set_pack_cache(|| {
                            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                                16 << 20,
                            ))
                        });
                        // Consecutive commits share most subtrees: what a (tree, path) holds is
                        // looked up once.
                        let mut memo = HashMap::new();
                        let mut buf = Vec::new();
                        let mut left = pending.clone();
                        let mut seen = HashMap::new();
                        for (j, &(_, tree)) in part.iter().enumerate() {
                            left.retain(|&i| {
                                let b = &self.blobs[i];
                                let here = object_at(&repo, &mut memo, &mut buf, tree, &b.paths[0])
                                    == Some(b.id);
                                if here {
                                    seen.insert(i, k * stretch + j);
                                }
                                !here
                            });
                            if left.is_empty() {
                                break;
                            }
                        }
                        seen
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for i in pending {
            // The newest stretch that had it; the commit after (newer than) that one removed it.
            if let Some(at) = found.iter().find_map(|f| f.get(&i)) {
                if *at > 0 {
                    removed.insert(i, line[at - 1].0);
                }
            }
        }
        removed
    }
}

/// How many leading bytes `a` and `b` share (eight at a time).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_ne_bytes(a[i..i + 8].try_into().unwrap());
        let y = u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
        if x != y {
            break;
        }
        i += 8;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many trailing bytes `a` and `b` share (eight at a time).
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_ne_bytes(a[n - i - 8..n - i].try_into().unwrap());
        let y = u64::from_ne_bytes(b[n - i - 8..n - i].try_into().unwrap());
        if x != y {
            break;
        }
        i += 8;
    }
    i + a[..n - i]
        .iter()
        .rev()
        .zip(b[..n - i].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// The object at `path` in `tree`, memoised by (tree, path) at every level.
fn object_at(
    repo: &gix::Repository,
    memo: &mut HashMap<(ObjectId, String), Option<ObjectId>>,
    buf: &mut Vec<u8>,
    tree: ObjectId,
    path: &str,
) -> Option<ObjectId> {
    if let Some(&r) = memo.get(&(tree, path.to_string())) {
        return r;
    }
    let (first, rest) = match path.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (path, None),
    };
    let entry = repo.objects.find(&tree, buf).ok().and_then(|d| {
        TreeRefIter::from_bytes(d.data)
            .filter_map(Result::ok)
            .find(|e| e.filename == first.as_bytes())
            .map(|e| (e.oid.to_owned(), e.mode.is_tree()))
    });
    let r = match (entry, rest) {
        (Some((id, false)), None) => Some(id),
        (Some((id, true)), Some(rest)) => object_at(repo, memo, buf, id, rest),
        _ => None,
    };
    memo.insert((tree, path.to_string()), r);
    r
}

fn join(prefix: &str, name: &BStr) -> String {
    let name = name.to_str_lossy();
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// The commits to start from and to hide, per the options; blobs tagged directly are noted.
fn tips(
    repo: &gix::Repository,
    opts: &HistoryOptions,
    tagged_blobs: &mut Vec<(ObjectId, String)>,
) -> Result<(Vec<ObjectId>, Vec<ObjectId>)> {
    let mut hidden = Vec::new();
    if let Some(s) = &opts.since_commit {
        hidden.push(peel_to_commit(repo, s)?);
    }
    if let Some(r) = &opts.range {
        let Some((a, b)) = r.split_once("..") else {
            bail!("--range wants A..B, got {r:?}");
        };
        hidden.push(peel_to_commit(repo, a)?);
        return Ok((
            vec![peel_to_commit(repo, if b.is_empty() { "HEAD" } else { b })?],
            hidden,
        ));
    }
    if let Some(b) = &opts.branch {
        return Ok((vec![peel_to_commit(repo, b)?], hidden));
    }
    // Every ref: branches, tags, remotes, stash, notes, and HEAD (detached or not).
    let mut tips = Vec::new();
    if let Ok(h) = repo.head_id() {
        tips.push(h.detach());
    }
    for r in repo.references()?.all()?.filter_map(Result::ok) {
        let name = r.name().as_bstr().to_string();
        let Ok(id) = r.into_fully_peeled_id() else {
            continue;
        };
        match id.object().map(|o| o.kind) {
            Ok(gix::object::Kind::Commit) => tips.push(id.detach()),
            Ok(gix::object::Kind::Blob) => tagged_blobs.push((id.detach(), name)),
            _ => {}
        }
    }
    tips.sort();
    tips.dedup();
    Ok((tips, hidden))
}

/// Every blob id in HEAD's tree (empty for an unborn HEAD).
fn head_blobs(repo: &gix::Repository) -> HashSet<ObjectId> {
    let mut out = HashSet::new();
    if let Ok(tree) = repo.head_tree() {
        let _ = tree_files(repo, tree.id, &mut |_, id| {
            out.insert(id);
        });
    }
    out
}

/// Calls `f(path, blob id)` for every file in a tree.
fn tree_files(
    repo: &gix::Repository,
    root: ObjectId,
    f: &mut dyn FnMut(&str, ObjectId),
) -> Result<()> {
    let mut buf = Vec::new();
    let mut stack = vec![(root, String::new())];
    while let Some((tid, prefix)) = stack.pop() {
        let data = repo.objects.find(&tid, &mut buf)?.data;
        for e in TreeRefIter::from_bytes(data) {
            let e = e?;
            let path = join(&prefix, e.filename);
            if e.mode.is_tree() {
                stack.push((e.oid.to_owned(), path));
            } else if !e.mode.is_commit() {
                f(&path, e.oid.to_owned());
            }
        }
    }
    Ok(())
}

fn commit_info(repo: &gix::Repository, id: ObjectId) -> Option<CommitInfo> {
    let c = repo.find_commit(id).ok()?;
    let author = c.author().ok()?;
    let date = author
        .time()
        .map(|t| t.format(gix::date::time::format::ISO8601_STRICT))
        .unwrap_or_default();
    let summary = c
        .message()
        .map(|m| m.summary().to_string())
        .unwrap_or_default();
    Some(CommitInfo {
        id: id.to_string(),
        author: author.name.to_string(),
        email: author.email.to_string(),
        date,
        summary,
    })
}

/// A file whose staged content differs from HEAD's.
pub struct StagedFile {
    pub path: String,
    /// Its staged content (empty when `big`).
    pub data: Vec<u8>,
    /// The lines of the file at HEAD (empty for a new file): a finding on such a line was
    /// committed before and is not what this commit adds.
    pub old_lines: HashSet<Vec<u8>>,
    /// A staged blob over `STREAM_BLOB`, to be read as a stream (`open_blob`): its id and size,
    /// and HEAD's version of the path, if any. A finding in it is new unless HEAD's version
    /// held the same secret.
    pub big: Option<BigStaged>,
}

pub struct BigStaged {
    pub id: ObjectId,
    pub size: u64,
    pub old: Option<(ObjectId, u64)>,
}

/// Blob `id` (`size` bytes) of `repo` as a stream: inflated from where git stored it whole, or,
/// stored as a delta, rebuilt in memory up to `MAX_DELTA_BLOB`. `None`: a bigger delta, or not
/// found.
pub fn open_blob(
    repo: &gix::Repository,
    id: ObjectId,
    size: u64,
) -> Option<Box<dyn std::io::Read>> {
    if let Some(r) = open_whole_blob(repo.objects.store_ref().path(), id, size) {
        return Some(r);
    }
    if size > MAX_DELTA_BLOB {
        return None;
    }
    let mut buf = Vec::new();
    repo.objects.find(&id, &mut buf).ok()?;
    Some(Box::new(std::io::Cursor::new(buf)))
}

/// What is staged: each index entry whose blob differs from HEAD's at that path, read from the
/// object database (the staged content, not the working file).
pub fn staged(sync: &gix::ThreadSafeRepository, stats: &Stats) -> Result<Vec<StagedFile>> {
    let repo = sync.to_thread_local();
    let index = repo.index_or_empty()?;
    let mut head: HashMap<String, ObjectId> = HashMap::new();
    if let Ok(tree) = repo.head_tree() {
        tree_files(&repo, tree.id, &mut |p, id| {
            head.insert(p.to_string(), id);
        })?;
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for e in index.entries() {
        if e.mode == gix::index::entry::Mode::COMMIT {
            continue;
        }
        let path = e.path(&index).to_str_lossy().into_owned();
        let old = head.get(&path);
        if old == Some(&e.id) {
            continue;
        }
        let size = |id: &ObjectId| repo.find_header(*id).map(|h| h.size()).unwrap_or(0);
        if size(&e.id) > STREAM_BLOB {
            out.push(StagedFile {
                path,
                data: Vec::new(),
                old_lines: HashSet::new(),
                big: Some(BigStaged {
                    id: e.id,
                    size: size(&e.id),
                    old: old.map(|id| (*id, size(id))),
                }),
            });
            continue;
        }
        let data = match repo.objects.find(&e.id, &mut buf) {
            Ok(d) => d.data.to_vec(),
            Err(err) => {
                stats.skip(
                    Skip::Unreadable,
                    Some(format!("staged {path} ({}): {err}", e.id)),
                );
                continue;
            }
        };
        stats.read(data.len() as u64);
        let old_lines = match old.and_then(|id| repo.objects.find(id, &mut buf).ok()) {
            Some(d) => d.data.lines().map(<[u8]>::to_vec).collect(),
            None => HashSet::new(),
        };
        out.push(StagedFile {
            path,
            data,
            old_lines,
            big: None,
        });
    }
    Ok(out)
}

/// Where a new pre-commit hook goes: `core.hooksPath` if set, else `.git/hooks`.
pub fn hooks_dir(sync: &gix::ThreadSafeRepository) -> Result<PathBuf> {
    let repo = sync.to_thread_local();
    let config = repo.config_snapshot();
    if let Some(p) = config.trusted_path("core.hooksPath") {
        let p = p?.into_owned();
        if p.is_absolute() {
            return Ok(p);
        }
        let base = repo.workdir().unwrap_or_else(|| repo.git_dir());
        return Ok(base.join(p));
    }
    Ok(repo.common_dir().join("hooks"))
}
