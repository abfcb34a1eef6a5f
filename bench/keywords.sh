#!/usr/bin/env bash
# How often each rule keyword occurs in real text: every hit opens a window for a rule's regex,
# so a keyword that is common in code (a plain word, `test_`, `sk_`) costs time on every scan.
#
#   bench/keywords.sh [CORPUS_DIR] [RULES_DIR]   (defaults: bench/out/corpus/copy0, patterns)
#
# Prints hits per GiB for the 40 most frequent keywords (ripgrep, fixed strings, non-overlapping),
# with the rules that list each. Needs: rg, python3 (3.11+, for tomllib).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-bench/out/corpus/copy0}
rules=${2:-patterns}
command -v rg >/dev/null || { echo "bench/keywords.sh needs ripgrep" >&2; exit 2; }
[ -d "$corpus" ] || { echo "no corpus at $corpus (bench/tree.sh builds it)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$rules" "$tmp" <<'PY'
import glob, json, os, sys, tomllib
rules, tmp = sys.argv[1], sys.argv[2]
owners = {}
for f in sorted(glob.glob(os.path.join(rules, "*.toml"))):
    d = tomllib.load(open(f, "rb"))
    for r in d.get("rule", []):
        if r.get("enabled", True):
            for k in r.get("keywords", []):
                owners.setdefault(k, []).append(r["id"])
open(os.path.join(tmp, "kw"), "w").write("\n".join(owners) + "\n")
json.dump(owners, open(os.path.join(tmp, "owners.json"), "w"))
PY
bytes=$(du -sb "$corpus" | cut -f1)
rg -uuu -a -o -F -f "$tmp/kw" --no-filename --no-line-number "$corpus" 2>/dev/null | sort | uniq -c | sort -rn > "$tmp/hits" || true
python3 - "$tmp" "$bytes" <<'PY'
import json, sys
tmp, size = sys.argv[1], int(sys.argv[2])
owners = json.load(open(f"{tmp}/owners.json"))
gib = size / 2**30
total = 0
rows = []
for line in open(f"{tmp}/hits", encoding="utf-8", errors="replace"):
    n, _, kw = line.strip().partition(" ")
    total += int(n)
    rows.append((int(n), kw))
print(f"{len(owners)} keywords, {size / 2**20:.0f} MiB, {total / gib:.0f} hits/GiB in all")
for n, kw in rows[:40]:
    print(f"{n / gib:10.0f}/GiB  {kw!r:28} {', '.join(owners.get(kw, ['?'])[:4])}")
PY
