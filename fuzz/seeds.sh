#!/usr/bin/env bash
# Seeds for the fuzz targets, made with the real tools (zip, tar, compressors, sgdisk, sfdisk,
# qemu-img, mkfs.*), written under fuzz/seeds/<target>/. `fuzz/run.sh` minimises them into
# fuzz/corpus/<target>/ (cargo fuzz cmin), which is what is committed. No key-shaped string is
# in any of them: the fuzzers find their way to the rules' prefixes from the rules' own literals.
set -euo pipefail
cd "$(dirname "$0")"
out=seeds
rm -rf "$out"
mkdir -p "$out"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mk() { mkdir -p "$out/$1"; }

# archive: each kind once, and nested.
mk archive
mkdir -p "$t/a/etc"
printf 'AWS_REGION=us-east-1\naws_access_key_id = see-vault\n' > "$t/a/etc/app.env"
printf '{"password": "not-here", "url": "https:\\/\\/example.com"}\n' > "$t/a/conf.json"
(cd "$t/a" && zip -qr "$t/x.zip" . && tar -cf "$t/x.tar" .)
cp "$t/x.zip" "$t/x.tar" "$out/archive/"
gzip -c "$t/x.tar" > "$out/archive/x.tar.gz"
bzip2 -c "$t/x.tar" > "$out/archive/x.tar.bz2"
xz -c "$t/x.tar" > "$out/archive/x.tar.xz"
zstd -q -c "$t/x.tar" > "$out/archive/x.tar.zst"
tar -C "$t" -czf "$out/archive/nested.tar.gz" x.zip
gzip -c "$t/x.tar" > "$t/x.tar.gz"
(cd "$t" && zip -q nested.zip x.tar.gz)
cp "$t/nested.zip" "$out/archive/"

# partition: GPT with two partitions, MBR with an extended partition and two logical ones.
mk partition
truncate -s 128K "$t/gpt.img"
sgdisk -q -n 1:34:100 -n 2:101:200 -t 2:8e00 "$t/gpt.img" >/dev/null
cp "$t/gpt.img" "$out/partition/gpt.img"
truncate -s 128K "$t/mbr.img"
printf 'label: dos\n1 : start=1, size=20, type=83\n2 : start=21, size=200, type=5\n5 : start=23, size=50, type=83\n6 : start=75, size=50, type=7\n' |
  sfdisk -q "$t/mbr.img" >/dev/null
cp "$t/mbr.img" "$out/partition/mbr.img"

# containers, converted by qemu-img from a small raw disk with data in a few places.
truncate -s 512K "$t/raw.img"
printf 'export AWS_REGION=eu-west-1\n' | dd of="$t/raw.img" bs=512 seek=1 conv=notrunc status=none
printf 'aws_secret_access_key = (in vault)\n' | dd of="$t/raw.img" bs=512 seek=600 conv=notrunc status=none
for f in qcow2 vhd vhdx vmdk; do mk "container_$f"; done
qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096 "$t/raw.img" "$out/container_qcow2/disk.qcow2"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096,compression_type=zlib -c "$t/raw.img" "$out/container_qcow2/compressed.qcow2"
qemu-img convert -q -f raw -O vpc "$t/raw.img" "$out/container_vhd/dynamic.vhd"
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$t/raw.img" "$t/fixed.vhd"
tail -c 512 "$t/fixed.vhd" > "$out/container_vhd/fixed-footer.vhd"
qemu-img convert -q -f raw -O vhdx -o block_size=1M,log_size=1M "$t/raw.img" "$t/disk.vhdx"
# Headers, log, BAT and metadata lie in the first 4 MiB; the data blocks (at 8 MiB) are left out:
# the reader's errors for a block past the end are fuzzed too.
head -c 4M "$t/disk.vhdx" > "$out/container_vhdx/head.vhdx"
qemu-img convert -q -f raw -O vmdk "$t/raw.img" "$out/container_vmdk/sparse.vmdk"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$t/raw.img" "$out/container_vmdk/stream.vmdk"

