#!/usr/bin/env bash
# Builds the arm64 sysroot the emulated tests run in, without a chroot and
# without changing the host's apt configuration:
#   - Debian bookworm arm64 packages (a Python 3.11 runtime, and Highway,
#     pthreadpool and googletest for cross-building) fetched with
#     `apt-get download` through a private apt state, unpacked with `dpkg -x`;
#   - aarch64 wheels (tflite-runtime 2.14, numpy 1.x) fetched with pip's
#     --platform option and unzipped into SYSROOT/site-packages.
# Downloads are cached under $COCOPIE_ARM64_CACHE (default
# ~/.cache/cocopie-arm64), so a second run needs no network at all.
#
# Usage: tools/arm64/make_sysroot.sh SYSROOT [PYTHON]
#   PYTHON: the host Python whose pip downloads the wheels (default python3).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 SYSROOT [PYTHON]" >&2
  exit 2
fi
SYSROOT=$1
HOST_PYTHON=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${COCOPIE_ARM64_CACHE:-$HOME/.cache/cocopie-arm64}
APT_STATE=$CACHE/apt
DEBS=$CACHE/debs
WHEELS=$CACHE/wheels

# Kept small on purpose: only what `python3.11 -c "import numpy,
# tflite_runtime"` and the cross build need (no perl, no dpkg, no krb5).
RUNTIME_PACKAGES="libc6 libgcc-s1 libstdc++6 python3.11-minimal
  libpython3.11-minimal libpython3.11-stdlib libexpat1 zlib1g libffi8
  libbz2-1.0 liblzma5 libcrypt1 libuuid1 libssl3"
BUILD_PACKAGES="libhwy-dev libhwy1 libpthreadpool-dev libpthreadpool0
  libgtest-dev"

mkdir -p "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial" \
  "$DEBS" "$WHEELS" "$SYSROOT"
touch "$APT_STATE/status"
# A private apt state whose only architecture is arm64: the host's dpkg and
# apt lists are left exactly as they were.
APT_OPTIONS=(
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::State::Lists="$APT_STATE/lists"
  -o Dir::Cache="$APT_STATE/cache"
  -o Dir::State::status="$APT_STATE/status"
  -o Debug::NoLocking=1
  -o APT::Sandbox::User=root
)

# --- Debian packages -----------------------------------------------------------
wanted_debs() {  # prints "package version" per wanted package, one apt-cache call
  # shellcheck disable=SC2086
  apt-cache "${APT_OPTIONS[@]}" show --no-all-versions $RUNTIME_PACKAGES \
      $BUILD_PACKAGES 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{if (!(p in seen)) print p, $2; seen[p]=1}'
}

deb_files() {  # the cached .deb of every wanted package; fails if one is missing
  local count=0 package version
  while read -r package version; do
    ls "$DEBS/${package}_${version//:/%3a}_"*.deb 2>/dev/null || return 1
    count=$((count + 1))
  done <<< "$WANTED"
  [ "$count" -eq "$(echo $RUNTIME_PACKAGES $BUILD_PACKAGES | wc -w)" ]
}

WANTED=$(wanted_debs || true)  # empty before the first update
if ! deb_files >/dev/null; then
  echo "arm64 sysroot: fetching Debian arm64 package lists"
  apt-get "${APT_OPTIONS[@]}" -qq update
  WANTED=$(wanted_debs)
  for package in $RUNTIME_PACKAGES $BUILD_PACKAGES; do
    if ! grep -q "^$package " <<< "$WANTED"; then
      echo "arm64 sysroot: no arm64 candidate for $package" >&2
      exit 1
    fi
  done
  echo "arm64 sysroot: downloading $(wc -l <<< "$WANTED") arm64 packages"
  (cd "$DEBS" && apt-get "${APT_OPTIONS[@]}" -qq download \
    $(awk '{print $1 ":arm64=" $2}' <<< "$WANTED"))
fi

# Unpack only when the package set changed (the stamp lists the .deb files).
deb_files=$(deb_files)
if [ "$(cat "$SYSROOT/.debs" 2>/dev/null)" != "$deb_files" ]; then
  echo "arm64 sysroot: unpacking into $SYSROOT"
  for deb in $deb_files; do dpkg -x "$deb" "$SYSROOT"; done
  # usrmerge: the loader is looked up as /lib/ld-linux-aarch64.so.1.
  for dir in lib bin; do
    [ -e "$SYSROOT/$dir" ] || ln -s "usr/$dir" "$SYSROOT/$dir"
  done
  echo "$deb_files" > "$SYSROOT/.debs"
fi

# --- aarch64 wheels ---------------------------------------------------------------
# pip does not widen --platform to older manylinux tags, so the tags our pins
# use are all listed.
requirements=$HERE/requirements-arm64-runtime.txt
site=$SYSROOT/site-packages
stamp_wheels=$(cat "$requirements")
if [ "$(cat "$site/.requirements" 2>/dev/null)" != "$stamp_wheels" ]; then
  have_wheels=1
  while read -r requirement; do
    name=${requirement%%==*}
    version=${requirement##*==}
    ls "$WHEELS/${name//-/_}-${version}-"*aarch64*.whl >/dev/null 2>&1 ||
      have_wheels=0
  done < <(grep -v '^#' "$requirements" | grep .)
  if [ $have_wheels = 0 ]; then
    echo "arm64 sysroot: downloading aarch64 wheels"
    "$HOST_PYTHON" -m pip download -q --dest "$WHEELS" --no-deps \
      --only-binary=:all: --platform manylinux_2_34_aarch64 \
      --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
      --python-version 3.11 --implementation cp --abi cp311 \
      -r "$requirements"
  fi
  rm -rf "$site"
  mkdir -p "$site"
  while read -r requirement; do
    name=${requirement%%==*}
    version=${requirement##*==}
    "$HOST_PYTHON" -m zipfile -e \
      "$(ls "$WHEELS/${name//-/_}-${version}-"*aarch64*.whl | head -n 1)" "$site"
  done < <(grep -v '^#' "$requirements" | grep .)
  echo "$stamp_wheels" > "$site/.requirements"
fi
echo "arm64 sysroot ready: $SYSROOT"
