//! Detection: one prefilter pass (`prefilter.rs`) over every rule's keywords plus the base64 and
//! UTF-16 forms that start the decoding passes, `regex::bytes` confirmation in a bounded window
//! around each hit, then pairing of key ids with secrets. Works on raw bytes and knows nothing
//! of where they came from.

mod bigrams;
pub mod decode;
pub mod examples;
mod gitleaks;
mod prefilter;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

pub use decode::Decoding;
pub use rules::{Confidence, RuleMeta, RuleSet, Selection, Severity};

use prefilter::{Followers, Literals};
use rules::Rule;

/// What a part of a detection is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An access key id (identifies the key; not secret on its own, but a lead).
    KeyId,
    /// The secret of a pair, or a secret on its own.
    Secret,
    /// A session token that goes with a temporary key.
    SessionToken,
    /// The whole secret of a single-part rule (a token, a private key).
    Value,
}

#[derive(Clone, Debug)]
pub struct Part {
    pub role: Role,
    pub start: usize,
    pub end: usize,
    pub value: Vec<u8>,
}

/// One secret (or pair) at one place of the scanned bytes.
#[derive(Clone, Debug)]
pub struct Detection {
    pub rule: Arc<RuleMeta>,
    /// Offsets are in the bytes given to `Engine::scan`; the first part is the primary one.
    pub parts: Vec<Part>,
    /// Decoding passes the secret went through, outermost first.
    pub decoded: Vec<Decoding>,
    /// For decoded detections: the decoded line, for display.
    pub context: Option<Vec<u8>>,
}

/// Depth of nested decoding (a base64 value inside a UTF-16 file is depth 2).
const MAX_DECODE_DEPTH: usize = 2;
/// How far a window may grow to reach the edge of the token it cuts.
const MAX_BOUNDARY_STRETCH: usize = 256;

pub struct Engine {
    pub rules: RuleSet,
    /// One pass finds every rule's keyword, exactly as written (indices below `n_keywords`),
    /// and the base64 forms of the rules' `base64_keywords` (where found, base64 is decoded).
    plain: Literals,
    /// The same, and after them the UTF-16 forms of the keywords (where found, UTF-16 text is
    /// decoded): for blobs that may hold UTF-16 text (that have a NUL byte). Built when first
    /// needed, from `wide_literals`: a scan of text files (a pre-commit hook) never needs it.
    wide: std::sync::OnceLock<Option<Literals>>,
    wide_literals: Vec<Vec<u8>>,
    /// For each keyword: the bytes that may follow its hits (`Literals::followed`).
    next: Vec<Option<Followers>>,
    n_keywords: usize,
    n_base64: usize,
    /// For each keyword: the rules it opens a window for.
    keyword_rules: Vec<Vec<u32>>,
    /// Per keyword: its hits ask for URL decoding (a rule of it has `url_decode`).
    url_hint: Vec<bool>,
    /// For each rule: the rules that search the pair window around its matches.
    near_rules: Vec<Vec<usize>>,
    /// For each rule: its role when reported on its own.
    roles: Vec<Role>,
    /// The longest span the engine may need at once (for overlapping windows of big files).
    pub max_span: usize,
}

