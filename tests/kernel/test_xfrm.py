"""ESP through XfrmKernel: two namespaces joined by veth, traffic must cross the tunnel.

Kernel tier: needs a kernel with ESP (skips on this host; runs in the UML guest via
tests/guest/uml-run -- .venv/bin/pytest -m kernel tests/kernel).

    pkk<pid>-a  10.1.0.1 (lo) --- 192.0.2.1 [veth] 192.0.2.2 --- 10.2.0.1 (lo)  pkk<pid>-b
"""

from __future__ import annotations

import errno
import os
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import ip_address

import pytest

from kernel.kernel_netns import PREFIX, Namespaces, ip, ip_batch, netns_exec, xfrm_dump
from pike.board.netns import call_in_netns
from pike.crypto.ids import EncrId, IntegId
from pike.daemon.dataplane import DataPlane
from pike.kernel.interface import KernelError
from pike.kernel.xfrm import SPI_MAX, SPI_MIN, XfrmKernel
from pike.policy.ipsec import KernelCaps, Lifetime, Mode, PolicySpec, SaSpec, UdpEncap
from pike.policy.ts import IPAddress, TrafficSelector
from pike.sa.actions import MigrateChildSa

pytestmark = pytest.mark.kernel

A = ip_address("192.0.2.1")
B = ip_address("192.0.2.2")
NET_A = TrafficSelector.from_cidr("10.1.0.0/24")
NET_B = TrafficSelector.from_cidr("10.2.0.0/24")
A6 = ip_address("fd00::1")
B6 = ip_address("fd00::2")
NET6_A = TrafficSelector.from_cidr("fd01::/64")
NET6_B = TrafficSelector.from_cidr("fd02::/64")
NO_LIMITS = Lifetime()
UDP_ENCAP = 100  # linux/udp.h socket option
UDP_ENCAP_ESPINUDP = 2


@dataclass
class Pair:
    a: str
    b: str
    ka: XfrmKernel
    kb: XfrmKernel


def side(dev: str, me: int, peer: int) -> list[str]:
    """ip commands for one end: outer addresses on the veth, inner ones on lo, routes."""
    return [
        f"addr add 192.0.2.{me}/24 dev {dev}",
        f"addr add fd00::{me}/64 dev {dev} nodad",
        f"link set {dev} up",
        f"addr add 10.{me}.0.1/32 dev lo",
        f"addr add fd0{me}::1/128 dev lo",
        f"route add 10.{peer}.0.0/24 via 192.0.2.{peer} src 10.{me}.0.1",
        f"route add fd0{peer}::/64 via fd00::{peer} src fd0{me}::1",
    ]


@pytest.fixture(scope="module")
def topology(namespaces: Namespaces, esp_kernel: KernelCaps) -> Iterator[Pair]:
    a, b = namespaces.create("a"), namespaces.create("b")
    va, vb = PREFIX + "va", PREFIX + "vb"
    ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
    ip_batch(a, *side(va, 1, 2))
    ip_batch(b, *side(vb, 2, 1))
    with XfrmKernel(a) as ka, XfrmKernel(b) as kb:
        yield Pair(a, b, ka, kb)


@pytest.fixture
def pair(topology: Pair) -> Iterator[Pair]:
    yield topology
    # flush_installed must leave both namespaces as it found them
    topology.ka.flush_installed()
    topology.kb.flush_installed()
    for ns in (topology.a, topology.b):
        assert xfrm_dump(ns).strip() == "", ns


@dataclass(frozen=True)
class Suite:
    encr: int
    encr_key: int  # bytes, salt included for AEAD
    integ: int = IntegId.NONE
    integ_key: int = 0
    esn: bool = False


SUITES = {
    "aes128gcm16": Suite(EncrId.AES_GCM_16, 16 + 4),
    "aes256gcm16": Suite(EncrId.AES_GCM_16, 32 + 4),
    "chacha20poly1305": Suite(EncrId.CHACHA20_POLY1305, 32 + 4),
    "aes128-sha256": Suite(EncrId.AES_CBC, 16, IntegId.HMAC_SHA2_256_128, 32),
    "aes256-sha512": Suite(EncrId.AES_CBC, 32, IntegId.HMAC_SHA2_512_256, 64),
    "aes128-sha1": Suite(EncrId.AES_CBC, 16, IntegId.HMAC_SHA1_96, 20),  # RFC 8221: MUST-
    "aes128gcm16-esn": Suite(EncrId.AES_GCM_16, 16 + 4, esn=True),
}


