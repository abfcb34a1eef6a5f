#!/usr/bin/env bash
# Pre-commit speed: `keyhound git --staged` on a 10-file staged change in a 10,000-file repo.
#
#   bench/precommit.sh [REPO_DIR]     (default bench/out/precommit-repo; built on first use)
#
# Builds the repository with the git CLI (10,000 source files in 100 directories, one commit),
# stages 10 modified files, and times 20 runs of the staged scan (the mean and the slowest), with
# `git diff --cached --stat` as the reference in the same invocation. Target (issue #19): < 30 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${1:-bench/out/precommit-repo}

if [ ! -f "$repo/.complete" ]; then
  rm -rf "$repo"
  mkdir -p "$repo"
  python3 - "$repo" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
words = "let fn return match impl struct pub use mod self value result error config".split()
for d in range(100):
    os.makedirs(f"{root}/src/mod{d}", exist_ok=True)
    for f in range(100):
        lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(40)]
        with open(f"{root}/src/mod{d}/file{f}.rs", "w") as fh:
            fh.write("\n".join(lines) + "\n")
EOF
  git -C "$repo" init -q
  git -C "$repo" -c user.name=b -c user.email=b@example.com add -A
  git -C "$repo" -c user.name=b -c user.email=b@example.com -c commit.gpgsign=false commit -qm init
  for i in $(seq 0 9); do echo "// change $i" >> "$repo/src/mod$i/file$i.rs"; done
  git -C "$repo" add -A
  touch "$repo/.git/.complete" "$repo/.complete"
fi

# shellcheck source=bench/keyhound.sh
source bench/keyhound.sh
files=$(git -C "$repo" ls-files | wc -l)
staged=$(git -C "$repo" diff --cached --name-only | wc -l)

time_runs() { # mean and max milliseconds of 20 runs of "$@" in $repo
  python3 - "$repo" "$@" <<'EOF'
import subprocess, sys, time
repo, cmd = sys.argv[1], sys.argv[2:]
ts = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ts.append((time.perf_counter() - t) * 1000)
print(f"{sum(ts) / len(ts):.1f} {max(ts):.1f}")
EOF
}

read -r kh_mean kh_max < <(time_runs "$kh" git --staged -q)
read -r git_mean git_max < <(time_runs git diff --cached --stat)
printf 'repo         %s: %d files, %d staged\n' "$repo" "$files" "$staged"
printf 'git diff     %6.1f ms mean  %6.1f ms max   git diff --cached --stat\n' "$git_mean" "$git_max"
printf 'keyhound     %6.1f ms mean  %6.1f ms max   keyhound git --staged (target < 30 ms)\n' "$kh_mean" "$kh_max"
