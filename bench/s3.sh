#!/usr/bin/env bash
# S3 speed: `keyhound s3` reading the bench tree corpus from a bucket of a moto server on
# loopback, against `keyhound scan` of the same files on disk, in one invocation.
#
#   bench/s3.sh [CORPUS_DIR] [RUNS] [MAX_MIB]
#
# CORPUS_DIR defaults to bench/tree.sh's corpus (bench/out/corpus, built on first use by
# running bench/tree.sh). MAX_MIB (default 0: all of it) takes only the first files of the
# corpus, in path order, up to that many MiB: moto keeps every object in its own process, and
# uploading 100,000 objects takes minutes. The files taken are copied to bench/out/s3-tree so
# that both commands read exactly the same files. Each time is the best of RUNS (default 3),
# taken in turn. Prints both times, the ratio, peak RSS of each, objects a second and the
# pairs found by each (they must be equal).
#
# moto is the emulator the tests use; it serves S3 from one Python process, so on a small
# machine the server, not keyhound, sets the pace of `keyhound s3`: the line "moto alone"
# times the same GETs made by curl-like clients (boto3, 16 threads) for the floor it sets.
# Needs the .venv of scripts/test (moto, boto3), GNU time and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench/out/corpus}
runs=${2:-3}
max_mib=${3:-0}
venv=$PWD/.venv/bin
[ -x "$venv/moto_server" ] || { echo "bench/s3.sh needs .venv (run scripts/test once)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/s3.sh needs GNU time" >&2; exit 2; }
if [ ! -f "$corpus/.complete" ]; then
  echo "no corpus at $corpus: run bench/tree.sh first (it builds it)" >&2
  exit 2
fi
tree=bench/out/s3-tree
if [ "$max_mib" -gt 0 ]; then
  if [ "$(cat "$tree/.from" 2>/dev/null)" != "$corpus $max_mib" ]; then
    rm -rf "$tree" && mkdir -p "$tree"
    "$venv/python" - "$corpus" "$tree" "$max_mib" <<'EOF'
import os, shutil, sys
src, dst, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f != ".complete")
# Every planted pair is kept, so that both commands have all of them to find.
planted = [f for f in files if os.path.basename(f).startswith("planted_")]
total = 0
for f in planted + files:
    rel = os.path.relpath(f, src)
    out = os.path.join(dst, rel)
    if os.path.exists(out) or not os.path.isfile(f) or os.path.islink(f):
        continue
    size = os.path.getsize(f)
    if total + size > cap and not os.path.basename(f).startswith("planted_"):
        continue
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shutil.copyfile(f, out)
    total += size
EOF
    echo "$corpus $max_mib" >"$tree/.from"
  fi
else
  tree=$corpus
fi
# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh

port=$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_REGION=us-east-1
for _ in $(seq 600); do curl -s "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.1; done

# Upload (16 threads), then time the same GETs made by boto3 alone: the server's floor.
read -r objects bytes t_floor < <("$venv/python" - "$tree" <<'EOF'
import os, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
root = sys.argv[1]
s3 = boto3.client("s3", config=boto3.session.Config(max_pool_connections=32))
s3.create_bucket(Bucket="bench")
files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not f.startswith(".")]
files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
def put(f):
    with open(f, "rb") as h:
        s3.put_object(Bucket="bench", Key=os.path.relpath(f, root), Body=h.read())
    return os.path.getsize(f)
with ThreadPoolExecutor(16) as ex:
    total = sum(ex.map(put, files))
def get(f):
    return len(s3.get_object(Bucket="bench", Key=os.path.relpath(f, root))["Body"].read())
start = time.time()
with ThreadPoolExecutor(16) as ex:
    got = sum(ex.map(get, files))
print(len(files), total, time.time() - start)
EOF
)

scan=("$kh" scan -q --no-ignore --format jsonl "$tree")
s3=("$kh" s3 -q --format jsonl s3://bench)
secs() {
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
best() { printf '%s\n' "$@" | sort -g | head -1; }
"${scan[@]}" >/dev/null || true
t_scan=() t_s3=()
for _ in $(seq "$runs"); do
  t_scan+=("$(secs "${scan[@]}")")
  t_s3+=("$(secs "${s3[@]}")")
done
t_scan=$(best "${t_scan[@]}")
t_s3=$(best "${t_s3[@]}")
rss() { { /usr/bin/time -f '%M' "$@" >/dev/null; } 2>&1 | tail -1 || true; }
rss_scan=$(rss "${scan[@]}")
rss_s3=$(rss "${s3[@]}")
found_scan=$("${scan[@]}" | grep -c '"rule":"aws-access-key"' || true)
found_s3=$("${s3[@]}" | grep -c '"rule":"aws-access-key"' || true)
mib=$(echo "$bytes / 1048576" | bc -l)
printf 'corpus     %s: %d objects, %.0f MiB\n' "$tree" "$objects" "$mib"
printf 'scan       %6.2f s  peak RSS %4.0f MB  %d pairs\n' "$t_scan" "$(echo "$rss_scan / 1024" | bc -l)" "$found_scan"
printf 's3         %6.2f s  peak RSS %4.0f MB  %d pairs  %.0f objects/s  %.1f MiB/s\n' "$t_s3" \
  "$(echo "$rss_s3 / 1024" | bc -l)" "$found_s3" "$(echo "$objects / $t_s3" | bc -l)" "$(echo "$mib / $t_s3" | bc -l)"
printf 'moto alone %6.2f s  (the same GETs by boto3, 16 threads: the server'"'"'s floor)\n' "$t_floor"
printf 's3 / scan = %.2f; s3 / moto alone = %.2f\n' "$(echo "$t_s3 / $t_scan" | bc -l)" "$(echo "$t_s3 / $t_floor" | bc -l)"
[ "$found_s3" = "$found_scan" ] || { echo "s3 found $found_s3 pairs, scan $found_scan" >&2; exit 1; }
