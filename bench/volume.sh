#!/usr/bin/env bash
# Sourced by bench/image.sh and bench/snapshot.sh: make_ext4_volume DIR builds DIR/ext4.img once,
# a 2 GiB ext4 filesystem (`mkfs.ext4 -d`) of /usr/share and /usr/include with 50 planted key
# pairs in files of their own (/home/userNN/.aws/credentials).
make_ext4_volume() {
  local dir=$1 stage
  [ -f "$dir/.complete-ext4" ] && [ -f "$dir/ext4.img" ] && return 0
  mkdir -p "$dir"
  stage=$(mktemp -d)
  mkdir -p "$stage/usr"
  cp -a /usr/share /usr/include "$stage/usr/" 2>/dev/null || true
  python3 - "$stage" <<'PY'
import os, random, sys
rng = random.Random(4)
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
for i in range(50):
    d = os.path.join(sys.argv[1], "home", f"user{i:02}", ".aws")
    os.makedirs(d, exist_ok=True)
    k = "AKIA" + "".join(rng.choice(B32) for _ in range(16))
    s = "".join(rng.choice(B64) for _ in range(40))
    with open(os.path.join(d, "credentials"), "w") as f:
        f.write(f"[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n")
PY
  rm -f "$dir/ext4.img"
  dd if=/dev/zero of="$dir/ext4.img" bs=16M count=128 status=none
  mkfs.ext4 -q -F -d "$stage" "$dir/ext4.img"
  rm -rf "$stage"
  touch "$dir/.complete-ext4"
}
