"""XFRM ACQUIRE / EXPIRE events: message layouts, parsing, and the kernel sending them.

- layouts and parsing: no kernel needed;
- ACQUIRE from a trap policy: any kernel with XFRM (root; this host too, and in the UML
  guest, where the ``kernel`` marker selects it);
- EXPIRE from an SA with small packet limits: needs ESP (kernel tier, UML guest).
"""

from __future__ import annotations

import select
import struct
import subprocess
import time
from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import pytest

from kernel.kernel_netns import PREFIX, Namespaces, ip, ip_batch, netns_exec
from kernel.test_xfrm import NET_A, NET_B, SUITES, A, B, Pair, install, ping, side
from pike.kernel import xfrm_events
from pike.kernel import xfrm_messages as xm
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.netlink import Fields, Message, struct_size
from pike.kernel.xfrm import XfrmKernel
from pike.kernel.xfrm_selectors import Selector
from pike.policy.ipsec import KernelCaps, Lifetime, PolicySpec


def _offset(fields: Fields, name: str) -> int:
    total = 0
    for field, fmt in fields:
        if field == name:
            return total
        total += struct.calcsize(fmt)
    raise KeyError(name)


def test_event_struct_layouts() -> None:
    acq = xm.xfrm_user_acquire.fields
    assert struct_size(acq) == 280  # sizeof(struct xfrm_user_acquire) on x86_64/arm64
    assert _offset(acq, "saddr") == 24
    assert _offset(acq, "sel_daddr") == 40
    assert _offset(acq, "pol_sel_daddr") == 96
    assert _offset(acq, "aalgos") == 264
    exp = xm.xfrm_user_expire.fields
    assert struct_size(exp) == 232
    assert _offset(exp, "hard") == 224
    assert xfrm_events.GROUPS == 0b11


def _nlmsg(cls: type[Message], msg_type: int, values: dict[str, object]) -> bytes:
    return cls(values).encode(msg_type)


def test_parse_expire_and_acquire() -> None:
    expire = _nlmsg(
        xm.xfrm_user_expire,
        xm.XFRM_MSG_EXPIRE,
        {"id_daddr": B.packed, "id_spi": 0xC0FFEE01, "family": 2, "reqid": 9, "hard": 1},
    )
    tmpl = xm.encode_tmpls([{"id_proto": 50, "reqid": 7, "family": 2, "mode": 1}])
    acquire = _nlmsg(
        xm.xfrm_user_acquire,
        xm.XFRM_MSG_ACQUIRE,
        {
            "id_daddr": B.packed,
            "saddr": A.packed,
            "sel_saddr": ip_address("10.1.0.5").packed,
            "sel_daddr": ip_address("10.2.0.9").packed,
            "sel_prefixlen_s": 32,
            "sel_prefixlen_d": 32,
            "sel_family": 2,
            "sel_proto": 1,
            "pol_sel_family": 2,
            "attrs": [("XFRMA_TMPL", tmpl)],
        },
    )
    # one datagram may carry several messages, and unknown types are skipped
    other = _nlmsg(xm.xfrm_usersa_info, xm.XFRM_MSG_NEWSA, {})
    events = xfrm_events.parse(expire + other + acquire)
    assert events == [
        Expire(0xC0FFEE01, B, hard=True, reqid=9),
        Acquire(
            7,
            A,
            B,
            Selector(ip_network("10.1.0.5/32"), ip_network("10.2.0.9/32"), proto=1),
        ),
    ]
    assert xfrm_events.parse(expire[:100]) == []  # truncated: nothing, no exception


def _wait_events(kernel: XfrmKernel, want: int, timeout: float = 5.0) -> list[KernelEvent]:
    fd = kernel.events_fileno()
    assert fd is not None
    out: list[KernelEvent] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            out += kernel.read_events()
    return out


@pytest.mark.kernel
def test_trap_policy_sends_acquire(namespaces: Namespaces) -> None:
    """An ESP policy without an SA: the first packet makes the kernel send ACQUIRE with
    the policy's reqid; a policy of another reqid (not ours) is filtered out."""
    a, b = namespaces.create("acqa"), namespaces.create("acqb")
    va, vb = PREFIX + "qa", PREFIX + "qb"
    ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
    for ns, dev, me, peer in ((a, va, 1, 2), (b, vb, 2, 1)):  # IPv4 only: no DAD waits
        ip_batch(
            ns,
            f"addr add 192.0.2.{me}/24 dev {dev}",
            f"link set {dev} up",
            f"addr add 10.{me}.0.1/32 dev lo",
            f"route add 10.{peer}.0.0/24 via 192.0.2.{peer} src 10.{me}.0.1",
        )
    with XfrmKernel(a) as ka:
        assert ka.events_fileno() is not None
        trap = PolicySpec(NET_A, NET_B, "out", 7, "tunnel", A, B, trap=True)
        ka.add_policy(trap)
        # a policy this instance did not install: its ACQUIRE is not ours
        foreign = "src 10.1.0.1/32 dst 192.0.2.2/32 dir out tmpl src 192.0.2.1 dst 192.0.2.2"
        ip("-n", a, "xfrm", "policy", "add", *foreign.split(), *["proto", "esp", "reqid", "99"])
        t0 = time.monotonic()
        for dst in ("192.0.2.2", "10.2.0.1"):
            subprocess.run(
                ["ip", "netns", "exec", a, "ping", "-c1", "-W1", "-I", "10.1.0.1", dst],
                capture_output=True,
            )
        events = _wait_events(ka, 1)
        elapsed = time.monotonic() - t0
        ka.flush_installed()
    assert len(events) == 1, events
    (ev,) = events
    assert isinstance(ev, Acquire)
    assert (ev.reqid, ev.src, ev.dst) == (7, A, B)
    assert ev.selector.src == ip_network("10.1.0.1/32")
    assert ev.selector.dst == ip_network("10.2.0.1/32")
    print(f"\nACQUIRE after two pings: {elapsed:.2f}s")


