//! One part of a scan split N ways: `--shard K/N` (1-based, as people count), or the 0-based
//! index a fan-out engine hands each copy (`--shard-index I` with `--shards N`;
//! `JOB_COMPLETION_INDEX` of a Kubernetes Indexed Job or `AWS_BATCH_JOB_ARRAY_INDEX` of an AWS
//! Batch array job, with `KEYHOUND_SHARDS`). Work is split by a stable hash of its name (a
//! path, an object id, an S3 key), the same on every machine and every run, so the shards
//! together cover everything once and `keyhound merge` can check that they do.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `K/N`, 1-based.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: expected K/N (1-based, e.g. 3/4)"))?;
        let (k, n): (u32, u32) = (
            k.trim()
                .parse()
                .map_err(|_| format!("{s}: K is not a number"))?,
            n.trim()
                .parse()
                .map_err(|_| format!("{s}: N is not a number"))?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(format!(
                "{s}: K/N counts from 1 to N (a 0-based index: --shard-index I --shards N)"
            ));
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }

    /// From a 0-based index and a count.
    pub fn indexed(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!(
                "shard index {index} of {count}: the index counts from 0 to {}",
                count.saturating_sub(1)
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard a fan-out engine asks for through the environment, if any:
    /// `JOB_COMPLETION_INDEX` (Kubernetes) or `AWS_BATCH_JOB_ARRAY_INDEX` (AWS Batch), 0-based,
    /// with `KEYHOUND_SHARDS`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        let index = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"]
            .iter()
            .find_map(|v| get(v).map(|i| (v, i)));
        let Some((var, index)) = index else {
            return Ok(None);
        };
        let Some(count) = get("KEYHOUND_SHARDS") else {
            // An indexed job that is not sharding keyhound: not ours to split.
            return Ok(None);
        };
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| format!("{var}={index}: not a number"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("KEYHOUND_SHARDS={count}: not a number"))?;
        Shard::indexed(index, count).map(Some)
    }

    /// Is the work named `name` this shard's?
    pub fn owns(&self, name: &[u8]) -> bool {
        self.count <= 1 || bucket(name, self.count) == self.index
    }

    /// Is the `i`th of a row of equal pieces this shard's (an image's raw pass, by 32 MiB
    /// unit)? Dealt in turn, so any stretch of the disk, and the written part of a volume
    /// with it, is shared to within one piece. A hash left it to chance: the bench volume's 64
    /// units fell 20/13/17/14, and its first shard read 557 MB to the last one's 306.
    pub fn owns_nth(&self, i: u64) -> bool {
        self.count <= 1 || i % u64::from(self.count) == u64::from(self.index)
    }

    /// Is piece `i` of a big file this shard's? A file longer than `PIECE` is not left to
    /// one shard: its pieces are dealt in turn, from the shard its path falls in (`first`,
    /// which owns piece 0 and counts the file). Every shard reads such a file through, for
    /// the line numbers, and scans only its pieces.
    pub fn owns_piece(&self, first: u32, i: u64) -> bool {
        self.count <= 1 || (u64::from(first) + i) % u64::from(self.count) == u64::from(self.index)
    }

    /// `K/N`, 1-based.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index + 1, self.count)
    }
}

/// The pieces a big file is split into among shards (`Shard::owns_piece`): 32 MiB, as an
/// image's raw units. On the bench volume one 76 MB file of 664 MB of files made one part
/// read 455 MB to another's 340.
pub const PIECE: u64 = 32 << 20;

/// A file name with `{shard}` in it, for this shard (its 1-based number): each part's own file,
/// for engines that give no shell to expand an index in (AWS Batch).
pub fn fill(path: &std::path::Path, shard: Option<Shard>) -> std::path::PathBuf {
    match shard {
        Some(s) => path
            .to_string_lossy()
            .replace("{shard}", &(s.index + 1).to_string())
            .into(),
        None => path.to_path_buf(),
    }
}

