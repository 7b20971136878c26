"""Standard topologies built on :mod:`.netns` (shared by tests, fixture capture, lab demo)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from .netns import HostNet, Lab, Link, Namespace
from .strongswan import Child, Connection, kernel_has_esp

LEFT_WAN = ("192.0.2.1/24", "2001:db8::1/64")
RIGHT_WAN = ("192.0.2.2/24", "2001:db8::2/64")
LEFT_LAN = "10.1.0.0/24"
RIGHT_LAN = "10.2.0.0/24"


@dataclass
class Gateways:
    """Two gateways ``left``/``right`` joined by veth ``wan0``, each with a LAN host.

    left  wan0 192.0.2.1/24 2001:db8::1/64   LAN 10.1.0.0/24 (gw .1, host ns ``lefthost`` .2)
    right wan0 192.0.2.2/24 2001:db8::2/64   LAN 10.2.0.0/24 (gw .1, host ns ``righthost`` .2)

    Each gateway routes the other LAN via the peer's WAN address (as a default route would
    on a real gateway): the kernel routes before it looks up XFRM policies, and piked, unlike
    charon (routing table 220), installs no routes.  Once a tunnel's policies are in place
    cleartext between the LANs is dropped (fwd/in policies), so traffic that arrives was
    carried by ESP; tests also check the SA counters.
    """

    lab: Lab
    left: Namespace
    right: Namespace
    wan: Link
    left_lan: HostNet
    right_lan: HostNet
    esp_in_kernel: bool

    @property
    def libipsec(self) -> bool:
        """strongSwan must use kernel-libipsec (no ESP in this kernel)."""
        return not self.esp_in_kernel


def make_gateways(la: Lab, *, lan_routes: bool = True) -> Gateways:
    left = la.add_ns("left", forwarding=True)
    right = la.add_ns("right", forwarding=True)
    wan = la.link(left, right, LEFT_WAN, RIGHT_WAN, a_dev="wan0", b_dev="wan0")
    left_lan = la.add_host_net(left, LEFT_LAN, name="lefthost")
    right_lan = la.add_host_net(right, RIGHT_LAN, name="righthost")
    if lan_routes:
        left.ip("route", "add", RIGHT_LAN, "via", wan.b_ip)
        right.ip("route", "add", LEFT_LAN, "via", wan.a_ip)
    return Gateways(la, left, right, wan, left_lan, right_lan, kernel_has_esp(left))


# -- NAT in the middle ---------------------------------------------------------------------

NFT = """
table ip pikenat {
    chain post {
        type nat hook postrouting priority 100; policy accept;
        oifname "pub0" masquerade
    }
}
"""

# u32 "match all" rather than the matchall classifier: pike's UML kernel has cls_u32 and
# act_nat built in but no matchall (and no nf_tables); Debian's has both as modules.
TC_NAT = (
    "qdisc add dev pub0 clsact",
    "filter add dev pub0 egress protocol ip u32 match u32 0 0 "
    "action nat egress 192.168.1.2/32 192.0.2.1",
    "filter add dev pub0 ingress protocol ip u32 match u32 0 0 "
    "action nat ingress 192.0.2.1/32 192.168.1.2",
)


def tc_nat(nat: Namespace, public: str) -> None:
    """Stateless NAT of 192.168.1.2 to ``public`` on pub0 (replacing any earlier one)."""
    nat.run(["tc", "qdisc", "del", "dev", "pub0", "clsact"], check=False)
    for cmd in TC_NAT:
        nat.run(["tc", *cmd.replace("192.0.2.1", public).split()])


def make_nat_gateways(
    la: Lab, *, stateless: bool = False, dummy_lans: bool = False
) -> tuple[Gateways, Namespace, str]:
    """``left`` behind a NAT namespace ``nat``; returns the gateways, ``nat``, and how it
    translates.

    left wan0 192.168.1.2/24 -- priv0 .1 [nat] pub0 192.0.2.1/24 -- wan0 192.0.2.2/24 right

    nftables masquerade where the kernel has the nat chain type, else (or ``stateless``)
    tc act_nat of the one private address: addresses change, ports stay. Skips the test
    when neither works.
    """
    left = la.add_ns("left", forwarding=True)
    nat = la.add_ns("nat", forwarding=True)
    right = la.add_ns("right", forwarding=True)
    la.link(left, nat, "192.168.1.2/24", "192.168.1.1/24", a_dev="wan0", b_dev="priv0")
    wan = la.link(nat, right, "192.0.2.1/24", "192.0.2.2/24", a_dev="pub0", b_dev="wan0")
    if os.environ.get("PIKE_IN_GUEST"):  # modules of the UML kernel (never on the host)
        mods = ["nfnetlink", "nf_tables", "nft_masq", "sch_ingress", "cls_u32", "act_nat"]
        subprocess.run(["modprobe", "-a", *mods], capture_output=True, check=False)
    how = "nftables masquerade"
    done = nat.run(["nft", "-f", "-"], input="" if stateless else NFT, check=False)
    if stateless:  # the mapping change test moves the public address
        done = subprocess.CompletedProcess([], 1, "", "stateless NAT asked for")
    if done.returncode != 0:
        how = "tc act_nat (no nat chain type in this kernel)"
        for cmd in TC_NAT:
            tc = nat.run(["tc", *cmd.split()], check=False)
            if tc.returncode != 0:
                pytest.skip(f"no NAT: nft: {done.stderr.strip()}; tc: {tc.stderr.strip()}")
    left.ip("route", "add", "default", "via", "192.168.1.1")
    left_lan = la.add_host_net(left, LEFT_LAN, name="lefthost", dummy=dummy_lans)
    right_lan = la.add_host_net(right, RIGHT_LAN, name="righthost", dummy=dummy_lans)
    right.ip("route", "add", LEFT_LAN, "via", "192.0.2.1")
    gw = Gateways(la, left, right, wan, left_lan, right_lan, kernel_has_esp(left))
    return gw, nat, how


BRANCH_ID, HQ_ID = "branch1.example.net", "hq.example.net"


def branch_hq(
    side: str,
    proposals: Sequence[str],
    esp: Sequence[str],
    *,
    local: str | None = None,
    remote: str | None = None,
    **kw: Any,
) -> Connection:
    """IKEv2 connection ``hq`` with child ``lan`` between the gateways above, as ``side``
    (``left``: the branch, 192.0.2.1, 10.1.0.0/24; ``right``: the head office) sees it,
    with FQDN identities; ``kw`` goes to :class:`Connection`."""
    left = side == "left"
    return Connection(
        "hq",
        [local or ("192.0.2.1" if left else "192.0.2.2")],
        [remote or ("192.0.2.2" if left else "192.0.2.1")],
        proposals=tuple(proposals),
        local_id=BRANCH_ID if left else HQ_ID,
        remote_id=HQ_ID if left else BRANCH_ID,
        children=[
            Child(
                "lan",
                [LEFT_LAN if left else RIGHT_LAN],
                [RIGHT_LAN if left else LEFT_LAN],
                tuple(esp),
            )
        ],
        **kw,
    )


def branch_hq_v1(side: str, **kw: Any) -> Connection:
    """The same as an IKEv1 connection (address identities); ``kw`` goes to
    :func:`.strongswan_v1.ikev1_connection`."""
    from .strongswan_v1 import ikev1_connection

    left = side == "left"
    return ikev1_connection(
        "192.0.2.1" if left else "192.0.2.2",
        "192.0.2.2" if left else "192.0.2.1",
        local_ts=LEFT_LAN if left else RIGHT_LAN,
        remote_ts=RIGHT_LAN if left else LEFT_LAN,
        **kw,
    )
