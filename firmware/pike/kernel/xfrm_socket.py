"""The NETLINK_XFRM request socket: one request, its replies decoded, or a KernelError."""

from __future__ import annotations

import os

from pike.kernel import xfrm_messages as xm
from pike.kernel.interface import KernelError
from pike.kernel.netlink import Message, NetlinkDecodeError, NetlinkError
from pike.kernel.nlsocket import NetlinkSocket, describe

NETNS_DIR = "/var/run/netns"


class Lazy:
    """A request's description, formatted (``%``) only when read: it names the request in
    an error, and most requests succeed (formatting addresses costs microseconds)."""

    __slots__ = ("_args", "_fmt")

    def __init__(self, fmt: str, *args: object) -> None:
        self._fmt, self._args = fmt, args

    def __str__(self) -> str:
        return self._fmt % self._args


What = str | Lazy  # what a request does, for its KernelError


class XfrmSocket:
    def __init__(self, netns: str | None = None) -> None:
        if netns is not None and not os.path.exists(os.path.join(NETNS_DIR, netns)):
            raise KernelError(f"network namespace {netns!r} does not exist")
        try:
            self._sock = NetlinkSocket(xm.NETLINK_XFRM, netns)
        except OSError as e:
            raise KernelError("cannot open NETLINK_XFRM socket", e.errno or 0) from e
        self._closed = False

    def request(self, what: What, msg: Message, msg_type: int, ack: bool = True) -> list[Message]:
        """Send one request; return its replies. ``ack=False`` for GETSA/ALLOCSPI, which
        answer with a message instead of an ack (asking for both would leave a stray ack)."""
        return self._request(what, msg, msg_type, ack, dump=False)

    def dump(self, what: What, msg: Message, msg_type: int) -> list[Message]:
        """Every object of a kind (GETSA, GETPOLICY with NLM_F_DUMP)."""
        return self._request(what, msg, msg_type, ack=False, dump=True)

    def _request(
        self, what: What, msg: Message, msg_type: int, ack: bool, dump: bool
    ) -> list[Message]:
        if self._closed:
            raise KernelError(f"{what}: kernel interface is closed")
        try:
            answer = self._sock.request(msg_type, msg.payload(), ack=ack, dump=dump)
            out: list[Message] = []
            for header, payload in answer:
                cls = xm.REPLY_CLASSES.get(header.type)
                if cls is not None:
                    out.append(cls.decode(payload))
            return out
        except NetlinkError as e:
            raise KernelError(str(what), e.code, describe(e)) from e
        except NetlinkDecodeError as e:
            raise KernelError(str(what), detail=f"malformed reply: {e}") from e
        except OSError as e:
            raise KernelError(str(what), e.errno or 0) from e

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()
