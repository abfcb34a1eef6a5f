//! Decoding passes. Each builds a `View`: new bytes to scan plus a map from every view offset
//! back to an offset in the bytes it was made from. A view keeps the undecoded text around what
//! it decodes, so a keyword on the line (`AWS_SECRET_ACCESS_KEY: <base64>`) and a key id a few
//! lines up still pair with the decoded value.

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Decoding {
    #[serde(rename = "utf-16le")]
    Utf16Le,
    #[serde(rename = "utf-16be")]
    Utf16Be,
    Base64,
    Url,
    Json,
}

impl Decoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Decoding::Utf16Le => "utf-16le",
            Decoding::Utf16Be => "utf-16be",
            Decoding::Base64 => "base64",
            Decoding::Url => "url",
            Decoding::Json => "json",
        }
    }
}

/// `view[view_start..view_start+view_len]` stands for `src[src_start..src_start+src_len]`.
#[derive(Clone, Copy, Debug)]
struct Seg {
    view_start: usize,
    view_len: usize,
    src_start: usize,
    src_len: usize,
    decoded: bool,
}

pub struct View {
    pub data: Vec<u8>,
    pub decoding: Decoding,
    segs: Vec<Seg>,
}

impl View {
    fn new(decoding: Decoding, cap: usize) -> View {
        View {
            data: Vec::with_capacity(cap),
            decoding,
            segs: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8], src_start: usize, src_len: usize, decoded: bool) {
        if bytes.is_empty() {
            return;
        }
        self.segs.push(Seg {
            view_start: self.data.len(),
            view_len: bytes.len(),
            src_start,
            src_len,
            decoded,
        });
        self.data.extend_from_slice(bytes);
    }

    fn seg(&self, off: usize) -> &Seg {
        let i = self
            .segs
            .partition_point(|s| s.view_start <= off)
            .saturating_sub(1);
        &self.segs[i]
    }

    /// Source offset of view offset `off`.
    pub fn map(&self, off: usize) -> usize {
        let s = self.seg(off.min(self.data.len().saturating_sub(1)));
        let rel = off.saturating_sub(s.view_start).min(s.view_len);
        s.src_start + rel * s.src_len / s.view_len
    }

    /// Source offset just past view offset `end - 1`.
    pub fn map_end(&self, end: usize) -> usize {
        if end == 0 {
            return self.map(0);
        }
        let s = self.seg(end - 1);
        let rel = (end - s.view_start).min(s.view_len);
        s.src_start + (rel * s.src_len).div_ceil(s.view_len)
    }

    /// Does `view[start..end]` include decoded bytes (rather than text copied as it was)?
    pub fn touches_decoded(&self, start: usize, end: usize) -> bool {
        let i = self
            .segs
            .partition_point(|s| s.view_start <= start)
            .saturating_sub(1);
        self.segs[i..]
            .iter()
            .take_while(|s| s.view_start < end)
            .any(|s| s.decoded)
    }
}

const MIN_UTF16_CHARS: usize = 8;

/// The byte order of UTF-16 text in an input: big-endian after a big-endian byte-order mark,
/// else little-endian (what Windows writes).
pub fn utf16_order(input: &[u8]) -> Decoding {
    if input.starts_with(&[0xfe, 0xff]) {
        Decoding::Utf16Be
    } else {
        Decoding::Utf16Le
    }
}

/// A byte that UTF-16 text of the ASCII/Latin-1 range is made of.
pub fn utf16_byte(b: u8) -> bool {
    b == 0 || utf16_char(b).is_some()
}

#[inline]
fn utf16_char(b: u8) -> Option<u8> {
    match b {
        b'\t' | b'\n' | b'\r' | 0x20..=0x7e => Some(b),
        0xa0..=0xfd => Some(b'?'), // Latin-1 (not the byte-order mark): keep one byte per char so the map stays linear
        _ => None,
    }
}

