"""The IKE UDP sockets: port 500 and the NAT-T port 4500 (RFC 3948), IPv4 and IPv6.

Each datagram's local destination address comes from IP_PKTINFO / IPV6_PKTINFO, and each
reply leaves from the source address the engine chose, so a gateway with several addresses
answers from the one the peer talked to. The NAT-T socket is switched to
UDP_ENCAP_ESPINUDP so the kernel takes ESP-in-UDP itself; IKE on it carries the 4-byte
non-ESP marker, which is stripped here on receive and prepended on send.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pike.sa.actions import Address, SendDatagram
from pike.wire.constants import NON_ESP_MARKER

log = logging.getLogger("pike.daemon.sockets")

# linux/udp.h: not exported by Python's socket module.
UDP_ENCAP = 100
UDP_ENCAP_ESPINUDP = 2
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_SOL_IP, _SOL_IPV6 = socket.IPPROTO_IP, socket.IPPROTO_IPV6
_MAX_DATAGRAM = 65535
_CMSG_SPACE = socket.CMSG_SPACE(64)
_MARKER_LEN = len(NON_ESP_MARKER)
_MAX_SENDERS = 256  # source addresses remembered (``IkeSockets._sender``)
_MAX_DSTS = 256  # PKTINFO messages remembered per socket (local addresses x interfaces)

# (datagram without marker, its source, its destination, the time it was read)
OnDatagram = Callable[[bytes, Address, Address, float], None]
Ancillary = tuple[tuple[int, int, bytes], ...]  # sendmsg's ancillary data
_Sender = tuple[socket.socket, bool, Ancillary]  # (socket, NAT-T's?, source's ancillary)


@dataclass(slots=True)
class _Sock:
    sock: socket.socket
    family: int
    port: int
    natt: bool
    pktinfo: Callable[[str], Ancillary]  # the ancillary data that sends from an address
    local: Callable[[list[tuple[int, int, bytes]]], str | None]  # where a datagram went
    # a PKTINFO message -> (local address, port): ``_destination``'s answers
    dsts: dict[tuple[int, int, bytes], Address] = field(default_factory=dict)


# The address conversions below run for every datagram, on the gateway's few local
# addresses and its peers' addresses: cached (bounded; values are plain strings/bytes).


@functools.lru_cache(maxsize=256)
def _in_pktinfo(src: str) -> Ancillary:
    """struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }"""
    info = struct.pack("=i4s4s", 0, ipaddress.IPv4Address(src).packed, bytes(4))
    return ((socket.IPPROTO_IP, _IP_PKTINFO, info),)


@functools.lru_cache(maxsize=256)
def _in6_pktinfo(src: str) -> Ancillary:
    """struct in6_pktinfo { in6_addr addr; int ifindex; }"""
    info = struct.pack("=16si", ipaddress.IPv6Address(src).packed, 0)
    return ((socket.IPPROTO_IPV6, _IPV6_PKTINFO, info),)


@functools.lru_cache(maxsize=256)
def _v4_text(packed: bytes) -> str:
    return str(ipaddress.IPv4Address(packed))


@functools.lru_cache(maxsize=256)
def _v6_text(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


@functools.lru_cache(maxsize=4096)
def _peer_text(host: str) -> str:
    """The peer's address as the engine spells it (canonical, without an IPv6 scope)."""
    return str(ipaddress.ip_address(host.split("%", 1)[0]))


def _local_v4(ancdata: list[tuple[int, int, bytes]]) -> str | None:
    """The datagram's destination: ``in_pktinfo.ipi_addr``."""
    for level, ctype, data in ancdata:
        if ctype == _IP_PKTINFO and level == _SOL_IP:
            return _v4_text(data[8:12])
    return None


def _local_v6(ancdata: list[tuple[int, int, bytes]]) -> str | None:
    """The datagram's destination: ``in6_pktinfo.ipi6_addr``."""
    for level, ctype, data in ancdata:
        if ctype == _IPV6_PKTINFO and level == _SOL_IPV6:
            return _v6_text(data[:16])
    return None


