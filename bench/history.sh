#!/usr/bin/env bash
# Git history speed: `keyhound git` against `git cat-file --batch-all-objects --batch` on the
# same repository, in one invocation.
#
#   bench/history.sh REPO
#   bench/history.sh --master SOURCE   (a bare clone of SOURCE's master, made once in
#                                       bench/out/history-master.git: git/git's is the reference,
#                                       `--master https://github.com/git/git` or a local mirror)
#
# REPO should be large and real: git/git (~260k blobs, 8 GB uncompressed) is the reference case.
# Each command runs once warm (after a warm-up read of the packs); prints both times, the ratios
# (to the literal `--batch` run, and to the faster `--unordered` one) and keyhound's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --master ]; then
  src=${2:?usage: bench/history.sh --master SOURCE}
  repo=bench/out/history-master.git
  if [ ! -f "$repo/.complete" ]; then
    rm -rf "$repo"
    git clone -q --bare --single-branch --branch master "$src" "$repo"
    touch "$repo/.complete"
  fi
else
  repo=${1:?usage: bench/history.sh REPO | --master SOURCE}
fi
[ -x /usr/bin/time ] || { echo "bench/history.sh needs GNU time (apt-get install time)" >&2; exit 2; }

# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh
git_dir=$(git -C "$repo" rev-parse --git-dir)
cat "$git_dir"/objects/pack/*.pack >/dev/null 2>&1 || true   # warm the page cache

secs() { # wall seconds of "$@" (exit status ignored)
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

t_cat=$(secs git -C "$repo" cat-file --batch-all-objects --batch)
t_unord=$(secs git -C "$repo" cat-file --batch-all-objects --batch --unordered)
out=$( { /usr/bin/time -f 'RSS %M' "$kh" git -q --format jsonl "$repo" | tail -1; } 2>&1 || true)
rss_kb=$(echo "$out" | sed -n 's/^RSS //p')
summary=$(echo "$out" | grep '"type":"summary"')
t_kh=$(echo "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["duration_ms"] / 1000)')
read -r blobs commits gb < <(echo "$summary" | python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["files"], s["commits"], round(s["bytes"] / 1e9, 2))')

printf 'repo               %s: %s commits, %s unique blobs, %s GB\n' "$repo" "$commits" "$blobs" "$gb"
printf 'cat-file --batch   %6.1f s   git cat-file --batch-all-objects --batch\n' "$t_cat"
printf '  --unordered      %6.1f s   git cat-file --batch-all-objects --batch --unordered\n' "$t_unord"
printf 'keyhound git       %6.1f s   (%.0f MB/s of blobs)\n' "$t_kh" "$(echo "$gb * 1000 / $t_kh" | bc -l)"
printf 'ratio              %.2f x cat-file --batch, %.2f x --unordered (target <= 2)\n' \
  "$(echo "$t_kh / $t_cat" | bc -l)" "$(echo "$t_kh / $t_unord" | bc -l)"
printf 'peak RSS           %.0f MB (target < 600)\n' "$(echo "$rss_kb / 1024" | bc -l)"