#[derive(Clone, Copy, Debug)]
struct M {
    rule: usize,
    start: usize,
    end: usize,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Result<Engine> {
        let mut lits: Vec<Vec<u8>> = Vec::new();
        let mut keyword_rules: Vec<Vec<u32>> = Vec::new();
        let mut b64: Vec<Vec<u8>> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for (i, r) in rules.rules.iter().enumerate() {
            for k in &r.keywords {
                match seen.get(k.as_bytes()) {
                    Some(&p) => keyword_rules[p].push(i as u32),
                    None => {
                        seen.insert(k.as_bytes(), lits.len());
                        lits.push(k.as_bytes().to_vec());
                        keyword_rules.push(vec![i as u32]);
                    }
                }
            }
            for k in &r.base64_keywords {
                b64.extend(decode::base64_forms(k.as_bytes()));
            }
        }
        b64.sort();
        b64.dedup();
        // "A\0K\0I\0A": found in little-endian text, and in big-endian text one byte later.
        // A hint only says where to decode, and the decoded view is searched for every keyword,
        // so keywords that share three characters or more (`xoxa-`, `xoxb-`...) share one hint,
        // their common start: fewer literals for the prefilter. Other keywords keep their
        // whole form, so that binary bytes rarely match a hint by chance.
        // The longest start a keyword shares with another is the one it shares with a
        // neighbour in sorted order.
        let mut sorted: Vec<&[u8]> = lits.iter().map(Vec::as_slice).collect();
        sorted.sort_unstable();
        let common = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let mut shared_of: HashMap<&[u8], usize> = HashMap::new();
        for (j, l) in sorted.iter().enumerate() {
            let before = j.checked_sub(1).map_or(0, |p| common(l, sorted[p]));
            let after = sorted.get(j + 1).map_or(0, |n| common(l, n));
            shared_of.insert(l, before.max(after));
        }
        let mut utf16: Vec<Vec<u8>> = lits
            .iter()
            .map(|l| {
                let shared = shared_of[l.as_slice()];
                let chars = if shared >= 3 { shared } else { l.len() };
                l[..chars]
                    .iter()
                    .flat_map(|&b| [b, 0])
                    .take(2 * chars - 1)
                    .collect()
            })
            .collect();
        utf16.sort();
        utf16.dedup();

        let n = rules.rules.len();
        let mut near_rules = vec![Vec::new(); n];
        let mut roles = vec![Role::Value; n];
        for (i, r) in rules.rules.iter().enumerate() {
            if let Some(k) = r.near {
                near_rules[k].push(i);
            }
        }
        let mut max_span = 0;
        for p in &rules.pairs {
            roles[p.key] = Role::KeyId;
            for &s in &p.secrets {
                roles[s] = Role::Secret;
            }
            if let Some(t) = p.token {
                roles[t] = Role::SessionToken;
            }
            max_span = max_span.max(2 * p.bytes + 4096);
        }
        for r in &rules.rules {
            max_span = max_span.max(r.window.0 + r.window.1 + 2 * MAX_BOUNDARY_STRETCH);
        }
        let url_hint = keyword_rules
            .iter()
            .map(|rs| rs.iter().any(|&r| rules.rules[r as usize].url_decode))
            .collect();
        // What may follow each keyword for a window to open: the first bytes of its rules'
        // `follows` (any byte if a rule has none), and '%' where its hits ask for URL decoding
        // (the secret after it may be percent-encoded). A hit followed by anything else is
        // dropped by the prefilter: it neither opens a window nor asks for decoding.
        let next: Vec<Option<Followers>> = keyword_rules
            .iter()
            .zip(&url_hint)
            .map(|(rs, &url)| {
                let mut set = [false; 256];
                for &r in rs {
                    let n = rules.rules[r as usize].next_bytes()?;
                    set.iter_mut().zip(n).for_each(|(x, y)| *x |= y);
                }
                set[usize::from(b'%')] |= url;
                Some(set)
            })
            .collect();
        let (n_keywords, n_base64) = (lits.len(), b64.len());
        lits.extend(b64);
        let plain = Literals::followed(&lits, &next)?;
        lits.extend(utf16);
        Ok(Engine {
            rules,
            plain,
            wide: std::sync::OnceLock::new(),
            wide_literals: lits,
            next,
            n_keywords,
            n_base64,
            keyword_rules,
            url_hint,
            near_rules,
            roles,
            max_span,
        })
    }