class IkeSockets:
    """UDP sockets on ``ike_port`` and ``natt_port`` (wildcard addresses), read from the
    event loop; every datagram goes to ``on_datagram(data, src, dst, now())`` without
    marker, then ``after()`` runs (the runtime acts on the engine's answer at once), and
    ``on_batch(n)`` follows the ``n`` datagrams handed on in one wake-up. The engine is
    called from here, without a layer in between: these run for every datagram."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_datagram: OnDatagram,
        *,
        ike_port: int = 500,
        natt_port: int = 4500,
        ipv6: bool = True,
        now: Callable[[], float] = time.monotonic,
        after: Callable[[], None] = lambda: None,
        on_batch: Callable[[int], None] | None = None,
        counts: Counter[str] | None = None,
    ) -> None:
        self._loop = loop
        self._on_datagram = on_datagram
        self._now = now
        self._after = after  # after each datagram, even one the engine failed on
        self._on_batch = on_batch  # after the datagrams of one wake-up
        self.ike_port = ike_port
        self.natt_port = natt_port
        self._ipv6 = ipv6
        self._socks: list[_Sock] = []
        # (IPv6, source port, destination port) -> the socket ``_pick`` chose: every
        # datagram sent asks, the answer changes only when sockets open or close
        self._picked: dict[tuple[bool, int, int], _Sock | None] = {}
        # our source address -> ``_sender``'s answer: every datagram sent asks
        self._senders: dict[Address, _Sender] = {}
        self.counts = Counter[str]() if counts is None else counts  # datagrams sent
        self.encap_ok = True  # False when the kernel refused UDP_ENCAP (logged once)

    def open(self) -> None:
        """Bind all sockets; raises OSError when the IPv4 ones cannot be bound."""
        try:
            for port, natt in ((self.ike_port, False), (self.natt_port, True)):
                self._open(socket.AF_INET, "0.0.0.0", port, natt)
            if self._ipv6 and socket.has_ipv6:
                try:
                    for port, natt in ((self.ike_port, False), (self.natt_port, True)):
                        self._open(socket.AF_INET6, "::", port, natt)
                except OSError as exc:
                    # No IPv6 in this namespace/kernel: IPv4 alone is a working gateway.
                    log.info("IPv6 IKE sockets not available (%s); IPv4 only", exc.strerror)
                    self._close_family(socket.AF_INET6)
        except OSError:
            self.close()
            raise

    def _open(self, family: int, addr: str, port: int, natt: bool) -> None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            sock.bind((addr, port))
            if natt:
                self._set_encap(sock, family)
        except OSError:
            sock.close()
            raise
        if family == socket.AF_INET6:
            entry = _Sock(sock, family, port, natt, _in6_pktinfo, _local_v6)
        else:
            entry = _Sock(sock, family, port, natt, _in_pktinfo, _local_v4)
        self._socks.append(entry)
        self._picked.clear()
        self._senders.clear()
        self._loop.add_reader(sock.fileno(), self._readable, entry)
        fam = "IPv6" if family == socket.AF_INET6 else "IPv4"
        log.debug("listening on %s UDP port %d%s", fam, port, " (NAT-T)" if natt else "")

    def _set_encap(self, sock: socket.socket, family: int) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
        except OSError as exc:
            # IKE still works on the port; only the kernel's ESP-in-UDP does not.
            if self.encap_ok:
                log.error(
                    "kernel refused UDP_ENCAP_ESPINUDP on port %d (%s): "
                    "ESP-in-UDP (NAT traversal) cannot work",
                    self.natt_port,
                    exc.strerror,
                )
            self.encap_ok = False

    def _readable(self, entry: _Sock) -> None:
        delivered = 0
        try:
            delivered = self._drain(entry)
        finally:
            if self._on_batch is not None:
                self._on_batch(delivered)

    def _drain(self, entry: _Sock) -> int:
        """Read what is queued now, bounded so one busy socket cannot starve the loop;
        how many datagrams went on. One frame for all of them: a call per datagram to
        hand it on cost more than the rest of this loop."""
        recvmsg, dsts, now = entry.sock.recvmsg, entry.dsts, self._now
        v4 = entry.family == socket.AF_INET
        on_datagram, after = self._on_datagram, self._after
        delivered = 0
        for _ in range(64):
            try:
                data, anc, _flags, peer = recvmsg(_MAX_DATAGRAM, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP errors surface here as ECONNREFUSED etc.; they are not ours to act on.
                log.debug("recvmsg on port %d: %s", entry.port, exc.strerror)
                break
            if entry.natt:
                if not data.startswith(NON_ESP_MARKER):
                    # a NAT-T keepalive (0xFF), or ESP the kernel did not take (no ESP
                    # support): nothing IKE can use
                    continue
                data = data[_MARKER_LEN:]
            # the PKTINFO message (the only one asked for) names the local address
            dst = dsts.get(anc[0]) if anc else None
            if dst is None and (dst := self._destination(entry, anc)) is None:
                continue
            # IPv4's (host, port) is already the engine's spelling; IPv6's has flow
            # info and scope id, and the host's text is made canonical
            src: Address = peer if v4 else (_peer_text(peer[0]), peer[1])
            delivered += 1
            try:
                try:
                    on_datagram(data, src, dst, now())
                finally:
                    after()
            except Exception:
                # The engine must never raise on input; if it does, keep serving others.
                log.exception("engine failed on a datagram from %s[%d]", src[0], src[1])
        return delivered

    @staticmethod
    def _destination(entry: _Sock, anc: list[tuple[int, int, bytes]]) -> Address | None:
        """Where a datagram went (its local address, our port), from its ancillary data;
        kept per PKTINFO message (a gateway has few local addresses; bounded)."""
        local = entry.local(anc)
        if local is None:
            return None
        if len(anc) == 1:
            if len(entry.dsts) >= _MAX_DSTS:
                entry.dsts.clear()
            entry.dsts[anc[0]] = (local, entry.port)
        return (local, entry.port)

    def _pick(self, src: Address, dst: Address) -> _Sock | None:
        key = (":" in dst[0], src[1], dst[1])
        try:
            return self._picked[key]
        except KeyError:
            entry = self._picked[key] = self._choose(*key)
            return entry

    def _choose(self, ipv6: bool, src_port: int, dst_port: int) -> _Sock | None:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        if src_port == self.natt_port:
            natt = True
        elif src_port == self.ike_port:
            natt = False
        else:
            natt = dst_port in (self.natt_port, 4500)
        for entry in self._socks:
            if entry.family == family and entry.natt == natt:
                return entry
        return None

    def send_datagram(self, a: SendDatagram) -> None:
        """The engine's datagram out (the runtime's route for ``SendDatagram``), counted
        in ``counts["datagrams_out"]`` once it went. ``send`` without its call: every
        answer goes this way."""
        src, dst = a.src, a.dst
        sender = self._senders.get(src) or self._sender(src, dst)
        if sender is None:
            log.warning("no socket for %s[%d] -> %s[%d]", src[0], src[1], dst[0], dst[1])
            return
        sock, natt, ancillary = sender
        try:
            sock.sendmsg((NON_ESP_MARKER + a.data if natt else a.data,), ancillary, 0, dst)
        except OSError as exc:
            # A full send buffer or unreachable peer: the engine retransmits.
            log.warning("send %s[%d] -> %s[%d]: %s", src[0], src[1], dst[0], dst[1], exc)
            return
        self.counts["datagrams_out"] += 1

    def send(self, data: bytes, src: Address, dst: Address, *, marker: bool = True) -> bool:
        """Send ``data`` from ``src`` to ``dst``; False (logged) if it could not go out.

        On the NAT-T socket IKE gets the non-ESP marker; ``marker=False`` sends ``data``
        as is (the one-octet NAT-T keepalive, RFC 3948 §2.3, goes without it)."""
        sender = self._senders.get(src) or self._sender(src, dst)
        if sender is None:
            log.warning("no socket for %s[%d] -> %s[%d]", src[0], src[1], dst[0], dst[1])
            return False
        sock, natt, ancillary = sender
        if natt and marker:
            data = NON_ESP_MARKER + data
        try:
            sock.sendmsg((data,), ancillary, 0, dst)
        except OSError as exc:
            # A full send buffer or unreachable peer: the engine retransmits.
            log.warning("send %s[%d] -> %s[%d]: %s", src[0], src[1], dst[0], dst[1], exc)
            return False
        return True

    def _sender(self, src: Address, dst: Address) -> _Sender | None:
        """The socket that sends from ``src`` to ``dst``, whether it is NAT-T's, and the
        ancillary data that makes it leave from ``src``'s address. Kept per source when
        that is one of our ports (our few addresses x 2: bounded anyway); from another
        port the socket depends on the destination (``_choose``)."""
        entry = self._pick(src, dst)
        if entry is None:
            return None
        sender = (entry.sock, entry.natt, entry.pktinfo(src[0]))
        if src[1] in (self.ike_port, self.natt_port):
            if len(self._senders) >= _MAX_SENDERS:
                self._senders.clear()
            self._senders[src] = sender
        return sender

    def _close_family(self, family: int) -> None:
        for entry in [e for e in self._socks if e.family == family]:
            self._loop.remove_reader(entry.sock.fileno())
            entry.sock.close()
            self._socks.remove(entry)
        self._picked.clear()
        self._senders.clear()

    def close(self) -> None:
        for entry in self._socks:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(entry.sock.fileno())
            entry.sock.close()
        self._socks.clear()
        self._picked.clear()
        self._senders.clear()

    @property
    def bound(self) -> list[tuple[str, int]]:
        """(family, port) of each open socket, for status and tests."""
        out = []
        for e in self._socks:
            out.append(("IPv6" if e.family == socket.AF_INET6 else "IPv4", e.port))
        return out
