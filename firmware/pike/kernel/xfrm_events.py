"""XFRM multicast events: ACQUIRE and EXPIRE on a non-blocking NETLINK_XFRM socket.

The socket is bound to the XFRMNLGRP_ACQUIRE and XFRMNLGRP_EXPIRE groups (which needs
CAP_NET_ADMIN) and never sends; ``fileno()`` goes to the event loop's ``add_reader`` and
``read()`` drains what is queued into typed events. Kept apart from the request socket
(``xfrm_socket``), whose replies must not interleave with multicast traffic.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import threading
from ipaddress import ip_address, ip_network
from typing import Any

from pike.kernel import xfrm_messages as xm
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.interface import KernelError
from pike.kernel.netlink import NetlinkDecodeError, split
from pike.kernel.xfrm_selectors import Selector
from pike.policy.ts import IPAddress

log = logging.getLogger(__name__)

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
RCVBUF = 1 << 20  # a burst of ACQUIREs (many hosts behind a trap) must not overflow
GROUPS = (1 << (xm.XFRMNLGRP_ACQUIRE - 1)) | (1 << (xm.XFRMNLGRP_EXPIRE - 1))


def _address(raw: bytes, family: int) -> IPAddress:
    return ip_address(raw[:4] if family == socket.AF_INET else raw[:16])


def _selector(msg: Any) -> Selector:
    family = msg["sel_family"]
    src = _address(msg["sel_saddr"], family)
    dst = _address(msg["sel_daddr"], family)
    return Selector(
        ip_network(f"{src}/{msg['sel_prefixlen_s']}", strict=False),
        ip_network(f"{dst}/{msg['sel_prefixlen_d']}", strict=False),
        msg["sel_proto"],
        msg["sel_sport"],
        msg["sel_sport_mask"],
        msg["sel_dport"],
        msg["sel_dport_mask"],
    )


def parse_acquire(payload: bytes) -> Acquire:
    msg = xm.xfrm_user_acquire.decode(payload)
    family = msg["pol_sel_family"] or msg["sel_family"]
    tmpls = xm.decode_tmpls(msg.get_attr("XFRMA_TMPL") or b"")
    # The first ESP template names the SA wanted; its reqid is what the trap installed.
    reqid = next((t["reqid"] for t in tmpls if t["id_proto"] == 50), 0)
    if tmpls and tmpls[0]["family"]:
        family = tmpls[0]["family"]
    return Acquire(
        reqid=int(reqid),
        src=_address(msg["saddr"], family),
        dst=_address(msg["id_daddr"], family),
        selector=_selector(msg),
    )


def parse_expire(payload: bytes) -> Expire:
    msg = xm.xfrm_user_expire.decode(payload)
    return Expire(
        spi=int(msg["id_spi"]),
        dst=_address(msg["id_daddr"], msg["family"]),
        hard=bool(msg["hard"]),
        reqid=int(msg["reqid"]),
    )


def parse(data: bytes) -> list[KernelEvent]:
    """Every ACQUIRE/EXPIRE in one datagram (other message types are skipped)."""
    events: list[KernelEvent] = []
    try:
        for header, payload in split(data):
            try:
                if header.type == xm.XFRM_MSG_ACQUIRE:
                    events.append(parse_acquire(payload))
                elif header.type == xm.XFRM_MSG_EXPIRE:
                    events.append(parse_expire(payload))
            except (NetlinkDecodeError, ValueError) as exc:
                log.warning("cannot parse XFRM message type %d: %s", header.type, exc)
    except NetlinkDecodeError as exc:
        log.warning("truncated netlink datagram: %s", exc)
    return events


def _open_in(netns: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, xm.NETLINK_XFRM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, GROUPS))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_socket(netns: str | None = None) -> socket.socket:
    """The event socket, created inside ``netns`` when given (a socket stays in the
    namespace it was created in; setns() is done on a short-lived thread of its own)."""
    if netns is None:
        try:
            return _open_in(None)
        except OSError as e:
            raise KernelError("cannot listen to XFRM events", e.errno or 0) from e
    path = os.path.join(NETNS_DIR, netns)
    if not os.path.exists(path):
        raise KernelError(f"network namespace {netns!r} does not exist")
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, os.strerror(code))
            finally:
                os.close(fd)
            result.append(_open_in(netns))
        except BaseException as e:  # handed to the caller's thread
            result.append(e)

    t = threading.Thread(target=work, name="pike-xfrm-netns")
    t.start()
    t.join()
    got = result[0]
    if isinstance(got, BaseException):
        code = got.errno if isinstance(got, OSError) else 0
        raise KernelError(f"cannot listen to XFRM events in {netns}", code or 0) from got
    return got


class XfrmEvents:
    """The ACQUIRE/EXPIRE listener."""

    def __init__(self, netns: str | None = None) -> None:
        self._sock = open_socket(netns)
        self.overruns = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, limit: int = 256) -> list[KernelEvent]:
        """Drain up to ``limit`` datagrams without blocking."""
        events: list[KernelEvent] = []
        for _ in range(limit):
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    # The kernel dropped events; the engine's own timers still rekey.
                    self.overruns += 1
                    log.warning("XFRM event socket overrun: events were lost")
                    continue
                raise
            events.extend(parse(data))
        return events

    def close(self) -> None:
        self._sock.close()
