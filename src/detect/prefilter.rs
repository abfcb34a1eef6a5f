//! The prefilter: every occurrence of a set of literals (rule keywords, the base64 and UTF-16
//! forms that start decoding) in one pass over the bytes, which is most of a scan's time.
//!
//! Measured on the text image of bench/image.sh (2 GiB of source files), one core:
//!
//! | literals | searcher | GB/s |
//! |---|---|---|
//! | the 25 keywords of `patterns/` | one Teddy | 2.7 |
//! | the same without the two 3-byte ones (`://`, `xox`) | one Teddy | 7.1 |
//! | `://` alone | `memchr::memmem` | 27 |
//! | 23 keywords + 15 base64 forms | one Teddy / two of 19 | 6.3 / 5.9 |
//! | 23 keywords + 15 base64 + 25 UTF-16 forms | one Teddy / three of 21 | 5.2 / 3.5 |
//!
//! Teddy (aho-corasick's SIMD searcher, used directly: the general builder may pick a
//! "rare byte" prefilter that is slow where that byte is common, as NUL is in binaries)
//! fingerprints as many leading bytes as its shortest pattern has, up to 4. Three-byte patterns
//! make it stop at many false candidates, so a few short literals get a `memmem` search each,
//! and everything else shares as few Teddy searchers as possible (each takes up to 64 patterns).

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use anyhow::Result;
use memchr::memmem;

/// The most patterns one Teddy searcher takes (aho-corasick's limit).
const TEDDY_MAX: usize = 64;
/// Literals shorter than this weaken Teddy's fingerprint.
const SHORT: usize = 4;
/// Up to this many short literals get a `memmem` pass each; more share a searcher of their own.
const MAX_SHORT_FINDERS: usize = 4;

enum Searcher {
    Teddy(packed::Searcher),
    /// Where Teddy is unavailable (no SIMD).
    Automaton(AhoCorasick),
    Memmem(memmem::Finder<'static>),
}

impl Searcher {
    fn build(lits: &[&[u8]]) -> Result<Searcher> {
        if let [one] = lits {
            if one.len() < SHORT {
                return Ok(Searcher::Memmem(memmem::Finder::new(one).into_owned()));
            }
        }
        let teddy = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(lits)
            .build();
        Ok(match teddy {
            Some(t) => Searcher::Teddy(t),
            None => Searcher::Automaton(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(lits)?,
            ),
        })
    }

    /// The leftmost match at or after `from`: (searcher-local pattern, start, end).
    fn find(&self, data: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        match self {
            Searcher::Teddy(s) => s
                .find_in(data, Span::from(from..data.len()))
                .map(|m| (m.pattern().as_usize(), m.start(), m.end())),
            Searcher::Automaton(a) => a
                .find(Input::new(data).span(from..data.len()))
                .map(|m| (m.pattern().as_usize(), m.start(), m.end())),
            Searcher::Memmem(f) => f
                .find(&data[from..])
                .map(|p| (0, from + p, from + p + f.needle().len())),
        }
    }
}

/// Bytes every searcher passes over in turn before the next block: small enough to stay in a
/// core's L2 cache (1 MiB here) from one pass to the next, instead of each pass over a 16 MiB
/// window fetching it from memory again.
const BLOCK: usize = 256 << 10;

/// A set of literals, each known by the index it was given at.
pub struct Literals {
    /// Each searcher with the unique literals it searches for, by searcher-local pattern.
    searchers: Vec<(Searcher, Vec<usize>)>,
    /// The unique literals.
    uniq: Vec<Vec<u8>>,
    /// For each unique literal: the indices it was given at.
    callers: Vec<Vec<usize>>,
    /// For each unique literal: the others of its searcher that can match at the same start
    /// (one is a prefix of the other). A leftmost-first search reports only one of them there.
    shadowed: Vec<Vec<usize>>,
    /// The longest literal's length.
    max_len: usize,
}

impl Literals {
    pub fn new(lits: &[Vec<u8>]) -> Result<Literals> {
        let mut uniq: Vec<Vec<u8>> = Vec::new();
        let mut callers: Vec<Vec<usize>> = Vec::new();
        for (i, l) in lits.iter().enumerate() {
            match uniq.iter().position(|u| u == l) {
                Some(p) => callers[p].push(i),
                None => {
                    uniq.push(l.clone());
                    callers.push(vec![i]);
                }
            }
        }
        let (short, long): (Vec<usize>, Vec<usize>) =
            (0..uniq.len()).partition(|&u| uniq[u].len() < SHORT);
        let mut groups: Vec<Vec<usize>> = Vec::new();
        if short.len() <= MAX_SHORT_FINDERS {
            groups.extend(short.into_iter().map(|u| vec![u]));
        } else {
            groups.extend(balanced(short));
        }
        groups.extend(balanced(long));

        let mut shadowed = vec![Vec::new(); uniq.len()];
        let mut searchers = Vec::with_capacity(groups.len());
        for g in groups {
            for &a in &g {
                for &b in &g {
                    if a != b && (uniq[a].starts_with(&uniq[b]) || uniq[b].starts_with(&uniq[a])) {
                        shadowed[a].push(b);
                    }
                }
            }
            let pats: Vec<&[u8]> = g.iter().map(|&u| uniq[u].as_slice()).collect();
            searchers.push((Searcher::build(&pats)?, g));
        }
        let max_len = uniq.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Literals {
            searchers,
            uniq,
            callers,
            shadowed,
            max_len,
        })
    }

