#!/usr/bin/env bash
# Snapshot speed: `keyhound snapshot` reading a disk image served over the EBS direct APIs on
# loopback (bench/ebs-server, a small Rust server: AWS's 512 KiB blocks, checksums, only written
# blocks listed),
# against `keyhound image` of the same raw file, in one invocation.
#
#   bench/snapshot.sh [IMAGE] [RUNS] [REQUESTS_PER_SECOND]
#
# IMAGE defaults to bench/image.sh's 2 GiB ext4 volume (bench/out/images/ext4.img, built on
# first use by bench/volume.sh): a volume walked file by file, and the raw pass. Each time is the
# best of RUNS (default 3), image's and snapshot's taken in turn. REQUESTS_PER_SECOND is
# keyhound's GetSnapshotBlock rate (default 1000, AWS's quota: the floor it sets is printed);
# pass a high one to measure keyhound rather than the quota. Prints both times, the ratio
# (target <= 1.5), peak RSS of each (snapshot target < 512 MB), blocks a second, the blocks
# the server served per run against the written blocks (each once), the pairs found by each, and
# the server's own CPU a run (it shares the cores keyhound is measured on).
# KEYHOUND=PATH measures that binary instead of the release build (bench/keyhound.sh).
# EBS_BENCH_LATENCY_MS=N makes the server wait N ms before each block it sends, as a request
# takes time on AWS and none on loopback (the walk's read-ahead shows there).
# Needs cargo, GNU time, bc, curl, and python3 and mkfs.ext4 for the default image.
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-}
runs=${2:-3}
rate=${3:-1000}
if [ -z "$img" ]; then
  # shellcheck source=bench/volume.sh
  source bench/volume.sh
  make_ext4_volume bench/out/images
  img=bench/out/images/ext4.img
fi
# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh
cargo build --release --quiet --manifest-path bench/ebs-server/Cargo.toml --target-dir target/bench

log=$(mktemp)
target/bench/release/ebs-bench-server "$img" 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q ready "$log" && break; sleep 0.1; done
written=$(awk '/ready/ {print $2}' "$log")
port=$(awk '/ready/ {print $NF}' "$log")
snap=snap-0bench000000000000
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_REGION=us-east-1
snapshot=("$kh" snapshot -q --format jsonl --ebs-requests-per-second "$rate" "$snap")
image=("$kh" image -q --format jsonl "$img")

secs() {
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
best() { printf '%s\n' "$@" | sort -g | head -1; }
served() { curl -s "$AWS_ENDPOINT_URL/stats" | tr -dc 0-9; }

cat "$img" >/dev/null
t_img=() t_snap=()
before=$(served)
# The server's CPU (user + system, clock ticks): it runs on the cores keyhound is measured on,
# where on AWS it would not.
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat" 2>/dev/null || echo 0; }
ticks_before=$(server_ticks)
for _ in $(seq "$runs"); do
  t_img+=("$(secs "${image[@]}")")
  t_snap+=("$(secs "${snapshot[@]}")")
done
per_run=$(( ($(served) - before) / runs ))
server_cpu=$(echo "($(server_ticks) - $ticks_before) / $runs / $(getconf CLK_TCK)" | bc -l)
t_img=$(best "${t_img[@]}")
t_snap=$(best "${t_snap[@]}")
rss() { { /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -1 || true; }
rss_img=$(rss "${image[@]}")
rss_snap=$(rss "${snapshot[@]}")
found_img=$("${image[@]}" | grep -c '"rule":"aws-access-key"' || true)
found_snap=$("${snapshot[@]}" | grep -c '"rule":"aws-access-key"' || true)
printf 'image    %6.2f s  peak RSS %4.0f MB  %d pairs\n' "$t_img" "$(echo "$rss_img / 1024" | bc -l)" "$found_img"
printf 'snapshot %6.2f s  peak RSS %4.0f MB  %d pairs  %d written blocks, %d served a run, %.0f blocks/s (rate %s/s: floor %.2f s)\n' \
  "$t_snap" "$(echo "$rss_snap / 1024" | bc -l)" "$found_snap" "$written" "$per_run" \
  "$(echo "$written / $t_snap" | bc -l)" "$rate" "$(echo "$written / $rate" | bc -l)"
printf 'server   %6.2f core-seconds a run, on the same cores\n' "$server_cpu"
printf 'snapshot / image = %.2f (target <= 1.5)\n' "$(echo "$t_snap / $t_img" | bc -l)"
