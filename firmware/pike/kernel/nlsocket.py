"""A blocking netlink socket for requests: send one, collect its answer (pike.kernel.netlink).

Plain ``socket`` calls: a request takes a few hundred microseconds, so callers block,
from plain code or from inside the daemon's event loop alike. A socket made inside a
network namespace (on a short thread that entered it) stays there for its whole life.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from pike.board.netns import call_in_netns
from pike.kernel.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    Header,
    NetlinkDecodeError,
    NetlinkError,
    Replies,
    encode_message,
)

SOL_NETLINK = 270
NETLINK_EXT_ACK = 11  # errors carry the kernel's message ("Unknown ..."), not just errno
RECV_SIZE = 1 << 16
TIMEOUT = 10.0  # the kernel always answers; this only bounds a bug


class NetlinkSocket:
    """One NETLINK_* socket (``protocol``), optionally in the named namespace (never
    created: a missing one raises FileNotFoundError)."""

    def __init__(self, protocol: int, netns: str | None = None) -> None:
        self._sock = call_in_netns(netns, lambda: self._open(protocol))
        self._lock = threading.Lock()  # one request at a time: replies must not interleave
        self._seq = 0
        self._buf = bytearray(RECV_SIZE)

    @staticmethod
    def _open(protocol: int) -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        try:
            with contextlib.suppress(OSError):  # older kernel: errors without the message
                sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            sock.bind((0, 0))
            sock.settimeout(TIMEOUT)
        except OSError:
            sock.close()
            raise
        return sock

    def request(
        self, msg_type: int, payload: bytes, *, ack: bool = True, dump: bool = False, flags: int = 0
    ) -> list[tuple[Header, bytes]]:
        """Send one request and return the messages that answer it. Raises NetlinkError
        when the kernel refuses it, OSError when the socket fails, NetlinkDecodeError
        for an answer that does not parse."""
        flags |= NLM_F_REQUEST | (NLM_F_ACK if ack else 0) | (NLM_F_DUMP if dump else 0)
        with self._lock:
            self._seq = self._seq % 0x7FFFFFFF + 1
            replies = Replies(self._seq, ack=ack)
            self._sock.send(encode_message(msg_type, flags, self._seq, payload))
            while not replies.done:
                n, _, msg_flags, _ = self._sock.recvmsg_into([self._buf])
                if msg_flags & socket.MSG_TRUNC:
                    raise NetlinkDecodeError(f"netlink reply larger than {RECV_SIZE} bytes")
                replies.feed(bytes(self._buf[:n]))
            return replies.messages

    def close(self) -> None:
        self._sock.close()


def describe(exc: NetlinkError) -> str | None:
    """The extended ack text when it says more than the errno does."""
    if exc.detail and exc.detail != os.strerror(exc.code):
        return exc.detail
    return None