/// Which of `count` shards `name` falls in: the first 8 bytes of its SHA-256, so that the split
/// is the same on every platform and in every version.
pub fn bucket(name: &[u8], count: u32) -> u32 {
    let h = Sha256::digest(name);
    (u64::from_be_bytes(h[..8].try_into().unwrap()) % u64::from(count.max(1))) as u32
}

/// Whole items of known sizes split among `count` shards so that each gets about as many bytes:
/// largest first, each to the shard with the least so far (ties: the lower index; equal sizes in
/// name order). The same names and sizes give the same split on every machine. Returns each
/// item's shard, in the order given.
pub fn balance(items: &[(&str, u64)], count: u32) -> Vec<u32> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then(items[a].0.cmp(items[b].0)));
    let mut load = vec![0u64; count as usize];
    let mut out = vec![0u32; items.len()];
    for i in order {
        let (k, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(k, l)| (*l, k))
            .unwrap();
        load[k] += items[i].1;
        out[i] = k as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One big repository and many small ones: the loads end within one small one of each
    /// other; the input's order does not matter.
    #[test]
    fn balance_by_size() {
        let mut items: Vec<(String, u64)> = vec![("big".into(), 900)];
        items.extend((0..30).map(|i| (format!("small{i:02}"), 60 + i)));
        let view: Vec<(&str, u64)> = items.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let got = balance(&view, 3);
        let mut load = [0u64; 3];
        for (i, k) in got.iter().enumerate() {
            load[*k as usize] += view[i].1;
        }
        assert_eq!(got[0], 0, "the biggest goes first, to shard 1");
        let (max, min) = (load.iter().max().unwrap(), load.iter().min().unwrap());
        assert!(max - min <= 100, "{load:?}");
        let mut rev = view.clone();
        rev.reverse();
        let mut back = balance(&rev, 3);
        back.reverse();
        assert_eq!(back, got);
    }

    #[test]
    fn forms_and_environment() {
        assert_eq!(Shard::parse("3/4"), Ok(Shard { index: 2, count: 4 }));
        assert!(Shard::parse("0/4").is_err());
        assert!(Shard::parse("5/4").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(Shard::indexed(0, 4), Ok(Shard { index: 0, count: 4 }));
        assert!(Shard::indexed(4, 4).is_err());
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2"), ("KEYHOUND_SHARDS", "4")]);
        assert_eq!(Shard::from_env(k8s).unwrap().unwrap().label(), "3/4");
        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("KEYHOUND_SHARDS", "2")]);
        assert_eq!(Shard::from_env(batch).unwrap().unwrap().label(), "1/2");
        assert_eq!(
            Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "2")])),
            Ok(None)
        );
        assert!(Shard::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "9"),
            ("KEYHOUND_SHARDS", "4")
        ]))
        .is_err());
    }

    /// Every name falls in exactly one shard, and the shards are about even.
    #[test]
    fn each_name_in_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::indexed(i, 4).unwrap()).collect();
        let mut sizes = [0u32; 4];
        for i in 0..4000 {
            let name = format!("src/file{i}.rs");
            let owners: Vec<usize> = (0..4)
                .filter(|&k| shards[k].owns(name.as_bytes()))
                .collect();
            assert_eq!(owners.len(), 1);
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| (850..1150).contains(&n)), "{sizes:?}");
    }

    /// Pieces dealt in turn: each in one shard, any run of them shared to within one.
    #[test]
    fn pieces_dealt_in_turn() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::indexed(i, 3).unwrap()).collect();
        for (lo, hi) in [(0u64, 64u64), (5, 12), (40, 41)] {
            let mut got = [0u64; 3];
            for i in lo..hi {
                let owners: Vec<usize> = (0..3).filter(|&k| shards[k].owns_nth(i)).collect();
                assert_eq!(owners.len(), 1, "piece {i}");
                got[owners[0]] += 1;
            }
            assert!(
                got.iter().max().unwrap() - got.iter().min().unwrap() <= 1,
                "{got:?}"
            );
        }
        assert!(Shard::indexed(0, 1).unwrap().owns_nth(7));
    }
}