    /// The literals with the UTF-16 hints (the plain ones if they cannot be built, which the
    /// plain ones being built makes next to impossible: only the hints are missed then).
    fn wide(&self) -> &Literals {
        self.wide
            .get_or_init(
                || match Literals::followed(&self.wide_literals, &self.next) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        eprintln!("keyhound: warning: UTF-16 text is not searched: {e:#}");
                        None
                    }
                },
            )
            .as_ref()
            .unwrap_or(&self.plain)
    }

    /// Every detection in `data`, decoded passes included, deduplicated.
    pub fn scan(&self, data: &[u8]) -> Vec<Detection> {
        self.scan_view(data, 0)
    }

    fn scan_view(&self, data: &[u8], depth: usize) -> Vec<Detection> {
        let mut windows: Vec<M> = Vec::new();
        let mut hits = Vec::new();
        let mut b64 = Vec::new();
        let mut u16 = Vec::new();
        let (nk, nb) = (self.n_keywords, self.n_base64);
        let mut found = |p: usize, start: usize, end: usize| {
            if p >= nk + nb {
                u16.push(start);
                return;
            }
            if p >= nk {
                b64.push(start);
                return;
            }
            if self.url_hint[p] {
                hits.push(start);
            }
            for &r in &self.keyword_rules[p] {
                let rule = &self.rules.rules[r as usize];
                let after = (end + rule.window.1).min(data.len());
                if rule
                    .compiled()
                    .follows
                    .as_ref()
                    .is_some_and(|f| !f.is_match(&data[end..after]))
                {
                    continue;
                }
                windows.push(M {
                    rule: r as usize,
                    start: start.saturating_sub(rule.window.0),
                    end: (end + rule.window.1).min(data.len()),
                });
            }
        };
        // Decoded views are never UTF-16. UTF-16 text of ASCII keywords holds NUL bytes: where a
        // blob has none (most text), the hints need not be looked for. With hundreds of rules
        // they double the literals; a search for NUL runs at some 30 GB/s.
        let literals = if depth == 0 && memchr::memchr(0, data).is_some() {
            self.wide()
        } else {
            &self.plain
        };
        literals.for_each(data, &mut found);
        let mut out = Vec::new();
        // Where keywords were seen (merged), for the JSON pass below.
        let mut near: Vec<(usize, usize)> = Vec::new();
        if depth < MAX_DECODE_DEPTH {
            let mut spans: Vec<(usize, usize)> = windows.iter().map(|w| (w.start, w.end)).collect();
            spans.sort_unstable();
            for (s, e) in spans {
                let (s, e) = (s.saturating_sub(JSON_REACH), e + JSON_REACH);
                match near.last_mut() {
                    Some(l) if s <= l.1 => l.1 = l.1.max(e),
                    _ => near.push((s, e)),
                }
            }
        }
        if !windows.is_empty() {
            let mut matches = Vec::new();
            self.confirm(data, windows, &mut matches);
            if !matches.is_empty() {
                self.near_pass(data, &mut matches);
                self.pair(data, matches, &mut out);
            }
        }
        if depth < MAX_DECODE_DEPTH {
            // Decoded views cover only the neighbourhood of what calls for them, not the whole
            // blob: a hint in a 16 MiB window decodes and rescans kilobytes.
            let order = decode::utf16_order(data);
            for (s, e) in regions(data, &mut u16, decode::utf16_byte) {
                if let Some(v) = decode::utf16_view(&data[s..e], order) {
                    self.scan_child(&v, s, depth, false, &mut out);
                }
            }
            for (s, e) in regions(data, &mut b64, decode::is_b64) {
                if let Some(v) = decode::base64_view(&data[s..e]) {
                    self.scan_child(&v, s, depth, true, &mut out);
                }
            }
            // Keywords are never percent-encoded, so URL-encoded secrets sit in a token that
            // also holds a keyword: decode the tokens around keyword hits (of the keywords whose
            // rules ask for it: a URL's own "://" does not, see `url_decode`). Most tokens hold
            // no '%' at all (a plain URL, a `secret` in code): their hits are dropped first,
            // looking at the token only, not at the whole region a view would cover.
            hits.retain(|&h| decode::token_holds_escape(data, h));
            for (s, e) in regions(data, &mut hits, decode::url_token_byte) {
                let (a, b) = (
                    hits.partition_point(|&h| h < s),
                    hits.partition_point(|&h| h < e),
                );
                let local: Vec<usize> = hits[a..b].iter().map(|h| h - s).collect();
                if let Some(v) = decode::url_view(&data[s..e], &local) {
                    self.scan_child(&v, s, depth, true, &mut out);
                }
            }
            // JSON strings whose escapes may hide part of a key (PHP's `json_encode` writes
            // every `/` as `\/`): the escapes near keyword hits, decoded in their strings.
            if !near.is_empty() {
                let mut esc = Vec::new();
                for &(s, e) in &near {
                    let (s, e) = (s.min(data.len()), e.min(data.len()));
                    let before = esc.len();
                    decode::json_escapes(&data[s..e], &mut esc);
                    for p in &mut esc[before..] {
                        *p += s;
                    }
                }
                esc.dedup();
                for (s, e) in regions(data, &mut esc, decode::json_string_byte) {
                    let (a, b) = (
                        esc.partition_point(|&h| h < s),
                        esc.partition_point(|&h| h < e),
                    );
                    let local: Vec<usize> = esc[a..b].iter().map(|h| h - s).collect();
                    if let Some(v) = decode::json_view(&data[s..e], &local) {
                        self.scan_child(&v, s, depth, true, &mut out);
                    }
                }
            }
            dedup(&mut out);
        }
        out
    }

    /// Scans a decoded view and maps what it finds back; with `only_decoded`, detections made
    /// only of text that was copied unchanged (already found in `data`) are dropped.
    fn scan_child(
        &self,
        v: &decode::View,
        base: usize,
        depth: usize,
        only_decoded: bool,
        out: &mut Vec<Detection>,
    ) {
        for mut d in self.scan_view(&v.data, depth + 1) {
            if only_decoded && !d.parts.iter().any(|p| v.touches_decoded(p.start, p.end)) {
                continue;
            }
            if d.context.is_none() {
                d.context = Some(line_around(&v.data, d.parts[0].start, d.parts[0].end).to_vec());
            }
            for p in &mut d.parts {
                let (s, e) = (base + v.map(p.start), base + v.map_end(p.end));
                p.start = s;
                p.end = e.max(s + 1);
            }
            d.decoded.insert(0, v.decoding);
            out.push(d);
        }
    }

    /// Runs each rule's regex over its merged windows and keeps the matches that pass its checks.
    fn confirm(&self, data: &[u8], mut windows: Vec<M>, matches: &mut Vec<M>) {
        windows.sort_unstable_by_key(|w| (w.rule, w.start));
        let mut i = 0;
        while i < windows.len() {
            let M {
                rule,
                start,
                mut end,
            } = windows[i];
            i += 1;
            while i < windows.len() && windows[i].rule == rule && windows[i].start <= end {
                end = end.max(windows[i].end);
                i += 1;
            }
            self.search(rule, data, start, end, matches);
        }
        matches.sort_unstable_by_key(|m| (m.start, m.end, m.rule));
        matches.dedup_by_key(|m| (m.start, m.end, m.rule));
    }

    fn search(&self, ri: usize, data: &[u8], start: usize, end: usize, matches: &mut Vec<M>) {
        let rule = &self.rules.rules[ri];
        // Stretch the window to the edges of the tokens it cuts, so `^`/`$` and the
        // boundary classes see real boundaries.
        let (s, e) = decode::widen(data, start, end, MAX_BOUNDARY_STRETCH, is_token_byte);
        let hay = &data[s..e];
        let c = rule.compiled();
        if c.secret_group == 0 {
            for m in c.regex.find_iter(hay) {
                self.accept(ri, rule, data, s + m.start(), s + m.end(), matches);
            }
        } else {
            for caps in c.regex.captures_iter(hay) {
                if let Some(g) = caps.get(c.secret_group) {
                    self.accept(ri, rule, data, s + g.start(), s + g.end(), matches);
                }
            }
        }
    }

    fn accept(&self, ri: usize, rule: &Rule, data: &[u8], s: usize, e: usize, out: &mut Vec<M>) {
        if s == e {
            return;
        }
        let rc = rule.compiled();
        if let Some(c) = &rc.not_before {
            if s > 0 && c.contains(data[s - 1]) {
                return;
            }
        }
        if let Some(c) = &rc.not_after {
            if e < data.len() && c.contains(data[e]) {
                return;
            }
        }
        let v = &data[s..e];
        if let Some(min) = rule.entropy {
            if rules::entropy(v) < min {
                return;
            }
        }
        if rule.checksum.is_some_and(|c| !c.holds(v)) {
            return;
        }
        if rc.reject.iter().any(|r| r.is_match(v)) || !rc.require.iter().all(|r| r.is_match(v)) {
            return;
        }
        out.push(M {
            rule: ri,
            start: s,
            end: e,
        });
    }

    /// Searches the pair window around each key match for the rules that look only there.
    fn near_pass(&self, data: &[u8], matches: &mut Vec<M>) {
        let mut found = Vec::new();
        for pair in &self.rules.pairs {
            let near = &self.near_rules[pair.key];
            if near.is_empty() {
                continue;
            }
            for k in matches.iter().filter(|m| m.rule == pair.key) {
                let (lo, hi) = pair_window(data, k, pair.lines, pair.bytes);
                for &r in near {
                    // A match must start in the window; it may run past it (a long token).
                    let hi = (hi + self.rules.rules[r].window.1).min(data.len());
                    self.search(r, data, lo, hi, &mut found);
                }
            }
        }
        if !found.is_empty() {
            matches.extend(found);
            matches.sort_unstable_by_key(|m| (m.start, m.end, m.rule));
            matches.dedup_by_key(|m| (m.start, m.end, m.rule));
        }
    }

    /// Joins each key id with its nearest secret (and token) in the pair window; what stays
    /// alone is reported alone if its rule is standalone.
    fn pair(&self, data: &[u8], matches: Vec<M>, out: &mut Vec<Detection>) {
        let mut used = vec![false; matches.len()];
        let part = |m: &M, role: Role| Part {
            role,
            start: m.start,
            end: m.end,
            value: data[m.start..m.end].to_vec(),
        };
        for pair in &self.rules.pairs {
            let keys: Vec<usize> = (0..matches.len())
                .filter(|&i| matches[i].rule == pair.key)
                .collect();
            if keys.is_empty() {
                continue;
            }
            let wins: Vec<(usize, usize)> = keys
                .iter()
                .map(|&k| pair_window(data, &matches[k], pair.lines, pair.bytes))
                .collect();
            // Candidate (distance, preference, key, other) for the secrets, then the tokens.
            // `matches` is sorted by start: each key looks only at the slice in its window, so a
            // file with thousands of keys pairs in n·log n.
            let candidates = |rule_pref: &dyn Fn(usize) -> Option<usize>,
                              keys_ok: &dyn Fn(usize) -> bool| {
                // The others, one per span: the same bytes matched by several rules of the list
                // count once, as the preferred rule.
                let mut others: Vec<(usize, usize, usize, usize)> = matches
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| Some((m.start, m.end, rule_pref(m.rule)?, i)))
                    .collect();
                others.sort_unstable();
                others.dedup_by_key(|o| (o.0, o.1));
                let mut c = Vec::new();
                for (ki, &k) in keys.iter().enumerate() {
                    if !keys_ok(k) {
                        continue;
                    }
                    let (lo, hi) = wins[ki];
                    let first = others.partition_point(|o| o.0 < lo);
                    for &(start, _, pref, si) in others[first..].iter().take_while(|o| o.0 < hi) {
                        if si != k {
                            c.push((start.abs_diff(matches[k].start), pref, k, si));
                        }
                    }
                }
                c.sort_unstable();
                c
            };
            let secret_pref = |r: usize| pair.secrets.iter().position(|&s| s == r);
            let mut joined: HashMap<usize, (usize, Option<usize>)> = HashMap::new();
            for (_, _, k, s) in candidates(&secret_pref, &|_| true) {
                if used[k] || used[s] {
                    continue;
                }
                used[k] = true;
                used[s] = true;
                joined.insert(k, (s, None));
            }
            if let Some(t) = pair.token {
                let token_pref = |r: usize| (r == t).then_some(0);
                let wants_token = |k: usize| {
                    joined.contains_key(&k)
                        && pair.token_key_prefixes.iter().any(|p| {
                            data[matches[k].start..matches[k].end].starts_with(p.as_bytes())
                        })
                };
                for (_, _, k, ti) in candidates(&token_pref, &wants_token) {
                    if used[ti] || joined[&k].1.is_some() {
                        continue;
                    }
                    used[ti] = true;
                    joined.get_mut(&k).unwrap().1 = Some(ti);
                }
            }
            let mut js: Vec<_> = joined.into_iter().collect();
            js.sort_unstable();
            for (k, (s, t)) in js {
                let mut parts = vec![
                    part(&matches[k], Role::KeyId),
                    part(&matches[s], Role::Secret),
                ];
                if let Some(t) = t {
                    parts.push(part(&matches[t], Role::SessionToken));
                }
                out.push(Detection {
                    rule: pair.meta.clone(),
                    parts,
                    decoded: Vec::new(),
                    context: None,
                });
            }
        }
        for (i, m) in matches.iter().enumerate() {
            let rule = &self.rules.rules[m.rule];
            if used[i] || !rule.standalone {
                continue;
            }
            out.push(Detection {
                rule: rule.meta.clone(),
                parts: vec![part(m, self.roles[m.rule])],
                decoded: Vec::new(),
                context: None,
            });
        }
    }
}