    /// Every occurrence as (index given to `new`, start, end), overlapping ones included, a
    /// `BLOCK` at a time.
    pub fn for_each(&self, data: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        for from in (0..data.len()).step_by(BLOCK) {
            self.for_each_in(data, from, (from + BLOCK).min(data.len()), &mut f);
        }
    }

    /// Every occurrence that starts in `data[from..to]`. Each search restarts one byte after
    /// its last hit, so the SIMD loop runs between hits. Occurrences come in order of position
    /// within each searcher, not overall.
    fn for_each_in(
        &self,
        data: &[u8],
        from: usize,
        to: usize,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let mut report = |u: usize, start: usize| {
            for &i in &self.callers[u] {
                f(i, start, start + self.uniq[u].len());
            }
        };
        // A literal that starts before `to` may end past it.
        let hay = &data[..(to + self.max_len).saturating_sub(1).min(data.len())];
        for (s, members) in &self.searchers {
            let mut pos = from;
            while pos < to {
                let Some((p, start, _)) = s.find(hay, pos) else {
                    break;
                };
                if start >= to {
                    break;
                }
                let u = members[p];
                report(u, start);
                for &v in &self.shadowed[u] {
                    if data[start..].starts_with(&self.uniq[v]) {
                        report(v, start);
                    }
                }
                pos = start + 1;
            }
        }
    }
}

/// `items` in as few groups of at most `TEDDY_MAX` as can hold them, of balanced sizes (65
/// patterns make two searchers of 33 and 32, not 64 and a lone 1 that costs a whole pass).
fn balanced(items: Vec<usize>) -> Vec<Vec<usize>> {
    if items.is_empty() {
        return Vec::new();
    }
    let n = items.len().div_ceil(TEDDY_MAX);
    let size = items.len().div_ceil(n);
    items.chunks(size).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lits: &[&str], data: &str) -> Vec<(usize, usize)> {
        let lits: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        let mut v = Vec::new();
        Literals::new(&lits)
            .unwrap()
            .for_each(data.as_bytes(), |i, s, e| {
                assert_eq!(&data.as_bytes()[s..e], lits[i].as_slice());
                v.push((i, s));
            });
        v.sort_unstable();
        v
    }

    #[test]
    fn every_occurrence_of_every_literal_is_reported() {
        // Overlaps, a literal that is a prefix of another, a duplicate, short literals (memmem)
        // beside long ones (Teddy), and more short ones than get a memmem pass each.
        let data = "xoxoxb AKIAAKIA a://b secret_key ://";
        assert_eq!(
            all(
                &["xox", "AKIA", "://", "secret", "secret_key", "AKIA"],
                data
            ),
            vec![
                (0, 0),
                (0, 2),
                (1, 7),
                (1, 11),
                (2, 17),
                (2, 33),
                (3, 22),
                (4, 22),
                (5, 7),
                (5, 11),
            ]
        );
        let shorts = ["xox", "://", "a:/", "oxo", "b A", "y"];
        let got = all(&shorts, data);
        let want: Vec<(usize, usize)> = shorts
            .iter()
            .enumerate()
            .flat_map(|(i, l)| data.match_indices(l).map(move |(s, _)| (i, s)))
            .chain([(0, 2)]) // the overlapping occurrence match_indices skips
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn literals_across_block_edges_are_found_once() {
        let lits = vec![b"AKIA".to_vec(), b"://".to_vec(), b"secret_key".to_vec()];
        let set = Literals::new(&lits).unwrap();
        for shift in [0, 1, 2, 3, 5, 9] {
            let mut data = vec![b'.'; 3 * BLOCK];
            for edge in [BLOCK, 2 * BLOCK] {
                data[edge - shift..edge - shift + 4].copy_from_slice(b"AKIA");
                data[edge - shift + 4..edge - shift + 7].copy_from_slice(b"://");
            }
            let tail = data.len() - 10;
            data[tail..].copy_from_slice(b"secret_key");
            let mut got = Vec::new();
            set.for_each(&data, |i, s, _| got.push((s, i)));
            got.sort_unstable();
            let mut want = Vec::new();
            for edge in [BLOCK, 2 * BLOCK] {
                want.extend([(edge - shift, 0), (edge - shift + 4, 1)]);
            }
            want.push((tail, 2));
            assert_eq!(got, want, "shift {shift}");
        }
    }

    #[test]
    fn more_literals_than_one_searcher_takes() {
        let lits: Vec<String> = (0..150).map(|i| format!("kw{i:03}x")).collect();
        let refs: Vec<&str> = lits.iter().map(String::as_str).collect();
        let data: String = lits.iter().rev().map(|l| format!("{l} ")).collect();
        let got = all(&refs, &data);
        assert_eq!(got.len(), 150);
        assert!(got.iter().all(|&(i, s)| data[s..].starts_with(&lits[i])));
    }
}
