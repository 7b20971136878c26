"""XfrmKernel against the running kernel, inside private namespaces: what works without ESP
(policies, SPI allocation, probing). ESP traffic is in test_xfrm.py (kernel tier)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from kernel.kernel_netns import Namespaces, ip
from pike.kernel.interface import KernelError
from pike.kernel.xfrm import SPI_MAX, SPI_MIN, XfrmKernel
from pike.policy.ipsec import KernelCaps, PolicySpec
from pike.policy.ts import TrafficSelector

A = ip_address("192.0.2.1")
B = ip_address("192.0.2.2")


@pytest.fixture
def ns(namespaces: Namespaces, request: pytest.FixtureRequest) -> str:
    return namespaces.create(f"h{len(namespaces.names)}")


@pytest.fixture
def kernel(ns: str) -> Iterator[XfrmKernel]:
    with XfrmKernel(ns) as k:
        yield k
        k.flush_installed()
    assert ip("-n", ns, "xfrm", "policy").strip() == ""
    assert ip("-n", ns, "xfrm", "state").strip() == ""


def policy(
    direction: str = "out", src: str = "10.1.0.0/24", dst: str = "10.2.0.0/16"
) -> PolicySpec:
    return PolicySpec(
        src_ts=TrafficSelector.from_cidr(src),
        dst_ts=TrafficSelector.from_cidr(dst),
        direction=direction,  # type: ignore[arg-type]
        reqid=42,
        mode="tunnel",
        tmpl_src=A,
        tmpl_dst=B,
    )


def test_probe_reports_what_is_missing(kernel_caps: KernelCaps) -> None:
    print(f"kernel caps: {kernel_caps}")
    if kernel_caps.esp:
        assert all("ESP" not in m for m in kernel_caps.missing)
    else:
        assert kernel_caps.missing, "no ESP must come with a reason"


def test_probe_leaves_nothing_behind(kernel: XfrmKernel, ns: str) -> None:
    kernel.probe()
    assert ip("-n", ns, "xfrm", "state").strip() == ""


def test_missing_namespace_is_an_error() -> None:
    with pytest.raises(KernelError, match="does not exist"):
        XfrmKernel("pkk-no-such-namespace")


def test_policy_add_update_delete(kernel: XfrmKernel, ns: str) -> None:
    p = policy()
    kernel.add_policy(p)
    text = ip("-n", ns, "xfrm", "policy")
    assert "src 10.1.0.0/24 dst 10.2.0.0/16" in text and "dir out" in text
    assert "tmpl src 192.0.2.1 dst 192.0.2.2" in text and "reqid 42 mode tunnel" in text
    prio = p.priority or 3000 - (24 + 16) * 4
    assert f"priority {prio}" in text
    # adding again updates in place (UPDPOLICY), no EEXIST
    kernel.add_policy(p)
    assert ip("-n", ns, "xfrm", "policy").count("dir out") == 1
    kernel.del_policy(p)
    assert ip("-n", ns, "xfrm", "policy").strip() == ""
    kernel.del_policy(p)  # already gone: not an error


def test_in_fwd_and_ranges(kernel: XfrmKernel, ns: str) -> None:
    kernel.add_policy(policy("in", "10.2.0.0/16", "10.1.0.0/24"))
    kernel.add_policy(policy("fwd", "10.2.0.0/16", "10.1.0.0/24"))
    odd = PolicySpec(
        src_ts=TrafficSelector(ip_address("10.1.0.1"), ip_address("10.1.0.6"), 6, 80, 80),
        dst_ts=TrafficSelector.from_cidr("10.2.0.0/16"),
        direction="out",
        reqid=43,
        mode="transport",
        tmpl_src=A,
        tmpl_dst=B,
    )
    kernel.add_policy(odd)  # a range that is four prefixes -> four policies
    text = ip("-n", ns, "xfrm", "policy")
    assert "dir in" in text and "dir fwd" in text
    assert text.count("dir out") == 4 and "proto tcp sport 80" in text
    assert "mode transport" in text


def test_block_policy(kernel: XfrmKernel, ns: str) -> None:
    p = PolicySpec(
        src_ts=TrafficSelector.from_cidr("10.9.0.0/16"),
        dst_ts=TrafficSelector.from_cidr("10.8.0.0/16"),
        direction="out",
        reqid=0,
        mode="tunnel",
        tmpl_src=A,
        tmpl_dst=B,
        action="block",
        priority=100,
    )
    kernel.add_policy(p)
    text = ip("-n", ns, "xfrm", "policy")
    assert "action block" in text and "priority 100" in text and "tmpl" not in text


def test_get_spi_larval_sa(kernel: XfrmKernel, ns: str) -> None:
    # ALLOCSPI needs no ESP support: the kernel only reserves the SPI in an acquire state.
    try:
        spi = kernel.get_spi(B, A, 7)
    except KernelError as e:
        pytest.skip(f"ALLOCSPI refused here: {e}")
    assert SPI_MIN <= spi <= SPI_MAX
    assert f"spi 0x{spi:08x} reqid 7" in ip("-n", ns, "xfrm", "state")
    other = kernel.get_spi(B, A, 8)
    assert other != spi
    kernel.del_sa(A, spi)
    assert f"0x{spi:08x}" not in ip("-n", ns, "xfrm", "state")
    kernel.del_sa(A, spi)  # already gone: not an error
    # `other` stays for flush_installed (checked by the fixture)


def test_query_missing_sa(kernel: XfrmKernel) -> None:
    with pytest.raises(KernelError, match="ESRCH"):
        kernel.query_sa(A, 0xC0FFEE01)


def test_closed_kernel_refuses(ns: str) -> None:
    k = XfrmKernel(ns)
    k.close()
    with pytest.raises(KernelError, match="closed"):
        k.add_policy(policy())
    k.close()


def test_usable_inside_a_running_event_loop(ns: str) -> None:
    """piked calls the kernel from inside its asyncio loop: plain blocking requests."""

    async def use() -> None:
        with XfrmKernel(ns) as k:
            k.add_policy(policy())
            k.probe()
            k.flush_installed()

    asyncio.run(use())
    assert ip("-n", ns, "xfrm", "policy").strip() == ""


def test_a_new_run_removes_what_a_killed_one_left(ns: str) -> None:
    """Issue 13: SIGKILL skips flush_installed. The next run's remove_stale takes out
    the SAs and policies with a pike reqid it did not install, and nothing else."""
    from pike.policy.ipsec import REQID_BASE

    old = XfrmKernel(ns)
    stale = replace_reqid(policy(), REQID_BASE + 1)
    old.add_policy(stale)
    old.add_policy(replace_reqid(policy("in", "10.2.0.0/16", "10.1.0.0/24"), 42))  # not ours
    old_spi = old.get_spi(A, B, REQID_BASE + 1)  # a larval SA carries its reqid
    foreign_spi = old.get_spi(A, B, 42)
    old.close()  # killed: no flush
    with XfrmKernel(ns) as new:
        mine = replace_reqid(policy("out", "10.3.0.0/24", "10.4.0.0/24"), REQID_BASE + 1)
        new.add_policy(mine)
        new_spi = new.get_spi(A, B, REQID_BASE + 1)
        assert new.remove_stale() == (1, 1)
        assert new.remove_stale() == (0, 0)
        states = ip("-n", ns, "xfrm", "state")
        assert f"spi 0x{old_spi:08x}" not in states
        assert f"spi 0x{foreign_spi:08x}" in states and f"spi 0x{new_spi:08x}" in states
        pols = ip("-n", ns, "xfrm", "policy")
        assert "10.1.0.0/24 dst 10.2.0.0/16" not in pols  # the stale one
        assert "10.2.0.0/16 dst 10.1.0.0/24" in pols and "10.3.0.0/24 dst 10.4.0.0/24" in pols
        new.flush_installed()
    ip("-n", ns, "xfrm", "state", "flush")
    ip("-n", ns, "xfrm", "policy", "flush")


def replace_reqid(p: PolicySpec, reqid: int) -> PolicySpec:
    from dataclasses import replace

    return replace(p, reqid=reqid)
