"""IKE identities from config text (RFC 7296 §3.5), strongSwan's spelling.

``192.0.2.1`` -> ID_IPV4_ADDR, ``2001:db8::1`` -> ID_IPV6_ADDR, ``user@host`` ->
ID_RFC822_ADDR, ``@foo`` or ``host.example.net`` -> ID_FQDN, ``C=CH, O=x, CN=gw`` ->
ID_DER_ASN1_DN, ``keyid:...`` -> ID_KEY_ID. Explicit prefixes (``fqdn:``, ``email:``,
``dn:``, ``ipv4:``, ``ipv6:``, ``keyid:``) override the guess.

``Identity.text`` is canonical so that config, secrets and what the peer sends compare
equal: IP addresses compressed, FQDNs without ``@``, DNs re-printed.
"""

from __future__ import annotations

import ipaddress
import re

from pike.policy.config import Identity
from pike.wire.constants import IdType

# Attribute names strongSwan accepts beyond RFC 4514's short list.
# (NameOID attribute names; cryptography.x509 is imported by the first DN: 4 MiB of idle
# RSS a gateway without DN identities does without, docs/performance.md)
_DN_NAMES = {
    "E": "EMAIL_ADDRESS",
    "EMAIL": "EMAIL_ADDRESS",
    "EMAILADDRESS": "EMAIL_ADDRESS",
    "SN": "SURNAME",
    "SERIALNUMBER": "SERIAL_NUMBER",
    "G": "GIVEN_NAME",
    "GN": "GIVEN_NAME",
    "T": "TITLE",
}
_DN_START = re.compile(r"^\s*[A-Za-z][A-Za-z0-9.-]*\s*=")
_HOST_CHARS = re.compile(r"^[A-Za-z0-9._*-]+$")


class IdentityError(ValueError):
    """The text is not a usable identity (the message says why, never echoing secrets)."""


def _dn(text: str) -> Identity:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names = {k: getattr(NameOID, v) for k, v in _DN_NAMES.items()}
    # strongSwan order: RDNs as written are the DER sequence order (unlike RFC 4514 strings).
    parts = [p.strip() for p in re.split(r"(?<!\\)[,/]", text) if p.strip()]
    if not parts:
        raise IdentityError(f"{text!r} is not a distinguished name")
    rdns = []
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise IdentityError(f"{part!r} in DN {text!r} is not TYPE=value")
        one = f"{key.strip()}={value.strip()}"
        try:
            name = x509.Name.from_rfc4514_string(one, names)
        except ValueError:
            raise IdentityError(f"{part!r} in DN {text!r} is not TYPE=value") from None
        rdns.extend(name.rdns)
    name = x509.Name(rdns)
    canonical = ", ".join(r.rfc4514_string() for r in name.rdns)
    return Identity(IdType.ID_DER_ASN1_DN, name.public_bytes(), canonical)


def _fqdn(text: str) -> Identity:
    if not text or not _HOST_CHARS.match(text):
        raise IdentityError(f"{text!r} is not a host name")
    return Identity(IdType.ID_FQDN, text.encode("ascii"), text)


def _ip(text: str, version: int | None = None) -> Identity:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise IdentityError(f"{text!r} is not an IP address") from None
    if version is not None and addr.version != version:
        raise IdentityError(f"{text!r} is not an IPv{version} address")
    kind = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
    return Identity(kind, addr.packed, str(addr))


def _keyid(value: str) -> Identity:
    # keyid:#hex (strongSwan) or keyid:0xhex is binary; anything else is the text itself.
    for pfx in ("#", "0x"):
        if value.startswith(pfx):
            try:
                data = bytes.fromhex(value[len(pfx) :])
            except ValueError:
                raise IdentityError(f"keyid:{value} is not valid hex") from None
            return Identity(IdType.ID_KEY_ID, data, "keyid:#" + data.hex())
    if not value:
        raise IdentityError("keyid: is empty")
    return Identity(IdType.ID_KEY_ID, value.encode(), "keyid:" + value)


def _email(text: str) -> Identity:
    if text.count("@") != 1 or text.startswith("@") or any(c.isspace() for c in text):
        raise IdentityError(f"{text!r} is not an e-mail address")
    return Identity(IdType.ID_RFC822_ADDR, text.encode(), text)


def parse_identity(text: str) -> Identity:
    """The identity ``text`` denotes (see the module doc); raises IdentityError."""
    text = text.strip()
    prefix, sep, rest = text.partition(":")
    explicit = {
        "fqdn": _fqdn,
        "email": _email,
        "rfc822": _email,
        "dn": _dn,
        "asn1dn": _dn,
        "ipv4": lambda t: _ip(t, 4),
        "ipv6": lambda t: _ip(t, 6),
        "keyid": _keyid,
    }
    if sep and prefix.lower() in explicit:
        return explicit[prefix.lower()](rest)
    # Only a text of digits and dots (IPv4) or with a colon (IPv6) can be an address: not
    # trying the others saves an exception per FQDN (a hub loads thousands of them).
    if ":" in text or text.replace(".", "").isdigit():
        try:
            return _ip(text)
        except IdentityError:
            pass
    if _DN_START.match(text):
        return _dn(text)
    if text.startswith("@"):
        return _fqdn(text[1:])
    if "@" in text:
        return _email(text)
    return _fqdn(text)


def identity_of_address(addr: str) -> Identity:
    """The default identity of an IKE endpoint: its IP address."""
    return _ip(addr)
