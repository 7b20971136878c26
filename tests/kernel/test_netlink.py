"""pike's netlink codec (pike.kernel.netlink, rtnetlink): bytes laid out by hand from
linux/netlink.h, rtnetlink.h, if_addr.h and if_link.h, decoded and encoded both ways;
malformed replies; acks, errors with extended acks, multipart dumps. No kernel needed
except the last tests, which ask this host's kernel over NETLINK_ROUTE and NETLINK_XFRM.

Byte strings are little-endian (nlmsghdr and most attributes are host order)."""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

import pytest

from pike.kernel import rtnetlink as rt
from pike.kernel import xfrm_messages as xm
from pike.kernel.interface import KernelError
from pike.kernel.netlink import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    Header,
    NetlinkDecodeError,
    NetlinkError,
    Replies,
    encode_message,
    split,
)
from pike.kernel.route_socket import RouteSocket
from pike.kernel.xfrm_socket import XfrmSocket

pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="byte strings are LE")

H = bytes.fromhex


def test_message_header_and_padding() -> None:
    # nlmsghdr: u32 len (19: 16 + 3), u16 type, u16 flags, u32 seq, u32 pid; padded to 20
    data = encode_message(0x12, NLM_F_REQUEST | NLM_F_ACK, 7, b"\x01\x02\x03")
    assert data == H("13000000 1200 0500 07000000 00000000 010203 00")
    assert list(split(data)) == [(Header(19, 0x12, 5, 7, 0), b"\x01\x02\x03")]


def test_route_get_request_bytes() -> None:
    # struct rtmsg: family AF_INET, dst_len 32, the rest 0; RTA_DST (1) with 192.0.2.1
    body = rt.route_get("192.0.2.1").payload()
    assert body == H("02 20 00 00 00 00 00 00 00000000") + H("0800 0100 c0000201")
    six = rt.route_get("2001:db8::1").payload()
    assert six[:2] == H("0a 80") and six[12:16] == H("1400 0100")


def test_new_xfrm_link_bytes() -> None:
    # ifinfomsg (16 zero bytes), IFLA_IFNAME (3) "ipsec0\0" padded, IFLA_LINKINFO (18):
    # IFLA_INFO_KIND (1) "xfrm\0" padded, IFLA_INFO_DATA (2): IFLA_XFRM_IF_ID (2) u32 7
    body = rt.new_link("ipsec0", "xfrm", [("IFLA_XFRM_IF_ID", 7)]).payload()
    assert body == (
        bytes(16)
        + H("0b00 0300") + b"ipsec0\0" + bytes(1)
        + H("1c00 1200")
        + H("0900 0100") + b"xfrm\0" + bytes(3)
        + H("0c00 0200") + H("0800 0200 07000000")
    )  # fmt: skip
    back = rt.ifinfomsg.decode(body)
    assert back.get_attr("IFLA_IFNAME") == "ipsec0"
    assert rt.link_info(back) == ("xfrm", [("IFLA_XFRM_IF_ID", 7)])


def test_vti_keys_are_big_endian() -> None:
    data = [
        ("IFLA_VTI_LOCAL", "192.0.2.1"),
        ("IFLA_VTI_REMOTE", "192.0.2.2"),
        ("IFLA_VTI_IKEY", 0x10),
        ("IFLA_VTI_OKEY", 0x20),
    ]
    body = rt.new_link("vti1", "vti", data).payload()
    raw = rt.KIND_DATA["vti"].encode(data)
    assert raw == (
        H("0800 0400 c0000201") + H("0800 0500 c0000202")
        + H("0800 0200 00000010") + H("0800 0300 00000020")
    )  # fmt: skip
    assert rt.link_info(rt.ifinfomsg.decode(body)) == ("vti", data)


def test_address_dump_reply_decodes() -> None:
    # ifaddrmsg: AF_INET, /24, flags 0x80 (permanent), scope 0, index 2; IFA_ADDRESS,
    # IFA_LABEL "eth0", IFA_FLAGS (8) u32, and IFA_CACHEINFO (6), which we keep raw
    payload = (
        H("02 18 80 00 02000000")
        + H("0800 0100 c0000201")
        + H("0900 0300") + b"eth0\0" + bytes(3)
        + H("0800 0800 80000000")
        + H("1400 0600") + bytes(16)
    )  # fmt: skip
    msg = rt.ifaddrmsg.decode(payload)
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (socket.AF_INET, 24, 2)
    assert msg.get_attr("IFA_ADDRESS") == "192.0.2.1"
    assert msg.get_attr("IFA_LABEL") == "eth0"
    assert msg.get_attr("IFA_FLAGS") == 0x80
    assert msg.get_attr("6") == bytes(16)
    assert rt.ifaddrmsg(msg).payload() == payload  # unknown ones by number, as they came


