#!/usr/bin/env bash
# Disk image speed: `keyhound image` against `cat IMAGE >/dev/null` on the same warm image, in one
# invocation, for a dense 2 GiB image of real text (source files from this machine, 50 planted
# key pairs) and a 20 GiB sparse image holding the same 2 GiB at its middle.
#
#   bench/image.sh [DIR]        (default bench/out/images; built on first use)
#
# Prints both times, keyhound's share of cat's throughput (target >= 70%) and its peak RSS
# (target < 256 MB). Needs python3, GNU time, bc.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/images}
mkdir -p "$dir"
dense=$dir/dense.img
sparse=$dir/sparse.img

if [ ! -f "$dir/.complete" ]; then
  python3 - "$dense" <<'EOF'
import os, random, sys
out, size = sys.argv[1], 2 << 30
rng = random.Random(3)
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
roots = [os.path.expanduser("~/.cargo/registry/src"), "/usr/include", "/usr/lib/python3"]
files = [os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs]
rng.shuffle(files)
with open(out, "wb") as img:
    n, i = 0, 0
    plant_every = size // 50
    next_plant = plant_every // 2
    while n < size:
        try:
            data = open(files[i % len(files)], "rb").read()
        except OSError:
            data = b""
        i += 1
        if n + len(data) > next_plant:
            k = "AKIA" + "".join(rng.choice(B32) for _ in range(16))
            s = "".join(rng.choice(B64[:-2]) for _ in range(40))
            data = f"\naws_access_key_id = {k}\naws_secret_access_key = {s}\n".encode() + data
            next_plant += plant_every
        data = data[: size - n]
        img.write(data)
        n += len(data)
EOF
  truncate -s 20G "$sparse"
  dd if="$dense" of="$sparse" bs=16M seek=$((10 << 6)) conv=notrunc status=none
  touch "$dir/.complete"
fi

cargo build --release --quiet
kh=target/release/keyhound

secs() {
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}

for img in "$dense" "$sparse"; do
  cat "$img" >/dev/null # warm
  t_cat=$(secs cat "$img")
  t_kh=$(secs "$kh" image -q --format jsonl "$img")
  rss=$( { /usr/bin/time -f '%M' "$kh" image -q --format jsonl "$img" >/dev/null; } 2>&1 | tail -1 || true)
  found=$("$kh" image -q --format jsonl "$img" | grep -c '"rule":"aws-access-key"' || true)
  gib=$(echo "$(stat -c %s "$img") / 1073741824" | bc -l)
  printf '%-8s %5.1f GiB  cat %6.2f s   keyhound %6.2f s  = %3.0f%% of cat throughput (target >= 70%%)  peak RSS %3.0f MB (target < 256)  %d pairs found\n' \
    "$(basename "$img" .img)" "$gib" "$t_cat" "$t_kh" "$(echo "100 * $t_cat / $t_kh" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$found"
done
