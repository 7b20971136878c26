"""ESP offload to the NIC: what an interface offers, and what each SA will ask for.

``hw_offload`` per child, strongSwan's semantics:

- ``no``: software ESP.
- ``crypto``: the NIC does the cipher (XFRM_DEV_OFFLOAD_CRYPTO); refused clearly when the
  interface does not have the ethtool feature ``esp-hw-offload`` switched on.
- ``packet``: the NIC does ESP framing too (XFRM_OFFLOAD_PACKET, Linux 6.2+); same check,
  and refused with the reason on an older kernel (6.1 answers the flag with EINVAL
  "Unrecognized flags in offload request").
  ethtool has no separate feature for it: only the kernel's answer to the SA tells.
- ``auto``: packet (6.2+), then crypto, then software, per SA; never fails.

The device of an SA is the interface its packets use, as strongSwan's kernel-netlink
plugin picks it: an outbound SA's is the interface the route to the peer leaves through;
an inbound SA's is the interface that holds its local (destination) address, where the
peer's ESP arrives (strongSwan takes the local address's interface for both directions).

The kernel backend calls ``plan_offload_for()`` once per SA and ``apply_offload()`` with a
function that installs the SA with a given offload mode; the mode that worked is what
``pikectl list-sas`` shows.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pike.board.ethtool import ESP_HW_OFFLOAD, ESP_TX_CSUM_HW_OFFLOAD, EthtoolError, read_features
from pike.board.netns import call_in_netns

log = logging.getLogger("pike.board.offload")

Requested = Literal["no", "crypto", "packet", "auto"]
Mode = Literal["crypto", "packet"]
InUse = Literal["no", "crypto", "packet"]


class OffloadError(Exception):
    """An explicit ``hw_offload = crypto|packet`` that this interface cannot do."""


@dataclass(frozen=True, slots=True)
class NicOffload:
    """The ESP offload features of one interface."""

    ifname: str
    esp: bool  # esp-hw-offload is on
    esp_available: bool  # ... or could be switched on (ethtool -K IF esp-hw-offload on)
    esp_tx_csum: bool  # esp-tx-csum-hw-offload is on
    error: str = ""  # why the features could not be read ("" when they were)

    def describe(self) -> str:
        if self.error:
            return f"{self.ifname}: features unreadable ({self.error})"
        if self.esp:
            extra = ", esp-tx-csum-hw-offload on" if self.esp_tx_csum else ""
            return f"{self.ifname}: esp-hw-offload on{extra}"
        if self.esp_available:
            return (
                f"{self.ifname}: esp-hw-offload is off "
                f"(switch it on with: ethtool -K {self.ifname} esp-hw-offload on)"
            )
        return f"{self.ifname}: no ESP offload (ethtool feature esp-hw-offload unavailable)"


@dataclass(frozen=True, slots=True)
class OffloadPlan:
    """What to try for one SA, in order, and whether software is an acceptable end."""

    requested: Requested
    dev: str | None
    attempts: tuple[Mode, ...]
    software_fallback: bool
    reason: str


def probe_nic(ifname: str, netns: str | None = None) -> NicOffload:
    """Read the ESP offload features of ``ifname``; never raises (errors are described)."""
    try:
        feats = read_features(ifname, netns)
    except (EthtoolError, OSError) as exc:
        reason = "no such interface" if exc.errno == errno.ENODEV else exc.strerror or str(exc)
        return NicOffload(ifname, False, False, False, reason)
    esp = feats.get(ESP_HW_OFFLOAD)
    csum = feats.get(ESP_TX_CSUM_HW_OFFLOAD)
    return NicOffload(
        ifname,
        esp=bool(esp and esp.active),
        esp_available=bool(esp and (esp.active or esp.available)),
        esp_tx_csum=bool(csum and csum.active),
    )


PACKET_OFFLOAD_SINCE = (6, 2)  # XFRM_OFFLOAD_PACKET (struct xfrm_user_offload.flags)


def packet_offload_unsupported(release: str | None = None) -> str | None:
    """Why this kernel cannot do packet offload, or None when it can (Linux 6.2+). By
    version, so the reason is clear (6.1's own answer is a bare "Unrecognized flags")."""
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if m and (int(m[1]), int(m[2])) >= PACKET_OFFLOAD_SINCE:
        return None
    return (
        f"packet offload needs Linux 6.2 or later (XFRM_OFFLOAD_PACKET); this kernel is {release}"
    )


def local_interface(addr: str, netns: str | None = None) -> str | None:
    """The interface that holds ``addr`` (where ESP for it arrives), or None."""
    from pike.kernel.route_socket import RouteSocket  # deferred: only offload needs it

    def lookup() -> str | None:
        with RouteSocket() as rtnl:
            for a in rtnl.addresses():
                if addr in (a.get_attr("IFA_ADDRESS"), a.get_attr("IFA_LOCAL")):
                    return rtnl.link_name(a["index"])
        return None

    return call_in_netns(netns, lookup)


def outgoing_interface(dst: str, netns: str | None = None) -> str | None:
    """The interface the kernel routes ``dst`` through (``ip route get``), or None."""
    from pike.kernel.netlink import NetlinkError
    from pike.kernel.route_socket import RouteSocket

    def lookup() -> str | None:
        with RouteSocket() as rtnl:
            try:
                routes = rtnl.route_get(dst)
            except (NetlinkError, ValueError) as exc:  # unreachable, bad address
                log.debug("route get %s: %s", dst, exc)
                return None
            for r in routes:
                oif = r.get_attr("RTA_OIF")
                if oif is not None:
                    return rtnl.link_name(oif)
        return None

    return call_in_netns(netns, lookup)


def plan_offload_for(
    requested: Requested,
    peer: str,
    netns: str | None = None,
    *,
    inbound_local: str | None = None,
) -> OffloadPlan:
    """``plan_offload`` for one SA with ``peer``: finds its interface (outbound: the route
    to ``peer``; inbound: the one holding ``inbound_local``, the SA's destination, else
    the route to ``peer``), reads its features."""
    if requested == "no":
        return plan_offload("no", None)
    dev = local_interface(inbound_local, netns) if inbound_local else None
    dev = dev or outgoing_interface(peer, netns)
    nic = probe_nic(dev, netns) if dev else None
    return plan_offload(requested, nic, packet_offload_unsupported())


def plan_offload(
    requested: Requested, nic: NicOffload | None, no_packet: str | None = None
) -> OffloadPlan:
    """The offload attempts for one SA using ``nic`` (None: unknown interface);
    ``no_packet`` says why the kernel cannot do packet offload (None: it can).

    Raises OffloadError for ``crypto``/``packet`` when the interface cannot offload ESP,
    and for ``packet`` on a kernel without it.
    """
    dev = nic.ifname if nic else None
    if requested == "no":
        return OffloadPlan(requested, None, (), True, "hw_offload = no")
    if nic is None or not nic.esp:
        why = nic.describe() if nic else "the outgoing interface is unknown"
        if requested == "auto":
            return OffloadPlan(requested, dev, (), True, f"software ESP: {why}")
        raise OffloadError(f"hw_offload = {requested} is impossible: {why}")
    if requested == "auto":
        # strongSwan's order: full packet offload, then crypto only, then software.
        if no_packet:
            return OffloadPlan(requested, dev, ("crypto",), True, f"{nic.describe()}; {no_packet}")
        return OffloadPlan(requested, dev, ("packet", "crypto"), True, nic.describe())
    if requested == "packet" and no_packet:
        raise OffloadError(f"hw_offload = packet is impossible: {no_packet}")
    return OffloadPlan(requested, dev, (requested,), False, nic.describe())


def apply_offload(
    plan: OffloadPlan,
    install: Callable[[Mode | None], None],
    retry_on: tuple[type[Exception], ...] = (OSError,),
) -> InUse:
    """Install one SA: ``install(mode)`` for each attempt, then ``install(None)`` (software)
    if the plan allows it. Returns the offload in use; an explicit mode the kernel refuses
    raises OffloadError chained to the kernel's error."""
    last: Exception | None = None
    for mode in plan.attempts:
        try:
            install(mode)
        except retry_on as exc:
            log.info("%s offload on %s refused: %s", mode, plan.dev, exc)
            last = exc
            continue
        return mode
    if not plan.software_fallback:
        raise OffloadError(
            f"hw_offload = {plan.requested}: the kernel refused it on {plan.dev}: {last}"
        ) from last
    install(None)
    return "no"