def sa(src: IPAddress, dst: IPAddress, spi: int, suite: Suite, mode: Mode, **kw: object) -> SaSpec:
    return SaSpec(
        src=src,
        dst=dst,
        spi=spi,
        reqid=1,
        mode=mode,
        encr_id=suite.encr,
        encr_key=os.urandom(suite.encr_key),
        # bits without the 4-byte salt of the AEAD ciphers
        encr_key_length=(suite.encr_key - (4 if suite.integ == IntegId.NONE else 0)) * 8,
        integ_id=suite.integ,
        integ_key=os.urandom(suite.integ_key),
        esn=suite.esn,
        replay_window=64 if suite.esn else 32,
        **kw,  # type: ignore[arg-type]
    )


def policies(
    local: TrafficSelector,
    remote: TrafficSelector,
    me: IPAddress,
    peer: IPAddress,
    mode: Mode,
) -> list[PolicySpec]:
    out = PolicySpec(local, remote, "out", 1, mode, me, peer)
    inbound = PolicySpec(remote, local, "in", 1, mode, peer, me)
    result = [out, inbound]
    if mode == "tunnel":
        result.append(replace(inbound, direction="fwd"))
    return result


def install(
    p: Pair,
    suite: Suite,
    mode: Mode,
    encap: UdpEncap | None = None,
    outer: tuple[IPAddress, IPAddress] = (A, B),
    nets: tuple[TrafficSelector, TrafficSelector] = (NET_A, NET_B),
    lifetime: Lifetime = NO_LIMITS,
) -> tuple[int, int]:
    """SAs both ways (inbound SPIs allocated by the receiver, as IKE does) and policies."""
    a, b = outer
    spi_ab = p.kb.get_spi(a, b, 1)
    spi_ba = p.ka.get_spi(b, a, 1)
    host_a, host_b = TrafficSelector.host(a), TrafficSelector.host(b)
    ab = sa(a, b, spi_ab, suite, mode, encap=encap, lifetime=lifetime)
    ba = sa(b, a, spi_ba, suite, mode, encap=encap, lifetime=lifetime)
    if mode == "transport":
        ab = replace(ab, src_ts=host_a, dst_ts=host_b)
        ba = replace(ba, src_ts=host_b, dst_ts=host_a)
    p.ka.add_sa(ab)
    p.kb.add_sa(replace(ab, inbound=True))  # completes the larval SA (UPDSA)
    p.kb.add_sa(ba)
    p.ka.add_sa(replace(ba, inbound=True))
    local_a, local_b = nets if mode == "tunnel" else (host_a, host_b)
    for pol in policies(local_a, local_b, a, b, mode):
        p.ka.add_policy(pol)
    for pol in policies(local_b, local_a, b, a, mode):
        p.kb.add_policy(pol)
    return spi_ab, spi_ba


def ping(ns: str, dst: str, src: str | None = None, count: int = 3) -> None:
    args = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2"]
    if src:
        args += ["-I", src]
    netns_exec(ns, *args, dst)


def assert_counted(
    p: Pair, spi_ab: int, spi_ba: int, packets: int, outer: tuple[IPAddress, IPAddress] = (A, B)
) -> None:
    a, b = outer
    for kernel, dst, spi in (
        (p.ka, b, spi_ab),  # A's outbound
        (p.kb, b, spi_ab),  # B's inbound
        (p.kb, a, spi_ba),
        (p.ka, a, spi_ba),
    ):
        c = kernel.query_sa(dst, spi)
        assert c.packets >= packets and c.bytes > 0, f"SA {spi:08x}: {c}"
        assert c.last_use is not None


@pytest.mark.parametrize("name", sorted(SUITES))
def test_tunnel_ping(pair: Pair, name: str) -> None:
    spi_ab, spi_ba = install(pair, SUITES[name], "tunnel")
    assert SPI_MIN <= spi_ab <= SPI_MAX and SPI_MIN <= spi_ba <= SPI_MAX
    before = pair.ka.query_sa(B, spi_ab)
    assert before.packets == 0 and before.last_use is None
    ping(pair.a, "10.2.0.1", src="10.1.0.1")
    assert_counted(pair, spi_ab, spi_ba, 3)
    state = ip("-n", pair.a, "xfrm", "state")
    assert "mode tunnel" in state and f"spi 0x{spi_ab:08x}" in state


