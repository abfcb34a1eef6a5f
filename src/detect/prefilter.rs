//! The prefilter: every occurrence of a set of literals (rule keywords, the base64 and UTF-16
//! forms that start decoding) in one pass over the bytes, which is most of a scan's time.
//!
//! Measured on the images of bench/image.sh (2 GiB of source files; 2 GiB of /usr), one core,
//! GB/s, the first rows with the literals in the order the rules give them:
//!
//! | literals | searcher | text | binary |
//! |---|---|---|---|
//! | the 25 keywords of `patterns/` (with `xox`, `://`) | one Teddy | 2.7 | |
//! | the same without the two 3-byte ones | one Teddy | 7.1 | |
//! | `://` alone | `memchr::memmem` | 25-27 | 25-28 |
//! | 23 keywords + 15 base64 forms | one Teddy / two of 19 | 6.3 / 5.9 | |
//! | 23 keywords + 15 base64 + 25 UTF-16 forms | one Teddy / three of 21 | 5.2-5.4 / 3.5 | 6.5 |
//! | the same, ordered by `teddy_order` | one Teddy | 7.4-7.5 | 7.4-7.9 |
//! | 29 + 15 + 25 (`xox` spelled out as `xoxb-`...), ordered | one Teddy | 7.0-7.3 | 7.6 |
//! | `xox` and `://` | one Teddy of their own / two `memmem`s | 17 / 13 | 18 / 14 |
//!
//! With the 1,195 keywords of 443 rules, on 261 MB of Rust sources in memory, one core: the
//! vector gram pass over every position for all literals of 4 bytes or more, with the 3-byte
//! ones in a Teddy of their own, runs at 1.60 GB/s (best of 7; the gram pass alone 1.8, the
//! Teddy 4.8). `keyhound scan` of that file took 0.36-0.41 s of CPU with it, and 0.54-0.76 s
//! with what runs without AVX2 (Teddy for the 150 literals of 4 bytes, the scalar gram pass
//! every 2nd byte for the longer ones), mean of 5 runs, three times interleaved.
//!
//! Since then the 3-byte keywords (`pat`, `://`, `SG.`... 20 of them, of 21 rules) are found in that same
//! gram pass, as the 4-grams they make with each byte their rules' `follows` can start with
//! (`Literals::followed`): their Teddy pass took 6.5% of the tree bench's CPU. `keyhound scan
//! -j1` of 400 MB of sources: 0.527 -> 0.505 s of CPU (mean of 12 runs in turn); the tree bench:
//! 3.32 -> 3.22 s (medians of 6 in turn).
//!
//! Teddy (aho-corasick's SIMD searcher, used directly: the general builder may pick a
//! "rare byte" prefilter that is slow where that byte is common, as NUL is in binaries)
//! fingerprints as many leading bytes as its shortest pattern has, up to 4. Three-byte patterns
//! make it stop at many false candidates, so a few short literals get a `memmem` pass each, and
//! everything else shares as few Teddy searchers as possible. Which literals share a Teddy
//! bucket decides how often it stops at a false candidate, and the order they are given in
//! decides the buckets: `teddy_order` chooses it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use anyhow::Result;
use memchr::memmem;

/// The most patterns one Teddy searcher takes. aho-corasick refuses more than 64 by default;
/// with its buckets assigned by `teddy_order`, one Teddy of 69 (the set of `patterns/` with its
/// UTF-16 hints) runs nearly as fast as one of 63, where two of 35 would each cost a whole
/// pass. (The packed searcher's own hard limit is 128.)
const TEDDY_MAX: usize = 96;
/// Literals shorter than this weaken Teddy's fingerprint.
const SHORT: usize = 4;
/// Up to this many short literals get a `memmem` pass each; more share a searcher of their own.
/// (Two 3-byte literals in a Teddy of their own ran faster alone, but no faster in the scan,
/// where `://` stops the search some 140,000 times a GiB of source text.)
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
            .heuristic_pattern_limits(false)
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
    /// For each index given: the bytes that must follow an occurrence for it to be reported
    /// there (`None`: any byte, or none at the end of the data).
    next: Vec<Option<Box<Followers>>>,
    /// The longest literal's length.
    max_len: usize,
    /// Where there are too many literals for one Teddy: the longer ones, by their 4-grams.
    grams: Option<Grams>,
}

/// The bytes that may follow a literal, by byte value.
pub type Followers = [bool; 256];

impl Literals {
    /// Every occurrence of each literal.
    #[cfg(test)]
    pub fn new(lits: &[Vec<u8>]) -> Result<Literals> {
        Literals::followed(lits, &[])
    }

    /// Every occurrence of each literal `lits[i]` followed by a byte of `next[i]` (where that is
    /// `Some`; `next` may be shorter than `lits`). Where the vector gram pass runs, a 3-byte
    /// literal with such bytes is found by the 4-grams it makes with each of them, in that
    /// pass, instead of by a Teddy pass of its own: with the 1,195 keywords of `patterns/`, the
    /// 20 of 3 bytes had one that took 6.5% of the tree bench's CPU, and stopped at every `pat`.
    pub fn followed(lits: &[Vec<u8>], next: &[Option<Followers>]) -> Result<Literals> {
        Literals::build(lits, next, avx2::available())
    }

