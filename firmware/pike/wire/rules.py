"""Which payloads each exchange may carry (RFC 7296 §1.2-1.5, RFC 9242 §3), as data.

For every (exchange, request/response) the table gives, outside and inside the Encrypted
payload, each allowed payload type with its (min, max) count, plus groups of types that
come all together or not at all (SA, TSi, TSr of a CHILD_SA). A message carrying an error
Notify (type < 16384, RFC 7296 §3.10.1) or a COOKIE is an error or a retry answer: the
minimum counts and groups are waived, the allowed types and maximum counts are not.

The minimums cover the non-EAP exchanges pike speaks: a message carrying an EAP payload
waives them too (EAP rounds carry just EAP, AUTH or both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType
from pike.wire.constants import PayloadType as T
from pike.wire.errors import MalformedMessage
from pike.wire.payloads import NotifyPayload, Payload, UnknownPayload

ANY = 0xFFFF  # no maximum
ONCE = (1, 1)
OPTIONAL = (0, 1)
MANY = (0, ANY)


@dataclass(frozen=True, slots=True)
class PayloadRule:
    """Allowed payload types -> (min, max) count, and all-or-none groups."""

    counts: Mapping[int, tuple[int, int]]
    together: tuple[tuple[int, ...], ...] = ()
    required: tuple[tuple[int, int], ...] = field(init=False)  # (type, min) with min > 0

    def __post_init__(self) -> None:
        # An allowed type may appear once at least: ``_violation`` compares counts above 1.
        if any(most < 1 for _, most in self.counts.values()):
            raise ValueError(f"a payload allowed at most 0 times: {self.counts}")
        required = tuple((kind, least) for kind, (least, _) in self.counts.items() if least)
        object.__setattr__(self, "required", required)


@dataclass(frozen=True, slots=True)
class ExchangeRule:
    outside: PayloadRule
    inside: PayloadRule | None = None  # None: the exchange is not encrypted
    waivers: frozenset[int] = field(default_factory=frozenset)  # non-error notifies


# Encrypted exchanges carry exactly one SK, or one SKF fragment (RFC 7383), outside.
_ENCRYPTED_OUTSIDE = PayloadRule({T.SK: OPTIONAL, T.SKF: OPTIONAL})
_CHILD = (T.SA, T.TSI, T.TSR)

_SA_INIT = PayloadRule(
    {T.SA: ONCE, T.KE: ONCE, T.NONCE: ONCE, T.NOTIFY: MANY, T.VENDOR_ID: MANY, T.CERTREQ: MANY}
)

# IKE_AUTH (RFC 7296 §1.2): HDR, SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SAi2, TSi, TSr}
# A missing AUTH asks for EAP (§2.16); SA/TS are absent in a childless IKE_AUTH (RFC 6023).
_AUTH_COMMON: dict[int, tuple[int, int]] = {
    T.CERT: MANY,
    T.CERTREQ: MANY,
    T.SA: OPTIONAL,
    T.TSI: OPTIONAL,
    T.TSR: OPTIONAL,
    T.NOTIFY: MANY,
    T.CP: OPTIONAL,
    T.VENDOR_ID: MANY,
    T.EAP: OPTIONAL,
}
_AUTH_REQUEST = PayloadRule(
    {**_AUTH_COMMON, T.IDI: ONCE, T.IDR: OPTIONAL, T.AUTH: OPTIONAL}, (_CHILD,)
)
_AUTH_RESPONSE = PayloadRule({**_AUTH_COMMON, T.IDR: ONCE, T.AUTH: ONCE}, (_CHILD,))

# CREATE_CHILD_SA (RFC 7296 §1.3): SK {[N(REKEY_SA)], SA, Ni, [KEi], [TSi, TSr]}; the TS
# pair is absent when rekeying the IKE SA (§1.3.2).
_CHILD_SA = PayloadRule(
    {
        T.SA: ONCE,
        T.NONCE: ONCE,
        T.KE: OPTIONAL,
        T.TSI: OPTIONAL,
        T.TSR: OPTIONAL,
        T.NOTIFY: MANY,
        T.CP: OPTIONAL,
        T.VENDOR_ID: MANY,
    },
    ((T.TSI, T.TSR),),
)

# INFORMATIONAL (RFC 7296 §1.4): SK {[N,] [D,] [CP,] ...}; empty for liveness checks.
_INFORMATIONAL = PayloadRule({T.NOTIFY: MANY, T.DELETE: MANY, T.CP: OPTIONAL, T.VENDOR_ID: MANY})

# IKE_INTERMEDIATE (RFC 9242 §3, RFC 9370 §2.2.2): SK {[KEi(n)], [N,] ...}
_INTERMEDIATE = PayloadRule({T.KE: OPTIONAL, T.NOTIFY: MANY, T.VENDOR_ID: MANY})

# IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)} and
# SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)]}; an error answer carries just its notify.
_FOLLOWUP = PayloadRule({T.KE: OPTIONAL, T.NOTIFY: MANY, T.VENDOR_ID: MANY})

_RETRY = frozenset({NotifyType.COOKIE})

# (exchange, is_response) -> rule
RULES: dict[tuple[int, bool], ExchangeRule] = {
    (ExchangeType.IKE_SA_INIT, False): ExchangeRule(_SA_INIT, waivers=_RETRY),
    (ExchangeType.IKE_SA_INIT, True): ExchangeRule(_SA_INIT, waivers=_RETRY),
    (ExchangeType.IKE_AUTH, False): ExchangeRule(_ENCRYPTED_OUTSIDE, _AUTH_REQUEST),
    (ExchangeType.IKE_AUTH, True): ExchangeRule(_ENCRYPTED_OUTSIDE, _AUTH_RESPONSE),
    (ExchangeType.CREATE_CHILD_SA, False): ExchangeRule(_ENCRYPTED_OUTSIDE, _CHILD_SA),
    (ExchangeType.CREATE_CHILD_SA, True): ExchangeRule(_ENCRYPTED_OUTSIDE, _CHILD_SA),
    (ExchangeType.INFORMATIONAL, False): ExchangeRule(_ENCRYPTED_OUTSIDE, _INFORMATIONAL),
    (ExchangeType.INFORMATIONAL, True): ExchangeRule(_ENCRYPTED_OUTSIDE, _INFORMATIONAL),
    (ExchangeType.IKE_INTERMEDIATE, False): ExchangeRule(_ENCRYPTED_OUTSIDE, _INTERMEDIATE),
    (ExchangeType.IKE_INTERMEDIATE, True): ExchangeRule(_ENCRYPTED_OUTSIDE, _INTERMEDIATE),
    (ExchangeType.IKE_FOLLOWUP_KE, False): ExchangeRule(_ENCRYPTED_OUTSIDE, _FOLLOWUP),
    (ExchangeType.IKE_FOLLOWUP_KE, True): ExchangeRule(_ENCRYPTED_OUTSIDE, _FOLLOWUP),
}

_SK, _SKF = int(T.SK), int(T.SKF)
_EAP = int(T.EAP)


def _name(kind: int) -> str:
    try:
        return T(kind).name
    except ValueError:
        return str(kind)


def _waived(rule: ExchangeRule, payloads: Sequence[Payload]) -> bool:
    for p in payloads:
        if isinstance(p, NotifyPayload) and (
            p.notify_type <= ERROR_NOTIFY_MAX or p.notify_type in rule.waivers
        ):
            return True
        if p.TYPE == _EAP:
            return True
    return False


# Payload class sequences that passed their rule unwaived, keyed with the rule's place:
# the verdict depends on nothing else (a known class has one TYPE, unknown payloads are
# skipped whatever their type), and every peer with the same configuration sends the same
# sequence, so most messages are checked with one lookup. Bounded like sa_body's caches.
_PASSED: set[tuple[object, ...]] = set()
_PASSED_MAX = 256


def check_payloads(
    exchange: int, is_response: bool, payloads: Sequence[Payload], inside_sk: bool
) -> None:
    """Raise ``MalformedMessage("invalid_syntax")`` naming the rule ``payloads`` break.

    ``inside_sk`` says whether ``payloads`` are the decrypted inner payloads or the outer
    ones. Unknown non-critical payloads are ignored (RFC 7296 §2.5).
    """
    key = (exchange, is_response, inside_sk, *map(type, payloads))
    if key in _PASSED:
        return
    rule = RULES.get((exchange, is_response))
    if rule is None:
        raise MalformedMessage("unknown_exchange", f"exchange type {exchange}", None)
    broken, waivable = _broken(rule, payloads, inside_sk)
    if broken is None:
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED.add(key)
    elif not (waivable and _waived(rule, payloads)):
        where = (
            f"{_exchange_name(exchange)} {'response' if is_response else 'request'}"
            f" {'inside' if inside_sk else 'outside'} SK"
        )
        raise MalformedMessage("invalid_syntax", f"{where}: {broken}", NotifyType.INVALID_SYNTAX)


def _violation(
    rule: ExchangeRule,
    payloads: Sequence[Payload],
    inside_sk: bool,
    name: Callable[[int], str] = _name,
    unknown: type = UnknownPayload,
) -> str | None:
    """The first rule ``payloads`` break, or None. ``name`` and ``unknown`` let the IKEv1
    tables (``isakmp_rules``) reuse this check with their own payload numbers."""
    broken, waivable = _broken(rule, payloads, inside_sk, name, unknown)
    # an error notify (or a waiver, or EAP) excuses what is missing; asked only then
    return None if broken is None or (waivable and _waived(rule, payloads)) else broken


def _broken(
    rule: ExchangeRule,
    payloads: Sequence[Payload],
    inside_sk: bool,
    name: Callable[[int], str] = _name,
    unknown: type = UnknownPayload,
) -> tuple[str | None, bool]:
    """The first rule ``payloads`` break, and whether a waiver may excuse it: a type not
    allowed, too many of one or the SK count never; what is missing may be."""
    table = rule.inside if inside_sk else rule.outside
    if table is None:
        return "this exchange is not encrypted", False
    allowed = table.counts
    counts: dict[int, int] = {}  # in order of first appearance: the first culprit is named
    for p in payloads:
        kind = p.TYPE
        if kind in allowed:
            if p.__class__ is not unknown:  # unknown payloads are skipped, whatever their type
                counts[kind] = counts.get(kind, 0) + 1
        elif not isinstance(p, unknown):
            return f"{name(kind)} not allowed", False
    for kind, n in counts.items():
        if n > 1 and n > allowed[kind][1]:
            return f"{n} {name(kind)}, at most {allowed[kind][1]}", False
    if rule.inside is not None and not inside_sk:
        # Exactly one SK or SKF: this holds even for error messages.
        if counts.get(_SK, 0) + counts.get(_SKF, 0) != 1:
            return "needs exactly one SK or SKF payload", False
        return None, False
    for kind, least in table.required:
        if counts.get(kind, 0) < least:
            return f"missing {name(kind)}", True
    for group in table.together:
        present = len(counts.keys() & group)
        if present and present != len(group):
            return f"{', '.join(name(k) for k in group)} come together", True
    return None, False


def _exchange_name(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return str(exchange)
