"""Routing netlink messages (linux/rtnetlink.h, if_addr.h, if_link.h) on pike.kernel.netlink:
addresses, routes and links, with the request bodies piked sends. Sans I/O; the socket is
``pike.kernel.route_socket``."""

from __future__ import annotations

import socket
from typing import Any

from pike.kernel.netlink import (
    Address,
    Attrs,
    AttrSet,
    CString,
    Message,
    Nested,
    Raw,
    Scalar,
)

NETLINK_ROUTE = 0

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26

# Multicast groups as bind() bit masks (RTMGRP_*).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

IFF_UP = 0x1
IFA_F_TENTATIVE = 0x40

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8

RTA_DST = 1
RTA_SRC = 2
RTA_IIF = 3
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_XFRM_LINK = 1
IFLA_XFRM_IF_ID = 2
IFLA_VTI_LINK = 1
IFLA_VTI_IKEY = 2
IFLA_VTI_OKEY = 3
IFLA_VTI_LOCAL = 4
IFLA_VTI_REMOTE = 5


class ifaddrmsg(Message):
    """struct ifaddrmsg (8 bytes): RTM_NEWADDR (dump replies), RTM_GETADDR."""

    fields = (
        ("family", "B"),
        ("prefixlen", "B"),
        ("flags", "B"),
        ("scope", "B"),
        ("index", "I"),
    )
    nla = AttrSet(
        (
            (IFA_ADDRESS, "IFA_ADDRESS", Address()),
            (IFA_LOCAL, "IFA_LOCAL", Address()),
            (IFA_LABEL, "IFA_LABEL", CString()),
            (IFA_FLAGS, "IFA_FLAGS", Scalar("I")),
        )
    )


class rtmsg(Message):
    """struct rtmsg (12 bytes): RTM_GETROUTE (``ip route get``) and its RTM_NEWROUTE."""

    fields = (
        ("family", "B"),
        ("dst_len", "B"),
        ("src_len", "B"),
        ("tos", "B"),
        ("table", "B"),
        ("proto", "B"),
        ("scope", "B"),
        ("type", "B"),
        ("flags", "I"),
    )
    nla = AttrSet(
        (
            (RTA_DST, "RTA_DST", Address()),
            (RTA_SRC, "RTA_SRC", Address()),
            (RTA_IIF, "RTA_IIF", Scalar("I")),
            (RTA_OIF, "RTA_OIF", Scalar("I")),
            (RTA_GATEWAY, "RTA_GATEWAY", Address()),
            (RTA_PRIORITY, "RTA_PRIORITY", Scalar("I")),
            (RTA_PREFSRC, "RTA_PREFSRC", Address()),
            (RTA_TABLE, "RTA_TABLE", Scalar("I")),
        )
    )


LINKINFO = AttrSet(
    (
        (IFLA_INFO_KIND, "IFLA_INFO_KIND", CString()),
        (IFLA_INFO_DATA, "IFLA_INFO_DATA", Raw()),  # by kind: KIND_DATA
    )
)

# IFLA_INFO_DATA of the tunnel kinds piked creates (if_link.h IFLA_XFRM_*, IFLA_VTI_*).
XFRM_DATA = AttrSet(
    (
        (IFLA_XFRM_LINK, "IFLA_XFRM_LINK", Scalar("I")),
        (IFLA_XFRM_IF_ID, "IFLA_XFRM_IF_ID", Scalar("I")),
    )
)
VTI_DATA = AttrSet(
    (
        (IFLA_VTI_LINK, "IFLA_VTI_LINK", Scalar("I")),
        (IFLA_VTI_IKEY, "IFLA_VTI_IKEY", Scalar(">I")),  # __be32 GRE-style keys
        (IFLA_VTI_OKEY, "IFLA_VTI_OKEY", Scalar(">I")),
        (IFLA_VTI_LOCAL, "IFLA_VTI_LOCAL", Address()),
        (IFLA_VTI_REMOTE, "IFLA_VTI_REMOTE", Address()),
    )
)
KIND_DATA = {"xfrm": XFRM_DATA, "vti": VTI_DATA, "vti6": VTI_DATA}


class ifinfomsg(Message):
    """struct ifinfomsg (16 bytes): RTM_NEWLINK / DELLINK / GETLINK."""

    fields = (
        ("family", "B"),
        ("pad", "x"),
        ("type", "H"),
        ("index", "i"),
        ("flags", "I"),
        ("change", "I"),
    )
    nla = AttrSet(
        (
            (IFLA_ADDRESS, "IFLA_ADDRESS", Raw()),
            (IFLA_IFNAME, "IFLA_IFNAME", CString()),
            (IFLA_MTU, "IFLA_MTU", Scalar("I")),
            (IFLA_LINK, "IFLA_LINK", Scalar("I")),
            (IFLA_LINKINFO, "IFLA_LINKINFO", Nested(LINKINFO)),
        )
    )


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def route_get(dst: str) -> rtmsg:
    """``ip route get DST``: the route (oif, preferred source) the kernel would use."""
    family = family_of(dst)
    msg = rtmsg(family=family, dst_len=32 if family == socket.AF_INET else 128)
    msg["attrs"] = [("RTA_DST", dst)]
    return msg


def link_info(msg: Message) -> tuple[str | None, Attrs | None]:
    """A link's kind and its kind-specific data (decoded for the kinds piked knows)."""
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return None, None
    kind = info.get_attr("IFLA_INFO_KIND")
    raw = info.get_attr("IFLA_INFO_DATA")
    attrs = KIND_DATA.get(kind) if kind else None
    if attrs is None or raw is None:
        return kind, None
    return kind, attrs.decode(raw)


def new_link(name: str, kind: str, data: list[tuple[str, Any]]) -> ifinfomsg:
    """RTM_NEWLINK body creating interface ``name`` of ``kind`` (send with NLM_F_CREATE
    and NLM_F_EXCL)."""
    info = [("IFLA_INFO_KIND", kind), ("IFLA_INFO_DATA", KIND_DATA[kind].encode(data))]
    msg = ifinfomsg()
    msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", info)]
    return msg