# filesystems, each with a directory, a small file and a deleted one.
mkdir -p "$t/fs/etc" "$t/fs/home/app"
printf 'AWS_REGION=us-east-1\n' > "$t/fs/etc/app.env"
printf 'region = eu-west-1\n' > "$t/fs/home/app/config"
for f in ext4 xfs fat ntfs; do mk "fs_$f"; done
truncate -s 256K "$t/ext4.img"
mkfs.ext4 -q -F -b 1024 -N 16 -O ^has_journal,^resize_inode -d "$t/fs" "$t/ext4.img"
cp "$t/ext4.img" "$out/fs_ext4/"
truncate -s 128K "$t/fat.img"
mkfs.fat -C "$t/fat2.img" 128 >/dev/null 2>&1 || true
rm -f "$t/fat.img"; mkfs.fat -C "$t/fat.img" 128 >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -i "$t/fat.img" "$t/fs/etc" "$t/fs/home" ::/
cp "$t/fat.img" "$out/fs_fat/"
truncate -s 300M "$t/xfs.img"
cat > "$t/proto" <<PROTO
/dummy
0 0
d--755 0 0
etc d--755 0 0
app.env ---644 0 0 $t/fs/etc/app.env
\$
home d--755 0 0
config ---644 0 0 $t/fs/home/app/config
\$
\$
PROTO
mkfs.xfs -q -f -b size=1024 -m crc=1 -p "$t/proto" "$t/xfs.img"
# XFS keeps each allocation group's headers at its start: the first 256 KiB hold the superblock,
# the first AG's headers and the root directory's inodes.
head -c 256K "$t/xfs.img" > "$out/fs_xfs/xfs-head.img"
truncate -s 2M "$t/ntfs.img"
mkntfs -q -F -f -c 512 -s 512 "$t/ntfs.img" >/dev/null 2>&1
ntfscp -q -f "$t/ntfs.img" "$t/fs/etc/app.env" app.env >/dev/null
cp "$t/ntfs.img" "$out/fs_ntfs/"

# reports and configuration.
mk credential_report
printf 'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n<root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2024-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\nalice,arn:aws:iam::123456789012:user/alice,2021-03-04T05:06:07+00:00,true,no_information,2021-03-04T05:06:07+00:00,N/A,false,true,2021-03-04T05:06:07+00:00,2024-05-06T07:08:09+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n' \
  > "$out/credential_report/report.csv"
mk directory
printf 'email,status,name\nalice@example.com,ACTIVE,Alice\ncarol@example.com,DEPROVISIONED,Carol\n' > "$out/directory/people.csv"
printf '[{"primaryEmail": "alice@example.com", "suspended": false}, {"mail": "bob@example.com", "accountEnabled": "false"}]\n' > "$out/directory/people.json"
mk config
printf '[allowlist]\npaths = ["^tests/", "\\\\.md$"]\nfingerprints = ["0123abcd"]\n\n[detect]\npair_lines = 5\npair_bytes = 1024\n' > "$out/config/keyhound.toml"
mk rules
cp ../patterns/*.toml "$out/rules/"
mk baseline
printf '{"schema": "keyhound", "version": 1, "credentials": [{"fingerprint": "0123456789abcdef", "rule": "aws-access-key-pair", "places": []}], "summary": {}}\n' > "$out/baseline/report.json"
mk detect
mk detect_props
printf 'password = "hunter2"\nurl = https://example.com/p%%61th?q=%%2Fx%%3D1\n"key": "a\\/b\\u002fc"\n' > "$out/detect/mixed.txt"
printf 'a\0b\0c\0=\0\n\0' > "$out/detect/utf16.txt"
cp ../README.md "$out/detect/"
echo "seeds in fuzz/$out:"; for d in "$out"/*; do printf '  %-20s %s files, %s\n' "${d#"$out"/}" "$(ls "$d" | wc -l)" "$(du -sh "$d" | cut -f1)"; done
