"""Proposals as values, and strongSwan proposal strings (``aes256gcm16-prfsha384-ecp384``).

A ``ProposalSpec`` is one configured proposal: the algorithms we offer or accept for one
protocol (IKE or ESP), each transform type listing its choices in preference order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, KeysView
from dataclasses import field
from typing import Literal

from pike.crypto.errors import ProposalError
from pike.crypto.ids import ADDKE_TYPES, EsnId, GroupId, IntegId, PrfId, TransformType
from pike.crypto.sizes import is_aead
from pike.crypto.vocabulary import CANONICAL, REFUSED_GROUPS, REFUSED_KEYWORDS, TOKENS
from pike.frozen import frozen

Protocol = Literal["ike", "esp"]


@frozen
class Algorithm:
    type: TransformType
    id: int
    key_length: int | None = None  # bits, for variable-length ciphers (AES)


@frozen
class ProposalSpec:
    protocol: Protocol
    transforms: tuple[Algorithm, ...]
    # transforms by type, built once: every handshake asks ``of`` for each type
    _by_type: dict[int, tuple[Algorithm, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    _choices: dict[int, tuple[tuple[int, int | None], ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _no_ke: ProposalSpec | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    # What ``pike.ikev2.negotiate`` agreed with each offer (transforms, preferred group)
    # seen lately: a hub's peers offer the same few, and matching costs more than a look-up.
    matches: dict[object, object] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        by_type: dict[int, tuple[Algorithm, ...]] = {}
        for a in self.transforms:
            by_type[a.type] = (*by_type.get(a.type, ()), a)
        object.__setattr__(self, "_by_type", by_type)
        choices = {t: tuple((a.id, a.key_length) for a in algs) for t, algs in by_type.items()}
        object.__setattr__(self, "_choices", choices)

    def __reduce__(self) -> tuple[type, tuple[str, tuple[Algorithm, ...]]]:
        # pickled (the config cache) as a call: the lookups are rebuilt, not stored
        return type(self), (self.protocol, self.transforms)

    def of(self, ttype: TransformType) -> tuple[Algorithm, ...]:
        return self._by_type.get(ttype, ())

    def choices(self, ttype: TransformType) -> tuple[tuple[int, int | None], ...]:
        """``of(ttype)`` as (transform ID, key length) pairs, as they are matched."""
        return self._choices.get(ttype, ())

    @property
    def types(self) -> KeysView[int]:
        """The transform types this proposal names."""
        return self._choices.keys()

    def without_ke(self) -> ProposalSpec:
        """This proposal without key exchange transforms (KE, ADDKE1..7), built once: a
        CHILD_SA made in IKE_AUTH asks for it on every handshake."""
        if self._no_ke is None:
            kept = tuple(a for a in self.transforms if a.type not in _KE_TYPES)
            object.__setattr__(self, "_no_ke", ProposalSpec(self.protocol, kept))
        assert self._no_ke is not None
        return self._no_ke


_KE_TYPES = frozenset((TransformType.KE, *ADDKE_TYPES))


# --- strongSwan proposal strings --------------------------------------------------------
#
# Choices (checked against strongSwan's proposal.c, check_proposal()):
# - In IKE proposals without a ``prf...`` keyword, each integrity algorithm adds its
#   matching PRF (sha256 -> prfsha256), as strongSwan does.
# - An IKE proposal with only AEAD ciphers and no ``prf...`` is an error, not a silent
#   prfsha256: strongSwan rejects it too ("a PRF algorithm is mandatory in IKE proposals"),
#   so a config that works in pike works in strongSwan and the reverse.
# - ESP proposals without ``esn``/``noesn`` get ESN NO (strongSwan: "ESN not specified,
#   assume not supported"). A PRF in an ESP proposal is an error (strongSwan drops it).
# - Transforms are kept in canonical order ENCR, INTEG, PRF, KE, ESN, each type in the
#   order written; ``format_proposal`` prints them that way, ESN included for ESP.

_TYPE_ORDER: dict[int, int] = {
    TransformType.ENCR: 0,
    TransformType.INTEG: 1,
    TransformType.PRF: 2,
    TransformType.KE: 3,
    **{t: 4 + i for i, t in enumerate(ADDKE_TYPES)},
    TransformType.ESN: 11,
}

# strongSwan 6's prefix for additional key exchanges: ke1_mlkem768, ke2_none, ...
_ADDKE_PREFIX = re.compile(r"ke([1-7])_(.+)")

# strongSwan's integ_prf_map: the PRF an integrity algorithm implies in IKE proposals
_INTEG_TO_PRF: dict[int, int] = {
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
}


def _canonical_order(algs: Iterable[Algorithm]) -> tuple[Algorithm, ...]:
    # sorted() is stable: within a type the written (preference) order stays
    return tuple(sorted(algs, key=lambda a: _TYPE_ORDER.get(a.type, 99)))


def parse_proposal(text: str, protocol: Protocol) -> ProposalSpec:
    """Parse a strongSwan proposal string such as ``aes256gcm16-prfsha384-ecp384``.

    Raises ProposalError naming the offending keyword and why it is refused.
    """
    if protocol not in ("ike", "esp"):
        raise ProposalError(f"unknown protocol {protocol!r}: expected 'ike' or 'esp'")
    where = f"{protocol} proposal '{text}'"
    words = text.strip().lower().split("-")
    algs: list[Algorithm] = []
    for word in words:
        if not word:
            raise ProposalError(f"empty algorithm name in {where}")
        alg = _algorithm(word, where)
        if alg in algs:
            raise ProposalError(f"'{word}' names an algorithm listed twice in {where}")
        algs.append(alg)
    return ProposalSpec(protocol, _canonical_order(_complete(algs, protocol, where)))


def _algorithm(word: str, where: str) -> Algorithm:
    """One keyword; ``keN_<group>`` (or ``keN_none``: the exchange is optional) names an
    additional key exchange (RFC 9370 §2.2.1)."""
    addke = _ADDKE_PREFIX.fullmatch(word)
    if addke is not None:
        ttype = ADDKE_TYPES[int(addke.group(1)) - 1]
        if addke.group(2) == "none":
            return Algorithm(ttype, int(GroupId.NONE))
        inner = _algorithm(addke.group(2), where)
        if inner.type != TransformType.KE:
            raise ProposalError(f"'{word}' names no key exchange method in {where}")
        return Algorithm(ttype, inner.id)
    refusal = REFUSED_KEYWORDS.get(word)
    if refusal is not None:
        raise ProposalError(refusal)
    token = TOKENS.get(word)
    if token is None:
        raise ProposalError(f"unknown algorithm '{word}' in {where}")
    return Algorithm(token[0], int(token[1]), token[2])


def _complete(algs: list[Algorithm], protocol: Protocol, where: str) -> list[Algorithm]:
    """Check the combination of algorithms and add the implied ones."""
    encrs = [a for a in algs if a.type == TransformType.ENCR]
    integs = [a for a in algs if a.type == TransformType.INTEG]
    prfs = [a for a in algs if a.type == TransformType.PRF]
    kes = [a for a in algs if a.type == TransformType.KE]
    esns = [a for a in algs if a.type == TransformType.ESN]
    if not encrs:
        raise ProposalError(f"no encryption algorithm in {where}")
    aead = [a for a in encrs if is_aead(a.id)]
    if aead and len(aead) != len(encrs):
        raise ProposalError(f"AEAD and non-AEAD ciphers cannot be mixed in {where}")
    if aead and integs:
        raise ProposalError(
            f"{algorithm_name(aead[0])} is an AEAD cipher with its own integrity check: "
            f"remove {algorithm_name(integs[0])} from {where}"
        )
    if not aead and not integs:
        raise ProposalError(
            f"{algorithm_name(encrs[0])} needs an integrity algorithm (e.g. sha256) in {where}"
        )
    out = list(algs)
    if protocol == "ike":
        if esns:
            raise ProposalError(f"{algorithm_name(esns[0])} is an ESP option, not IKE: {where}")
        if not prfs:
            implied = [Algorithm(TransformType.PRF, int(_INTEG_TO_PRF[a.id])) for a in integs]
            if not implied:
                raise ProposalError(
                    f"an IKE proposal with an AEAD cipher needs a PRF (e.g. prfsha256): {where}"
                )
            out.extend(dict.fromkeys(implied))  # dedupe, keep order
        if not kes:
            raise ProposalError(
                f"an IKE proposal needs a key exchange group (e.g. x25519): {where}"
            )
    else:
        if prfs:
            raise ProposalError(
                f"{algorithm_name(prfs[0])} is a PRF, which ESP proposals do not take: {where}"
            )
        if not esns:
            out.append(Algorithm(TransformType.ESN, int(EsnId.NO)))
    return out


def algorithm_name(alg: Algorithm) -> str:
    """The keyword pike prints for ``alg`` (``aes128gcm16``, ``prfsha256``, ``x25519``)."""
    name = CANONICAL.get((alg.type, alg.id, alg.key_length))
    if name is not None:
        return name
    if alg.type in ADDKE_TYPES:
        n = int(alg.type) - int(TransformType.ADDKE1) + 1
        ke = Algorithm(TransformType.KE, alg.id)
        inner = "none" if alg.id == GroupId.NONE else algorithm_name(ke)
        return f"ke{n}_{inner}"
    refused = REFUSED_GROUPS.get(alg.id) if alg.type == TransformType.KE else None
    if refused is not None:
        return refused[0]
    # Not one of ours (e.g. a peer's offer): say what it is, strongSwan-like
    try:
        tname = TransformType(alg.type).name.lower()
    except ValueError:
        tname = f"type{alg.type}_"
    suffix = f"_{alg.key_length}" if alg.key_length else ""
    return f"{tname}{alg.id}{suffix}"


def group_name(group: int) -> str:
    """A key exchange group as the config and strongSwan name it (``modp3072``, ``ecp256``,
    ``x25519``; ``modp1024`` for a refused one), ``group N`` when pike has no name for it:
    the one spelling for logs, list-sas and metrics, whatever the IKE version."""
    known = CANONICAL.get((TransformType.KE, group, None))
    refused = REFUSED_GROUPS.get(group)
    return known or (refused[0] if refused else f"group {group}")


def format_proposal(spec: ProposalSpec) -> str:
    """Print ``spec`` as a canonical proposal string that parses back to ``spec``."""
    return "-".join(algorithm_name(a) for a in _canonical_order(spec.transforms))


def format_transforms(transforms: Iterable[tuple[int, int, int | None]]) -> str:
    """Print a negotiated set of (type, id, key length) the way format_proposal does."""
    algs = []
    for ttype, tid, key_length in transforms:
        try:
            typed: TransformType | int = TransformType(ttype)
        except ValueError:
            typed = ttype
        # an unknown type number from a peer stays an int; algorithm_name() copes
        algs.append(Algorithm(typed, tid, key_length))  # type: ignore[arg-type]
    return "-".join(algorithm_name(a) for a in _canonical_order(algs))
