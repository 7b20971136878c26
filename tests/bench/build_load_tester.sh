#!/bin/bash
# Build strongSwan with its load-tester plugin (Debian 12 ships it without) into PREFIX,
# from Debian's own source package, without touching the system's apt configuration
# (../shared/recipes/load-generator.md). Needs: dpkg-dev build-essential pkg-config
# libgmp-dev libssl-dev. About 3-5 minutes on 2 cores.
#   tests/bench/build_load_tester.sh PREFIX [WORKDIR]
set -euo pipefail
prefix=${1:?usage: build_load_tester.sh PREFIX [WORKDIR]}
work=${2:-$prefix.build}
mkdir -p "$work"/apt/{lists/partial,cache/archives/partial,parts} "$work/src"
# deb-src of the system's Debian sources (the security suite's pool may lag: left out)
python3 - "$work/apt/parts/src.sources" <<'PY'
import sys
text = open("/etc/apt/sources.list.d/debian.sources").read().replace("Types: deb\n", "Types: deb-src\n")
blocks = [b for b in text.split("\n\n") if "debian-security" not in b]
open(sys.argv[1], "w").write("\n\n".join(blocks) + "\n")
PY
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update
cd "$work/src"
apt-get "${apt_opts[@]}" source --download-only strongswan
rm -rf sw && dpkg-source -x strongswan_*.dsc sw
cd sw
# Debian's patches leave *.am newer than the generated files: make would want automake
touch aclocal.m4; sleep 1; touch configure config.h.in; find . -name Makefile.in -exec touch {} +
./configure --prefix="$prefix" --sysconfdir="$prefix/etc" --with-piddir="$prefix/run" \
  --enable-load-tester --enable-openssl --disable-stroke --disable-scepclient \
  --disable-charon-cmd --disable-defaultplugins-check
make -j2
make install
echo "load-tester built in $prefix"
