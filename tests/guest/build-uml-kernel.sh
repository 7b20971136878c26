#!/bin/bash
# Builds a User-Mode-Linux kernel that has what Debian's `user-mode-linux` package lacks for pike's tests:
# XFRM interfaces (CONFIG_XFRM_INTERFACE, route-based tunnels with if_id) and netdevsim (CONFIG_NETDEVSIM, a
# simulated NIC whose driver accepts ESP crypto offload: `ip xfrm state ... offload dev eth0 dir out` is taken
# and shows in /sys/kernel/debug/netdevsim/netdevsimN/ports/0/ipsec). Source: Debian's linux-source-6.1;
# config: Debian's UML config plus the options below, with what the tests load built in (no modules needed).
#   build-uml-kernel.sh [OUT_DIR]    -> OUT_DIR/linux (stripped, ~12 MB) and OUT_DIR/config
# OUT_DIR defaults to /var/cache/pike-uml, where tests/guest/uml.py looks when ../shared/uml/linux is absent.
# About 11-20 minutes on 2 cores; needs root for apt-get. The result boots like linux.uml (same command line).
# Kept in step with ../shared/uml/build-uml-kernel.sh; adds nf_tables masquerade and tc matchall, which the
# NAT tests use where a kernel has them (tests/interop/topology.py falls back to tc u32 + act_nat).
set -euo pipefail
OUT=${1:-/var/cache/pike-uml}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /var/tmp/uml-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends build-essential flex bison bc libelf-dev user-mode-linux xz-utils >/dev/null
cd "$WORK"
apt-get download linux-source-6.1 >/dev/null
dpkg-deb --fsys-tarfile linux-source-6.1_*.deb | tar -xO --wildcards './usr/src/linux-source-6.1.tar.xz' | tar -xJ
cd linux-source-6.1
zcat /usr/share/doc/user-mode-linux/config.gz > .config
./scripts/config --disable UML_NET_VDE --disable UML_NET_PCAP
for o in PSAMPLE IPV6 XFRM_INTERFACE NETDEVSIM DEBUG_FS NET_DEVLINK OVERLAY_FS VETH DUMMY TUN \
         XFRM_USER XFRM_ALGO INET_ESP INET_ESP_OFFLOAD INET6_ESP INET6_ESP_OFFLOAD INET_XFRM_TUNNEL INET_TUNNEL \
         INET6_XFRM_TUNNEL INET6_TUNNEL NET_IPVTI IPV6_VTI CRYPTO_GCM CRYPTO_CCM CRYPTO_CHACHA20POLY1305 \
         CRYPTO_CHACHA20 CRYPTO_POLY1305 CRYPTO_AES CRYPTO_SHA1 CRYPTO_SHA256 CRYPTO_SHA512 CRYPTO_AUTHENC \
         CRYPTO_ECHAINIV CRYPTO_SEQIV CRYPTO_CBC CRYPTO_CTR CRYPTO_HMAC CRYPTO_GHASH CRYPTO_GF128MUL CRYPTO_NULL \
         NETFILTER_XTABLES NF_CONNTRACK NF_NAT IP_NF_IPTABLES IP_NF_FILTER IP_NF_NAT IP_NF_TARGET_MASQUERADE \
         NET_SCH_NETEM NET_SCH_INGRESS NET_CLS_U32 NET_CLS_ACT NET_ACT_NAT \
         NF_TABLES NF_TABLES_IPV4 NFT_NAT NFT_MASQ NET_CLS_MATCHALL; do
  ./scripts/config --set-val "$o" y
done
make ARCH=um olddefconfig >/dev/null
for o in XFRM_INTERFACE NETDEVSIM INET_ESP XFRM_USER; do
  grep -q "^CONFIG_$o=y" .config || { echo "build-uml-kernel: CONFIG_$o did not stay built in" >&2; exit 1; }
done
make ARCH=um -j"$(nproc)" linux >/dev/null
strip -o "$OUT/linux" linux
cp .config "$OUT/config"
echo "built $OUT/linux ($(uname -m), $(du -h "$OUT/linux" | cut -f1)) from $(ls "$WORK"/linux-source-6.1_*.deb | sed 's/.*linux-source-6.1_//; s/_all.deb//')"
