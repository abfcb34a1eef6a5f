#!/usr/bin/env bash
# Sourced by the bench scripts: sets `kh` to the keyhound binary to measure, an absolute path.
# KEYHOUND=PATH measures that binary (`cargo build --profile profiling` gives one perf can read,
# optimised as the release build is); otherwise the release build, built now.
if [ -n "${KEYHOUND:-}" ]; then
  kh=$(realpath "$KEYHOUND")
else
  cargo build --release --quiet
  kh=$PWD/target/release/keyhound
fi