    /// `vector`: whether the vector gram pass may be used (it is only where AVX2 is there).
    fn build(lits: &[Vec<u8>], next: &[Option<Followers>], vector: bool) -> Result<Literals> {
        let mut uniq: Vec<Vec<u8>> = Vec::new();
        let mut callers: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::default();
        for (i, l) in lits.iter().enumerate() {
            match seen.get(l.as_slice()) {
                Some(&p) => callers[p].push(i),
                None => {
                    seen.insert(l, uniq.len());
                    uniq.push(l.clone());
                    callers.push(vec![i]);
                }
            }
        }
        let next: Vec<Option<Box<Followers>>> = (0..lits.len())
            .map(|i| next.get(i).copied().flatten().map(Box::new))
            .collect();
        // For each unique literal: what may follow it for any of the indices it was given at.
        let follow: Vec<Option<Box<Followers>>> = callers
            .iter()
            .map(|c| {
                c.iter().try_fold(Box::new([false; 256]), |mut a, &i| {
                    let n = next[i].as_deref()?;
                    a.iter_mut().zip(n).for_each(|(x, y)| *x |= y);
                    Some(a)
                })
            })
            .collect();
        let (mut short, mut long): (Vec<usize>, Vec<usize>) =
            (0..uniq.len()).partition(|&u| uniq[u].len() < SHORT);
        // More literals than one Teddy takes: where the vector gram pass runs, it takes every
        // literal of 4 bytes or more. Elsewhere Teddy keeps the shortest (up to TEDDY_MAX), and
        // every literal at least `cut` bytes long is found by its 4-grams, sampled every
        // `cut - 3` bytes (see `Grams`).
        let mut grams = None;
        if long.len() > TEDDY_MAX && vector && avx2::available() {
            let folded;
            (folded, short) = short
                .into_iter()
                .partition(|&u| uniq[u].len() == SHORT - 1 && follow[u].is_some());
            grams = Some(Grams::new(&uniq, &long, &folded, &follow, 1, true));
            long = Vec::new();
        } else if long.len() > TEDDY_MAX {
            // The cut that costs least: each Teddy pass, and the gram pass at its step.
            let shorter = |cut: usize| long.iter().filter(|&&u| uniq[u].len() < cut).count();
            let cost = |cut: usize| {
                let passes = shorter(cut).div_ceil(TEDDY_MAX) as f64;
                passes * TEDDY_PASS_COST + GRAM_PASS_COST / (cut - 3) as f64
            };
            let cut = (SHORT..SHORT + GRAM_STEP_MAX)
                .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
                .unwrap_or(SHORT);
            let (rest, by_grams): (Vec<usize>, Vec<usize>) =
                long.iter().partition(|&&u| uniq[u].len() < cut);
            grams = Some(Grams::new(&uniq, &by_grams, &[], &follow, cut - 3, false));
            long = rest;
        }
        let mut groups = balanced(long);
        if short.len() <= MAX_SHORT_FINDERS {
            groups.extend(short.into_iter().map(|u| vec![u]));
        } else {
            groups.extend(balanced(short));
        }

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
            let g: Vec<usize> = teddy_order(&pats).into_iter().map(|i| g[i]).collect();
            let pats: Vec<&[u8]> = g.iter().map(|&u| uniq[u].as_slice()).collect();
            searchers.push((Searcher::build(&pats)?, g));
        }
        let max_len = uniq.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Literals {
            searchers,
            uniq,
            callers,
            shadowed,
            next,
            max_len,
            grams,
        })
    }

    /// The literals that have a pass of their own (Teddy or `memmem`), beside the gram pass.
    #[cfg(test)]
    pub fn own_passes(&self) -> Vec<&[u8]> {
        let with_own = |(_, m): &(Searcher, Vec<usize>)| m.to_vec();
        let lits = self.searchers.iter().flat_map(with_own);
        lits.map(|u| self.uniq[u].as_slice()).collect()
    }

    /// Every occurrence as (index given to `new`, start, end), overlapping ones included (those
    /// followed by a byte of their `next`, where they have one), a `BLOCK` at a time.
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
            let len = self.uniq[u].len();
            let after = data.get(start + len).copied();
            for &i in &self.callers[u] {
                if let Some(next) = &self.next[i] {
                    if !after.is_some_and(|b| next[usize::from(b)]) {
                        continue;
                    }
                }
                f(i, start, start + len);
            }
        };
        if let Some(g) = &self.grams {
            g.for_each_in(data, from, to, &mut report);
        }
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

/// The largest sampling step of `Grams` (literals at least `3 + step` bytes long).
const GRAM_STEP_MAX: usize = 4;
/// Time per byte of a Teddy pass of up to `TEDDY_MAX` literals and of the scalar gram pass at
/// step 1, relative: where the vector gram pass is unavailable, they choose which literals Teddy
/// takes and the gram step. With the 1,195 keywords of `patterns/` (155 of 4 bytes, 129 of 5),
/// scanning 474 MiB of crates' sources on two cores took, by cut (Teddy takes the shorter
/// literals, grams the rest at step cut - 3): 4: 713 ms, 5: 486, 6: 499, 7: 565, 8 (step 5):
/// 691 (ripgrep: 245 ms). This model picks 5.
const TEDDY_PASS_COST: f64 = 0.3;
const GRAM_PASS_COST: f64 = 1.7;
/// log2 of the bits in `Grams::bits`: 128 KiB, in a core's L2 cache, where the 1,190 grams of
/// `patterns/` left 136,000 false candidates in 261 MB of Rust sources (one position in 1,900;
/// 1,190 random bits would pass one in 880). A bitset in L1 (2^18
/// bits) makes the vector pass's gathers faster, but its false candidates cost more: the whole
/// prefilter ran at 1.40 GB/s with it against 1.60 (261 MB of Rust sources, one core, best of 7).
const GRAM_BITS: u32 = 20;

/// Many literals at once, by 4-grams: each literal stands for `step` of its 4-grams, at
/// consecutive offsets, and the text is looked at only every `step` bytes, where a gram's hash
/// is tested in a bitset and, if set, the literals of that gram are compared. Each occurrence
/// of a literal puts exactly one of its chosen grams on a sampled position, so it is found
/// once. Teddy is fast on a few dozen literals and falls apart on hundreds (every bucket's
/// masks pass most bytes); an Aho-Corasick DFA is a chain of dependent table lookups. Measured
/// on 604 MiB of source text with the 486 keywords of 214 rules, one core (GB/s): Teddy groups
/// of 64 / 96 / 128: 0.26 / 0.15 / 0.11 (11 / 7 / 6 passes); the Aho-Corasick DFA: 0.51;
/// grams at step 1: 1.04; the same with a first level on the raw bigram: 0.84.
///
/// Where AVX2 is there, the test runs on 32 positions at once (`avx2::candidates`): four
/// loads give the grams at every position, and a gather looks up eight hashes in the bitset at
/// a time. That pass takes every literal of four bytes or more at step 1, each standing for its
/// one least likely gram. Where AVX-512 VBMI is there, a byte-class `Filter` runs first, and
/// the bitset is looked at only where it passes (a tenth of the positions).
struct Grams {
    step: usize,
    bits: Vec<u32>,
    /// Whether `avx2::candidates` runs the test (step 1 only).
    simd: bool,
    /// Where AVX-512 VBMI is there (with `simd`): the byte-class filter `avx512::candidates`
    /// runs before the bitset, which it looks at only where the filter passes.
    filter: Option<Box<Filter>>,
    /// gram → (literal, the gram's offset in it)
    table: GramTable,
}

