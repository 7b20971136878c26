"""Run one function inside a named network namespace (``ip netns add NAME``), on a thread.

``setns(CLONE_NEWNET)`` changes only the calling thread, so a short-lived thread can open
a socket (ethtool ioctl, uevent netlink) that stays bound to that namespace while the rest
of the process, and its other threads, stay where they are.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_netns(netns: str | None, fn: Callable[[], T], *, thread: bool = False) -> T:
    """``fn()`` with the calling thread in ``netns`` (None: here, on a thread only when
    ``thread``)."""
    if netns is None and not thread:
        return fn()
    path = None
    if netns is not None:
        path = netns if netns.startswith("/") else os.path.join(NETNS_RUN_DIR, netns)
    if path is not None and not os.path.exists(path):
        # Never create it implicitly.
        raise FileNotFoundError(f"network namespace {netns!r} does not exist")
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            if path is not None:
                _setns(path)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    name = f"netns-{os.path.basename(path)}" if path else "netlink"
    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]
