"""Configured proposals <-> IKEv1 SA payloads, and the choice of the peer's transform.

IKEv1 names algorithms with its own numbers (RFC 2409 Appendix A, RFC 2407 §4.4-4.5); the
configuration keeps strongSwan's IKEv2 vocabulary (``aes256-sha256-modp3072``), as
strongSwan itself does for ``version = 1``. One phase-1 proposal carries one transform per
combination of cipher, hash and group; the responder takes the first the peer lists that
it accepts. What pike refuses for IKEv2 (RFC 8247: DES, MD5, MODP-768/1024, ...) is never
offered and never accepted here either.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pike.crypto.errors import CryptoError, ProposalError
from pike.crypto.ids import EncrId, IntegId, PrfId, TransformType
from pike.crypto.ke import SUPPORTED_GROUPS, check_group, is_kem
from pike.crypto.proposal import ProposalSpec, format_transforms, group_name
from pike.crypto.sizes import encr_key_size, integ_key_size, is_aead
from pike.wire.isakmp_constants import (
    KEY_IKE,
    AuthAlgV1,
    AuthV1,
    EncapMode,
    EncrV1,
    HashV1,
    LifeType,
    P1Attr,
    P2Attr,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import V1Proposal, V1Transform

_PRF_HASH: dict[int, int] = {
    PrfId.HMAC_SHA1: HashV1.SHA1,
    PrfId.HMAC_SHA2_256: HashV1.SHA2_256,
    PrfId.HMAC_SHA2_384: HashV1.SHA2_384,
    PrfId.HMAC_SHA2_512: HashV1.SHA2_512,
}
# ESP integrity: IKEv2 transform -> IPsec DOI Authentication Algorithm (RFC 4868 §4)
_INTEG_AUTH = {
    IntegId.HMAC_SHA1_96: AuthAlgV1.HMAC_SHA,
    IntegId.HMAC_SHA2_256_128: AuthAlgV1.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: AuthAlgV1.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: AuthAlgV1.HMAC_SHA2_512,
}
_AUTH_INTEG = {v: k for k, v in _INTEG_AUTH.items()}
_HASH_PRF: dict[int, PrfId] = {v: PrfId(k) for k, v in _PRF_HASH.items()}
# phase 1's hash also keys the HMAC that protects its messages: named as IKEv2's INTEG
_PRF_INTEG = {
    PrfId.HMAC_SHA1: IntegId.HMAC_SHA1_96,
    PrfId.HMAC_SHA2_256: IntegId.HMAC_SHA2_256_128,
    PrfId.HMAC_SHA2_384: IntegId.HMAC_SHA2_384_192,
    PrfId.HMAC_SHA2_512: IntegId.HMAC_SHA2_512_256,
}
# ESP transform IDs (RFC 2407 §4.4.4) equal IKEv2's ENCR IDs for the ciphers pike has.
_ESP_CIPHERS = (EncrId.AES_CBC, EncrId.AES_GCM_16)


@dataclass(frozen=True, slots=True)
class Phase1Choice:
    """The transform both sides agreed on for the ISAKMP SA."""

    number: int
    key_bits: int
    hash_alg: int
    group: int
    auth: int
    lifetime: int  # seconds, 0 when the transform named none

    def transform(self) -> V1Transform:
        return V1Transform(self.number, KEY_IKE, _p1_attrs(self))

    def name(self) -> str:
        """In the words IKEv2 and the config use (``aes256-sha256-prfsha256-modp3072``),
        so list-sas, logs and metrics name a group the same way in both versions."""
        prf = _HASH_PRF.get(self.hash_alg)
        transforms: list[tuple[int, int, int | None]] = [
            (int(TransformType.ENCR), int(EncrId.AES_CBC), self.key_bits)
        ]
        if prf is not None:
            transforms += [
                (int(TransformType.INTEG), int(_PRF_INTEG[prf]), None),
                (int(TransformType.PRF), int(prf), None),
            ]
        transforms.append((int(TransformType.KE), self.group, None))
        return format_transforms(transforms)


def _p1_attrs(c: Phase1Choice) -> tuple[tuple[int, int], ...]:
    attrs = [
        (P1Attr.ENCRYPTION, EncrV1.AES_CBC),
        (P1Attr.KEY_LENGTH, c.key_bits),
        (P1Attr.HASH, c.hash_alg),
        (P1Attr.AUTH_METHOD, c.auth),
        (P1Attr.GROUP, c.group),
    ]
    if c.lifetime:
        attrs += [(P1Attr.LIFE_TYPE, LifeType.SECONDS), (P1Attr.LIFE_DURATION, c.lifetime)]
    return tuple(attrs)


def phase1_choices(specs: tuple[ProposalSpec, ...], auth: int, lifetime: int) -> list[Phase1Choice]:
    """Every combination we offer, in preference order (AES-CBC only: the IKEv1 body
    cipher ``pike.ikev1.cipher`` is AES-CBC)."""
    out: list[Phase1Choice] = []
    for spec in specs:
        encrs = [a for a in spec.of(TransformType.ENCR) if a.id == EncrId.AES_CBC]
        hashes = [_PRF_HASH[a.id] for a in spec.of(TransformType.PRF) if a.id in _PRF_HASH]
        groups = [a.id for a in spec.of(TransformType.KE)]
        for e, h, g in itertools.product(encrs, hashes, groups):
            choice = Phase1Choice(len(out) + 1, e.key_length or 128, h, g, auth, lifetime)
            if choice not in out:
                out.append(choice)
    return out


def phase1_proposal(choices: list[Phase1Choice]) -> V1Proposal:
    return V1Proposal(1, ProtocolV1.ISAKMP, b"", tuple(c.transform() for c in choices))


def _acceptable_group(group: int) -> bool:
    try:
        check_group(group)
    except (ProposalError, CryptoError):
        return False
    return group in SUPPORTED_GROUPS and not is_kem(group)  # ML-KEM is IKEv2 only


def parse_phase1(t: V1Transform) -> Phase1Choice | None:
    """The transform's meaning, or None if it asks for anything we do not do (a weak or
    unknown algorithm, a custom group, a lifetime in kilobytes...)."""
    known = {int(x) for x in P1Attr}
    if t.transform_id != KEY_IKE or any(k not in known for k, _ in t.attributes):
        return None
    if t.attr(P1Attr.ENCRYPTION) != EncrV1.AES_CBC:
        return None  # DES and 3DES are refused (RFC 8247 §2.1); others not implemented
    bits = t.attr(P1Attr.KEY_LENGTH) or 128
    hash_alg = t.attr(P1Attr.HASH)
    group = t.attr(P1Attr.GROUP)
    auth = t.attr(P1Attr.AUTH_METHOD)
    if bits not in (128, 192, 256) or hash_alg is None or hash_alg not in _PRF_HASH.values():
        return None  # MD5 is refused (RFC 8247 §2.3)
    if group is None or auth is None or not _acceptable_group(group):
        return None
    if any(t.attr(k) is not None for k in (P1Attr.GROUP_TYPE, P1Attr.GROUP_PRIME, P1Attr.PRF)):
        return None
    lifetime = seconds_life(t.attributes, P1Attr.LIFE_TYPE, P1Attr.LIFE_DURATION)
    return Phase1Choice(t.number, bits, hash_alg, group, auth, lifetime)


def describe_phase1(t: V1Transform) -> str:
    """A peer's phase-1 transform for a log line: ours (``aes256-sha256-prfsha256-modp2048``)
    or its attribute numbers (a refused or unknown algorithm; the group by name)."""
    c = parse_phase1(t)
    if c is not None:
        return c.name()
    group = t.attr(P1Attr.GROUP)
    named = group_name(group) if group is not None else "none"
    return (
        f"encryption {t.attr(P1Attr.ENCRYPTION)}/hash {t.attr(P1Attr.HASH)}"
        f"/group {named} (not acceptable)"
    )


def seconds_life(attrs: tuple[tuple[int, int], ...], type_attr: int, duration_attr: int) -> int:
    """The lifetime in seconds of a life type/duration attribute pair (RFC 2409 App. A:
    each Life Type is followed by its Life Duration), 0 when there is none."""
    for i, (kind, value) in enumerate(attrs[:-1]):
        if (kind, value) == (type_attr, LifeType.SECONDS) and attrs[i + 1][0] == duration_attr:
            return attrs[i + 1][1]
    return 0


def select_phase1(offer: V1Proposal, ours: list[Phase1Choice]) -> Phase1Choice | None:
    """The first transform of the peer's proposal that we also offer (any lifetime)."""
    if offer.protocol != ProtocolV1.ISAKMP:
        return None
    for t in offer.transforms:
        theirs = parse_phase1(t)
        if theirs is None:
            continue
        for mine in ours:
            if (mine.key_bits, mine.hash_alg, mine.group, mine.auth) == (
                theirs.key_bits,
                theirs.hash_alg,
                theirs.group,
                theirs.auth,
            ):
                return theirs
    return None