impl Grams {
    /// `vector`: run the test with `avx2::candidates` (only at step 1, where AVX2 is there).
    /// `folded`: 3-byte literals found (at step 1) by the grams they make with each byte that
    /// may follow them (`follow`).
    fn new(
        uniq: &[Vec<u8>],
        members: &[usize],
        folded: &[usize],
        follow: &[Option<Box<Followers>>],
        step: usize,
        vector: bool,
    ) -> Grams {
        let mut bits = vec![0u32; 1 << (GRAM_BITS - 5)];
        let mut table: HashMap<u32, Vec<(usize, usize)>, BuildHasherDefault<GramHasher>> =
            HashMap::default();
        assert!(
            folded.is_empty() || step == 1,
            "folded literals need every position"
        );
        for &u in folded {
            let (l, next) = (
                &uniq[u],
                follow[u].as_deref().expect("folded literals follow"),
            );
            for b in (0..=255u8).filter(|&b| next[usize::from(b)]) {
                let g = u32::from_le_bytes([l[0], l[1], l[2], b]);
                let h = gram_hash(g);
                bits[h >> 5] |= 1 << (h & 31);
                table.entry(g).or_default().push((u, 0));
            }
        }
        for &u in members {
            let l = &uniq[u];
            debug_assert!(l.len() >= 3 + step);
            // The `step` consecutive grams least likely to occur by chance.
            let first = (0..=l.len() - 3 - step)
                .min_by(|&a, &b| {
                    let c = |o: usize| {
                        (o..o + step)
                            .map(|j| gram_chance(&l[j..j + 4]))
                            .sum::<f64>()
                    };
                    c(a).total_cmp(&c(b))
                })
                .unwrap_or(0);
            for off in first..first + step {
                let g = u32::from_le_bytes([l[off], l[off + 1], l[off + 2], l[off + 3]]);
                let h = gram_hash(g);
                bits[h >> 5] |= 1 << (h & 31);
                table.entry(g).or_default().push((u, off));
            }
        }
        let simd = vector && step == 1 && avx2::available();
        let filter = (simd && avx512::available()).then(|| Box::new(Filter::new(table.keys())));
        Grams {
            step,
            bits,
            simd,
            filter,
            table: GramTable::new(table, uniq),
        }
    }

    /// Every occurrence whose sampled gram is in `data[from..to]` (so it starts before `to`,
    /// maybe before `from`): over blocks that cover `data`, every occurrence exactly once.
    fn for_each_in(
        &self,
        data: &[u8],
        from: usize,
        to: usize,
        report: &mut impl FnMut(usize, usize),
    ) {
        let step = self.step;
        let mut p = from.next_multiple_of(step);
        // The last gram starts at data.len() - 4.
        let end = to.min(data.len().saturating_sub(3));
        let mut verify = |q: usize| {
            let g = u32::from_le_bytes([data[q], data[q + 1], data[q + 2], data[q + 3]]);
            for e in self.table.get(g) {
                let (off, len) = (e.off as usize, e.len as usize);
                // The gram is the literal, or holds it (a folded 3-byte one): nothing else to
                // compare.
                if len <= 4 && off == 0 {
                    report(e.lit as usize, q);
                    continue;
                }
                let Some(s) = q.checked_sub(off) else {
                    continue;
                };
                let lit = &self.table.bytes[e.at as usize..e.at as usize + len];
                if data.get(s..s + len) == Some(lit) {
                    report(e.lit as usize, s);
                }
            }
        };
        if self.simd {
            // A stretch at a time: the pass notes its candidates and starts fetching their
            // slots, then they are looked up. Looked up at once, each waited for its slot, a
            // cache miss, with nothing else to do (a third of their time).
            let mut at = [0u16; STRETCH];
            loop {
                let (start, mut n) = (p, 0);
                let mut note = |q: usize| {
                    let g = u32::from_le_bytes([data[q], data[q + 1], data[q + 2], data[q + 3]]);
                    self.table.prefetch(g);
                    at[n] = (q - start) as u16;
                    n += 1;
                };
                let stop = (start + STRETCH).min(end);
                p = match &self.filter {
                    // SAFETY: `filter` is set only where AVX-512 VBMI is there.
                    Some(f) => unsafe {
                        avx512::candidates(data, start, stop, f, &self.bits, &mut note)
                    },
                    // SAFETY: `simd` is set only where AVX2 is there.
                    None => unsafe { avx2::candidates(data, start, stop, &self.bits, &mut note) },
                };
                for &o in &at[..n] {
                    verify(start + usize::from(o));
                }
                if p == start {
                    break;
                }
            }
        }
        let bits = &self.bits[..];
        while p < end {
            // SAFETY: `p < end <= data.len() - 3`, so the four bytes at `p` are in `data`.
            let g = u32::from_le(unsafe { data.as_ptr().add(p).cast::<u32>().read_unaligned() });
            let h = gram_hash(g);
            if bits[h >> 5] >> (h & 31) & 1 != 0 {
                verify(p);
            }
            p += step;
        }
    }
}

/// A first test of every position's 4-gram by its bytes' classes (their low 7 bits), 64
/// positions at a time with AVX-512 VBMI: each gram is put in one of 16 buckets, and for each of
/// its 4 bytes a table says, by the byte's class, which buckets have a gram with that class
/// there. A position passes where the 4 tables share a bucket, and only there is the bitset
/// looked at. The buckets are filled greedily, each gram where it makes passing least likely
/// (by `BYTE_FREQ`). Measured offline on 40 MB of sources with the keywords' rarest grams: 9.7%
/// of positions pass with 16 buckets (18% with 8, 4.4% with 32); in the scan, of 400 MB of
/// sources, 9.6%. The positions that pass are collected a chunk at a time and then tested, so
/// that the few of each 64 do not each end a loop the branch predictor misses. `scan -j1` of
/// 4,000 files of 100 kB, user time, means of 12-16 runs in turn: 0.399 -> 0.337 s and 0.448 ->
/// 0.375 s against the AVX2 pass; of the tree corpus (2.46 GB), 2.99 -> 2.73 s (5 runs). Tried:
/// a masked gather of only the lanes that pass (no faster than the AVX2 pass: lanes masked off
/// cost as much), and each 64 positions' passes tested in a loop of their own (0.362 s against
/// 0.378 s).
struct Filter {
    /// For byte j of the gram, buckets 0-7 (`tables[2j]`) and 8-15 (`tables[2j + 1]`), by class.
    tables: [[u8; 128]; 8],
}

