//! Rule examples are templates: `{{CLASS:N}}` expands to N characters of CLASS drawn from a
//! seeded generator, so the project never carries a real-looking key while every rule is still
//! tested on fresh, realistic values. `{{crc62:N}}` is N alphanumerics and their checksum
//! (`Checksum::Crc32Base62`: GitHub's and npm's token format).

/// The characters of a template class.
pub fn class(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "lower" => b"abcdefghijklmnopqrstuvwxyz",
        "digit" => b"0123456789",
        "alnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "hex" => b"0123456789abcdef",
        "hexu" => b"0123456789ABCDEF",
        "lalnum" => b"abcdefghijklmnopqrstuvwxyz0123456789",
        "ualnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "b58" => b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
        "b32" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "b64" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "b64url" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        _ => return None,
    })
}

/// Expands every `{{CLASS:N}}` in `template`.
pub fn expand(template: &str, rng: &mut fastrand::Rng) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {template:?}"))?;
        let spec = &after[..j];
        let (name, n) = spec
            .split_once(':')
            .ok_or_else(|| format!("bad template {{{{{spec}}}}}"))?;
        let checksum = (name == "crc62").then_some(super::rules::Checksum::Crc32Base62);
        let chars = match checksum {
            Some(_) => class("alnum"),
            None => class(name),
        }
        .ok_or_else(|| format!("unknown class {name:?}"))?;
        let n: usize = n
            .parse()
            .map_err(|_| format!("bad length in {{{{{spec}}}}}"))?;
        let body: String = (0..n)
            .map(|_| chars[rng.usize(..chars.len())] as char)
            .collect();
        out.push_str(&body);
        if let Some(c) = checksum {
            out.push_str(&c.of(body.as_bytes()));
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_deterministically() {
        let a = expand(
            "AKIA{{b32:16}}-{{digit:3}}",
            &mut fastrand::Rng::with_seed(1),
        )
        .unwrap();
        let b = expand(
            "AKIA{{b32:16}}-{{digit:3}}",
            &mut fastrand::Rng::with_seed(1),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a[4..20].bytes().all(|c| class("b32").unwrap().contains(&c)));
        assert!(expand("{{nope:3}}", &mut fastrand::Rng::new()).is_err());
        assert!(expand("{{b32:3", &mut fastrand::Rng::new()).is_err());
    }
}
