"""Standard topologies built on :mod:`.netns` (shared by tests, fixture capture, lab demo)."""

from __future__ import annotations

from dataclasses import dataclass

from .netns import HostNet, Lab, Link, Namespace
from .strongswan import kernel_has_esp

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
