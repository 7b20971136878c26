"""ethtool features of one interface (``ethtool -k``) via the SIOCETHTOOL ioctl.

ETHTOOL_GSSET_INFO gives the number of feature names, ETHTOOL_GSTRINGS their names
(``esp-hw-offload``, ``esp-tx-csum-hw-offload``, ...) and ETHTOOL_GFEATURES one
available/requested/active/never_changed bit block per 32 features (include/uapi/linux/
ethtool.h). The ioctl answers for the namespace of the socket it is sent on, which lets
tests look at veths inside their own namespaces.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from dataclasses import dataclass

from pike.board.netns import call_in_netns

SIOCETHTOOL = 0x8946
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GFEATURES = 0x3A
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
IFNAMSIZ = 16
_IFREQ_SIZE = 40  # struct ifreq on 64-bit (16-byte name + 24-byte union)

ESP_HW_OFFLOAD = "esp-hw-offload"
ESP_TX_CSUM_HW_OFFLOAD = "esp-tx-csum-hw-offload"


class EthtoolError(OSError):
    pass


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    available: bool  # the driver lets it be switched (hw_features)
    requested: bool
    active: bool  # on now
    fixed: bool  # cannot be switched ("[fixed]" in ethtool -k)


def _ioctl(sock: socket.socket, ifname: str, buf: ctypes.Array[ctypes.c_char]) -> None:
    name = ifname.encode()
    if not name or len(name) >= IFNAMSIZ:
        raise EthtoolError(errno.EINVAL, f"bad interface name {ifname!r}")
    ifreq = struct.pack(f"{IFNAMSIZ}sP", name, ctypes.addressof(buf))
    ifreq += bytes(_IFREQ_SIZE - len(ifreq))
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError as exc:
        raise EthtoolError(exc.errno or 0, f"ethtool ioctl on {ifname}: {exc.strerror}") from None


def _read(sock: socket.socket, ifname: str) -> dict[str, Feature]:
    info = ctypes.create_string_buffer(24)
    struct.pack_into("=IIQ", info, 0, ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES)
    _ioctl(sock, ifname, info)
    (count,) = struct.unpack_from("=I", info, 16)
    strings = ctypes.create_string_buffer(12 + count * ETH_GSTRING_LEN)
    struct.pack_into("=III", strings, 0, ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
    _ioctl(sock, ifname, strings)
    names = [
        strings.raw[12 + i * ETH_GSTRING_LEN : 12 + (i + 1) * ETH_GSTRING_LEN]
        .split(b"\0", 1)[0]
        .decode()
        for i in range(count)
    ]
    blocks = (count + 31) // 32
    feats = ctypes.create_string_buffer(8 + blocks * 16)
    struct.pack_into("=II", feats, 0, ETHTOOL_GFEATURES, blocks)
    _ioctl(sock, ifname, feats)
    out: dict[str, Feature] = {}
    for i, name in enumerate(names):
        if not name:
            continue
        available, requested, active, never = struct.unpack_from("=IIII", feats, 8 + (i // 32) * 16)
        bit = 1 << (i % 32)
        can = bool(available & bit)
        out[name] = Feature(
            name, can, bool(requested & bit), bool(active & bit), not can or bool(never & bit)
        )
    return out


def read_features(ifname: str, netns: str | None = None) -> dict[str, Feature]:
    """All ethtool features of ``ifname`` by name; raises EthtoolError (ENODEV if absent)."""

    def open_socket() -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    with call_in_netns(netns, open_socket) as sock:
        return _read(sock, ifname)
