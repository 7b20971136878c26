"""The tunnel interfaces of route-based children (``interface = "ipsec0"``): an XFRM
interface (its if_id) or a VTI (its keys are the SAs' and policies' marks), created,
brought up and removed over rtnetlink.

pyroute2's IPRoute runs its own asyncio loop, so every call runs on a short thread
(``call_in_netns(..., thread=True)``), as pike.board.offload's lookups do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pike.board.netns import call_in_netns

log = logging.getLogger(__name__)


class LinkError(Exception):
    """The kernel refused to create, change or remove a tunnel interface."""


@dataclass(frozen=True, slots=True)
class TunnelLink:
    """What a tunnel interface must be: ``if_id`` for an XFRM interface, else a VTI
    from ``local`` to ``remote`` with keys ``ikey``/``okey``."""

    name: str
    if_id: int = 0
    local: str = ""
    remote: str = ""
    ikey: int = 0
    okey: int = 0

    @property
    def kind(self) -> str:
        if self.if_id:
            return "xfrm"
        return "vti6" if ":" in self.remote else "vti"

    def describe(self) -> str:
        if self.if_id:
            return f"XFRM interface {self.name} if_id {self.if_id}"
        return f"VTI {self.name} {self.local} -> {self.remote} keys {self.ikey}/{self.okey}"


def _attrs(link: TunnelLink) -> dict[str, Any]:
    if link.if_id:
        return {"kind": "xfrm", "xfrm_if_id": link.if_id}
    # vti and vti6 share the attribute names (IFLA_VTI_*)
    return {
        "kind": link.kind,
        "vti_local": link.local,
        "vti_remote": link.remote,
        "vti_ikey": link.ikey,
        "vti_okey": link.okey,
    }


def _matches(found: Any, link: TunnelLink) -> bool:
    """Whether an existing interface already is ``link`` (kind and endpoints/if_id)."""
    info = found.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != link.kind:
        return False
    data = info.get_attr("IFLA_INFO_DATA")
    if data is None:
        return False
    if link.if_id:
        return bool(data.get_attr("IFLA_XFRM_IF_ID") == link.if_id)
    p = "IFLA_VTI_"
    return bool(
        data.get_attr(p + "LOCAL") == link.local
        and data.get_attr(p + "REMOTE") == link.remote
        and data.get_attr(p + "IKEY") == link.ikey
        and data.get_attr(p + "OKEY") == link.okey
    )


def ensure(link: TunnelLink, netns: str | None = None) -> bool:
    """Create ``link`` (or re-create it when an interface of that name differs, e.g. a
    VTI towards the hub that was active before) and bring it up; True if it was made."""
    from pyroute2 import IPRoute  # deferred: only route-based children need it

    def run() -> bool:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=link.name)
            made = False
            if idx and not _matches(ipr.get_links(idx[0])[0], link):
                ipr.link("del", index=idx[0])
                idx = []
            if not idx:
                ipr.link("add", ifname=link.name, **_attrs(link))
                idx = ipr.link_lookup(ifname=link.name)
                made = True
            ipr.link("set", index=idx[0], state="up")
            return made

    try:
        made = call_in_netns(netns, run, thread=True)
    except Exception as exc:  # NetlinkError, OSError: say which interface
        raise LinkError(f"{link.describe()}: {exc}") from exc
    if made and link.kind.startswith("vti"):
        # Decrypted packets arrive on the VTI: no second policy check there (the SAs'
        # marks already tie them to the tunnel).
        family = "ipv6" if link.kind == "vti6" else "ipv4"
        _sysctl(netns, f"net/{family}/conf/{link.name}/disable_policy", "1")
    return made


def remove(name: str, netns: str | None = None) -> None:
    from pyroute2 import IPRoute

    def run() -> None:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if idx:
                ipr.link("del", index=idx[0])

    try:
        call_in_netns(netns, run, thread=True)
    except Exception as exc:
        raise LinkError(f"remove {name}: {exc}") from exc


def _sysctl(netns: str | None, key: str, value: str) -> None:
    def run() -> None:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)

    try:
        call_in_netns(netns, run, thread=True)
    except OSError as exc:
        log.warning("sysctl %s=%s: %s", key.replace("/", "."), value, exc)
