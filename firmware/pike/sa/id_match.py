"""How well a configured remote identity fits the one a peer sent, strongSwan's way.

A configured identity may be a wildcard: none at all (``%any``), an FQDN or e-mail
address starting with ``*`` (``*.branches.example.net``, ``*@example.net``), or a DN with
``*`` as some RDN values (``C=CH, O=Example, CN=*``). ``match_score`` ranks a fit so that
the most specific configured identity wins (strongSwan's ``id_match_t``: PERFECT, one
wildcard, ..., ANY); among suffix wildcards the longer suffix is the more specific.
"""

from __future__ import annotations

from pike.policy.config import Identity
from pike.sa.der import DerError, decode_name
from pike.wire.constants import IdType

# Scores (higher is more specific); 0 means no match. The low 8 bits rank suffix lengths.
NONE = 0
ANY = 1 << 8
MAX_WILDCARDS = 2 << 8
ONE_WILDCARD = 19 << 8
PERFECT = 20 << 8

_TEXT_TYPES = (IdType.ID_FQDN, IdType.ID_RFC822_ADDR)

Rdns = tuple[tuple[tuple[str, str], ...], ...]


def is_wildcard(ident: Identity | None) -> bool:
    """Whether ``ident`` stands for more than one peer identity (never sent as IDr)."""
    if ident is None:
        return True
    if ident.id_type in _TEXT_TYPES:
        return ident.text.startswith("*")
    if ident.id_type == IdType.ID_DER_ASN1_DN:
        return any(v == "*" for rdn in _rdns(ident.data) or () for _, v in rdn)
    return False


def match_score(configured: Identity | None, peer: Identity) -> int:
    """How specifically ``configured`` admits ``peer`` (NONE: it does not)."""
    if configured is None:
        return ANY
    if configured.id_type != peer.id_type:
        return NONE
    if configured.id_type in _TEXT_TYPES:
        return _text_score(configured.text, peer.data)
    if configured.id_type == IdType.ID_DER_ASN1_DN:
        return _dn_score(configured.data, peer.data)
    return PERFECT if configured.data == peer.data else NONE


def _text_score(pattern: str, data: bytes) -> int:
    try:
        text = data.decode("ascii").lower()
    except UnicodeDecodeError:
        return NONE
    pattern = pattern.lower()
    if not pattern.startswith("*"):
        return PERFECT if text == pattern else NONE
    suffix = pattern[1:]
    if not suffix:
        return ANY
    return ONE_WILDCARD + min(len(suffix), 255) if text.endswith(suffix) else NONE


def _dn_score(configured: bytes, peer: bytes) -> int:
    if configured == peer:
        return PERFECT
    mine, theirs = _rdns(configured), _rdns(peer)
    if mine is None or theirs is None or len(mine) != len(theirs):
        return NONE
    wildcards = 0
    for a, b in zip(mine, theirs, strict=True):
        if len(a) != len(b):
            return NONE
        for (oid_a, val_a), (oid_b, val_b) in zip(a, b, strict=True):
            if oid_a != oid_b:
                return NONE
            if val_a == "*":
                wildcards += 1
            elif val_a.casefold() != val_b.casefold():
                return NONE
    return max(PERFECT - (wildcards << 8), MAX_WILDCARDS)


def _rdns(data: bytes) -> Rdns | None:
    try:
        return decode_name(data)
    except DerError:
        return None


def exact_key(ident: Identity) -> tuple[int, object]:
    """A dict key under which equal identities meet (DNs by meaning, names by case)."""
    if ident.id_type in _TEXT_TYPES:
        return ident.id_type, ident.data.lower()
    if ident.id_type == IdType.ID_DER_ASN1_DN:
        rdns = _rdns(ident.data)
        if rdns is not None:
            return ident.id_type, tuple(tuple((o, v.casefold()) for o, v in r) for r in rdns)
    return ident.id_type, ident.data
