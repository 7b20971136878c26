#!/bin/bash
# Builds strongSwan 6.0.6 with its `ml` plugin (ML-KEM-512/768/1024 without a newer OpenSSL) from
# ../shared/peers/strongswan-6.0.6.tar.gz, a `git archive` without a generated configure, so
# autogen.sh runs first (Debian: autoconf automake libtool gperf bison flex pkg-config libgmp-dev
# libssl-dev). Cached: OUT_DIR/<key>/ where key = sha256(tarball + this script); a second call is
# a no-op. About 5 minutes on 2 cores.
#   build-strongswan6.sh [TARBALL] [OUT_DIR]   -> prints the install prefix on its last line
# OUT_DIR defaults to /var/cache/pike-strongswan6 (tests/peers/strongswan6.py looks there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tarball=${1:-$here/../../../shared/peers/strongswan-6.0.6.tar.gz}
out=${2:-/var/cache/pike-strongswan6}
[[ -f $tarball ]] || { echo "build-strongswan6: no tarball at $tarball" >&2; exit 2; }
key=$(cat "$tarball" "$0" | sha256sum | cut -c1-16)
prefix=$out/$key
if [[ -x $prefix/libexec/ipsec/charon && -f $prefix/.built ]]; then
  echo "$prefix"
  exit 0
fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9  # two test sessions building at once would clobber one prefix
if [[ -x $prefix/libexec/ipsec/charon && -f $prefix/.built ]]; then
  echo "$prefix"
  exit 0
fi
work=$(mktemp -d /var/tmp/strongswan6-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$prefix"
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
cd "$src"
./autogen.sh >"$work/autogen.log" 2>&1 || { tail -30 "$work/autogen.log" >&2; exit 1; }
./configure --prefix="$prefix" --sysconfdir="$prefix/etc" --with-piddir="$prefix/run" \
  --enable-ml --enable-openssl --enable-kernel-libipsec --disable-stroke --disable-scepclient --disable-charon-cmd \
  --disable-defaultplugins-check >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
make install >"$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; exit 1; }
mkdir -p "$prefix/run"  # each charon binds its own directory over it
[[ -f $prefix/lib/ipsec/plugins/libstrongswan-ml.so ]] || { echo "build-strongswan6: no ml plugin" >&2; exit 1; }
touch "$prefix/.built"
echo "$prefix"
