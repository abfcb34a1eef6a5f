#!/usr/bin/env bash
# Runs the fuzz targets: each for SECONDS on its committed corpus (fuzz/corpus/<target>), new
# inputs kept in fuzz/out/<target> (not committed: `--merge` folds them into the corpus, then
# minimised with `cargo fuzz cmin`). Crashes, hangs (-timeout=10) and memory blow-ups
# (-rss_limit_mb=2048) stop a target and fail the run; their inputs are in fuzz/artifacts/.
#
#   fuzz/run.sh [--smoke] [--asan] [--merge] [SECONDS] [TARGET...]
#
# --smoke: CI's step (dev build, every target 10 s). Default: release build, no sanitizer (the
# parsers are safe Rust; --asan adds AddressSanitizer for the C compressors), 1200 s a target.
# Prints, per target: runs, coverage (edges) and features at the end, and the verdict.
set -euo pipefail
cd "$(dirname "$0")"
build=(--release)
sanitizer=(-s none)
merge=0
secs=1200
seed=() # libFuzzer's own, random; the smoke run fixes it so that CI is repeatable
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) build=(--dev); secs=10; seed=(-seed=1); shift ;;
    --asan) sanitizer=(-s address); shift ;;
    --merge) merge=1; shift ;;
    [0-9]*) secs=$1; shift ;;
    *) break ;;
  esac
done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build "${build[@]}" "${sanitizer[@]}" 2>&1 | grep -v '^\s*Compiling' >&2
profile=release
[ "${build[0]}" = --dev ] && profile=debug
bin=target/x86_64-unknown-linux-gnu/$profile
failed=0
mkdir -p artifacts
for t in "${targets[@]}"; do
  mkdir -p "out/$t" "corpus/$t" "artifacts/$t"
  # Disk images and filesystems need room; text parsers do not.
  case "$t" in
    container_vhdx) max=4194304 ;;
    fs_* | container_* | partition) max=2097152 ;;
    archive) max=262144 ;;
    *) max=65536 ;;
  esac
  log=$(mktemp)
  # libFuzzer's own -timeout can deadlock in its alarm handler (malloc in a signal handler):
  # a hang past the run's length plus a minute is killed and counted as one.
  if timeout --signal=KILL $((secs + 60)) "$bin/$t" "out/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -max_len=$max "${seed[@]}" -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    verdict=ok
  else
    verdict="FAILED (see fuzz/artifacts/$t/)"
    failed=1
    grep -aE 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
  fi
  runs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-18s runs %10s   cov %6s   ft %6s   %s\n' "$t" "${runs:-0}" "${cov:-?}" "${ft:-?}" "$verdict"
  rm -f "$log"
  if [ $merge = 1 ]; then
    "$bin/$t" -merge=1 "corpus/$t" "out/$t" -max_len=$max >/dev/null 2>&1 || true
  fi
done
exit $failed
