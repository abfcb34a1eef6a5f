//! Facts about a credential that need no network: the AWS account id encoded in new-format key
//! ids, and whether a value is a documentation example or a placeholder.

/// The AWS documentation keys (IAM user guide, SDK docs). Every AWS key id or secret ending in
/// EXAMPLE / EXAMPLEKEY is treated the same way.
const DOC_VALUES: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "AKIAI44QH8DHBEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
];

/// The account id of a new-format access key id (`AKIA`/`ASIA`… + 16 base32 characters):
/// the 16 characters decode to 10 bytes, the first 6 are a big-endian 48-bit number whose top
/// bit marks the new format, and the account is bits 46..7 of it.
pub fn account_id(key_id: &str) -> Option<String> {
    let b = key_id.as_bytes();
    if b.len() != 20 {
        return None;
    }
    let mut z: u64 = 0;
    // 48 bits = the first 9.6 characters: take 10 characters (50 bits) and drop the last 2.
    for &c in &b[4..14] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        z = (z << 5) | v as u64;
    }
    z >>= 2;
    if z & (1 << 47) == 0 {
        return None;
    }
    Some(format!("{:012}", (z & 0x7FFF_FFFF_FF80) >> 7))
}

/// A credential is an example when any of its values is.
pub fn is_example_credential<'a>(mut values: impl Iterator<Item = &'a str>) -> bool {
    values.any(is_example)
}

/// A documentation example or an obvious placeholder.
pub fn is_example(v: &str) -> bool {
    // AWS's documentation keys end in EXAMPLE (`AKIAIOSFODNN7EXAMPLE`) or carry it inside
    // (`AKIAEXAMPLEPBUMBC3GA`), and their secrets in EXAMPLEKEY or start with it: seven given
    // capitals inside a random key are a chance of one in 10^10 at any place.
    if DOC_VALUES.contains(&v) || v.contains("EXAMPLE") {
        return true;
    }
    // Look at what follows a vendor prefix (`AKIA`, `ghp_`, `sk_live_`…).
    let body = v
        .rfind(['_', '-'])
        .filter(|&i| i < 16 && i + 1 < v.len())
        .map_or(v, |i| &v[i + 1..]);
    let body = match body.as_bytes() {
        [b'A', b'K' | b'S' | b'B' | b'C', b'I' | b'C', b'A', ..] if body.len() == 20 => &body[4..],
        _ => body,
    };
    placeholder(body)
}

/// Few distinct characters, a long run of one character, or a long alphabetic/numeric sequence.
/// Only for token-sized values: key blobs (PEM, OpenSSH) have long runs of `A` by nature.
fn placeholder(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || b.len() > 100 {
        return false;
    }
    let mut seen = [false; 256];
    for &c in b {
        seen[c as usize] = true;
    }
    if seen.iter().filter(|&&x| x).count() <= 3 {
        return true;
    }
    let (mut run, mut asc) = (1, 1);
    for w in b.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        asc = if w[1] == w[0].wrapping_add(1) {
            asc + 1
        } else {
            1
        };
        if run >= 8 || asc >= 10 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_from_key_id() {
        // The check value from the AWS key-id format write-ups.
        assert_eq!(
            account_id("ASIAY34FZKBOKMUTVV7A").as_deref(), // keyhound:allow
            Some("609629065308")
        );
        // Old-format ids (top bit clear) carry no account.
        assert_eq!(account_id("AKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(account_id("AKIA0000"), None);
    }

    #[test]
    fn examples_and_placeholders() {
        for v in [
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AKIAXXXXXXXXXXXXXXXX",
            "AKIAABCDEFGHIJKLMNOP",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
            "glpat-xxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(is_example(v), "{v}");
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let id: String = (0..16)
                .map(|_| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rng.usize(..32)] as char)
                .collect();
            assert!(!is_example(&format!("AKIA{id}")), "{id}");
        }
    }
}