def test_transport_ping(pair: Pair) -> None:
    lifetime = Lifetime(soft_seconds=100, hard_seconds=200, hard_packets=1000)
    spi_ab, spi_ba = install(pair, SUITES["aes128gcm16"], "transport", lifetime=lifetime)
    ping(pair.a, str(B))
    assert_counted(pair, spi_ab, spi_ba, 3)
    state = ip("-n", pair.b, "-s", "xfrm", "state")
    assert "mode transport" in state and "sel src 192.0.2.1/32 dst 192.0.2.2/32" in state
    assert "soft (INF)(bytes)" in state and "hard 1000(packets)" in state
    assert "expire add: soft 100(sec), hard 200(sec)" in state


def encap_socket(ns: str) -> socket.socket:
    """What an IKE daemon holds on port 4500: the kernel decapsulates ESP-in-UDP there."""
    s = call_in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.setsockopt(socket.IPPROTO_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
    s.bind(("0.0.0.0", 4500))
    return s


def test_udp_encapsulation(pair: Pair) -> None:
    sockets = [encap_socket(pair.a), encap_socket(pair.b)]
    try:
        spi_ab, spi_ba = install(pair, SUITES["aes256gcm16"], "tunnel", encap=UdpEncap())
        assert "encap type espinudp sport 4500 dport 4500" in ip("-n", pair.a, "xfrm", "state")
        ping(pair.a, "10.2.0.1", src="10.1.0.1")
        assert_counted(pair, spi_ab, spi_ba, 3)
    finally:
        for s in sockets:
            s.close()


def test_inbound_sa_installed_ahead_is_updated_in_place(pair: Pair) -> None:
    """Reauthentication puts our inbound SA in before IKE_AUTH is answered, with a short
    lifetime; the CHILD_SA's install then updates it in place (UPDSA: the kernel keeps the
    state, its keys and counters, and takes the new lifetimes), or adds it anew when it
    went meanwhile."""
    suite = SUITES["aes128gcm16"]
    spi_ab, spi_ba = pair.kb.get_spi(A, B, 1), pair.ka.get_spi(B, A, 1)
    ab, ba = sa(A, B, spi_ab, suite, "tunnel"), sa(B, A, spi_ba, suite, "tunnel")
    pair.kb.add_sa(replace(ab, inbound=True, lifetime=Lifetime(hard_seconds=195)))
    assert "expire add: soft 0(sec), hard 195(sec)" in ip("-n", pair.b, "-s", "xfrm", "state")
    pair.ka.add_sa(ab)
    pair.kb.add_sa(ba)
    pair.ka.add_sa(replace(ba, inbound=True))
    for pol in policies(NET_A, NET_B, A, B, "tunnel"):
        pair.ka.add_policy(pol)
    for pol in policies(NET_B, NET_A, B, A, "tunnel"):
        pair.kb.add_policy(pol)
    ping(pair.a, "10.2.0.1", src="10.1.0.1")  # the SA installed ahead decrypts
    before = pair.kb.query_sa(B, spi_ab).packets
    assert before >= 3
    full = Lifetime(soft_seconds=3000, hard_seconds=3600)
    pair.kb.add_sa(replace(ab, inbound=True, lifetime=full))
    state = ip("-n", pair.b, "-s", "xfrm", "state")
    assert "expire add: soft 3000(sec), hard 3600(sec)" in state
    assert "hard 195(sec)" not in state
    assert pair.kb.query_sa(B, spi_ab).packets == before  # the same state, counters kept
    ping(pair.a, "10.2.0.1", src="10.1.0.1")
    assert pair.kb.query_sa(B, spi_ab).packets >= before + 3
    # gone meanwhile (its short lifetime ran out): the install adds it anew
    ip("-n", pair.b, "xfrm", "state", "delete", "src", str(A), "dst", str(B), "proto", "esp",
       "spi", f"0x{spi_ab:08x}")  # fmt: skip
    pair.kb.add_sa(replace(ab, inbound=True, lifetime=full))
    assert pair.kb.query_sa(B, spi_ab).packets == 0
    ping(pair.a, "10.2.0.1", src="10.1.0.1")
    assert pair.kb.query_sa(B, spi_ab).packets >= 3


def test_get_spi_then_delete(pair: Pair) -> None:
    spis = {pair.kb.get_spi(A, B, 9) for _ in range(3)}
    assert len(spis) == 3 and all(SPI_MIN <= s <= SPI_MAX for s in spis)
    spi = spis.pop()
    pair.kb.del_sa(B, spi)
    assert f"0x{spi:08x}" not in ip("-n", pair.b, "xfrm", "state")
    # the other two are larval SAs left for flush_installed (checked by the fixture)


def test_delete_sa(pair: Pair) -> None:
    spi_ab, _ = install(pair, SUITES["aes128gcm16"], "tunnel")
    pair.ka.del_sa(B, spi_ab)
    with pytest.raises(KernelError, match="ESRCH"):
        pair.ka.query_sa(B, spi_ab)
    pair.ka.del_sa(B, spi_ab)  # already gone: fine
    # without its outbound SA the policy holds traffic back: nothing leaks in clear
    done = netns_exec(
        pair.a, "ping", "-c", "1", "-W", "1", "-I", "10.1.0.1", "10.2.0.1", check=False
    )
    assert done.returncode != 0


def test_flush_installed(pair: Pair) -> None:
    install(pair, SUITES["chacha20poly1305"], "tunnel")
    pair.kb.get_spi(A, B, 5)  # a larval one too
    for k, ns in ((pair.ka, pair.a), (pair.kb, pair.b)):
        k.flush_installed()
        assert xfrm_dump(ns).strip() == ""


@pytest.mark.parametrize("outer", ["v4", "v6"])
def test_tunnel_ipv6_inner(pair: Pair, outer: str) -> None:
    """IPv6 traffic through an IPv4 tunnel (the SA takes any inner family), and over IPv6."""
    addrs = (A, B) if outer == "v4" else (A6, B6)
    nets = (NET6_A, NET6_B)
    spi_ab, spi_ba = install(pair, SUITES["aes128gcm16"], "tunnel", outer=addrs, nets=nets)
    ping(pair.a, "fd02::1", src="fd01::1")
    assert_counted(pair, spi_ab, spi_ba, 3, outer=addrs)


def test_migrate_moves_a_tunnel_in_place_keeping_spis_and_sequence_numbers(pair: Pair) -> None:
    """MOBIKE (XFRM_MSG_MIGRATE): the SAs and policy templates move to a second pair of
    outer addresses; the SPIs stay and the sequence numbers go on (the peer's replay
    window would drop a restarted sequence)."""
    a2, b2 = ip_address("198.51.100.1"), ip_address("198.51.100.2")
    ip("-n", pair.a, "addr", "add", "198.51.100.1/24", "dev", PREFIX + "va")
    ip("-n", pair.b, "addr", "add", "198.51.100.2/24", "dev", PREFIX + "vb")
    try:
        spi_ab, spi_ba = install(pair, SUITES["aes128gcm16"], "tunnel")
        ping(pair.a, "10.2.0.1", src="10.1.0.1")
        for kernel, ours, peer, spi_in, spi_out, local, remote in (
            (pair.ka, (A, a2), (B, b2), spi_ba, spi_ab, NET_A, NET_B),
            (pair.kb, (B, b2), (A, a2), spi_ab, spi_ba, NET_B, NET_A),
        ):
            suite = SUITES["aes128gcm16"]
            old_in = sa(peer[0], ours[0], spi_in, suite, "tunnel", inbound=True)
            old_out = sa(ours[0], peer[0], spi_out, suite, "tunnel")
            new_in = replace(old_in, src=peer[1], dst=ours[1])
            new_out = replace(old_out, src=ours[1], dst=peer[1])
            kernel.migrate(
                tuple(policies(local, remote, ours[0], peer[0], "tunnel")),
                tuple(policies(local, remote, ours[1], peer[1], "tunnel")),
                (old_in, old_out),
                (new_in, new_out),
            )
        state = ip("-n", pair.a, "-s", "xfrm", "state")
        assert f"src 198.51.100.1 dst 198.51.100.2\n\tproto esp spi 0x{spi_ab:08x}" in state
        assert "192.0.2." not in state, state
        assert "tmpl src 198.51.100.1 dst 198.51.100.2" in ip("-n", pair.a, "xfrm", "policy")
        ping(pair.a, "10.2.0.1", src="10.1.0.1")
        assert pair.ka.query_sa(b2, spi_ab).packets >= 3  # counted at its new address
        # A's outbound SA: 3 echo requests before the move and 3 after, one sequence
        after = ip("-n", pair.a, "-s", "xfrm", "state").split(f"spi 0x{spi_ab:08x}")[1]
        assert "oseq 0x6," in after.split("\nsrc ")[0], after
    finally:
        ip("-n", pair.a, "addr", "del", "198.51.100.1/24", "dev", PREFIX + "va")
        ip("-n", pair.b, "addr", "del", "198.51.100.2/24", "dev", PREFIX + "vb")


class NoEngine:
    """The data plane's engine: the kernel must take everything (nothing to report)."""

    def acquire(self, reqid: int, now: float) -> None:
        raise AssertionError(f"ACQUIRE {reqid}")

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        raise AssertionError(f"expired {spi:08x}")

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        raise AssertionError(f"install failed: {reason}")


def test_migrate_fallback_removes_and_adds_going_on_from_the_sequence(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MOBIKE on a kernel without XFRM migrate (ENOPROTOOPT): piked's data plane removes
    A's CHILD_SA and adds it again at the new addresses, same SPIs and keys, its outbound
    SA going on from the sequence number it had. B migrates in place (as a strongSwan hub
    would), so its replay window still remembers 40 packets: a restarted sequence from A
    would be dropped as replays."""
    a2, b2 = ip_address("198.51.100.1"), ip_address("198.51.100.2")
    ip("-n", pair.a, "addr", "add", "198.51.100.1/24", "dev", PREFIX + "va")
    ip("-n", pair.b, "addr", "add", "198.51.100.2/24", "dev", PREFIX + "vb")
    try:
        suite = SUITES["aes128gcm16"]
        spi_ab, spi_ba = pair.kb.get_spi(A, B, 1), pair.ka.get_spi(B, A, 1)
        ab = sa(A, B, spi_ab, suite, "tunnel")
        ba = sa(B, A, spi_ba, suite, "tunnel")
        for kernel, spec in ((pair.ka, ab), (pair.kb, replace(ab, inbound=True))):
            kernel.add_sa(spec)
        for kernel, spec in ((pair.kb, ba), (pair.ka, replace(ba, inbound=True))):
            kernel.add_sa(spec)
        pol_a = tuple(policies(NET_A, NET_B, A, B, "tunnel"))
        pol_b = tuple(policies(NET_B, NET_A, B, A, "tunnel"))
        for kernel, pols in ((pair.ka, pol_a), (pair.kb, pol_b)):
            for pol in pols:
                kernel.add_policy(pol)
        netns_exec(
            pair.a, "ping", "-n", "-q", "-c", "40", "-i", "0.01", "-I", "10.1.0.1", "10.2.0.1"
        )
        assert pair.ka.query_sa(B, spi_ab).oseq == 40

        def refuse(*args: object) -> None:
            raise KernelError("migrate", errno.ENOPROTOOPT)

        monkeypatch.setattr(pair.ka, "migrate", refuse)
        plane = DataPlane(
            pair.ka, NoEngine, lambda: 0.0, lambda: None, lambda: None, Counter(), os.urandom
        )
        in_a, out_a = replace(ba, inbound=True), ab
        new_in, new_out = replace(in_a, src=b2, dst=a2), replace(out_a, src=a2, dst=b2)
        new_pol_a = tuple(policies(NET_A, NET_B, a2, b2, "tunnel"))
        assert plane.do(
            MigrateChildSa("gw", "net", 1, in_a, out_a, pol_a, new_in, new_out, new_pol_a)
        )
        pair.kb.migrate(
            pol_b,
            tuple(policies(NET_B, NET_A, b2, a2, "tunnel")),
            (replace(ab, inbound=True), ba),
            (replace(ab, inbound=True, src=a2, dst=b2), replace(ba, src=b2, dst=a2)),
        )
        state = ip("-n", pair.a, "-s", "xfrm", "state")
        assert "192.0.2." not in state, state  # removed at the old addresses
        ping(pair.a, "10.2.0.1", src="10.1.0.1")
        assert pair.ka.query_sa(b2, spi_ab).oseq == 43  # one sequence, not restarted
        assert pair.kb.query_sa(b2, spi_ab).packets >= 43
    finally:
        ip("-n", pair.a, "addr", "del", "198.51.100.1/24", "dev", PREFIX + "va")
        ip("-n", pair.b, "addr", "del", "198.51.100.2/24", "dev", PREFIX + "vb")