def test_xfrm_message_roundtrip() -> None:
    dst = bytes([192, 0, 2, 2]).ljust(16, b"\0")
    msg = xm.xfrm_usersa_id(daddr=dst, spi=0xC0000001, family=2, proto=50)
    msg["attrs"] = [("XFRMA_MARK", {"v": 5, "m": 0xFFFFFFFF}), ("XFRMA_IF_ID", 9)]
    data = msg.encode(xm.XFRM_MSG_DELSA, NLM_F_REQUEST | NLM_F_ACK, seq=3)
    # xfrm_usersa_id: daddr (16), spi (be32), family (u16), proto (u8), pad
    assert data[16:40] == H("c0000202") + bytes(12) + H("c0000001 0200 32 00")
    assert data[40:] == H("0c00 1500 05000000 ffffffff") + H("0800 1f00 09000000")
    ((header, payload),) = split(data)
    back = xm.xfrm_usersa_id.decode(payload)
    assert header == Header(len(data), xm.XFRM_MSG_DELSA, 5, 3, 0)
    assert back == msg


def _error(seq: int, code: int, request: bytes, flags: int = 0, tlvs: bytes = b"") -> bytes:
    payload = struct.pack("=i", -code) + request + tlvs
    return encode_message(NLMSG_ERROR, flags, seq, payload)


REQUEST = encode_message(xm.XFRM_MSG_NEWSA, NLM_F_REQUEST | NLM_F_ACK, 4, bytes(224))


def test_ack_ends_the_answer() -> None:
    replies = Replies(4, ack=True)
    replies.feed(_error(4, 0, REQUEST[:16], NLM_F_CAPPED))
    assert replies.done and replies.messages == []


def test_error_with_extended_ack() -> None:
    # NLMSG_ERROR: -errno, the request echoed in full (not capped), then NLMSGERR_ATTR_MSG
    tlv = H("1600 0100") + b"Unknown algorithm\0" + bytes(2)
    with pytest.raises(NetlinkError) as got:
        Replies(4, ack=True).feed(_error(4, errno.ENOSYS, REQUEST, NLM_F_ACK_TLVS, tlv))
    assert (got.value.code, got.value.detail) == (errno.ENOSYS, "Unknown algorithm")
    assert str(got.value) == "ENOSYS (Function not implemented): Unknown algorithm"
    # capped: only the request's header comes back
    with pytest.raises(NetlinkError) as capped:
        Replies(4, ack=True).feed(
            _error(4, errno.EEXIST, REQUEST[:16], NLM_F_CAPPED | NLM_F_ACK_TLVS, tlv)
        )
    assert (capped.value.code, capped.value.detail) == (errno.EEXIST, "Unknown algorithm")
    with pytest.raises(NetlinkError) as plain:
        Replies(4, ack=True).feed(_error(4, errno.ESRCH, REQUEST))
    assert (plain.value.code, plain.value.detail) == (errno.ESRCH, None)


def test_multipart_dump_over_datagrams() -> None:
    part = [
        encode_message(rt.RTM_NEWADDR, NLM_F_MULTI, 9, rt.ifaddrmsg(index=i).payload())
        for i in (1, 2, 3)
    ]
    replies = Replies(9, ack=False)
    replies.feed(part[0] + part[1])
    assert not replies.done
    # an answer to an older request (seq 8) in between is not ours
    replies.feed(encode_message(rt.RTM_NEWADDR, NLM_F_MULTI, 8, bytes(8)) + part[2])
    assert not replies.done
    replies.feed(encode_message(NLMSG_DONE, NLM_F_MULTI, 9, struct.pack("=i", 0)))
    assert replies.done
    assert [rt.ifaddrmsg.decode(p)["index"] for _, p in replies.messages] == [1, 2, 3]


