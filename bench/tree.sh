#!/usr/bin/env bash
# Working-tree scan speed: keyhound against ripgrep on the same warm tree, in one invocation.
#
#   bench/tree.sh [CORPUS_DIR]      (default bench/out/corpus; built on first use)
#
# The corpus is >= 1 GiB of real source text copied from this machine (the cargo registry's
# sources, the Python standard library and site-packages, /usr/include; repeated if that is not
# enough) with 200 key pairs planted by a seeded generator. Both tools get one warm-up run, then
# each is timed 3 times; the best times are compared. Prints both times, throughput, the ratio
# and keyhound's peak RSS. Needs: cargo, python3, rg, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench/out/corpus}
min_bytes=$((1024 * 1024 * 1024))
planted=200

command -v rg >/dev/null || { echo "bench/tree.sh needs ripgrep (apt-get install ripgrep)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/tree.sh needs GNU time (apt-get install time)" >&2; exit 2; }

if [ ! -f "$corpus/.complete" ]; then
  echo "building corpus in $corpus ..." >&2
  rm -rf "$corpus"
  mkdir -p "$corpus"
  sources=()
  for s in "$HOME/.cargo/registry/src" /root/.pyenv/versions/*/lib/python3* /usr/lib/python3 /usr/include; do
    [ -d "$s" ] && sources+=("$s")
  done
  i=0
  while [ "$(du -sb "$corpus" | cut -f1)" -lt "$min_bytes" ]; do
    for s in "${sources[@]}"; do
      dest="$corpus/copy$i/$(echo "$s" | tr / _)"
      mkdir -p "$dest"
      cp -r "$s/." "$dest/" 2>/dev/null || true
    done
    i=$((i + 1))
  done
  python3 - "$corpus" "$planted" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
dirs = [d for d, _, _ in os.walk(root)]
rng.shuffle(dirs)
for i in range(n):
    k = "AKIA" + "".join(rng.choice(B32) for _ in range(16))
    while True:
        s = "".join(rng.choice(B64) for _ in range(40))
        if any(c.isupper() for c in s) and any(c.islower() for c in s):
            break
    with open(os.path.join(dirs[i % len(dirs)], f"planted_{i}.py"), "w") as f:
        f.write(f"import boto3\nclient = boto3.client('s3',\n    aws_access_key_id='{k}',\n"
                f"    aws_secret_access_key='{s}')\n")
EOF
  touch "$corpus/.complete"
fi

# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh
bytes=$(du -sb "$corpus" | cut -f1)
files=$(find "$corpus" -type f | wc -l)

best() { # best wall time of 3 runs of "$@", in seconds
  local b=""
  for _ in 1 2 3; do
    local s e t
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}

# Warm the page cache with both tools, and check keyhound finds every planted pair.
rg -uuu --count-matches 'A(KIA|SIA)' "$corpus" >/dev/null || true
found=$("$kh" scan --no-ignore --format jsonl -q "$corpus" | grep -c '"rule":"aws-access-key"' || true)

t_rg=$(best rg -uuu --count-matches 'A(KIA|SIA)' "$corpus")
t_kh=$(best "$kh" scan --no-ignore --format jsonl -q "$corpus")
rss_kb=$( { /usr/bin/time -f '%M' "$kh" scan --no-ignore --format jsonl -q "$corpus" >/dev/null; } 2>&1 | tail -1 || true)

mib=$(echo "$bytes / 1048576" | bc -l)
printf 'corpus      %s: %d files, %.0f MiB, %d key pairs planted (%d found)\n' "$corpus" "$files" "$mib" "$planted" "$found"
printf 'ripgrep     %.3f s  %7.0f MiB/s   rg -uuu --count-matches %s\n' "$t_rg" "$(echo "$mib / $t_rg" | bc -l)" "'A(KIA|SIA)'"
printf 'keyhound    %.3f s  %7.0f MiB/s   keyhound scan --no-ignore\n' "$t_kh" "$(echo "$mib / $t_kh" | bc -l)"
printf 'ratio       %.2f x ripgrep (target <= 1.0)\n' "$(echo "$t_kh / $t_rg" | bc -l)"
printf 'peak RSS    %.0f MB (target < 200)\n' "$(echo "$rss_kb / 1024" | bc -l)"
[ "$found" -ge "$planted" ] || { echo "keyhound found $found of $planted planted pairs" >&2; exit 1; }