# -- phase 2 ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase2Choice:
    encr_id: int
    key_bits: int | None
    integ_id: int  # IKEv2 INTEG id (0 for AEAD)
    group: int  # PFS group, 0 without PFS
    lifetime: int  # seconds, 0 when none given

    def key_sizes(self) -> tuple[int, int]:
        return encr_key_size(self.encr_id, self.key_bits), integ_key_size(self.integ_id)

    def transform(self, number: int, encap: int) -> V1Transform:
        attrs: list[tuple[int, int]] = []
        if self.lifetime:
            attrs += [(P2Attr.LIFE_TYPE, LifeType.SECONDS), (P2Attr.LIFE_DURATION, self.lifetime)]
        if self.group:
            attrs.append((P2Attr.GROUP, self.group))
        attrs.append((P2Attr.ENCAP_MODE, encap))
        if self.integ_id:
            attrs.append((P2Attr.AUTH_ALGORITHM, _INTEG_AUTH[IntegId(self.integ_id)]))
        if self.key_bits:
            attrs.append((P2Attr.KEY_LENGTH, self.key_bits))
        return V1Transform(number, self.encr_id, tuple(attrs))

    def triples(self) -> tuple[tuple[int, int, int | None], ...]:
        out: list[tuple[int, int, int | None]] = [(TransformType.ENCR, self.encr_id, self.key_bits)]
        if self.integ_id:
            out.append((TransformType.INTEG, self.integ_id, None))
        if self.group:
            out.append((TransformType.KE, self.group, None))
        return tuple(out)


