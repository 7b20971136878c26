"""IKE identities on the wire vs. as configured (RFC 7296 §3.5)."""

from __future__ import annotations

import ipaddress

from pike.policy.config import Identity
from pike.policy.identity import identity_of_address as from_address
from pike.wire.constants import IdType

__all__ = ["from_address", "from_wire", "matches", "printable"]

# A peer's identity goes into logs, list-sas and metrics: as long as a line can sensibly be.
MAX_TEXT = 256


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` safe for a log line: each non-printable character (newline, escape
    sequences, ...) as ``?``, as strongSwan prints them, and at most ``limit`` characters.
    The peer chose these bytes; without this it could write forged lines into the journal."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


# built once: every IKE_AUTH asks (an Enum member lookup is slow on Python 3.11)
_ADDRESS_IDS = frozenset((IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR))
_NAME_IDS = frozenset((IdType.ID_FQDN, IdType.ID_RFC822_ADDR))


def from_wire(id_type: int, data: bytes) -> Identity:
    """A peer's identity with a printable text (never raises: the peer chose the bytes);
    ``data`` stays as sent, ``text`` is escaped (``printable``)."""
    try:
        if id_type in _ADDRESS_IDS:
            text = str(ipaddress.ip_address(data))
        elif id_type in _NAME_IDS:
            text = data.decode("ascii")
        else:
            text = f"{id_type}:{data.hex()}"
    except (ValueError, UnicodeDecodeError):
        text = f"{id_type}:{data.hex()}"
    return Identity(id_type, data, printable(text))


def matches(configured: Identity | None, peer: Identity) -> bool:
    """None (no id configured) accepts any identity, like strongSwan's %any."""
    if configured is None:
        return True
    return configured.id_type == peer.id_type and configured.data == peer.data
