"""A peer's identity as it came in the ID payload, and whether a configured identity
admits it: what every handshake needs, PSK or certificate (certificates themselves:
``pike.sa.certs``, which loads ``cryptography.x509``; this module does not).
"""

from __future__ import annotations

from pike.policy.config import Identity
from pike.sa import identity
from pike.sa.der import DerError, decode_name
from pike.sa.id_match import match_score
from pike.wire.constants import IdType

# How strongSwan prints DN attributes (its "C=CH, O=x, CN=gw" notation), by OID.
_ATTR_NAMES = {
    "2.5.4.6": "C",  # countryName
    "2.5.4.8": "ST",  # stateOrProvinceName
    "2.5.4.7": "L",  # localityName
    "2.5.4.10": "O",  # organizationName
    "2.5.4.11": "OU",  # organizationalUnitName
    "2.5.4.3": "CN",  # commonName
    "1.2.840.113549.1.9.1": "E",  # emailAddress
    "2.5.4.5": "serialNumber",
    "0.9.2342.19200300.100.1.25": "DC",  # domainComponent
    "2.5.4.4": "SN",  # surname
    "2.5.4.42": "G",  # givenName
    "2.5.4.12": "T",  # title
}


def dn_equal(a: bytes, b: bytes) -> bool:
    """Two DER DNs name the same entity (string types and case aside, as strongSwan)."""
    if a == b:
        return True
    try:
        da, db = decode_name(a), decode_name(b)
    except DerError:
        return False
    fold = [tuple((o, v.casefold()) for o, v in rdn) for rdn in da]
    return fold == [tuple((o, v.casefold()) for o, v in rdn) for rdn in db]


def ids_match(configured: Identity | None, peer: Identity) -> bool:
    """Whether ``configured`` (maybe a wildcard, see ``id_match``) admits ``peer``;
    DNs compare by meaning rather than bytes."""
    return match_score(configured, peer) > 0


def peer_identity(id_type: int, data: bytes) -> Identity:
    """``identity.from_wire`` with a readable text for DNs (for logs and list-sas)."""
    ident = identity.from_wire(id_type, data)
    if id_type != IdType.ID_DER_ASN1_DN:
        return ident
    try:
        rdns = decode_name(data)
    except DerError:
        return ident
    text = ", ".join("+".join(f"{_ATTR_NAMES.get(o, o)}={v}" for o, v in rdn) for rdn in rdns)
    return Identity(id_type, data, identity.printable(text))