def phase2_choices(specs: tuple[ProposalSpec, ...], lifetime: int) -> list[Phase2Choice]:
    out: list[Phase2Choice] = []
    for spec in specs:
        encrs = [a for a in spec.of(TransformType.ENCR) if a.id in _ESP_CIPHERS]
        integs = [a.id for a in spec.of(TransformType.INTEG) if a.id in _INTEG_AUTH]
        groups = [a.id for a in spec.of(TransformType.KE)] or [0]
        for e in encrs:
            for i in [0] if is_aead(e.id) else integs:
                for g in groups:
                    c = Phase2Choice(e.id, e.key_length, i, g, lifetime)
                    if c not in out:
                        out.append(c)
    return out


def encap_mode(mode: str, udp: bool, draft: bool) -> int:
    if not udp:
        return EncapMode.TRANSPORT if mode == "transport" else EncapMode.TUNNEL
    if mode == "transport":
        return EncapMode.UDP_TRANSPORT_DRAFT if draft else EncapMode.UDP_TRANSPORT
    return EncapMode.UDP_TUNNEL_DRAFT if draft else EncapMode.UDP_TUNNEL


_MODE_OF = {
    EncapMode.TUNNEL: ("tunnel", False),
    EncapMode.TRANSPORT: ("transport", False),
    EncapMode.UDP_TUNNEL: ("tunnel", True),
    EncapMode.UDP_TRANSPORT: ("transport", True),
    EncapMode.UDP_TUNNEL_DRAFT: ("tunnel", True),
    EncapMode.UDP_TRANSPORT_DRAFT: ("transport", True),
}


def mode_of(encap: int) -> tuple[str, bool] | None:
    """(mode, UDP-encapsulated) of an Encapsulation Mode value, or None if unknown."""
    try:
        return _MODE_OF[EncapMode(encap)]
    except ValueError:
        return None


def phase2_proposals(
    choices: list[Phase2Choice], spi: bytes, mode: str, udp: bool, draft: bool
) -> tuple[V1Proposal, ...]:
    """One ESP proposal with one transform per choice (transforms are alternatives)."""
    encap = encap_mode(mode, udp, draft)
    transforms = tuple(c.transform(i + 1, encap) for i, c in enumerate(choices))
    return (V1Proposal(1, ProtocolV1.ESP, spi, transforms),)


def parse_phase2(t: V1Transform) -> tuple[Phase2Choice, int] | None:
    """(choice, encapsulation mode) of an ESP transform, or None if we cannot take it."""
    known = {int(x) for x in P2Attr}
    if any(k not in known for k, _ in t.attributes) or t.transform_id not in _ESP_CIPHERS:
        return None
    auth = t.attr(P2Attr.AUTH_ALGORITHM)
    if is_aead(t.transform_id):
        if auth is not None:
            return None
        integ = 0
    elif auth not in _AUTH_INTEG:
        return None  # HMAC-MD5, DES-MAC... refused (RFC 8221)
    else:
        integ = _AUTH_INTEG[AuthAlgV1(auth)]
    bits = t.attr(P2Attr.KEY_LENGTH)
    if bits not in (128, 192, 256):
        return None
    group = t.attr(P2Attr.GROUP) or 0
    if group and not _acceptable_group(group):
        return None
    encap = t.attr(P2Attr.ENCAP_MODE) or EncapMode.TUNNEL
    if mode_of(encap) is None:
        return None
    lifetime = seconds_life(t.attributes, P2Attr.LIFE_TYPE, P2Attr.LIFE_DURATION)
    return Phase2Choice(t.transform_id, bits, integ, group, lifetime), encap


def select_phase2(
    offers: tuple[V1Proposal, ...], ours: list[Phase2Choice]
) -> tuple[V1Proposal, V1Transform, Phase2Choice, int] | None:
    """The first ESP proposal/transform of the peer we also offer (lifetime aside).
    Proposals bundling ESP with AH or IPComp are skipped: pike negotiates ESP alone."""
    numbers = [p.number for p in offers]
    for prop in offers:
        if prop.protocol != ProtocolV1.ESP or numbers.count(prop.number) != 1:
            continue
        for t in prop.transforms:
            parsed = parse_phase2(t)
            if parsed is None:
                continue
            theirs, encap = parsed
            for mine in ours:
                if (mine.encr_id, mine.key_bits, mine.integ_id, mine.group) == (
                    theirs.encr_id,
                    theirs.key_bits,
                    theirs.integ_id,
                    theirs.group,
                ):
                    return prop, t, theirs, encap
    return None


AUTH_PSK = AuthV1.PSK
