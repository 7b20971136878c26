"""Proposal selection (RFC 7296 §2.7, §3.3): our configured specs against the peer's offer."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import cast

from pike.crypto.ids import (
    ADDKE_TYPES,
    T_ENCR,
    T_ESN,
    T_INTEG,
    T_KE,
    T_PRF,
    EsnId,
    GroupId,
    IntegId,
    TransformType,
)
from pike.crypto.proposal import ProposalSpec
from pike.sa.chosen import Chosen
from pike.wire.constants import ProtocolId
from pike.wire.payloads import Proposal, Transform

_ORDER = (
    TransformType.ENCR,
    TransformType.PRF,
    TransformType.INTEG,
    TransformType.KE,
    *ADDKE_TYPES,
    TransformType.ESN,
)
_KE_TYPES = frozenset((TransformType.KE, *ADDKE_TYPES))

_ENCR, _PRF, _INTEG, _KE, _ESN = T_ENCR, T_PRF, T_INTEG, T_KE, T_ESN
_INTEG_NONE, _GROUP_NONE = int(IntegId.NONE), int(GroupId.NONE)
_ESN_NO, _ESN_YES = int(EsnId.NO), int(EsnId.YES)
# A type we do not configure is acceptable only as "none" (RFC 7296 §3.3.3).
_NONE_OF = {_INTEG: _INTEG_NONE, _ESN: _ESN_NO, **{int(t): _GROUP_NONE for t in _KE_TYPES}}
_ADDKE = tuple(int(t) for t in ADDKE_TYPES)


def groups_of(specs: Sequence[ProposalSpec]) -> list[int]:
    """The key exchange groups a list of proposals offers, in preference order, no NONE."""
    out: list[int] = []
    for spec in specs:
        for alg in spec.of(TransformType.KE):
            if alg.id and alg.id not in out:
                out.append(alg.id)
    return out


def to_wire(
    specs: Sequence[ProposalSpec], spi: bytes, group_first: int | None = None
) -> tuple[Proposal, ...]:
    """Our proposals as the SA payload carries them, numbered from 1 (RFC 7296 §3.3.1).

    ``group_first`` moves the group we sent a KE payload for to the front of each list, so
    the peer's choice agrees with the KE data when it can (it is a preference, not a limit).
    """
    proposals = []
    for number, spec in enumerate(specs, start=1):
        transforms: list[Transform] = []
        for ttype in _ORDER:
            algs = list(spec.of(ttype))
            if ttype == TransformType.KE and group_first is not None:
                algs.sort(key=lambda a: a.id != group_first)
            transforms.extend(Transform(a.type, a.id, a.key_length) for a in algs)
        protocol = ProtocolId.IKE if spec.protocol == "ike" else ProtocolId.ESP
        proposals.append(Proposal(number, protocol, spi, tuple(transforms)))
    return tuple(proposals)


def _pick(
    ours: Sequence[tuple[int, int | None]],
    theirs: Sequence[Transform],
    prefer: int | None = None,
) -> tuple[int, int | None] | None:
    offered = {(t.id, t.key_length) for t in theirs if not t.unknown_attributes}
    if prefer is not None:
        for cand in ours:
            if cand[0] == prefer and cand in offered:
                return cand
    for cand in ours:
        if cand in offered:
            return cand
    return None


# Bound of ``ProposalSpec.matches``: offers are the peer's to choose, so a flood of
# distinct ones only empties it (and costs the match it would have saved).
_MATCHES_MAX = 64
_MISS = object()

# What a match agrees on besides the proposal's number and SPI: Chosen's other fields.
_Agreed = tuple[int, int | None, int | None, int, int, bool, bool, tuple[tuple[int, int], ...]]


# A transform as plain values (all its fields): the memo's key hashes and compares in C,
# where the payload classes' generated __hash__/__eq__ would run in Python per transform.
_TRANSFORM_FIELDS = attrgetter("type", "id", "key_length", "unknown_attributes")


def _match(spec: ProposalSpec, prop: Proposal, prefer_group: int | None) -> Chosen | None:
    key = (tuple(map(_TRANSFORM_FIELDS, prop.transforms)), prefer_group)
    memo = spec.matches
    found = memo.get(key, _MISS)
    if found is _MISS:
        found = _agree(spec, prop.transforms, prefer_group)
        if len(memo) >= _MATCHES_MAX:
            memo.clear()
        memo[key] = found
    if found is None:
        return None
    return Chosen(prop.number, prop.spi, *cast(_Agreed, found))


def _agree(
    spec: ProposalSpec, transforms: Sequence[Transform], prefer_group: int | None
) -> _Agreed | None:
    theirs: dict[int, list[Transform]] = {}
    for t in transforms:
        theirs.setdefault(t.type, []).append(t)
    chosen: dict[int, tuple[int, int | None]] = {}
    present = spec.types | theirs.keys()  # a type neither side names needs no look
    for ttype in _ORDER:
        if ttype not in present:
            continue
        ours = spec.choices(ttype)
        offered = theirs.get(ttype, [])
        if not ours:
            if not offered:
                continue
            none = _NONE_OF.get(ttype)
            if none is None or all(t.id != none for t in offered):
                return None
            chosen[ttype] = (none, None)
            continue
        if not offered:
            if ttype in _KE_TYPES and any(a.id == _GROUP_NONE for a in spec.of(ttype)):
                continue
            if ttype == _ESN and any(a.id == _ESN_NO for a in spec.of(ttype)):
                continue
            return None
        pick = _pick(ours, offered, prefer_group if ttype == _KE else None)
        if pick is None:
            return None
        chosen[ttype] = pick
    if _ENCR not in chosen:
        return None
    encr_id, keylen = chosen[_ENCR]
    return (
        encr_id,
        keylen,
        chosen[_PRF][0] if _PRF in chosen else None,  # prf_id
        chosen.get(_INTEG, (_INTEG_NONE, None))[0],  # integ_id
        chosen.get(_KE, (_GROUP_NONE, None))[0],  # group
        chosen.get(_ESN, (_ESN_NO, None))[0] == _ESN_YES,  # esn
        _ESN in chosen,  # esn_transform
        tuple((t, chosen[t][0]) for t in _ADDKE if t in chosen),  # addke
    )


def select(
    ours: Sequence[ProposalSpec],
    theirs: Sequence[Proposal],
    protocol: int,
    prefer_group: int | None = None,
) -> Chosen | None:
    """The first of our specs (our preference, like strongSwan's default) that one of the
    peer's proposals for ``protocol`` satisfies; None means NO_PROPOSAL_CHOSEN."""
    for spec in ours:
        for prop in theirs:
            if prop.protocol != protocol:
                continue
            got = _match(spec, prop, prefer_group)
            if got is not None:
                return got
    return None


def only_choice(specs: Sequence[ProposalSpec], protocol: int) -> Chosen | None:
    """The one combination ``specs`` allow (a single proposal with at most one transform
    of each type), which is what any valid answer must name; None when the peer chooses."""
    if len(specs) != 1 or any(len(specs[0].of(t)) > 1 for t in _ORDER):
        return None
    return select(specs, to_wire(specs, bytes(4)), protocol)


def check_reply(
    offered: Sequence[ProposalSpec], reply: Sequence[Proposal], protocol: int
) -> Chosen | None:
    """The responder's answer must be exactly one proposal with one transform per type,
    all of which we offered (RFC 7296 §2.7)."""
    if len(reply) != 1 or reply[0].protocol != protocol:
        return None
    types = [t.type for t in reply[0].transforms]
    if len(types) != len(set(types)):
        return None
    return select(offered, reply, protocol)