/// Runs of UTF-16 text (ASCII/Latin-1 range) of at least 8 characters, joined by newlines.
/// Finds both whole UTF-16 files (PowerShell, .reg, .ini from Windows) and UTF-16 strings inside
/// binaries. Reading little-endian at every alignment also reads big-endian text (one byte
/// later), so one pass serves both; a big-endian byte order mark only changes the label.
/// Call only when `data` has NUL bytes.
/// `data` may be a part of a bigger input, whose byte order (`utf16_order`) labels the view.
pub fn utf16_view(data: &[u8], decoding: Decoding) -> Option<View> {
    let mut view = View::new(decoding, 0);
    let mut emit = |start: usize, chars: usize| {
        // Big-endian text read from its second byte has each character followed by the NUL of
        // the next, so its last character is followed by none: `tail` is that character, when
        // the run starts after a NUL (as big-endian text does) and a text byte follows it. In a
        // big-endian input (a byte order mark says so) it ends the run. Without a mark it may
        // instead be the first byte of whatever follows little-endian text, so the run is given
        // both ways, without and with it (what both find is reported once).
        let tail = (chars > 0 && start > 0 && data[start - 1] == 0)
            .then(|| data.get(start + 2 * chars).copied().and_then(utf16_char))
            .flatten();
        let run: Vec<u8> = (0..chars)
            .map(|k| utf16_char(data[start + 2 * k]).unwrap_or(b'?'))
            .collect();
        let mut push = |tail: Option<u8>| {
            if chars + usize::from(tail.is_some()) < MIN_UTF16_CHARS {
                return;
            }
            view.push(&run, start, 2 * chars, true);
            let mut end = start + 2 * chars;
            if let Some(c) = tail {
                view.push(&[c], end, 1, true);
                end += 1;
            }
            view.push(b"\n", end, 0, true);
        };
        match tail {
            Some(_) if decoding == Decoding::Utf16Be => push(tail),
            Some(_) => {
                push(None);
                push(tail);
            }
            None => push(None),
        }
    };
    // Walk the NUL bytes: a run is NULs two apart, each after a text character.
    let (mut start, mut chars, mut last) = (0usize, 0usize, usize::MAX);
    for z in memchr::memchr_iter(0, data) {
        let ok = z > 0 && utf16_char(data[z - 1]).is_some();
        if ok && chars > 0 && z == last + 2 {
            chars += 1;
        } else {
            emit(start, chars);
            (start, chars) = if ok { (z - 1, 1) } else { (0, 0) };
        }
        last = z;
    }
    emit(start, chars);
    (!view.data.is_empty()).then_some(view)
}

#[inline]
pub fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

const MIN_B64_RUN: usize = 16;
const MAX_B64_RUN: usize = 1 << 20;

static B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decoded run, if it decodes and the result looks like text.
fn decode_b64_text(run: &[u8]) -> Option<Vec<u8>> {
    let mut body = run;
    while let [rest @ .., b'='] = body {
        body = rest;
    }
    if body.len() % 4 == 1 {
        body = &body[..body.len() - 1];
    }
    let out = B64.decode(body).ok()?;
    looks_like_text(&out).then_some(out)
}

