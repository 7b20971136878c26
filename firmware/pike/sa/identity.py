"""IKE identities on the wire vs. as configured (RFC 7296 §3.5)."""

from __future__ import annotations

import ipaddress

from pike.policy.config import Identity
from pike.policy.identity import identity_of_address as from_address
from pike.wire.constants import IdType

__all__ = ["from_address", "from_wire", "matches"]


def from_wire(id_type: int, data: bytes) -> Identity:
    """A peer's identity with a printable text (never raises: the peer chose the bytes)."""
    try:
        if id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            text = str(ipaddress.ip_address(data))
        elif id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            text = data.decode("ascii")
        else:
            text = f"{id_type}:{data.hex()}"
    except (ValueError, UnicodeDecodeError):
        text = f"{id_type}:{data.hex()}"
    return Identity(id_type, data, text)


def matches(configured: Identity | None, peer: Identity) -> bool:
    """None (no id configured) accepts any identity, like strongSwan's %any."""
    if configured is None:
        return True
    return configured.id_type == peer.id_type and configured.data == peer.data