impl Filter {
    fn new<'a>(grams: impl Iterator<Item = &'a u32>) -> Filter {
        let mut freq = [0f64; 128];
        for (b, &f) in BYTE_FREQ.iter().enumerate() {
            freq[b & 127] += f64::from(f) + 1.0;
        }
        let total: f64 = freq.iter().sum();
        freq.iter_mut().for_each(|f| *f /= total);
        let classes = |g: u32| g.to_le_bytes().map(|b| usize::from(b & 127));
        let chance = |g: u32| classes(g).iter().map(|&c| freq[c]).product::<f64>();
        let mut grams: Vec<u32> = grams.copied().collect();
        // The likeliest first, each then where it adds least; ties by value, for the same
        // buckets on every run.
        grams.sort_unstable_by(|&a, &b| chance(b).total_cmp(&chance(a)).then(a.cmp(&b)));
        // Each bucket's classes at each byte, and the chance of each set.
        let mut sets = [[0u128; 4]; 16];
        let mut sums = [[0f64; 4]; 16];
        let mut tables = [[0u8; 128]; 8];
        for g in grams {
            let cs = classes(g);
            let cost = |b: usize| {
                let before: f64 = sums[b].iter().product();
                let after: f64 = (0..4)
                    .map(|j| {
                        sums[b][j]
                            + if sets[b][j] >> cs[j] & 1 == 0 {
                                freq[cs[j]]
                            } else {
                                0.0
                            }
                    })
                    .product();
                after - before
            };
            let b = (0..16)
                .min_by(|&x, &y| cost(x).total_cmp(&cost(y)))
                .unwrap_or(0);
            for j in 0..4 {
                if sets[b][j] >> cs[j] & 1 == 0 {
                    sets[b][j] |= 1 << cs[j];
                    sums[b][j] += freq[cs[j]];
                }
                tables[2 * j + b / 8][cs[j]] |= 1 << (b % 8);
            }
        }
        Filter { tables }
    }
}

/// Positions the vector pass covers before their candidates are looked up (`Grams::for_each_in`):
/// a multiple of the AVX2 pass's 32 and the AVX-512 one's 64, and small enough that each offset
/// fits in a `u16`.
const STRETCH: usize = 4096;

/// How likely `gram` is in text: its first byte's frequency, then each next byte's chance of
/// following the one before (`bigrams::FOLLOWS`, for printable ASCII; its own frequency
/// otherwise). The keywords' grams chosen this way occur less often than those chosen with
/// the bytes taken as independent (`UPCL` of `UPCLOUD_PASSWORD`, not `WORD`): 4.2 times less
/// in a sample of the tree corpus (1,825 against 7,594 a MB), 1.5 times in 261 MB of Rust
/// sources (665,000 against 1,014,000), where the prefilter went from 1.41 to 1.60 GB/s.
fn gram_chance(gram: &[u8]) -> f64 {
    let freq = |b: u8| (f64::from(BYTE_FREQ[b as usize]) + 1.0) / 100_000.0;
    let printable = |b: u8| (0x20..0x7F).contains(&b);
    let mut p = freq(gram[0]);
    for w in gram.windows(2) {
        p *= if printable(w[0]) && printable(w[1]) {
            let bits =
                super::bigrams::FOLLOWS[usize::from(w[0] - 0x20)][usize::from(w[1] - 0x20)] - b'a';
            (-f64::from(bits)).exp2()
        } else {
            freq(w[1])
        };
    }
    p
}

#[inline]
fn gram_hash(g: u32) -> usize {
    (g.wrapping_mul(GRAM_MUL) >> (32 - GRAM_BITS)) as usize
}

const GRAM_MUL: u32 = 0x9E37_79B1;

/// Whether the vector gram pass runs here (AVX2).
#[cfg(test)]
pub fn vector_pass() -> bool {
    avx2::available()
}

mod avx2 {
    /// Whether `candidates` (and aho-corasick's 16-bucket Teddy) can run here.
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Calls `hit(q)` for each position q from `p` on whose 4-gram's hash is set in `bits`,
    /// 32 positions at a time while all 35 bytes they read are in `data` and q stays below
    /// `end`; returns where it stopped, for the scalar loop to go on from.
    ///
    /// # Safety
    /// AVX2 must be available. (That `bits` holds `1 << (GRAM_BITS - 5)` words, which every
    /// hash indexes, is checked.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    pub unsafe fn candidates(
        data: &[u8],
        mut p: usize,
        end: usize,
        bits: &[u32],
        hit: &mut impl FnMut(usize),
    ) -> usize {
        use std::arch::x86_64::*;
        assert_eq!(bits.len(), 1 << (super::GRAM_BITS - 5));
        let base = data.as_ptr();
        let table = bits.as_ptr().cast::<i32>();
        let mul = _mm256_set1_epi32(super::GRAM_MUL as i32);
        let low5 = _mm256_set1_epi32(31);
        while p + 32 <= end && p + 35 <= data.len() {
            // Bit 8k + i: the gram at p + k + 4i passed.
            let mut set = 0u32;
            for k in 0..4 {
                // SAFETY: p + k + 32 <= p + 35 <= data.len().
                let g = _mm256_loadu_si256(base.add(p + k).cast());
                let h = _mm256_srli_epi32::<{ 32 - super::GRAM_BITS as i32 }>(_mm256_mullo_epi32(
                    g, mul,
                ));
                // SAFETY: h < 1 << GRAM_BITS, so h >> 5 indexes `bits`.
                let w = _mm256_i32gather_epi32::<4>(table, _mm256_srli_epi32::<5>(h));
                // The gram's bit, `h & 31` of its word, shifted to the top (by 31 - (h & 31),
                // which is !h & 31), where movemask reads it.
                let t = _mm256_sllv_epi32(w, _mm256_andnot_si256(h, low5));
                set |= (_mm256_movemask_ps(_mm256_castsi256_ps(t)) as u32) << (8 * k);
            }
            while set != 0 {
                let b = set.trailing_zeros() as usize;
                set &= set - 1;
                hit(p + (b >> 3) + 4 * (b & 7));
            }
            p += 32;
        }
        p
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn candidates(
        _data: &[u8],
        p: usize,
        _end: usize,
        _bits: &[u32],
        _hit: &mut impl FnMut(usize),
    ) -> usize {
        p
    }
}

