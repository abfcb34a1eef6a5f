#!/usr/bin/env bash
# What installing keyhound costs a user, and how fast the binary starts (issue #22).
#
#   bench/install.sh [--rust-hook] WHEEL_DIR BINARY...
#
#   WHEEL_DIR   a directory holding the keyhound wheel (`maturin build --release -o DIR`)
#   BINARY...   keyhound binaries to compare: their size, and `--version` started warm (500 runs)
#               and cold (page cache dropped first, when run as root; 4 runs, median)
#   --rust-hook also install this checkout's `language: rust` pre-commit hook (a cold cargo
#               build: about 12 minutes on two cores)
#
# Each figure has a reference run in the same invocation: ripgrep's start-up beside keyhound's;
# `python3 -m venv` beside the wheel's pip install; the rust hook beside the wheel hook.
set -euo pipefail
cd "$(dirname "$0")/.."
rust_hook=false
if [ "${1:-}" = --rust-hook ]; then
  rust_hook=true
  shift
fi
wheels=$(cd "$1" && pwd)
shift
pre_commit=$PWD/.venv/bin/pre-commit
[ -x "$pre_commit" ] || { echo "run scripts/test first (it installs pre-commit into .venv)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

secs() { # command... → wall seconds
  local s e
  s=$(date +%s%N)
  "$@" > /dev/null 2>&1
  e=$(date +%s%N)
  echo "scale=3; ($e - $s) / 1000000000" | bc
}
per_run_ms() { # n binary args... → mean ms per run
  local n=$1 s e
  shift
  s=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" > /dev/null 2>&1; done
  e=$(date +%s%N)
  echo "scale=2; ($e - $s) / $n / 1000000" | bc
}
cold_ms() { # binary args... → median of 4 cold starts, ms
  local runs=()
  for _ in 1 2 3 4; do
    sync
    echo 3 > /proc/sys/vm/drop_caches
    runs+=("$(per_run_ms 1 "$@")")
  done
  printf '%s\n' "${runs[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.1f", (a[2] + a[3]) / 2}'
}

echo "== binaries"
printf '%-48s %10s %10s %10s\n' binary "MB" "warm ms" "cold ms"
for b in "$@" "$(command -v rg)"; do
  cold="-"
  [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ] && cold=$(cold_ms "$b" --version)
  printf '%-48s %10.1f %10s %10s\n' "$b" "$(echo "scale=1; $(stat -c %s "$b") / 1000000" | bc)" \
    "$(per_run_ms 500 "$b" --version)" "$cold"
done

echo "== the wheel: pip install into a fresh venv, then the first scan"
mkdir -p "$work/tree/app"
printf 'print("hello")\n' > "$work/tree/app/main.py"
venv_s=$(secs python3 -m venv "$work/venv")
install_s=$(secs "$work/venv/bin/pip" install --no-index --find-links "$wheels" keyhound)
scan_s=$(secs "$work/venv/bin/keyhound" scan "$work/tree")
echo "python3 -m venv (reference): ${venv_s} s"
echo "pip install keyhound (local wheel): ${install_s} s; first scan: ${scan_s} s"

echo "== pre-commit: installing the hook (pre-commit install-hooks, empty cache)"
# The wheel hook as the README gives it, pip reading the wheel directory and setuptools (for the
# placeholder package pre-commit builds for a local python hook) from virtualenv's own wheels.
links="$work/links"
mkdir -p "$links"
cp "$wheels"/*.whl "$links"/
cp .venv/lib/python3*/site-packages/virtualenv/seed/wheels/embed/setuptools-*.whl "$links"/
hook_repo() { # dir config
  mkdir -p "$1"
  git -C "$1" init -q
  printf '%s' "$2" > "$1/.pre-commit-config.yaml"
}
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
hook_repo "$work/wheel-repo" "repos:
  - repo: local
    hooks:
      - id: keyhound
        name: keyhound
        entry: keyhound git --staged
        language: python
        additional_dependencies: [keyhound==$version]
        pass_filenames: false
        always_run: true
"
wheel_s=$(cd "$work/wheel-repo" && PRE_COMMIT_HOME="$work/pc-wheel" PIP_NO_INDEX=1 PIP_FIND_LINKS="$links" \
  secs "$pre_commit" install-hooks)
echo "wheel hook: ${wheel_s} s"
if $rust_hook; then
  hook_repo "$work/rust-repo" "repos:
  - repo: $PWD
    rev: $(git rev-parse HEAD)
    hooks:
      - id: keyhound
"
  rust_s=$(cd "$work/rust-repo" && PRE_COMMIT_HOME="$work/pc-rust" CARGO_TARGET_DIR="$work/cargo-target" \
    secs "$pre_commit" install-hooks)
  echo "rust hook (reference): ${rust_s} s; the wheel hook takes $(echo "scale=4; $wheel_s / $rust_s" | bc)× its time"
fi