pub fn looks_like_text(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    if std::str::from_utf8(b).is_ok() {
        return !b
            .iter()
            .any(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'));
    }
    let printable = b
        .iter()
        .filter(|&&c| matches!(c, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
        .count();
    printable * 10 >= b.len() * 9
}

/// A view of `data` where every base64 run that decodes to text is replaced by that text.
/// Called only when the prefilter saw a keyword's base64 form in `data`: the run holding the
/// key id and the run holding its secret (a Kubernetes Secret's two `data:` values) decode
/// together, so they still pair.
pub fn base64_view(data: &[u8]) -> Option<View> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if !is_b64(data[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < data.len() && is_b64(data[i]) {
            i += 1;
        }
        while i < data.len() && data[i] == b'=' {
            i += 1;
        }
        if i - s >= MIN_B64_RUN && i - s <= MAX_B64_RUN {
            runs.push((s, i));
        }
    }
    splice(data, Decoding::Base64, &runs, |run| {
        decode_b64_text(run).map(|d| vec![(d, run.len(), true)])
    })
}

/// Replaces `runs` of `data` by what `decode` makes of them; `None` if nothing decoded.
/// `decode` returns pieces (bytes, source bytes they stand for, decoded?) covering the run.
fn splice(
    data: &[u8],
    decoding: Decoding,
    runs: &[(usize, usize)],
    decode: impl Fn(&[u8]) -> Option<Vec<(Vec<u8>, usize, bool)>>,
) -> Option<View> {
    let mut view = View::new(decoding, data.len());
    let mut pos = 0;
    let mut any = false;
    for &(s, e) in runs {
        if s < pos {
            continue;
        }
        let Some(pieces) = decode(&data[s..e]) else {
            continue;
        };
        any = true;
        view.push(&data[pos..s], pos, s - pos, false);
        let mut src = s;
        for (bytes, len, decoded) in pieces {
            view.push(&bytes, src, len, decoded);
            src += len;
        }
        pos = e;
    }
    if !any {
        return None;
    }
    view.push(&data[pos..], pos, data.len() - pos, false);
    Some(view)
}

#[inline]
pub fn url_token_byte(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`')
}

const MAX_URL_TOKEN: usize = 8192;

/// The token (run of URL characters, `MAX_URL_TOKEN` at most each way) around `data[h]`.
pub fn url_token(data: &[u8], h: usize) -> (usize, usize) {
    widen(data, h, h, MAX_URL_TOKEN, url_token_byte)
}

/// Whether the URL token around `data[h]` (`url_token`) holds a `%`. A token longer than a
/// few dozen bytes is not widened: the nearest `%` within `MAX_URL_TOKEN` on each side is
/// found by memchr, then whether only URL characters lie between it and `h`. Most long tokens
/// hold none, and then only the two memchr scans are made. (Widening every hit was 16% of
/// `keyhound image`'s time on the bench volume: hits in long runs of URL characters, each
/// scanned up to 8 KiB each way.)
pub fn token_holds_escape(data: &[u8], h: usize) -> bool {
    let h = h.min(data.len());
    // A short token (most, in text) is widened and searched as it is.
    let (s, e) = widen(data, h, h, 64, url_token_byte);
    if (s == 0 || !url_token_byte(data[s - 1])) && (e == data.len() || !url_token_byte(data[e])) {
        return memchr::memchr(b'%', &data[s..e]).is_some();
    }
    let hi = h.saturating_add(MAX_URL_TOKEN).min(data.len());
    if let Some(p) = memchr::memchr(b'%', &data[h..hi]) {
        if data[h..h + p].iter().all(|&b| url_token_byte(b)) {
            return true;
        }
    }
    let lo = h.saturating_sub(MAX_URL_TOKEN);
    if let Some(p) = memchr::memrchr(b'%', &data[lo..h]) {
        if data[lo + p + 1..h].iter().all(|&b| url_token_byte(b)) {
            return true;
        }
    }
    false
}

/// `data[start..end]` widened over the bytes `keep` accepts on each side, `limit` at most each
/// way: the edges of the tokens a range cuts.
pub fn widen(
    data: &[u8],
    start: usize,
    end: usize,
    limit: usize,
    keep: impl Fn(u8) -> bool,
) -> (usize, usize) {
    let mut s = start;
    while s > 0 && start - s < limit && keep(data[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < data.len() && e - end < limit && keep(data[e]) {
        e += 1;
    }
    (s, e)
}

/// A view of `data` where the tokens (runs of URL characters) around `hits` are percent-decoded,
/// escape by escape, so offsets map back exactly. Only tokens that escape a character of the
/// base64 alphabet (`%2F`, `%2B`, `%3D`) are decoded: others cannot hide a key.
pub fn url_view(data: &[u8], hits: &[usize]) -> Option<View> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &h in hits {
        if runs.last().is_some_and(|&(_, e)| h < e) {
            continue;
        }
        runs.push(url_token(data, h));
    }
    splice(data, Decoding::Url, &runs, |tok| {
        // Most tokens around keywords are plain URLs: nothing to decode.
        memchr::memchr(b'%', tok)?;
        let mut pieces = Vec::new();
        let mut plain = Vec::new();
        let mut i = 0;
        let mut any = false;
        while i < tok.len() {
            let esc = (tok[i] == b'%' && i + 2 < tok.len())
                .then(|| hex_pair(tok[i + 1], tok[i + 2]))
                .flatten();
            match esc {
                Some(b) => {
                    if !plain.is_empty() {
                        let n = plain.len();
                        pieces.push((std::mem::take(&mut plain), n, false));
                    }
                    pieces.push((vec![b], 3, true));
                    any |= matches!(b, b'/' | b'+' | b'=');
                    i += 3;
                }
                None => {
                    plain.push(tok[i]);
                    i += 1;
                }
            }
        }
        if !plain.is_empty() {
            let n = plain.len();
            pieces.push((plain, n, false));
        }
        any.then_some(pieces)
    })
}

/// Bytes of a JSON string's text (a token for `json_view`): not its quotes, not a control byte.
#[inline]
pub fn json_string_byte(b: u8) -> bool {
    b >= 0x20 && b != b'"'
}

/// Where `data` holds a JSON escape that can hide part of a key: `\/` (PHP's `json_encode`
/// and others escape every `/`) or `\u` followed by four hex digits.
pub fn json_escapes(data: &[u8], out: &mut Vec<usize>) {
    for p in memchr::memchr_iter(b'\\', data) {
        match data.get(p + 1) {
            Some(b'/') => out.push(p),
            Some(b'u')
                if data
                    .get(p + 2..p + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                out.push(p)
            }
            _ => {}
        }
    }
}

const MAX_JSON_TOKEN: usize = 8192;

/// A view of `data` where the JSON strings around `hits` have their escapes decoded (`\/`,
/// `\uXXXX` with surrogate pairs, `\\`, `\"`, `\n`…), escape by escape, so offsets map back
/// exactly: a key pair written by a JSON encoder that escapes `/` is one pair again. Only
/// strings where an escape stands for a character a key can hold are decoded.
pub fn json_view(data: &[u8], hits: &[usize]) -> Option<View> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &h in hits {
        if runs.last().is_some_and(|&(_, e)| h < e) {
            continue;
        }
        runs.push(widen(data, h, h, MAX_JSON_TOKEN, json_string_byte));
    }
    splice(data, Decoding::Json, &runs, |tok| {
        let mut pieces = Vec::new();
        let mut plain = Vec::new();
        let mut any = false;
        let mut i = 0;
        let flush = |plain: &mut Vec<u8>, pieces: &mut Vec<(Vec<u8>, usize, bool)>| {
            if !plain.is_empty() {
                let n = plain.len();
                pieces.push((std::mem::take(plain), n, false));
            }
        };
        while i < tok.len() {
            let (text, len): (Option<Vec<u8>>, usize) = if tok[i] == b'\\' {
                match tok.get(i + 1) {
                    Some(&c @ (b'/' | b'\\' | b'"')) => (Some(vec![c]), 2),
                    Some(b'n') => (Some(vec![b'\n']), 2),
                    Some(b't') => (Some(vec![b'\t']), 2),
                    Some(b'r') => (Some(vec![b'\r']), 2),
                    Some(b'b') => (Some(vec![8]), 2),
                    Some(b'f') => (Some(vec![12]), 2),
                    Some(b'u') => match json_u(&tok[i..]) {
                        Some((c, n)) => (Some(c.to_string().into_bytes()), n),
                        None => (None, 1),
                    },
                    _ => (None, 1),
                }
            } else {
                (None, 1)
            };
            match text {
                Some(t) => {
                    flush(&mut plain, &mut pieces);
                    any |= t.len() == 1 && (t[0].is_ascii_alphanumeric() || b"/+=".contains(&t[0]));
                    pieces.push((t, len, true));
                }
                None => plain.push(tok[i]),
            }
            i += len;
        }
        flush(&mut plain, &mut pieces);
        any.then_some(pieces)
    })
}

/// The character of a `\uXXXX` escape at the start of `s` (a surrogate pair takes two), and
/// how many bytes it spans.
fn json_u(s: &[u8]) -> Option<(char, usize)> {
    let hex = |b: &[u8]| -> Option<u32> {
        let t = std::str::from_utf8(b.get(..4)?).ok()?;
        u32::from_str_radix(t, 16).ok()
    };
    let hi = hex(s.get(2..)?)?;
    if (0xd800..0xdc00).contains(&hi) {
        if s.get(6..8) == Some(b"\\u") {
            let lo = hex(s.get(8..)?)?;
            if (0xdc00..0xe000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                return Some((char::from_u32(c)?, 12));
            }
        }
        return None;
    }
    Some((char::from_u32(hi)?, 6))
}

fn hex_pair(a: u8, b: u8) -> Option<u8> {
    let h = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(h(a)? << 4 | h(b)?)
}

/// The literal forms `keyword` takes inside base64, at each of the three alignments: only the
/// characters fully determined by the keyword's own bytes.
pub fn base64_forms(keyword: &[u8]) -> Vec<Vec<u8>> {
    let std = &base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = Vec::new();
    for align in 0..3usize {
        let mut buf = vec![0u8; align];
        buf.extend_from_slice(keyword);
        let enc = std.encode(&buf);
        let skip = match align {
            0 => 0,
            1 => 2,
            _ => 3,
        };
        let full = (align + keyword.len()) * 8 / 6;
        if full > skip && full - skip >= 4 {
            out.push(enc.as_bytes()[skip..full].to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `token_holds_escape` answers as widening the hit's token and searching it would: tokens
    /// short and long (past `MAX_URL_TOKEN` each way), '%' near and far, hits at the edges.
    #[test]
    fn escape_in_token_as_widening_finds_it() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..60 {
            let len = rng.usize(1..40_000);
            // Runs of token bytes broken by spaces, rarer each round; '%' rare too.
            let gap = [50, 3_000, 40_000][round % 3];
            let pct = [20, 500, 20_000][round / 3 % 3];
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.usize(..gap) == 0 {
                        b' '
                    } else if rng.usize(..pct) == 0 {
                        b'%'
                    } else {
                        b'a' + rng.u8(..26)
                    }
                })
                .collect();
            for _ in 0..300 {
                let h = rng.usize(..len);
                let (s, e) = url_token(&data, h);
                let want = memchr::memchr(b'%', &data[s..e]).is_some();
                assert_eq!(token_holds_escape(&data, h), want, "round {round}, hit {h}");
            }
        }
    }

    #[test]
    fn base64_forms_are_found_in_encodings() {
        let std = &base64::engine::general_purpose::STANDARD;
        for prefix in ["", "x", "xy", "xyz"] {
            let text = format!("{prefix}aws_secret_access_key=1");
            let enc = std.encode(text.as_bytes());
            let forms = base64_forms(b"secret");
            assert!(
                forms
                    .iter()
                    .any(|f| enc.as_bytes().windows(f.len()).any(|w| w == f.as_slice())),
                "{enc}"
            );
        }
    }

    #[test]
    fn base64_view_maps_back() {
        let std = &base64::engine::general_purpose::STANDARD;
        let enc = std.encode(b"hello secret world, long enough");
        let data = format!("key: {enc}\nnext");
        let v = base64_view(data.as_bytes()).unwrap();
        let text = String::from_utf8(v.data.clone()).unwrap();
        assert_eq!(text, "key: hello secret world, long enough\nnext");
        let at = text.find("secret").unwrap();
        assert!(v.touches_decoded(at, at + 6));
        assert!(!v.touches_decoded(0, 4));
        let m = v.map(at);
        assert!(m >= 5 && m < 5 + enc.len());
        assert_eq!(
            v.map(text.find("next").unwrap()),
            data.find("next").unwrap()
        );
    }

    /// JSON escapes decoded escape by escape: offsets map back exactly, surrogate pairs make
    /// one character, and strings whose escapes cannot hide a key are left alone.
    #[test]
    fn json_view_maps_escapes_exactly() {
        let data = br#"{"k": "ab\/cd\u002Bef", "n": "x\ny", "e": "\ud83d\ude00\/"}"#;
        let mut hits = Vec::new();
        json_escapes(data, &mut hits);
        assert_eq!(hits.len(), 5, "{hits:?}");
        let v = json_view(data, &hits).unwrap();
        let text = String::from_utf8(v.data.clone()).unwrap();
        assert_eq!(
            text,
            "{\"k\": \"ab/cd+ef\", \"n\": \"x\\ny\", \"e\": \"\u{1f600}/\"}"
        );
        let at = text.find("cd+").unwrap();
        assert_eq!(&data[v.map(at)..v.map(at) + 2], b"cd");
        let plus = text.find('+').unwrap();
        assert_eq!(&data[v.map(plus)..v.map_end(plus + 1)], b"\\u002B");
        let nothing = br#"{"n": "line\none"}"#;
        let mut h = Vec::new();
        json_escapes(nothing, &mut h);
        assert!(h.is_empty());
        assert!(
            json_view(nothing, &[7]).is_none(),
            "a newline escape hides no key"
        );
    }

    #[test]
    fn url_view_maps_escapes_exactly() {
        let data = b"GET /a?k=ab%2Fcd%2Bef HTTP/1.1";
        let hit = 11;
        let v = url_view(data, &[hit]).unwrap();
        assert_eq!(&v.data[..], b"GET /a?k=ab/cd+ef HTTP/1.1");
        assert_eq!(v.map(12), 14); // 'c' after the first escape
        assert!(v.touches_decoded(9, 17));
        assert!(!v.touches_decoded(0, 3));
        assert_eq!(v.map_end(17), 21);
    }

    #[test]
    fn utf16_runs_both_orders() {
        let text = "Set-Credential -AccessKey abc";
        let mut le: Vec<u8> = vec![0xff, 0xfe];
        le.extend(text.encode_utf16().flat_map(|c| c.to_le_bytes()));
        let v = utf16_view(&le, utf16_order(&le)).unwrap();
        assert_eq!(v.decoding, Decoding::Utf16Le);
        assert_eq!(&v.data[..text.len()], text.as_bytes());
        assert_eq!(v.map(4), 2 + 8);
        let mut be: Vec<u8> = vec![0xfe, 0xff];
        be.extend(text.encode_utf16().flat_map(|c| c.to_be_bytes()));
        be.extend([0, b'\n']);
        let v = utf16_view(&be, utf16_order(&be)).unwrap();
        assert_eq!(v.decoding, Decoding::Utf16Be);
        assert!(v.data.starts_with(text.as_bytes()), "{:?}", v.data);
        // Big-endian without a byte order mark, ending at the input's end: the last character
        // has no NUL after it, and is kept in the second reading of the run.
        let be: Vec<u8> = text.encode_utf16().flat_map(|c| c.to_be_bytes()).collect();
        let v = utf16_view(&be, utf16_order(&be)).unwrap();
        let want = format!("{}\n{text}\n", &text[..text.len() - 1]);
        assert_eq!(String::from_utf8_lossy(&v.data), want);
        assert_eq!(v.map_end(v.data.len() - 1), be.len());
    }
}
