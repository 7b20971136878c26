"""Capabilities piked gives up once it no longer needs them.

The unit grants CAP_NET_ADMIN (XFRM, for life) and CAP_NET_BIND_SERVICE (UDP 500, and a
metrics port below 1024 if one is configured). Once every socket is bound, binding is
never needed again: ``drop_after_binding`` removes CAP_NET_BIND_SERVICE (and CAP_NET_RAW,
should an older unit still grant it) from the effective, permitted, inheritable and
ambient sets, so a compromised piked cannot bind a privileged port. Dropping from these
sets needs no privilege; the stdlib has no capset, so it is one libc syscall by ctypes.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("pike.daemon")

CAP_NET_BIND_SERVICE = 10
CAP_NET_RAW = 13
CAP_NET_ADMIN = 12
_VERSION_3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_LOWER = 3
# Set by piked's main: a Daemon run inside a test process (pytest as root) must not take
# the test process's capabilities away.
ENABLED = False
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90, "armv7l": 184, "armv6l": 184}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "armv7l": 185, "armv6l": 185}


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    # the C library piked already runs on: ctypes.util.find_library would import
    # shutil, tempfile, bz2 and lzma at start for the same answer (idle RSS)
    return ctypes.CDLL(None, use_errno=True)


def effective() -> int:
    """The effective capability set of this process (from /proc, for tests and logs)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def drop(caps: tuple[int, ...]) -> None:
    """Remove ``caps`` from every set of this process (all threads started later)."""
    machine = os.uname().machine
    if machine not in _SYS_CAPGET:
        raise OSError(f"capget/capset syscall numbers unknown for {machine}")
    libc = _libc()
    for cap in caps:
        libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_LOWER, cap, 0, 0)  # absent: fine
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.syscall(_SYS_CAPGET[machine], ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for cap in caps:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    if libc.syscall(_SYS_CAPSET[machine], ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def drop_after_binding() -> None:
    """Every socket is bound: CAP_NET_BIND_SERVICE and CAP_NET_RAW go (logged, never
    fatal: piked without them still works, only less contained)."""
    if not ENABLED:
        return
    try:
        drop((CAP_NET_BIND_SERVICE, CAP_NET_RAW))
    except OSError as exc:
        log.warning("could not drop CAP_NET_BIND_SERVICE/CAP_NET_RAW: %s", exc)
        return
    log.debug("dropped CAP_NET_BIND_SERVICE and CAP_NET_RAW (effective %x)", effective())