mod avx512 {
    /// Whether `candidates` can run here (AVX-512 with VBMI's byte permutes).
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vbmi")
                && std::is_x86_feature_detected!("avx512vbmi2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// As `avx2::candidates`, 64 positions at a time, over at most `STRETCH` positions: the
    /// positions whose 4-gram passes `filter` are then tested in `bits`.
    ///
    /// # Safety
    /// AVX-512 F, BW, VBMI and VBMI2 must be available. (That `bits` holds `1 << (GRAM_BITS - 5)`
    /// words, which every hash indexes, is checked.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vbmi2")]
    pub unsafe fn candidates(
        data: &[u8],
        mut p: usize,
        end: usize,
        filter: &super::Filter,
        bits: &[u32],
        hit: &mut impl FnMut(usize),
    ) -> usize {
        use std::arch::x86_64::*;
        assert_eq!(bits.len(), 1 << (super::GRAM_BITS - 5));
        let base = data.as_ptr();
        // Each table's 128 bytes as two registers.
        let t: [[__m512i; 2]; 8] = std::array::from_fn(|k| {
            let at = filter.tables[k].as_ptr();
            // SAFETY: each table is 128 bytes.
            unsafe {
                [
                    _mm512_loadu_si512(at.cast()),
                    _mm512_loadu_si512(at.add(64).cast()),
                ]
            }
        });
        let iota = _mm512_loadu_si512(IOTA.as_ptr().cast());
        // The positions that passed, as offsets from `start`: one loop over all of them, not one
        // over each 64 positions' few (whose ends the branch predictor misses).
        let start = p;
        assert!(
            end.saturating_sub(start) <= super::STRETCH,
            "one stretch at a time"
        );
        let mut passed = [0u16; super::STRETCH + 32];
        let mut n = 0;
        while p + 64 <= end && p + 67 <= data.len() {
            let mut lo = _mm512_set1_epi8(-1);
            let mut hi = _mm512_set1_epi8(-1);
            for (j, pair) in t.chunks_exact(2).enumerate() {
                // SAFETY: p + j + 64 <= p + 67 <= data.len(). Byte i is byte j of the gram at
                // p + i.
                let x = _mm512_loadu_si512(base.add(p + j).cast());
                lo = _mm512_and_si512(lo, _mm512_permutex2var_epi8(pair[0][0], x, pair[0][1]));
                hi = _mm512_and_si512(hi, _mm512_permutex2var_epi8(pair[1][0], x, pair[1][1]));
            }
            let any = _mm512_or_si512(lo, hi);
            let m = _mm512_test_epi8_mask(any, any);
            let off = (p - start) as i16;
            for half in 0..2 {
                let mh = (m >> (32 * half)) as u32;
                let at = _mm512_add_epi16(iota, _mm512_set1_epi16(off + 32 * half as i16));
                // SAFETY: n is at most the positions seen, p - start + 32 * half, and
                // p + 64 <= start + STRETCH, so the 32 offsets stored end by STRETCH.
                debug_assert!(n + 32 <= passed.len());
                _mm512_storeu_si512(
                    passed.as_mut_ptr().add(n).cast(),
                    _mm512_maskz_compress_epi16(mh, at),
                );
                n += mh.count_ones() as usize;
            }
            p += 64;
        }
        for &o in &passed[..n] {
            let q = start + usize::from(o);
            // SAFETY: q + 4 <= p + 3 <= data.len().
            let g = u32::from_le(base.add(q).cast::<u32>().read_unaligned());
            let h = super::gram_hash(g);
            if bits[h >> 5] >> (h & 31) & 1 != 0 {
                hit(q);
            }
        }
        p
    }

    /// 0, 1, ... 31 as 16-bit lanes.
    #[cfg(target_arch = "x86_64")]
    static IOTA: [u16; 32] = {
        let mut a = [0u16; 32];
        let mut i = 0;
        while i < 32 {
            a[i] = i as u16;
            i += 1;
        }
        a
    };

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn candidates(
        _data: &[u8],
        p: usize,
        _end: usize,
        _filter: &super::Filter,
        _bits: &[u32],
        _hit: &mut impl FnMut(usize),
    ) -> usize {
        p
    }
}

/// What a gram that passed the bitset is checked against: open addressing on the gram (a
/// slot with no entries is empty), each slot's entries side by side, each literal's bytes in one
/// buffer, so a candidate costs a slot, its entries and the bytes compared, without the
/// pointers a `HashMap` of `Vec`s follows; a literal the gram holds whole is not compared at
/// all. In a profile of scanning 400 MB of sources in memory, `memcmp` went from 3.2% to 2.3%;
/// the rest of a candidate's cost is reporting the hit (the closure around this, 10.5%).
struct GramTable {
    shift: u32,
    slots: Vec<Slot>,
    entries: Vec<Entry>,
    /// The literals' bytes, one after another.
    bytes: Vec<u8>,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    gram: u32,
    first: u32,
    count: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    /// The unique literal.
    lit: u32,
    /// Its bytes, at `bytes[at..at + len]`.
    at: u32,
    len: u32,
    /// Where the gram is in it.
    off: u32,
}

/// A multiplier for the table's slots unlike the bitset's (`GRAM_MUL`), so that grams which
/// pass the bitset do not crowd into the same slots.
const SLOT_MUL: u32 = 0x85EB_CA6B;

/// The first slot for `g` in a table of `1 << (32 - shift)` slots.
#[inline]
fn slot_of(g: u32, shift: u32) -> usize {
    (g.wrapping_mul(SLOT_MUL) >> shift) as usize
}

impl GramTable {
    fn new(
        map: HashMap<u32, Vec<(usize, usize)>, BuildHasherDefault<GramHasher>>,
        uniq: &[Vec<u8>],
    ) -> GramTable {
        // At most a quarter of the slots taken: a gram not in the table (a false candidate of
        // the bitset) meets an empty slot after 1.2 on average.
        let bits = (4 * map.len().max(1))
            .next_power_of_two()
            .trailing_zeros()
            .max(4);
        let mask = (1usize << bits) - 1;
        let shift = 32 - bits;
        let mut slots = vec![Slot::default(); 1 << bits];
        let mut entries = Vec::new();
        let mut bytes = Vec::new();
        let mut at = HashMap::new();
        let mut grams: Vec<_> = map.into_iter().collect();
        grams.sort_unstable();
        for (g, lits) in grams {
            let mut s = slot_of(g, shift);
            while slots[s].count != 0 {
                s = (s + 1) & mask;
            }
            slots[s] = Slot {
                gram: g,
                first: entries.len() as u32,
                count: lits.len() as u32,
            };
            for (u, off) in lits {
                let a = *at.entry(u).or_insert_with(|| {
                    bytes.extend_from_slice(&uniq[u]);
                    bytes.len() - uniq[u].len()
                });
                entries.push(Entry {
                    lit: u as u32,
                    at: a as u32,
                    len: uniq[u].len() as u32,
                    off: off as u32,
                });
            }
        }
        GramTable {
            shift,
            slots,
            entries,
            bytes,
        }
    }

    /// The slot where the search for `g` starts.
    #[inline]
    fn slot(&self, g: u32) -> usize {
        slot_of(g, self.shift)
    }

    /// Starts bringing `g`'s first slot into the cache, for a `get` soon after.
    #[inline]
    fn prefetch(&self, g: u32) {
        let s = self.slot(g);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `s` indexes `slots` (it is below `1 << (32 - shift)`, their number); a
        // prefetch reads nothing into the program.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(s).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = s;
    }

