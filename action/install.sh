#!/usr/bin/env bash
# The install step of the keyhound GitHub Action (action.yml): puts the keyhound binary for the
# action's own version (Cargo.toml's [package] version) on the runner, in seconds when the
# release has it, and says where.
#
#   1. cached: a release binary verified by an earlier run, in the tool cache; no network.
#   2. download: keyhound-VERSION-TARGET.tar.gz (Windows: .zip) and its .sha256 from the GitHub
#      release vVERSION of the action's repository; the SHA-256 must match, or the step fails
#      (exit 2) and nothing is built: a wrong checksum is a tampering signal, not a missing file.
#   3. source: no release binary (no release for this version, a platform without one, a local
#      `uses: ./`): `cargo build --release --locked` of the action's own source.
#
# Environment (all optional but GITHUB_ACTION_PATH):
#   GITHUB_ACTION_PATH    the action's checkout (Cargo.toml, the source to build)
#   ACTION_REPOSITORY     ${{ github.action_repository }} (owner/name); when empty it is read from
#                         GITHUB_ACTION_PATH (…/_actions/OWNER/NAME/REF: the runner leaves it
#                         empty in composite actions at times); no repository: no download
#   GITHUB_SERVER_URL     https://github.com unless set (GitHub Enterprise Server)
#   KEYHOUND_RELEASE_URL  where the release assets are (instead of the GitHub release; tests)
#   KEYHOUND_TARGET       the Rust target triple (instead of uname's)
#   KEYHOUND_CACHE        the cache root (default: $RUNNER_TOOL_CACHE/keyhound, else ~/.cache/keyhound)
#   KEYHOUND_BUILD_CMD    the source build, run by bash (default: cargo build, below)
#   KEYHOUND_SOURCE_BUILD auto (default): release binary, else build; never: release binary or
#                         nothing (the `keyhound` output stays unset, exit 0); only: build
#   GITHUB_OUTPUT         gets keyhound=<absolute path of the binary>
#
# Prints which path it took (`keyhound: using cached …`, `keyhound: using release binary …`,
# `keyhound: built from source`), then the binary's absolute path as its last stdout line.
# Exits 0, or 2 (checksum mismatch, a broken release asset, a failed build).
set -euo pipefail

die() { # message: a GitHub error annotation, exit 2
  echo "::error::$1"
  exit 2
}

action_path=${GITHUB_ACTION_PATH:-}
[ -n "$action_path" ] || die "install.sh: GITHUB_ACTION_PATH is not set"
action_path=$(cd "$action_path" && pwd -P)
manifest="$action_path/Cargo.toml"
[ -f "$manifest" ] || die "install.sh: no Cargo.toml in $action_path"
# The first `version = "…"` between [package] and the next table.
version=$(sed -n '/^\[package\]/,/^\[/s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1)
[ -n "$version" ] || die "install.sh: no [package] version in $manifest"

mode=${KEYHOUND_SOURCE_BUILD:-auto}
case "$mode" in
  auto | never | only) ;;
  *) die "install.sh: KEYHOUND_SOURCE_BUILD must be auto, never or only, not '$mode'" ;;
esac

# --- the target -------------------------------------------------------------------------------
target=${KEYHOUND_TARGET:-}
if [ -z "$target" ]; then
  os=$(uname -s)
  arch=$(uname -m)
  case "$os/$arch" in
    Linux/x86_64 | Linux/amd64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64 | Darwin/aarch64) target=aarch64-apple-darwin ;;
    MINGW*/x86_64 | MSYS*/x86_64 | CYGWIN*/x86_64) target=x86_64-pc-windows-msvc ;;
    *) target="" ;; # no release binary for this platform: build
  esac
fi
exe=keyhound
ext=tar.gz
case "$target" in
  *-windows-*) exe=keyhound.exe; ext=zip ;;
esac

# --- helpers ----------------------------------------------------------------------------------
sha256_of() { # file → lowercase hex
  if command -v sha256sum > /dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum > /dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  else
    python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

fetch() { # url file: fails on any HTTP error (404 included) or network failure
  if command -v curl > /dev/null 2>&1; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"
  else
    python3 - "$1" "$2" << 'PY'
import shutil, sys, time, urllib.error, urllib.request
url, out = sys.argv[1], sys.argv[2]
for attempt in range(4):
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(out, "wb") as f:
            shutil.copyfileobj(r, f)
        sys.exit(0)
    except urllib.error.HTTPError as e:
        if e.code < 500 and e.code not in (408, 429):
            print(f"{url}: HTTP {e.code}", file=sys.stderr)
            sys.exit(1)
        err = e
    except OSError as e:
        err = e
    time.sleep(2 ** attempt)
print(f"{url}: {err}", file=sys.stderr)
sys.exit(1)
PY
  fi
}

extract() { # archive dir
  case "$1" in
    *.zip)
      if command -v unzip > /dev/null 2>&1; then
        unzip -q -o "$1" -d "$2"
      elif command -v 7z > /dev/null 2>&1; then
        7z x -y -o"$2" "$1" > /dev/null
      else
        python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
      fi ;;
    *) tar -xzf "$1" -C "$2" ;;
  esac
}

