"""Proposal selection: the responder's answer names exactly the transforms agreed."""

from __future__ import annotations

from pike.crypto.ids import EsnId, TransformType
from pike.crypto.proposal import parse_proposal
from pike.ikev2.negotiate import check_reply, select, to_wire
from pike.wire.constants import ProtocolId
from pike.wire.payloads import Proposal, Transform


def _esp(*texts: str) -> tuple[Proposal, ...]:
    return to_wire([parse_proposal(t, "esp") for t in texts], b"\x01\x02\x03\x04")


def test_esp_answer_carries_the_esn_transform() -> None:
    # strongSwan (as initiator) refuses an ESP answer without ESN: "no acceptable
    # EXTENDED_SEQUENCE_NUMBERS found" (seen in the UML kernel tier).  RFC 7296 §3.3.3.
    offer = _esp("aes128gcm16", "aes256-sha256")
    ours = [parse_proposal("aes256-sha256", "esp")]
    chosen = select(ours, offer, ProtocolId.ESP)
    assert chosen is not None and chosen.number == 2
    types = [t.type for t in chosen.transforms()]
    assert types == [TransformType.ENCR, TransformType.INTEG, TransformType.ESN]
    assert chosen.transforms()[-1].id == EsnId.NO and not chosen.esn
    # display leaves ESN out
    assert all(t != TransformType.ESN for t, _, _ in chosen.triples())
    # and the initiator accepts that answer
    answer = Proposal(chosen.number, ProtocolId.ESP, b"\x05\x06\x07\x08", chosen.transforms())
    assert check_reply(ours, [answer], ProtocolId.ESP) is not None


def test_esn_yes_is_answered_when_both_want_it() -> None:
    offer = _esp("aes128gcm16-esn")
    chosen = select([parse_proposal("aes128gcm16-esn", "esp")], offer, ProtocolId.ESP)
    assert chosen is not None and chosen.esn
    assert chosen.transforms()[-1] == Transform(TransformType.ESN, EsnId.YES)


def test_esp_offer_without_esn_gets_no_esn_back() -> None:
    bare = Proposal(1, ProtocolId.ESP, b"\x01\x02\x03\x04", _esp("aes128gcm16")[0].transforms[:1])
    chosen = select([parse_proposal("aes128gcm16", "esp")], [bare], ProtocolId.ESP)
    assert chosen is not None
    assert [t.type for t in chosen.transforms()] == [TransformType.ENCR]


def test_ike_answer_has_no_esn() -> None:
    spec = parse_proposal("aes128gcm16-prfsha256-x25519", "ike")
    (prop,) = to_wire([spec], b"")
    chosen = select([spec], [prop], ProtocolId.IKE)
    assert chosen is not None
    assert TransformType.ESN not in [t.type for t in chosen.transforms()]