    #[inline]
    fn get(&self, g: u32) -> &[Entry] {
        let mask = self.slots.len() - 1;
        let mut s = self.slot(g);
        loop {
            let slot = self.slots[s];
            if slot.count == 0 {
                return &[];
            }
            if slot.gram == g {
                let first = slot.first as usize;
                return &self.entries[first..first + slot.count as usize];
            }
            s = (s + 1) & mask;
        }
    }
}

/// Hashes a gram for the verification table (std's SipHash costs more than the search).
#[derive(Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, x: u32) {
        let m = u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = m ^ (m >> 29);
    }
}

/// How often each byte value occurs, per 100,000 bytes: the mean of source text and of a
/// system's programs, libraries and data (bench/image.sh's text and binary images, 1 MiB read
/// every 16 MiB). NUL and space are an eighth and a tenth of all bytes. Only the speed of the
/// search depends on it (through `teddy_order`), never what it finds.
#[rustfmt::skip]
const BYTE_FREQ: [u16; 256] = [
    13243, 1045, 547, 358, 452, 287, 211, 191, 442, 403, 1553, 133, 154, 135, 415, 484,
    318, 112, 111, 95, 107, 102, 76, 78, 200, 77, 64, 66, 77, 62, 59, 156,
    10247, 116, 441, 222, 553, 172, 115, 171, 650, 593, 317, 86, 829, 326, 562, 686,
    736, 637, 522, 380, 323, 281, 273, 191, 312, 242, 971, 395, 163, 359, 201, 64,
    187, 756, 348, 483, 534, 770, 264, 229, 1185, 649, 72, 137, 610, 306, 474, 422,
    454, 57, 492, 708, 580, 259, 159, 129, 167, 145, 89, 191, 158, 204, 52, 1772,
    207, 2090, 652, 1347, 1353, 3532, 900, 596, 680, 2087, 147, 340, 1396, 874, 2060, 1951,
    1140, 135, 2104, 2140, 2875, 1254, 401, 346, 521, 473, 146, 164, 138, 171, 51, 44,
    164, 65, 47, 260, 195, 194, 74, 47, 88, 621, 35, 463, 78, 240, 54, 57,
    126, 36, 36, 44, 55, 44, 36, 44, 68, 42, 37, 38, 52, 37, 31, 43,
    91, 39, 33, 34, 47, 35, 53, 41, 60, 35, 54, 58, 44, 34, 33, 38,
    74, 37, 37, 34, 56, 40, 68, 44, 81, 50, 59, 44, 54, 60, 67, 58,
    211, 94, 62, 119, 83, 53, 66, 104, 65, 55, 41, 34, 184, 36, 37, 37,
    107, 69, 60, 44, 51, 33, 36, 44, 90, 40, 75, 46, 44, 43, 41, 59,
    132, 49, 51, 46, 57, 54, 50, 55, 281, 126, 42, 75, 64, 55, 48, 73,
    146, 45, 48, 59, 43, 38, 71, 61, 91, 48, 59, 51, 72, 62, 129, 1209,
];