finish() { # how (a line saying which path was taken), binary
  local bin
  bin="$(cd "$(dirname "$2")" && pwd -P)/$(basename "$2")"
  echo "$1"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "keyhound=$bin" >> "$GITHUB_OUTPUT"
  fi
  echo "$bin"
  exit 0
}

build_from_source() {
  local bin="$action_path/target/release/$exe"
  mkdir -p "$action_path/target/release"
  # The target directory is named, so that a CARGO_TARGET_DIR of the job does not move the
  # binary away from where this step (and action.yml's cache of target/) expects it.
  # shellcheck disable=SC2016 # expanded by the bash that runs the command
  local cmd=${KEYHOUND_BUILD_CMD:-'cargo build --release --locked --manifest-path "$GITHUB_ACTION_PATH/Cargo.toml" --target-dir "$GITHUB_ACTION_PATH/target"'}
  # The build's own output goes to stderr: stdout ends with the binary's path.
  GITHUB_ACTION_PATH="$action_path" bash -c "$cmd" >&2 || die "building keyhound $version from source failed"
  [ -f "$bin" ] || die "the source build left no binary at $bin"
  finish "keyhound: built from source" "$bin"
}

if [ "$mode" = only ]; then
  build_from_source
fi

# --- where the release is ---------------------------------------------------------------------
base=${KEYHOUND_RELEASE_URL:-}
if [ -z "$base" ]; then
  repo=${ACTION_REPOSITORY:-}
  if [ -z "$repo" ]; then
    p=${GITHUB_ACTION_PATH//\\//}
    if [[ "$p" =~ /_actions/([^/]+)/([^/]+)/[^/]+/?$ ]]; then
      repo="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    fi
  fi
  if [ -n "$repo" ]; then
    base="${GITHUB_SERVER_URL:-https://github.com}/${repo}/releases/download/v${version}"
  fi
fi
base=${base%/}

no_release() { # why: the source build follows (here, or in action.yml's build step)
  echo "$1"
  if [ "$mode" = never ]; then
    exit 0
  fi
  build_from_source
}

if [ -z "$base" ]; then
  no_release "keyhound: a local action (no action repository, no KEYHOUND_RELEASE_URL): building from source"
fi
if [ -z "$target" ]; then
  no_release "::notice::no release binary for keyhound ${version} on $(uname -s)/$(uname -m); building from source"
fi

# --- 1. the cache -----------------------------------------------------------------------------
cache_root=${KEYHOUND_CACHE:-${RUNNER_TOOL_CACHE:-$HOME/.cache}/keyhound}
cache="$cache_root/$version/$target"
if [ -f "$cache/$exe" ] && [ -f "$cache/.verified" ]; then
  # .verified holds the binary's SHA-256, written once the archive's was checked: a binary
  # changed or cut short since is fetched again.
  if [ "$(sha256_of "$cache/$exe")" = "$(head -n 1 "$cache/.verified")" ]; then
    finish "keyhound: using cached $cache/$exe (release v${version}, ${target})" "$cache/$exe"
  fi
  echo "keyhound: the cached $cache/$exe does not match its .verified hash; downloading again"
  rm -f "$cache/.verified"
fi

# --- 2. the release ---------------------------------------------------------------------------
asset="keyhound-${version}-${target}.${ext}"
tmp=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/keyhound-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if ! fetch "$base/$asset" "$tmp/$asset" || ! fetch "$base/$asset.sha256" "$tmp/$asset.sha256"; then
  no_release "::notice::no release binary for keyhound ${version} (${target}); building from source"
fi

expected=$(awk 'NR == 1 {print tolower($1)}' "$tmp/$asset.sha256")
actual=$(sha256_of "$tmp/$asset")
if ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || [ "$expected" != "$actual" ]; then
  die "checksum mismatch for $asset from $base: expected ${expected:-nothing} ($asset.sha256), got $actual; refusing it (not building instead: a wrong checksum is a tampering signal)"
fi

mkdir -p "$tmp/x"
extract "$tmp/$asset" "$tmp/x" || die "$asset (checksum verified) could not be extracted"
[ -f "$tmp/x/$exe" ] || die "$asset (checksum verified) has no $exe at its top level"
chmod 0755 "$tmp/x/$exe"

# Into the cache: the binary under a temporary name, renamed, then the marker (last, so that a
# run stopped half-way leaves no marker).
if ! mkdir -p "$cache" 2> /dev/null || ! [ -w "$cache" ]; then
  cache="$tmp/bin" # a read-only tool cache: this run only (the EXIT trap keeps it; see below)
  trap - EXIT
  mkdir -p "$cache"
fi
cp "$tmp/x/$exe" "$cache/$exe.part.$$"
mv -f "$cache/$exe.part.$$" "$cache/$exe"
sha256_of "$cache/$exe" > "$cache/.verified"
finish "keyhound: using release binary $base/$asset (sha256 $actual)" "$cache/$exe"
