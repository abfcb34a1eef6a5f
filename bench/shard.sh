#!/usr/bin/env bash
# What sharding costs: a scan run whole, then as 4 shards one after another (as 4 machines
# would run them), and their merge, in one invocation; CPU time (user + system) summed over the
# shards against the whole run's, and the smallest and biggest part's bytes (how even the
# split is). Ideally 1.0: every shard reads only its share; what a shard repeats (walking the
# directory tree, listing, walking git history) shows above it.
#
#   bench/shard.sh [TREE] [IMAGE] [REPO]
#
# TREE defaults to bench/tree.sh's corpus, IMAGE to bench/image.sh's 2 GiB ext4 volume, REPO to
# this repository (pass a big one: git/git). Each is warmed first. Targets (issue #18): <= 1.15
# for the tree and the image. SKIP_IMAGE=1 or SKIP_GIT=1 leaves that part out. Needs GNU time
# and bc.
#
# For the tree it also prints the floor any split of files by a hash of their path has: every
# shard must list every directory to learn which files are its own, so 4 shards pay at least
# 3 more listings of the tree than one run. A listing is taken as `find TREE`'s CPU (the
# kernel's getdents and nothing else; the median of 3), and the floor is
# (whole + 3 x find) / whole.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-bench/out/corpus}
img=${2:-bench/out/images/ext4.img}
repo=${3:-.}
[ -x /usr/bin/time ] || { echo "bench/shard.sh needs GNU time" >&2; exit 2; }
# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cpu() { # user+system seconds of "$@"
  /usr/bin/time -o "$out/time" -f '%U %S' "$@" >/dev/null 2>&1 || true
  tail -1 "$out/time" | awk '{print $1 + $2}'
}
measure() { # NAME ARGS...: whole, 4 shards, merge
  local name=$1; shift
  "$kh" "$@" -q --format json -o "$out/warm.json" >/dev/null 2>&1 || true
  local whole shards=0 t merge
  whole=$(cpu "$kh" "$@" -q --format json -o "$out/whole.json")
  last_whole=$whole
  rm -rf "$out/parts" && mkdir -p "$out/parts"
  for k in 1 2 3 4; do
    t=$(cpu "$kh" "$@" -q --shard "$k/4" --format json -o "$out/parts/$k.json")
    shards=$(echo "$shards + $t" | bc -l)
  done
  merge=$(cpu "$kh" merge -q --format json -o "$out/merged.json" "$out/parts")
  local same
  same=$(python3 - "$out/whole.json" "$out/merged.json" <<'EOF'
import json, sys
def key(p):
    v = json.load(open(p))
    return sorted((c["fingerprint"], pl["path"], str(pl.get("inner")), pl["offset"])
                  for c in v["credentials"] for pl in c["places"])
same = key(sys.argv[1]) == key(sys.argv[2])
b = json.load(open(sys.argv[2]))["summary"]["shards"]
print(("same" if same else "DIFFERENT") + "   parts %.0f to %.0f MB" % (b["bytes_min"] / 1e6, b["bytes_max"] / 1e6))
EOF
)
  printf '%-6s whole %6.2f s CPU   4 shards %6.2f s CPU (%.2fx)   merge %.2f s   reports: %s\n' \
    "$name" "$whole" "$shards" "$(echo "$shards / $whole" | bc -l)" "$merge" "$same"
}
if [ -d "$tree" ]; then
  measure tree scan --no-ignore "$tree"
  listing=$(for _ in 1 2 3; do cpu find "$tree"; done | sort -g | sed -n 2p) # the median of 3
  printf '       floor of the split by path: find lists the tree in %.2f s CPU, so 4 shards cost at least %.2fx\n' \
    "$listing" "$(echo "($last_whole + 3 * $listing) / $last_whole" | bc -l)"
fi
[ -n "${SKIP_IMAGE:-}" ] || [ ! -f "$img" ] || measure image image "$img"
[ -n "${SKIP_GIT:-}" ] || measure git git "$repo"