@pytest.fixture
def esp_pair(namespaces: Namespaces, esp_kernel: KernelCaps) -> Iterator[Pair]:
    a, b = namespaces.create("expa"), namespaces.create("expb")
    va, vb = PREFIX + "ea", PREFIX + "eb"
    ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
    ip_batch(a, *side(va, 1, 2))
    ip_batch(b, *side(vb, 2, 1))
    with XfrmKernel(a) as ka, XfrmKernel(b) as kb:
        yield Pair(a, b, ka, kb)
        ka.flush_installed()
        kb.flush_installed()


@pytest.mark.kernel
def test_packet_limits_send_soft_then_hard_expire(esp_pair: Pair) -> None:
    """Soft after 3 packets, hard after 6: events for our SAs; the hard-expired one is gone."""
    p = esp_pair
    assert p.ka.events_fileno() is not None
    limits = Lifetime(soft_packets=3, hard_packets=6)
    spi_ab, spi_ba = install(p, SUITES["aes128gcm16"], "tunnel", lifetime=limits)
    t0 = time.monotonic()
    ping(p.a, "10.2.0.1", src="10.1.0.1", count=3)
    soft = _wait_events(p.ka, 2)
    t_soft = time.monotonic() - t0
    # the SAs die on the way (ping fails only when no reply at all came back)
    pings = ("ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", "-I", "10.1.0.1")
    netns_exec(p.a, *pings, "10.2.0.1", check=False)
    hard = _wait_events(p.ka, 2)
    got = {(e.spi, e.hard) for e in soft + hard if isinstance(e, Expire)}
    # A's outbound (spi_ab) counts echo requests, A's inbound (spi_ba) the replies.
    assert {(spi_ab, False), (spi_ba, False)} <= got, soft
    # The 7th echo request finds A's outbound SA at its hard limit: gone. (Only 6 replies
    # ever come back, so A's inbound SA stays one short of its own hard limit.)
    assert (spi_ab, True) in got, hard
    # With the outbound SA gone the policy asks for a new one: an ACQUIRE for reqid 1.
    assert any(isinstance(e, Acquire) and e.reqid == 1 for e in hard), hard
    assert all(e.reqid == 1 for e in soft + hard)
    state = ip("-n", p.a, "xfrm", "state")
    assert f"spi 0x{spi_ab:08x}" not in state, state
    print(f"\nsoft EXPIRE {t_soft:.2f}s after the first ping")


class _FakeEvents:
    def __init__(self, events: list[KernelEvent]) -> None:
        self.events = events

    def fileno(self) -> int:
        return -1

    def read(self) -> list[KernelEvent]:
        return self.events

    def close(self) -> None:
        pass


def test_read_events_keeps_only_ours(namespaces: Namespaces) -> None:
    """EXPIREs of SAs this instance installed (not reserved-only or foreign ones; a hard
    one forgets the SA), ACQUIREs for reqids of policies it installed."""
    sel = Selector(ip_network("10.1.0.1/32"), ip_network("10.2.0.1/32"))
    with XfrmKernel(namespaces.create("filt")) as k:
        k._sas.add((B, 0xC0000001))
        k._sas.add((A, 0xC0000002))
        k._larval.add((A, 0xC0000002))
        k._policies[(sel, xm.XFRM_POLICY_OUT, 0, (0, 0))] = 7
        k._events = _FakeEvents(  # type: ignore[assignment]
            [
                Expire(0xC0000001, B, hard=False),
                Expire(0xC0000002, A, hard=False),
                Expire(0xC0000003, B, hard=True),
                Acquire(7, A, B, sel),
                Acquire(8, A, B, sel),
                Expire(0xC0000001, B, hard=True),
            ]
        )
        assert k.read_events() == [
            Expire(0xC0000001, B, hard=False),
            Acquire(7, A, B, sel),
            Expire(0xC0000001, B, hard=True),
        ]
        assert (B, 0xC0000001) not in k._sas
        k._events = None
