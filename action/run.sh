#!/usr/bin/env bash
# The scan step of the keyhound GitHub Action (action.yml). Inputs come as environment variables
# (never interpolated into the script): KEYHOUND (the binary), SCAN_KIND (worktree, history or
# pull-request), SCAN_PATH, BASE_SHA and HEAD_SHA (pull-request), SARIF_FILE, FAIL_ON_FINDINGS,
# VERIFY (true: --verify), EXTRA_ARGS. Writes the SARIF file, sets the `findings` output, and exits 0 (clean or findings
# not failing), 1 (findings and FAIL_ON_FINDINGS=true) or 2 (keyhound could not scan).
set -uo pipefail

kh=${KEYHOUND:-keyhound}
path=${SCAN_PATH:-.}
sarif=${SARIF_FILE:-keyhound.sarif}
case "${SCAN_KIND:-history}" in
  worktree) args=(scan "$path") ;;
  history) args=(git "$path") ;;
  pull-request)
    if [ -z "${BASE_SHA:-}" ] || [ -z "${HEAD_SHA:-}" ]; then
      echo "::error::scan: pull-request needs base and head (the pull request's base and head shas)"
      exit 2
    fi
    args=(git "$path" --range "$BASE_SHA..$HEAD_SHA") ;;
  *)
    echo "::error::scan must be worktree, history or pull-request, not '${SCAN_KIND}'"
    exit 2 ;;
esac
read -r -a extra <<< "${EXTRA_ARGS:-}"
[ "${VERIFY:-false}" = true ] && extra+=(--verify)

"$kh" "${args[@]}" --format sarif --output "$sarif" "${extra[@]}"
code=$?
findings=0
if [ -f "$sarif" ]; then
  findings=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"][0]["results"]))' "$sarif" 2>/dev/null || echo 0)
fi
[ -n "${GITHUB_OUTPUT:-}" ] && echo "findings=$findings" >> "$GITHUB_OUTPUT"
[ -n "${GITHUB_OUTPUT:-}" ] && echo "sarif-file=$sarif" >> "$GITHUB_OUTPUT"

case $code in
  0) echo "keyhound: no secrets found" ;;
  1)
    echo "::error::keyhound found secrets ($findings results in $sarif)"
    [ "${FAIL_ON_FINDINGS:-true}" = true ] && exit 1 ;;
  *)
    echo "::error::keyhound could not complete the scan (exit $code)"
    exit 2 ;;
esac
exit 0
