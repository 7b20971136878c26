"""The NETLINK_XFRM socket: one request, its replies or a KernelError.

pyroute2's synchronous socket drives its own asyncio loop, which cannot run in a thread
whose loop is already running (piked's). So the socket lives on a private worker thread and
each request hops there and back: callers block for the few hundred microseconds a request
takes, from plain code or from inside the daemon's event loop alike.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyroute2.netlink import NETLINK_XFRM, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nlsocket import NetlinkSocket

from pike.kernel import xfrm_messages as xm
from pike.kernel.interface import KernelError

NETNS_DIR = "/var/run/netns"


class XfrmSocket:
    def __init__(self, netns: str | None = None) -> None:
        if netns is not None and not os.path.exists(os.path.join(NETNS_DIR, netns)):
            # pyroute2 would silently create it (flags=O_CREAT); we never want that.
            raise KernelError(f"network namespace {netns!r} does not exist")
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pike-xfrm")
        self._closed = False
        try:
            self._sock: Any = self._worker.submit(self._open, netns).result()
        except BaseException:
            self._worker.shutdown()
            raise

    @staticmethod
    def _open(netns: str | None) -> Any:
        try:
            sock = NetlinkSocket(family=NETLINK_XFRM, netns=netns, flags=0, ext_ack=True)
            sock.bind()
        except OSError as e:
            raise KernelError("cannot open NETLINK_XFRM socket", e.errno or 0) from e
        sock.marshal.msg_map.update(xm.REPLY_CLASSES)
        return sock

    def request(self, what: str, msg: Any, msg_type: int, ack: bool = True) -> list[Any]:
        """Send one request; return its replies. ``ack=False`` for GETSA/ALLOCSPI, which
        answer with a message instead of an ack (asking for both would leave a stray ack)."""
        if self._closed:
            raise KernelError(f"{what}: kernel interface is closed")
        return self._worker.submit(self._request, what, msg, msg_type, ack).result()

    def dump(self, what: str, msg: Any, msg_type: int) -> list[Any]:
        """Every object of a kind (GETSA, GETPOLICY with NLM_F_DUMP)."""
        if self._closed:
            raise KernelError(f"{what}: kernel interface is closed")
        return self._worker.submit(self._request, what, msg, msg_type, False, True).result()

    def _request(
        self, what: str, msg: Any, msg_type: int, ack: bool, dump: bool = False
    ) -> list[Any]:
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0) | (NLM_F_DUMP if dump else 0)
        try:
            return list(self._sock.nlm_request(msg, msg_type=msg_type, msg_flags=flags))
        except NetlinkError as e:
            detail = e.args[1] if len(e.args) > 1 else None
            if detail == os.strerror(e.code):
                detail = None  # the extended ack said nothing beyond the errno
            raise KernelError(what, e.code, detail) from e

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._worker.submit(self._sock.close).result()
            self._worker.shutdown()
