"""The tunnel interfaces of route-based children (``interface = "ipsec0"``): an XFRM
interface (its if_id) or a VTI (its keys are the SAs' and policies' marks), created,
brought up and removed over rtnetlink (pike.kernel.route_socket).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pike.board.netns import call_in_netns
from pike.kernel import rtnetlink as rt
from pike.kernel.netlink import Message
from pike.kernel.route_socket import RouteSocket

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


def _data(link: TunnelLink) -> list[tuple[str, Any]]:
    """IFLA_INFO_DATA of ``link``'s kind."""
    if link.if_id:
        return [("IFLA_XFRM_IF_ID", link.if_id)]
    # vti and vti6 share the attributes (IFLA_VTI_*)
    return [
        ("IFLA_VTI_LOCAL", link.local),
        ("IFLA_VTI_REMOTE", link.remote),
        ("IFLA_VTI_IKEY", link.ikey),
        ("IFLA_VTI_OKEY", link.okey),
    ]


def _matches(found: Message, link: TunnelLink) -> bool:
    """Whether an existing interface already is ``link`` (kind and endpoints/if_id)."""
    kind, data = rt.link_info(found)
    if kind != link.kind or data is None:
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

    def run() -> bool:
        with RouteSocket() as rtnl:
            found = rtnl.link(name=link.name)
            made = False
            if found is not None and not _matches(found, link):
                rtnl.del_link(found["index"])
                found = None
            if found is None:
                rtnl.add_link(rt.new_link(link.name, link.kind, _data(link)))
                found = rtnl.link(name=link.name)
                made = True
            if found is None:
                raise LinkError(f"{link.describe()}: gone right after it was made")
            rtnl.set_up(found["index"])
            return made

    try:
        made = call_in_netns(netns, run)
    except LinkError:
        raise
    except Exception as exc:  # NetlinkError, OSError: say which interface
        raise LinkError(f"{link.describe()}: {exc}") from exc
    if made and link.kind.startswith("vti"):
        # Decrypted packets arrive on the VTI: no second policy check there (the SAs'
        # marks already tie them to the tunnel).
        family = "ipv6" if link.kind == "vti6" else "ipv4"
        _sysctl(netns, f"net/{family}/conf/{link.name}/disable_policy", "1")
    return made


def remove(name: str, netns: str | None = None) -> None:
    def run() -> None:
        with RouteSocket() as rtnl:
            found = rtnl.link(name=name)
            if found is not None:
                rtnl.del_link(found["index"])

    try:
        call_in_netns(netns, run)
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
