"""Messages in strongSwan's log notation: ``IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]``."""

from __future__ import annotations

from collections.abc import Iterable

from pike.crypto.proposal import ProposalSpec, format_proposal, format_transforms
from pike.wire.constants import ExchangeType, PayloadType, ProtocolId, notify_name
from pike.wire.payloads import DeletePayload, NotifyPayload, Payload, Proposal

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


# every message counts by name: ``EXCHANGE_NAMES.get(x) or exchange_name(x)`` in a hot path
EXCHANGE_NAMES = {int(e): e.name for e in ExchangeType}


def exchange_name(exchange: int) -> str:
    return EXCHANGE_NAMES.get(exchange) or f"EXCHANGE_{exchange}"


def offered(proposals: Iterable[Proposal]) -> str:
    """A peer's proposals in strongSwan's notation, for a log line: ``aes128gcm16-prfsha256
    -x25519, aes256-sha256-modp3072``."""
    texts = [
        format_transforms((t.type, t.id, t.key_length) for t in p.transforms) for p in proposals
    ]
    return ", ".join(texts) or "none"


def configured(specs: Iterable[ProposalSpec]) -> str:
    """Our proposals, in the same notation."""
    return ", ".join(format_proposal(s) for s in specs) or "none"
