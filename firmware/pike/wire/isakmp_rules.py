"""Which payloads each IKEv1 message may carry (RFC 2409 §5-§5.5, RFC 3947, RFC 2408 §4.8),
as data, checked by the IKEv2 rule checker.

IKEv1 messages carry no request/response bit: a message is named by its exchange and its
place in it (Main Mode 1..6, Aggressive Mode 1..3, Quick Mode 1..3, Informational 1).
HASH or SIG depends on the authentication method the SA negotiated: both are optional
here and the engine asks for the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pike.wire.errors import MalformedMessage
from pike.wire.isakmp_constants import ExchangeV1, NotifyV1
from pike.wire.isakmp_constants import PayloadV1 as T
from pike.wire.isakmp_payloads import V1Payload, V1Unknown
from pike.wire.rules import MANY, ONCE, OPTIONAL, ExchangeRule, PayloadRule, _violation

_VID: dict[int, tuple[int, int]] = {T.VENDOR_ID: MANY}
_NATD: dict[int, tuple[int, int]] = {T.NAT_D: MANY, T.NAT_D_DRAFT: MANY}
_AUTH: dict[int, tuple[int, int]] = {
    T.HASH: OPTIONAL,
    T.SIG: OPTIONAL,
    T.CERT: MANY,
    T.CERTREQ: MANY,
    T.NOTIFY: MANY,  # INITIAL-CONTACT (RFC 2407 §4.6.3.3)
}

# Main Mode (RFC 2409 §5): HDR, SA / HDR, KE, Ni [, CR] [, NAT-D, NAT-D] / HDR*, IDii, HASH_I
_MM_SA = PayloadRule({T.SA: ONCE, **_VID})
_MM_KE = PayloadRule({T.KE: ONCE, T.NONCE: ONCE, T.CERTREQ: MANY, **_NATD, **_VID})
_MM_ID = PayloadRule({T.ID: ONCE, **_AUTH, **_VID})

# Aggressive Mode (RFC 2409 §5): HDR, SA, KE, Ni, IDii / HDR, SA, KE, Nr, IDir, HASH_R /
# HDR, HASH_I (NAT-D in messages 2 and 3, RFC 3947 §4).
_AM_1 = PayloadRule({T.SA: ONCE, T.KE: ONCE, T.NONCE: ONCE, T.ID: ONCE, T.CERTREQ: MANY, **_VID})
_AM_2 = PayloadRule({T.SA: ONCE, T.KE: ONCE, T.NONCE: ONCE, T.ID: ONCE, **_AUTH, **_NATD, **_VID})
_AM_3 = PayloadRule({**_AUTH, **_NATD, **_VID})

# Quick Mode (RFC 2409 §5.5): HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr] [, NAT-OA] /
# HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] / HDR*, HASH(3). RESPONDER-LIFETIME rides in
# message 2 (RFC 2407 §4.6.3.1).
_QM_SA = PayloadRule(
    {
        T.HASH: ONCE,
        T.SA: ONCE,
        T.NONCE: ONCE,
        T.KE: OPTIONAL,
        T.ID: (0, 2),
        T.NOTIFY: MANY,
        T.NAT_OA: (0, 2),
        T.NAT_OA_DRAFT: (0, 2),
        **_VID,
    }
)
_QM_3 = PayloadRule({T.HASH: ONCE, T.NOTIFY: MANY})

# Informational (RFC 2408 §4.8, RFC 2409 §5.7): HDR*, HASH(1), N/D. Before phase 1 is
# done a notification goes in the clear and without HASH.
_INFO = PayloadRule({T.HASH: OPTIONAL, T.NOTIFY: MANY, T.DELETE: MANY, **_VID})

RULES: dict[tuple[int, int], PayloadRule] = {
    (ExchangeV1.MAIN, 1): _MM_SA,
    (ExchangeV1.MAIN, 2): _MM_SA,
    (ExchangeV1.MAIN, 3): _MM_KE,
    (ExchangeV1.MAIN, 4): _MM_KE,
    (ExchangeV1.MAIN, 5): _MM_ID,
    (ExchangeV1.MAIN, 6): _MM_ID,
    (ExchangeV1.AGGRESSIVE, 1): _AM_1,
    (ExchangeV1.AGGRESSIVE, 2): _AM_2,
    (ExchangeV1.AGGRESSIVE, 3): _AM_3,
    (ExchangeV1.QUICK, 1): _QM_SA,
    (ExchangeV1.QUICK, 2): _QM_SA,
    (ExchangeV1.QUICK, 3): _QM_3,
    (ExchangeV1.INFORMATIONAL, 1): _INFO,
}


def _name(kind: int) -> str:
    try:
        return T(kind).name
    except ValueError:
        return str(kind)


def check_v1(exchange: int, step: int, payloads: Sequence[V1Payload]) -> None:
    """Raise ``MalformedMessage("invalid_syntax")`` naming the rule message ``step`` of
    ``exchange`` breaks. Unknown payload types are ignored."""
    rule = RULES.get((exchange, step))
    if rule is None:
        raise MalformedMessage(
            "unknown_exchange",
            f"exchange {exchange} message {step}",
            NotifyV1.INVALID_EXCHANGE_TYPE,
        )
    # The checker is typed for IKEv2 payloads; it reads only ``TYPE`` and the class.
    broken = _violation(ExchangeRule(rule), cast(Sequence[Any], payloads), False, _name, V1Unknown)
    if broken is not None:
        try:
            xname = ExchangeV1(exchange).name
        except ValueError:
            xname = str(exchange)
        raise MalformedMessage(
            "invalid_syntax", f"{xname} message {step}: {broken}", NotifyV1.PAYLOAD_MALFORMED
        )
