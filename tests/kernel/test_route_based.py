"""Route-based children's kernel side (issue 14, item 2): the tunnel interfaces piked
creates (pike.kernel.tunnel_links: an XFRM interface with an if_id, a VTI with keys) and
SAs/policies with XFRM marks (XFRMA_MARK) carrying what the routing table sends into a VTI;
marked policies and SAs are found again to be deleted (flush, stale removal).

    pkk<pid>-va  10.1.0.1 (lo), vti0 --- 192.0.2.1 [veth] 192.0.2.2 --- vti0, 10.2.0.1 (lo)  -vb

Kernel tier (VTI is in Debian's linux.uml and pike's; XFRM interfaces only in pike's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_address

import pytest

from kernel.conftest import require_pike_kernel
from kernel.kernel_netns import PREFIX, Namespaces, ip, ip_batch, netns_exec, xfrm_dump
from kernel.tunnel_ends import ANY, A, B, Ends, addressed, gcm_sa, joined, random_key, xfrm_ends
from pike.kernel import tunnel_links
from pike.kernel.tunnel_links import LinkError, TunnelLink
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import REQID_BASE, KernelCaps, Mark, PolicySpec, SaSpec
from pike.policy.ts import IPAddress, TrafficSelector

pytestmark = pytest.mark.kernel

KEY_AB, KEY_BA = 42, 43  # a's okey = b's ikey and the reverse


@pytest.fixture
def ends(namespaces: Namespaces, esp_kernel: KernelCaps) -> Iterator[Ends]:
    a, b, va, vb = joined(namespaces, "v")
    for ns, dev, me in ((a, va, 1), (b, vb, 2)):
        addressed(ns, dev, me)
    with xfrm_ends(a, b) as ends:
        yield ends


KEYS = {KEY_AB: random_key(), KEY_BA: random_key()}  # both ends' copies of an SA


def marked_sa(src: IPAddress, dst: IPAddress, spi: int, mark: Mark, reqid: int = 1) -> SaSpec:
    return gcm_sa(src, dst, spi, KEYS[mark[0]], reqid=reqid, mark=mark)


def install(
    k: XfrmKernel, me: IPAddress, peer: IPAddress, okey: int, ikey: int, reqid: int = 1
) -> None:
    full = 0xFFFFFFFF
    k.add_sa(marked_sa(me, peer, 0xC2000000 + okey, (okey, full), reqid))
    k.add_sa(replace(marked_sa(peer, me, 0xC2000000 + ikey, (ikey, full), reqid), inbound=True))
    out = PolicySpec(ANY, ANY, "out", reqid, "tunnel", me, peer, mark=(okey, full))
    k.add_policy(out)
    for direction in ("in", "fwd"):
        k.add_policy(
            replace(out, direction=direction, tmpl_src=peer, tmpl_dst=me, mark=(ikey, full))
        )


def vti(ns: str, me: IPAddress, peer: IPAddress, ikey: int, okey: int) -> TunnelLink:
    link = TunnelLink("vti0", local=str(me), remote=str(peer), ikey=ikey, okey=okey)
    assert tunnel_links.ensure(link, ns)  # made
    assert not tunnel_links.ensure(link, ns)  # already there as it should be: kept
    return link


def test_vti_made_by_piked_with_marked_sas_carries_routed_traffic(ends: Ends) -> None:
    vti(ends.a, A, B, KEY_BA, KEY_AB)
    vti(ends.b, B, A, KEY_AB, KEY_BA)
    for ns, me, peer in ((ends.a, 1, 2), (ends.b, 2, 1)):
        ip("-n", ns, "route", "add", f"10.{peer}.0.0/24", "dev", "vti0", "src", f"10.{me}.0.1")
    assert (
        "disable_policy = 1"
        in netns_exec(ends.a, "sysctl", "net.ipv4.conf.vti0.disable_policy").stdout
    )
    install(ends.ka, A, B, KEY_AB, KEY_BA)
    install(ends.kb, B, A, KEY_BA, KEY_AB)
    assert "mark 0x2a/0xffffffff" in ip("-n", ends.a, "xfrm", "state")
    assert "mark 0x2a/0xffffffff" in ip("-n", ends.a, "xfrm", "policy")
    netns_exec(ends.a, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.1")
    assert ends.ka.query_sa(B, 0xC2000000 + KEY_AB).packets >= 3  # found by its mark
    assert ends.kb.query_sa(A, 0xC2000000 + KEY_BA).packets >= 3  # the answers came back
    # The catch-all policies hold marked packets only: traffic routed past vti0 stays clear.
    before = ends.ka.query_sa(B, 0xC2000000 + KEY_AB).packets
    netns_exec(ends.a, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", str(B))
    assert ends.ka.query_sa(B, 0xC2000000 + KEY_AB).packets == before
    tunnel_links.remove("vti0", ends.a)
    assert ip("-n", ends.a, "link", "show", "vti0", check=False) == ""


def test_vti_towards_another_hub_is_made_again(ends: Ends) -> None:
    vti(ends.a, A, B, 1, 2)
    moved = TunnelLink("vti0", local=str(A), remote="192.0.2.9", ikey=1, okey=2)
    assert tunnel_links.ensure(moved, ends.a)  # the hub changed: re-created
    assert "remote 192.0.2.9" in ip("-n", ends.a, "-d", "link", "show", "vti0")
    v6 = TunnelLink("vti6x", local="2001:db8::1", remote="2001:db8::2", ikey=3, okey=4)
    assert tunnel_links.ensure(v6, ends.a) and not tunnel_links.ensure(v6, ends.a)
    shown = ip("-n", ends.a, "-d", "link", "show", "vti6x")
    assert "vti6 remote 2001:db8::2 local 2001:db8::1" in shown, shown


def test_marked_leftovers_of_a_killed_run_are_removed(ends: Ends) -> None:
    install(ends.ka, A, B, KEY_AB, KEY_BA, reqid=REQID_BASE + 5)
    with XfrmKernel(ends.a) as fresh:  # a new run: what ka installed is stale to it
        assert fresh.remove_stale() == (2, 3)  # found by their marks
    assert xfrm_dump(ends.a).strip() == ""
    ends.ka.flush_installed()  # already gone: not an error


def test_xfrm_interface_made_by_piked(ends: Ends) -> None:
    link = TunnelLink("ipsec9", if_id=9)
    try:
        made = tunnel_links.ensure(link, ends.a)
    except LinkError as exc:
        require_pike_kernel(False, f"XFRM interfaces ({exc})")
        raise
    assert made and not tunnel_links.ensure(link, ends.a)
    shown = ip("-n", ends.a, "-d", "link", "show", "ipsec9")
    assert "if_id 0x9" in shown and "UP" in shown.split("\n")[0], shown
    with pytest.raises(LinkError, match="ipsec9"):
        tunnel_links.remove("ipsec9", "pkk-no-such-netns")


def test_ipv6_over_a_vti6_made_by_piked(ends: Ends) -> None:
    """A child to an IPv6 peer: piked's VTI is a vti6 (outer IPv6), the marked SAs and
    catch-all ::/0 policies carry the IPv6 LAN traffic the routing table sends into it."""
    a6, b6 = ip_address("2001:db8:14::1"), ip_address("2001:db8:14::2")
    any6 = TrafficSelector.from_cidr("::/0")
    full = 0xFFFFFFFF
    sides = (
        (ends.a, ends.ka, PREFIX + "vva", 1, a6, b6, KEY_AB, KEY_BA),
        (ends.b, ends.kb, PREFIX + "vvb", 2, b6, a6, KEY_BA, KEY_AB),
    )
    for ns, k, dev, n, me, peer, okey, ikey in sides:
        ip_batch(
            ns,
            f"addr add {me}/64 dev {dev} nodad",
            f"addr add fd0{n}::1/128 dev lo",
        )
        link = TunnelLink("vti6p", local=str(me), remote=str(peer), ikey=ikey, okey=okey)
        assert link.kind == "vti6" and tunnel_links.ensure(link, ns)
        ip("-n", ns, "-6", "route", "add", f"fd0{3 - n}::/64", "dev", "vti6p", "src", f"fd0{n}::1")
        k.add_sa(marked_sa(me, peer, 0xC3000000 + okey, (okey, full)))
        k.add_sa(replace(marked_sa(peer, me, 0xC3000000 + ikey, (ikey, full)), inbound=True))
        out = PolicySpec(any6, any6, "out", 1, "tunnel", me, peer, mark=(okey, full))
        k.add_policy(out)
        back = replace(out, tmpl_src=peer, tmpl_dst=me, mark=(ikey, full))
        for direction in ("in", "fwd"):
            k.add_policy(replace(back, direction=direction))
    netns_exec(ends.a, "ping", "-6", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "fd02::1")
    assert ends.ka.query_sa(b6, 0xC3000000 + KEY_AB).packets >= 3
    assert ends.kb.query_sa(a6, 0xC3000000 + KEY_BA).packets >= 3  # the answers came back
    for ns in (ends.a, ends.b):
        tunnel_links.remove("vti6p", ns)
