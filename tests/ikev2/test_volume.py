"""Volume limits (rekey_/life_/rand_ bytes and packets) reach the kernel's SA lifetime, so
the kernel's soft EXPIRE starts a CHILD_SA rekey — two engines, fixed randomness."""

from __future__ import annotations

from pike.policy.ipsec import Lifetime
from pike.sa.actions import InstallChildSa

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
LIMITS = 'rekey_packets = 50\nlife_packets = 1000\nrand_packets = 0\nrekey_bytes = "1M"'


def _pair(extra_child: str):  # type: ignore[no-untyped-def]
    a, b = make_pair(
        conf(*A, extra_child=extra_child),
        conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'),
    )
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    return a, b


def _installs(node) -> list[InstallChildSa]:  # type: ignore[no-untyped-def]
    return [e for e in node.events if isinstance(e, InstallChildSa)]


def test_install_carries_soft_and_hard_volume_limits() -> None:
    a, b = _pair(LIMITS)
    (ins,) = _installs(a)
    lt = ins.inbound.lifetime
    assert ins.outbound.lifetime == lt  # both directions count against the same limits
    # rekey_bytes 1M: life 1M + 10 %, soft 1M minus up to rand_bytes (its default 10 %)
    assert (1 << 20) - 104857 <= lt.soft_bytes <= 1 << 20 and lt.hard_bytes == 1153433
    assert (lt.soft_packets, lt.hard_packets) == (50, 1000)  # rand_packets = 0: exact
    assert (lt.soft_seconds, lt.hard_seconds) == (3600, 3960)  # time limits unchanged
    # the peer configured none: XFRM_INF in the kernel (0 here)
    (ins_b,) = _installs(b)
    assert ins_b.inbound.lifetime == Lifetime(soft_seconds=3600, hard_seconds=3960)


def test_soft_limit_jitter_and_rekey_on_soft_expire() -> None:
    a, b = _pair("rekey_packets = 1000\nrand_packets = 999")
    (first,) = _installs(a)
    soft = first.inbound.lifetime.soft_packets
    assert 1 <= soft <= 1000 and first.inbound.lifetime.hard_packets == 1100
    # the kernel's soft EXPIRE (packet limit) of the inbound SA: rekey, make before break
    a.engine.child_expired(first.inbound.spi, False, 10.0)
    transfer(a, b, 10.0)
    second = _installs(a)[-1]
    assert second.inbound.spi != first.inbound.spi
    (child,) = a.sa().children
    assert child.spi_in == second.inbound.spi and child.state == "INSTALLED"
    # a new CHILD_SA draws its own soft limit, under the same hard one
    assert 1 <= second.inbound.lifetime.soft_packets <= 1000
    assert second.inbound.lifetime.hard_packets == 1100
    assert a.engine.ctx.counters.conn("gw").child_rekeys == 1


def test_jitter_spreads_soft_limits() -> None:
    a, b = _pair("rekey_packets = 1000\nrand_packets = 999")
    for now in (5.0, 10.0, 15.0):
        a.engine.rekey("gw", now, "net")
        transfer(a, b, now)
    softs = [i.inbound.lifetime.soft_packets for i in _installs(a)]
    assert len(softs) == 4 and len(set(softs)) >= 2, softs
