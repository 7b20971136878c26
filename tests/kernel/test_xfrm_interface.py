"""Route-based ESP through XFRM interfaces (issue 19, item 4): pike's XFRM backend installs
SAs and policies with an ``if_id`` (XFRMA_IF_ID); only what the routing table sends into the
XFRM interface ``ipsec0`` is encrypted, whatever the (catch-all) policy selectors say.

Kernel tier, and only pike's UML kernel has XFRM interfaces (Debian's linux.uml skips
loudly).

    pkk<pid>-xa  10.1.0.1 (lo), ipsec0 --- 192.0.2.1 [veth] 192.0.2.2 --- ipsec0, 10.2.0.1 (lo)  -xb
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest

from kernel.conftest import require_pike_kernel
from kernel.kernel_netns import Namespaces, ip, netns_exec
from kernel.tunnel_ends import ANY, A, B, Ends, addressed, gcm_sa, joined, random_key, xfrm_ends
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import KernelCaps, PolicySpec, SaSpec
from pike.policy.ts import IPAddress

pytestmark = pytest.mark.kernel

IF_ID = 7


def xfrm_link(ns: str, dev: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "-n", ns, "link", "add", "ipsec0", "type", "xfrm", "dev", dev, "if_id", str(IF_ID)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def ends(namespaces: Namespaces, esp_kernel: KernelCaps) -> Iterator[Ends]:
    a, b, va, vb = joined(namespaces, "x")
    made = xfrm_link(a, va)
    require_pike_kernel(made.returncode == 0, f"XFRM interfaces ({made.stderr.strip()})")
    assert xfrm_link(b, vb).returncode == 0
    for ns, dev, me, peer in ((a, va, 1, 2), (b, vb, 2, 1)):
        addressed(
            ns,
            dev,
            me,
            "link set ipsec0 up",
            # the route, not a selector, puts the LAN behind the tunnel
            f"route add 10.{peer}.0.0/24 dev ipsec0 src 10.{me}.0.1",
        )
    with xfrm_ends(a, b) as ends:
        yield ends


def if_id_sa(src: IPAddress, dst: IPAddress, spi: int) -> SaSpec:
    return gcm_sa(src, dst, spi, random_key(), reqid=IF_ID, if_id=IF_ID)


def install(k: XfrmKernel, me: IPAddress, peer: IPAddress, out: SaSpec, inb: SaSpec) -> None:
    k.add_sa(out)
    k.add_sa(replace(inb, inbound=True))
    pol = PolicySpec(ANY, ANY, "out", IF_ID, "tunnel", me, peer, if_id=IF_ID)
    k.add_policy(pol)
    for direction in ("in", "fwd"):
        k.add_policy(replace(pol, direction=direction, tmpl_src=peer, tmpl_dst=me))


def link_packets(ns: str) -> tuple[int, int]:
    """RX and TX packets of ipsec0."""
    text = ip("-n", ns, "-s", "link", "show", "ipsec0")
    numbers = re.findall(r"^\s+(\d+)\s+(\d+)\s", text, re.M)  # bytes packets ... per RX/TX
    return int(numbers[0][1]), int(numbers[1][1])


def test_sa_and_policy_with_if_id_carry_routed_traffic(ends: Ends) -> None:
    ab, ba = if_id_sa(A, B, 0xC1000001), if_id_sa(B, A, 0xC1000002)
    install(ends.ka, A, B, ab, ba)
    install(ends.kb, B, A, ba, ab)
    assert f"if_id {IF_ID:#x}" in ip("-n", ends.a, "xfrm", "state")
    assert f"if_id {IF_ID:#x}" in ip("-n", ends.a, "xfrm", "policy")
    netns_exec(ends.a, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.1")
    assert ends.ka.query_sa(B, ab.spi).packets >= 3
    assert ends.kb.query_sa(A, ba.spi).packets >= 3  # the answers came back through it
    rx, tx = link_packets(ends.a)
    assert tx >= 3 and rx >= 3, (rx, tx)
    # The catch-all policies belong to ipsec0 only: traffic routed past it stays clear.
    before = ends.ka.query_sa(B, ab.spi).packets
    netns_exec(ends.a, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", str(B))
    assert ends.ka.query_sa(B, ab.spi).packets == before
