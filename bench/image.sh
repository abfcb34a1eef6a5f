#!/usr/bin/env bash
# Disk image speed: `keyhound image` against `cat IMAGE >/dev/null` on the same warm image, in one
# invocation, for three images:
#   text    2 GiB of real text (source files from this machine) with 50 planted key pairs: the
#           worst case, dense with keyword hits ("://", "secret");
#   binary  2 GiB of this machine's programs, libraries and data (/usr) with 50 planted pairs:
#           what most of a system volume holds;
#   sparse  a 20 GiB sparse image holding the text image at its middle;
#   ext4    a 2 GiB ext4 filesystem (`mkfs.ext4 -d`) of /usr/share and /usr/include with 50
#           planted pairs in files of their own: a volume, walked file by file (paths) and
#           then read byte by byte (the raw pass), as `keyhound image` does with one.
#
#   bench/image.sh [DIR] [RUNS]   (default bench/out/images and 5; images built on first use)
#
# Each image is first dropped from the page cache and read once (`warm`). Each time is the best
# of RUNS runs, cat's and keyhound's taken in turn (shared machines are noisy). Prints both,
# keyhound's share of cat's throughput (target >= 70%) and its peak RSS (target < 256 MB).
# Needs python3, GNU time, bc, and mkfs.ext4 (e2fsprogs) for the ext4 image.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/images}
runs=${2:-5}
mkdir -p "$dir"
text=$dir/text.img
binary=$dir/binary.img
sparse=$dir/sparse.img

# make_image OUT ROOT...: 2 GiB of the files under the ROOTs in a seeded order, a key pair
# planted every 1/50th of the way.
make_image() {
  python3 - "$@" <<'PY'
import os, random, sys
out, roots, size = sys.argv[1], sys.argv[2:], 2 << 30
rng = random.Random(3)
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
files = sorted(os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs)
files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
rng.shuffle(files)
# Written in 16 MiB pieces, as a download or dd writes: the page cache then holds the image in
# large pages, as it holds a real one (small writes leave small pages, slower for cat and
# keyhound alike).
with open(out, "wb", buffering=16 << 20) as img:
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
PY
}

if [ ! -f "$dir/.complete-v2" ]; then
  rm -f "$text" "$binary" "$sparse" "$dir/.complete"
  make_image "$text" ~/.cargo/registry/src /usr/include /usr/lib/python3
  make_image "$binary" /usr/lib /usr/bin /usr/share
  truncate -s 20G "$sparse"
  dd if="$text" of="$sparse" bs=16M seek=$((10 << 6)) conv=notrunc status=none
  touch "$dir/.complete-v2"
fi

# shellcheck source=bench/volume.sh
source bench/volume.sh
make_ext4_volume "$dir"
ext4=$dir/ext4.img

# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh

secs() {
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
best() { printf '%s\n' "$@" | sort -g | head -1; }

# Warms an image as reading it from disk does: its pages are dropped from the page cache and
# read once. The kernel then holds it in large folios, which it maps whole; pages cached as the
# image was written may be small ones, which cost `cat`'s copy a little and keyhound's map more
# (text image, same binary: 0.34 s against `cat`'s 0.28 s cached from writing, 0.24 s against
# 0.19 s once re-read).
warm() {
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
  cat "$1" >/dev/null
}

for img in "$text" "$binary" "$sparse" "$ext4"; do
  warm "$img"
  t_cat=() t_kh=()
  for _ in $(seq "$runs"); do
    t_cat+=("$(secs cat "$img")")
    t_kh+=("$(secs "$kh" image -q --format jsonl "$img")")
  done
  t_cat=$(best "${t_cat[@]}")
  t_kh=$(best "${t_kh[@]}")
  rss=$( { /usr/bin/time -f '%M' "$kh" image -q --format jsonl "$img" >/dev/null; } 2>&1 | tail -1 || true)
  found=$("$kh" image -q --format jsonl "$img" | grep -c '"rule":"aws-access-key"' || true)
  gib=$(echo "$(stat -c %s "$img") / 1073741824" | bc -l)
  printf '%-7s %5.1f GiB  cat %5.2f s  keyhound %5.2f s  = %3.0f%% of cat throughput (target >= 70%%)  peak RSS %3.0f MB (target < 256)  %d pairs found\n' \
    "$(basename "$img" .img)" "$gib" "$t_cat" "$t_kh" "$(echo "100 * $t_cat / $t_kh" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$found"
done