/// Drops exact repeats, and single parts that a pair found in the same place already covers.
fn dedup(out: &mut Vec<Detection>) {
    if out.len() < 2 {
        return;
    }
    let covered: std::collections::HashSet<(usize, Vec<u8>)> = out
        .iter()
        .filter(|d| d.parts.len() > 1)
        .flat_map(|d| d.parts.iter().map(|p| (p.start, p.value.clone())))
        .collect();
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| {
        if d.parts.len() == 1 && covered.contains(&(d.parts[0].start, d.parts[0].value.clone())) {
            return false;
        }
        let key: Vec<(usize, Vec<u8>)> =
            d.parts.iter().map(|p| (p.start, p.value.clone())).collect();
        seen.insert((d.rule.id.clone(), key))
    });
}

#[inline]
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// How far around a hint a decoded view reaches: past the pair window (the key id may be in one
/// encoded value, its secret in the next), and out to the ends of the tokens it cuts.
const VIEW_REACH: usize = 16 << 10;

/// How far from a keyword hit a JSON escape is decoded: the pair window's reach (a key id and
/// its secret a few lines apart).
const JSON_REACH: usize = 1 << 10;

/// Merged regions of `VIEW_REACH` around `hits`, widened to the edges of the tokens (`token`
/// bytes) they would cut. Sorts `hits` (the prefilter gives them in order per searcher only).
fn regions(data: &[u8], hits: &mut [usize], token: fn(u8) -> bool) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    hits.sort_unstable();
    for &h in &*hits {
        let (s, e) = (
            h.saturating_sub(VIEW_REACH),
            (h + VIEW_REACH).min(data.len()),
        );
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    for r in &mut out {
        *r = decode::widen(data, r.0, r.1, 1 << 20, token);
    }
    // Widening may make neighbours overlap again.
    out.dedup_by(|b, a| {
        if b.0 <= a.1 {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    out
}

/// The bytes within `lines` lines and `bytes` bytes of a key match, found by looking only that
/// far from the key (never at the whole blob).
fn pair_window(data: &[u8], k: &M, lines: usize, bytes: usize) -> (usize, usize) {
    let lo_bound = k.start.saturating_sub(bytes);
    let lo = memchr::memrchr_iter(b'\n', &data[lo_bound..k.start])
        .nth(lines)
        .map_or(lo_bound, |p| lo_bound + p + 1);
    let hi_bound = (k.end + bytes).min(data.len());
    let hi = memchr::memchr_iter(b'\n', &data[k.end..hi_bound])
        .nth(lines)
        .map_or(hi_bound, |p| k.end + p);
    (lo, hi)
}

/// The line holding `data[start..]`, cut to at most 160 bytes either side of the match's first
/// line; control bytes (binary data) end a line too.
pub fn line_around(data: &[u8], start: usize, end: usize) -> &[u8] {
    const MAX: usize = 160;
    let breaks = |b: &u8| *b == b'\n' || *b == b'\r' || (*b < 0x20 && *b != b'\t');
    let lo = start.saturating_sub(MAX);
    let ls = data[lo..start]
        .iter()
        .rposition(breaks)
        .map_or(lo, |p| lo + p + 1);
    let end = end.clamp(start, data.len());
    let first_line_end = data[start..end]
        .iter()
        .position(breaks)
        .map_or(end, |p| start + p);
    let hi = (first_line_end + MAX).min(data.len());
    let le = data[first_line_end..hi]
        .iter()
        .position(breaks)
        .map_or(hi, |p| first_line_end + p);
    &data[ls..le]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the vector gram pass runs, it finds every literal of `patterns/`: a 3-byte
    /// keyword without `follows` (or one that can match empty) would bring back a Teddy pass of
    /// its own, 6.5% of the tree bench's CPU.
    #[test]
    fn the_rules_keywords_need_one_pass() {
        let engine = Engine::new(RuleSet::load(&[]).unwrap()).unwrap();
        if prefilter::vector_pass() {
            assert_eq!(engine.plain.own_passes(), Vec::<&[u8]>::new());
        }
        // What may follow a keyword: its rules' `follows` and, for URL decoding, '%'.
        let k = engine
            .wide_literals
            .iter()
            .position(|l| l == b"pat")
            .unwrap();
        let next = engine.next[k].unwrap();
        assert!(next[usize::from(b'h')] && next[usize::from(b'%')] && !next[usize::from(b' ')]);
    }

    #[test]
    fn pair_windows_are_local() {
        let data = b"a\nb\nc\nKEY\nd\ne\nf\n";
        let k = M {
            rule: 0,
            start: 6,
            end: 9,
        };
        let (lo, hi) = pair_window(data, &k, 1, 1024);
        assert_eq!(&data[lo..hi], b"c\nKEY\nd");
        // A byte bound tighter than the line bound wins.
        let (lo, hi) = pair_window(data, &k, 5, 1);
        assert_eq!(&data[lo..hi], b"\nKEY\n");
    }

    #[test]
    fn regions_merge_and_reach_token_edges() {
        let mut data = vec![b' '; 100_000];
        data[42_300..42_500].fill(b'A'); // a token across the reach of the first hits
        let r = regions(&data, &mut [24_000, 90_000, 26_000], decode::is_b64);
        assert_eq!(
            r,
            vec![
                (24_000 - VIEW_REACH, 42_500),
                (90_000 - VIEW_REACH, 100_000)
            ]
        );
    }
}