def test_dump_done_with_error() -> None:
    with pytest.raises(NetlinkError) as got:
        Replies(9, ack=False).feed(
            encode_message(NLMSG_DONE, NLM_F_MULTI, 9, struct.pack("=i", -errno.EINVAL))
        )
    assert got.value.code == errno.EINVAL


def test_single_reply_without_ack() -> None:
    replies = Replies(2, ack=False)
    replies.feed(encode_message(xm.XFRM_MSG_NEWSA, 0, 2, bytes(224)))
    assert replies.done and len(replies.messages) == 1


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (H("13000000 1200"), "header truncated: 6 bytes"),
        (
            H("40000000 1200 0000 01000000 00000000") + bytes(4),
            "type 18 at offset 0 says 64 bytes, 20 there",
        ),
        (H("08000000 1200 0000 01000000 00000000"), "says 8 bytes"),
    ],
)
def test_truncated_datagrams(data: bytes, match: str) -> None:
    with pytest.raises(NetlinkDecodeError, match=match):
        Replies(1, ack=True).feed(data)


def test_malformed_bodies() -> None:
    with pytest.raises(NetlinkDecodeError, match="xfrm_usersa_info: 100 bytes, the struct"):
        xm.xfrm_usersa_info.decode(bytes(100))
    # an attribute whose length runs past the message
    with pytest.raises(NetlinkDecodeError, match="attribute type 1 at offset 0 says 32"):
        rt.ifaddrmsg.decode(bytes(8) + H("2000 0100 c0000201"))
    # an address of the wrong size, named
    with pytest.raises(NetlinkDecodeError, match="IFA_ADDRESS: address attribute of 3"):
        rt.ifaddrmsg.decode(bytes(8) + H("0700 0100 c00002 00"))
    with pytest.raises(NetlinkDecodeError, match="NLMSG_ERROR of 4 bytes"):
        Replies(1, ack=True).feed(encode_message(NLMSG_ERROR, 0, 1, bytes(4)))
    with pytest.raises(NetlinkDecodeError, match="XFRMA_TMPL of 65 bytes"):
        xm.decode_tmpls(bytes(65))


def test_encode_refuses_what_it_cannot_say() -> None:
    with pytest.raises(ValueError, match="unknown attribute XFRMA_BOGUS"):
        xm.xfrm_usersa_id(attrs=[("XFRMA_BOGUS", 1)]).payload()
    with pytest.raises(ValueError, match="field spi=-1"):
        xm.xfrm_usersa_id(spi=-1).payload()


def test_route_socket_against_this_kernel() -> None:
    """Loopback is there in every namespace: index 1, and routes to 127.0.0.1 from it."""
    if os.geteuid() != 0:
        pytest.skip("needs root (netlink route requests)")
    with RouteSocket() as rtnl:
        assert rtnl.link_name(1) == "lo"
        assert rtnl.link(name="pikenosuch0") is None
        (route,) = rtnl.route_get("127.0.0.1")
        assert route.get_attr("RTA_PREFSRC") == "127.0.0.1"
        assert rtnl.link_name(route.get_attr("RTA_OIF")) == "lo"
        assert any(a.get_attr("IFA_ADDRESS") == "127.0.0.1" for a in rtnl.addresses())
        with pytest.raises(NetlinkError) as got:
            rtnl.del_link(0x7FFFFFF0)
        assert got.value.code == errno.ENODEV


def test_xfrm_socket_errors_from_this_kernel() -> None:
    """An SA that is not there: the kernel's NLMSG_ERROR becomes a KernelError."""
    if os.geteuid() != 0:
        pytest.skip("needs root (NETLINK_XFRM needs CAP_NET_ADMIN)")
    nl = XfrmSocket()
    try:
        msg = xm.xfrm_usersa_id(daddr=bytes([192, 0, 2, 250]), spi=0xC0FFEE77, family=2, proto=50)
        with pytest.raises(KernelError) as got:
            nl.request("query SA", msg, xm.XFRM_MSG_GETSA, ack=False)
        assert got.value.code == errno.ESRCH
        assert nl.dump("dump SAs", xm.xfrm_usersa_id(), xm.XFRM_MSG_GETSA) is not None
    finally:
        nl.close()
    with pytest.raises(KernelError, match="closed"):
        nl.request("query SA", msg, xm.XFRM_MSG_GETSA)