/// The order to give Teddy the literals `lits` in, as indices into `lits`.
///
/// Teddy (aho-corasick 1.1) has B buckets: 16 for more than 32 patterns where AVX2 is there,
/// else 8. A position is a candidate when its first `m` bytes (m: the shortest pattern's length,
/// at most 4) pass a bucket's masks: for each of them, the low nibbles and the high nibbles of
/// that byte in the bucket's patterns. Every candidate is verified against the bucket's patterns,
/// so a bucket of unlike patterns (`ghp_` beside `A\0K\0`) lets through every byte mixing their
/// nibbles. The i-th pattern given goes to bucket `B-1 - i % B`, unless an earlier one has the
/// same low nibbles in its first `m` bytes (then it joins that one's bucket): so the order given
/// is the bucket assignment. Here literals with the same low nibbles stay together as units, and
/// swapping units between buckets while the summed chance of a candidate under `BYTE_FREQ`
/// falls (bytes taken as independent) finds an assignment; a unit's first literal takes its
/// bucket's place in the order, the rest come after all of those. If aho-corasick ever assigns
/// buckets differently, only speed changes: every literal is still found.
fn teddy_order(lits: &[&[u8]]) -> Vec<usize> {
    let n = lits.len();
    let m = lits.iter().map(|l| l.len()).min().unwrap_or(0).min(4);
    if n < 2 || m == 0 {
        return (0..n).collect();
    }
    let buckets = if n > 32 && fat_teddy_available() {
        16
    } else {
        8
    };
    // Units: literals sharing the low nibbles of their first m bytes.
    let mut units: Vec<Vec<usize>> = Vec::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (i, l) in lits.iter().enumerate() {
        let key: Vec<u8> = l[..m].iter().map(|b| b & 15).collect();
        match keys.iter().position(|k| *k == key) {
            Some(u) => units[u].push(i),
            None => {
                keys.push(key);
                units.push(vec![i]);
            }
        }
    }
    // Unit k (its first literal at index k) lands in bucket B-1 - k % B.
    let slot_bucket = |k: usize| buckets - 1 - k % buckets;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); buckets];
    for k in 0..units.len() {
        members[slot_bucket(k)].push(k);
    }
    // A bucket's masks: for each of the m bytes, the low and the high nibbles allowed.
    type Masks = [(u16, u16); 4];
    let unit_masks: Vec<Masks> = units
        .iter()
        .map(|u| {
            let mut mk = [(0u16, 0u16); 4];
            for &i in u {
                for (j, &b) in lits[i][..m].iter().enumerate() {
                    mk[j].0 |= 1 << (b & 15);
                    mk[j].1 |= 1 << (b >> 4);
                }
            }
            mk
        })
        .collect();
    // The chance that a byte sequence passes a bucket, bytes taken as independent.
    let cost = |ids: &mut dyn Iterator<Item = usize>| -> f64 {
        let mut mk = [(0u16, 0u16); 4];
        let mut any = false;
        for u in ids {
            any = true;
            for j in 0..m {
                mk[j].0 |= unit_masks[u][j].0;
                mk[j].1 |= unit_masks[u][j].1;
            }
        }
        if !any {
            return 0.0;
        }
        pass_chance(&mk[..m])
    };
    // Bucket `ms` with its x-th unit replaced by unit `by`.
    let swapped = |ms: &[usize], x: usize, by: usize| {
        let mut it = ms
            .iter()
            .enumerate()
            .map(move |(k, &u)| if k == x { by } else { u });
        cost(&mut it)
    };
    let mut costs: Vec<f64> = members
        .iter()
        .map(|ms| cost(&mut ms.iter().copied()))
        .collect();
    // Each accepted swap lowers the total, so this ends; the bound is a guard.
    for _ in 0..64 {
        let mut improved = false;
        for a in 0..buckets {
            for b in a + 1..buckets {
                for x in 0..members[a].len() {
                    for y in 0..members[b].len() {
                        let (ua, ub) = (members[a][x], members[b][y]);
                        let ca = swapped(&members[a], x, ub);
                        let cb = swapped(&members[b], y, ua);
                        if ca + cb < (costs[a] + costs[b]) * (1.0 - 1e-9) {
                            (members[a][x], members[b][y]) = (ub, ua);
                            (costs[a], costs[b]) = (ca, cb);
                            improved = true;
                        }
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
    // Slots k = B-1-b, 2B-1-b, ... of bucket b take its units' first literals.
    let mut order = vec![0; units.len()];
    for (b, ms) in members.iter().enumerate() {
        let slots = (0..units.len()).filter(|&k| slot_bucket(k) == b);
        for (k, &u) in slots.zip(ms) {
            order[k] = units[u][0];
        }
    }
    order.extend(units.iter().flat_map(|u| u[1..].iter().copied()));
    order
}

/// The chance that bytes (taken as independent, with `BYTE_FREQ`) pass a bucket's masks: for
/// each byte, the low nibbles and the high nibbles it may have.
fn pass_chance(masks: &[(u16, u16)]) -> f64 {
    masks
        .iter()
        .map(|&(lo, hi)| {
            let mut pass = 0u32;
            for h in bits(hi) {
                for l in bits(lo) {
                    pass += u32::from(BYTE_FREQ[h << 4 | l]);
                }
            }
            f64::from(pass) / 100_000.0
        })
        .product()
}

/// The positions of the bits set in `x`.
fn bits(mut x: u16) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (x != 0).then(|| {
            let b = x.trailing_zeros() as usize;
            x &= x - 1;
            b
        })
    })
}

/// Whether aho-corasick can use its 16-bucket ("fat") Teddy here.
fn fat_teddy_available() -> bool {
    avx2::available()
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

    /// The summed chance of a false candidate when Teddy is given `lits` in `order`, its
    /// buckets assigned as aho-corasick 1.1 does.
    fn teddy_chance(lits: &[&[u8]], order: &[usize]) -> f64 {
        let m = lits.iter().map(|l| l.len()).min().unwrap().min(4);
        let buckets = if lits.len() > 32 && fat_teddy_available() {
            16
        } else {
            8
        };
        let mut by_nibbles: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        let mut masks = vec![[(0u16, 0u16); 4]; buckets];
        for (i, &l) in order.iter().enumerate() {
            let key: Vec<u8> = lits[l][..m].iter().map(|b| b & 15).collect();
            let b = *by_nibbles.entry(key).or_insert(buckets - 1 - i % buckets);
            for (j, &c) in lits[l][..m].iter().enumerate() {
                masks[b][j].0 |= 1 << (c & 15);
                masks[b][j].1 |= 1 << (c >> 4);
            }
        }
        masks
            .iter()
            .filter(|mk| mk[0].0 != 0)
            .map(|mk| pass_chance(&mk[..m]))
            .sum()
    }

    #[test]
    fn teddy_order_is_a_permutation_that_makes_false_candidates_rarer() {
        // Keywords, base64 forms and UTF-16 hints, as the engine gives them (in that order).
        let keywords = [
            "AKIA",
            "ASIA",
            "ABIA",
            "ACCA",
            "ecret",
            "ECRET",
            "AccountKey=",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "glpat-",
            "AIza",
            "service_account",
            "npm_",
            "PRIVATE KEY",
            "xoxb-",
            "xoxp-",
            "xapp-",
            "hooks.slack.com",
            "_live_",
        ];
        let mut lits: Vec<Vec<u8>> = keywords.iter().map(|k| k.as_bytes().to_vec()).collect();
        for k in ["AKIA", "secret", "PRIVATE KEY"] {
            lits.extend(crate::detect::decode::base64_forms(k.as_bytes()));
        }
        for k in keywords {
            let wide: Vec<u8> = k.bytes().take(3).flat_map(|b| [b, 0]).take(5).collect();
            if !lits.contains(&wide) {
                lits.push(wide);
            }
        }
        let refs: Vec<&[u8]> = lits.iter().map(Vec::as_slice).collect();
        let order = teddy_order(&refs);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..refs.len()).collect::<Vec<_>>());
        let given: Vec<usize> = (0..refs.len()).collect();
        let (before, after) = (teddy_chance(&refs, &given), teddy_chance(&refs, &order));
        assert!(
            after * 4.0 < before,
            "ordered {after:.6} against {before:.6} as given"
        );
        // And every literal is still found where it is.
        let data: Vec<u8> = lits
            .iter()
            .flat_map(|l| [l.as_slice(), b" "].concat())
            .collect();
        let mut found = vec![false; lits.len()];
        Literals::new(&lits).unwrap().for_each(&data, |i, s, e| {
            assert_eq!(&data[s..e], lits[i].as_slice());
            found[i] = true;
        });
        assert!(found.iter().all(|&f| f));
    }

    /// `n` literals of bytes of `alphabet`, the i-th `len(i)` bytes long.
    fn random_literals(
        rng: &mut fastrand::Rng,
        n: usize,
        alphabet: &[u8],
        len: impl Fn(usize) -> usize,
    ) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                (0..len(i))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            })
            .collect()
    }

    /// Every (literal, start) in `data`, found one position at a time: where `next[i]` is
    /// `Some`, only where one of its bytes follows (`next` may be shorter than `lits`).
    fn naive(lits: &[Vec<u8>], next: &[Option<Followers>], data: &[u8]) -> Vec<(usize, usize)> {
        let mut want = Vec::new();
        for (i, l) in lits.iter().enumerate() {
            for s in 0..=data.len() - l.len() {
                let follows = match (next.get(i).copied().flatten(), data.get(s + l.len())) {
                    (None, _) => true,
                    (Some(f), Some(&b)) => f[usize::from(b)],
                    (Some(_), None) => false,
                };
                if data[s..].starts_with(l) && follows {
                    want.push((i, s));
                }
            }
        }
        want
    }

    /// Every (literal, start) `set` reports in `data`, sorted; each is where it says.
    fn found(set: &Literals, lits: &[Vec<u8>], data: &[u8]) -> Vec<(usize, usize)> {
        let mut got = Vec::new();
        set.for_each(data, |i, s, e| {
            assert_eq!(&data[s..e], lits[i].as_slice());
            got.push((i, s));
        });
        got.sort_unstable();
        got
    }

    /// Hundreds of literals (Teddy for the short ones, grams for the rest), by the vector gram
    /// pass (where AVX2 is there) and by Teddy with the scalar one at a larger step: every
    /// occurrence, overlapping ones and ones across block edges included, exactly once, as a
    /// naive search finds them.
    #[test]
    fn hundreds_of_literals_are_found_as_a_naive_search_finds_them() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"abcdefgh_-ABC";
        let mut lits = random_literals(&mut rng, 400, alphabet, |i| 3 + i % 14);
        lits.push(b"aaaaaaaaaa".to_vec()); // repeats its own grams
        lits.push(b"aaaaaaaaaa".to_vec()); // a duplicate
        let mut data: Vec<u8> = (0..BLOCK + 5000)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        for (k, l) in lits.iter().enumerate().step_by(3) {
            let at = (k * 997) % (data.len() - l.len());
            data[at..at + l.len()].copy_from_slice(l);
        }
        let edge = BLOCK - 4;
        data[edge..edge + 10].copy_from_slice(b"aaaaaaaaaa");
        let want = naive(&lits, &[], &data);
        assert!(want.len() > 400, "{}", want.len());
        // The vector pass with its byte-class filter where AVX-512 VBMI is there, the vector
        // pass alone, the scalar pass.
        for (vector, filter) in [(true, true), (true, false), (false, false)] {
            let mut set = Literals::build(&lits, &[], vector).unwrap();
            let grams = set
                .grams
                .as_mut()
                .expect("hundreds of literals are found by grams");
            assert_eq!(grams.simd, vector && avx2::available());
            assert_eq!(grams.filter.is_some(), grams.simd && avx512::available());
            if !filter {
                grams.filter = None;
            }
            assert_eq!(
                grams.step == 1,
                grams.simd,
                "the scalar pass samples every 2nd byte"
            );
            assert_eq!(
                found(&set, &lits, &data),
                want,
                "vector pass allowed: {vector}, filter: {filter}"
            );
        }
    }

    /// Blocks of any size: each occurrence is reported once, in the block that holds the gram
    /// it was sampled by, however far into the literal that gram is (a literal's least likely
    /// grams may be its last). Before, the scalar pass looked for the start in the block and
    /// missed a literal whose sampled gram fell past the block's end: this test failed with
    /// blocks of 7 bytes; in a scan, a keyword across the edge of two 256 KiB blocks.
    #[test]
    fn literals_are_found_once_whatever_the_blocks() {
        let mut rng = fastrand::Rng::with_seed(11);
        // Common letters first, a rare tail: the least likely grams are at the end.
        let mut lits: Vec<Vec<u8>> = (0..150)
            .map(|i| {
                let mut l: Vec<u8> = (0..4 + i % 9).map(|_| b"etaoin"[rng.usize(..6)]).collect();
                l.extend((0..4).map(|_| b"QXZJ"[rng.usize(..4)]));
                l
            })
            .collect();
        lits.push(b"abc".to_vec());
        let mut data: Vec<u8> = (0..20_000)
            .map(|_| b"etaoin .QXZJ"[rng.usize(..12)])
            .collect();
        for (k, l) in lits.iter().enumerate() {
            let at = (k * 131) % (data.len() - l.len());
            data[at..at + l.len()].copy_from_slice(l);
        }
        let want = naive(&lits, &[], &data);
        assert!(want.len() >= 150);
        for vector in [true, false] {
            let set = Literals::build(&lits, &[], vector).unwrap();
            assert!(set.grams.is_some());
            for block in [7, 37, 100, 1000, data.len()] {
                let mut got = Vec::new();
                for from in (0..data.len()).step_by(block) {
                    let to = (from + block).min(data.len());
                    set.for_each_in(&data, from, to, |i, s, e| {
                        assert_eq!(&data[s..e], lits[i].as_slice());
                        got.push((i, s));
                    });
                }
                got.sort_unstable();
                assert_eq!(
                    got, want,
                    "vector pass allowed: {vector}, blocks of {block}"
                );
            }
        }
    }

    /// Literals with the bytes that must follow them: an occurrence counts only where one of
    /// those follows (never at the end of the data), whichever pass finds it. Where the vector
    /// gram pass runs, 3-byte literals with such bytes are found by it, and no other pass is
    /// left for them.
    #[test]
    fn literals_are_found_where_their_bytes_follow() {
        let mut rng = fastrand::Rng::with_seed(5);
        let alphabet = b"abcdefgh_-ABC";
        let mut lits = random_literals(&mut rng, 300, alphabet, |i| 3 + i % 5);
        lits.push(lits[0].clone()); // a duplicate, with bytes of its own
        let mut next: Vec<Option<Followers>> = (0..lits.len())
            .map(|i| {
                (i % 4 != 3).then(|| {
                    let mut f = [false; 256];
                    for &b in alphabet {
                        f[usize::from(b)] = rng.bool();
                    }
                    f
                })
            })
            .collect();
        let only = |b: u8| {
            let mut f = [false; 256];
            f[usize::from(b)] = true;
            Some(f)
        };
        next[0] = only(b'a');
        *next.last_mut().unwrap() = only(b'b');
        let mut data: Vec<u8> = (0..BLOCK + 3000)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        // The first literal (3 bytes), followed by an allowed byte across a block edge, and at
        // the very end, where nothing follows it.
        let l0 = lits[0].clone();
        data[BLOCK - 2..BLOCK + 1].copy_from_slice(&l0);
        data[BLOCK + 1] = b'b';
        let end = data.len() - 3;
        data[end..].copy_from_slice(&l0);
        let want = naive(&lits, &next, &data);
        assert!(want.contains(&(lits.len() - 1, BLOCK - 2)));
        assert!(!want.contains(&(0, BLOCK - 2)) && !want.iter().any(|&(_, s)| s == end));
        assert!(want.len() > 1000, "{}", want.len());
        for vector in [true, false] {
            let set = Literals::build(&lits, &next, vector).unwrap();
            let simd = set.grams.as_ref().is_some_and(|g| g.simd);
            assert_eq!(simd, vector && avx2::available());
            if simd {
                // Only the 3-byte literals without bytes to follow are left to Teddy.
                let left: Vec<usize> = set.searchers.iter().flat_map(|s| s.1.clone()).collect();
                assert!(!left.is_empty());
                assert!(left
                    .iter()
                    .all(|&u| set.callers[u].iter().any(|&i| set.next[i].is_none())));
            }
            assert_eq!(
                found(&set, &lits, &data),
                want,
                "vector pass allowed: {vector}"
            );
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
