"""Messages in strongSwan's log notation: ``IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]``."""

from __future__ import annotations

from collections.abc import Iterable

from pike.wire.constants import ExchangeType, PayloadType, ProtocolId, notify_name
from pike.wire.payloads import DeletePayload, NotifyPayload, Payload

_SHORT = {
    PayloadType.SA: "SA",
    PayloadType.KE: "KE",
    PayloadType.IDI: "IDi",
    PayloadType.IDR: "IDr",
    PayloadType.CERT: "CERT",
    PayloadType.CERTREQ: "CERTREQ",
    PayloadType.AUTH: "AUTH",
    PayloadType.NONCE: "No",
    PayloadType.VENDOR_ID: "V",
    PayloadType.TSI: "TSi",
    PayloadType.TSR: "TSr",
    PayloadType.SK: "SK",
    PayloadType.CP: "CP",
    PayloadType.EAP: "EAP",
    PayloadType.SKF: "SKF",
}


_VALUES = {int(t) for t in PayloadType}


def _one(p: Payload) -> str:
    if isinstance(p, NotifyPayload):
        return f"N({notify_name(p.notify_type)})"
    if isinstance(p, DeletePayload):
        try:
            return f"D({ProtocolId(p.protocol).name})"
        except ValueError:
            return f"D({p.protocol})"
    kind = int(p.TYPE)
    return _SHORT.get(PayloadType(kind), str(kind)) if kind in _VALUES else str(kind)


def describe_payloads(payloads: Iterable[Payload]) -> str:
    return "[ " + " ".join(_one(p) for p in payloads) + " ]"


def exchange_name(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return f"EXCHANGE_{exchange}"
