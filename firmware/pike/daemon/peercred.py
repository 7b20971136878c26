"""Who is on the other end of the control socket (SO_PEERCRED, SO_PEERGROUPS).

The socket is 0660 for group pike: members may look (status, list-sas, log, ...).
Commands that change state (STATE_CHANGING) also need root, piked's own user, or
membership of ADMIN_GROUP. Supplementary groups come from the kernel (SO_PEERGROUPS,
Linux 4.13), never from /proc, which the unit hides (ProtectProc=invisible).
"""

from __future__ import annotations

import grp
import os
import socket
import struct
from dataclasses import dataclass

ADMIN_GROUP = "pike-admin"
# "initiate-wait" is the stream pikectl initiate uses: it starts the connection too.
STATE_CHANGING = frozenset({"initiate", "initiate-wait", "terminate", "rekey", "reload"})
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_UCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]


def peer_of(sock: socket.socket) -> Peer | None:
    """The credentials of a connected AF_UNIX peer; None when the kernel gives none."""
    try:
        pid, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
    except OSError:
        return None
    groups: tuple[int, ...] = ()
    size = 64 * 4
    for _ in range(4):  # ERANGE: more groups than room; the kernel wants a larger buffer
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, size)
        except OSError as exc:
            if exc.errno == 34:  # ERANGE
                size *= 4
                continue
            break
        groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
        break
    return Peer(pid, uid, gid, groups)


def admin_gid(name: str = ADMIN_GROUP) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def may_change_state(peer: Peer | None, admin: int | None) -> bool:
    """Root, piked's own user, or a member of the admin group (primary or not)."""
    if peer is None:
        return False
    if peer.uid in (0, os.geteuid()):
        return True
    return admin is not None and (peer.gid == admin or admin in peer.groups)
