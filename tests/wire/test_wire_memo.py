"""pike.wire.memo: payload bodies that recur from branch to branch are decoded once. A hit
must give what the decoders give for the same bytes, a changed body must never get an old
value, and each memo stays bounded."""

from __future__ import annotations

import dataclasses
import struct
from ipaddress import IPv4Address

import pytest

from pike.wire import codec, memo, sa_body
from pike.wire.codec import MEMOS, decode_message, encode_message
from pike.wire.constants import PayloadType
from pike.wire.errors import MalformedMessage
from pike.wire.payloads import (
    IdrPayload,
    NoncePayload,
    Payload,
    Proposal,
    SaPayload,
    TrafficSelectorWire,
    Transform,
    TsiPayload,
    TsrPayload,
    VendorIdPayload,
)
from wire.wire_samples import ESP_PROPOSAL, IKE_PROPOSAL, TS4, TS6, message

# What a branch sends that the hub has seen from every other branch.
RECURRING: list[Payload] = [
    SaPayload((IKE_PROPOSAL,)),
    IdrPayload(2, b"hub.example"),
    VendorIdPayload(b"strongSwan"),
    TsiPayload((TS4, TS6)),
    TsrPayload((TS4,)),
]


# And every CHILD_SA's: the same offer but for its SPI.
OFFER = SaPayload((ESP_PROPOSAL,))


def _clear() -> None:
    for kept in MEMOS.values():
        kept.clear()
    sa_body.PROPOSALS_BUT_SPI.clear()


@pytest.fixture(autouse=True)
def empty_memos() -> None:
    _clear()


def _decoded(payloads: list[Payload]) -> list[Payload]:
    return list(decode_message(encode_message(message(payloads))).payloads)


def test_a_recurring_body_is_decoded_once_and_shared() -> None:
    first = _decoded(RECURRING)
    again = _decoded(RECURRING)
    assert first == again == RECURRING
    assert all(a is b for a, b in zip(first, again, strict=True))  # the memo's values
    assert {kind: len(kept) for kind, kept in MEMOS.items() if kept} == {
        PayloadType.SA: 1,
        PayloadType.IDR: 1,
        PayloadType.VENDOR_ID: 1,
        PayloadType.TSI: 1,
        PayloadType.TSR: 1,
    }


def test_unique_bodies_are_not_kept() -> None:
    # Nonces are not memoized at all; an offer of two proposals with SPIs is unique.
    two = SaPayload((ESP_PROPOSAL, Proposal(3, 3, b"\x01\x02\x03\x04", ESP_PROPOSAL.transforms)))
    assert _decoded([two, NoncePayload(bytes(32))]) == [two, NoncePayload(bytes(32))]
    assert not any(MEMOS.values()) and not sa_body.PROPOSALS_BUT_SPI


def test_an_offer_with_another_spi_is_found_apart_from_its_spi() -> None:
    (first,) = _decoded([OFFER])
    assert first == OFFER and len(sa_body.PROPOSALS_BUT_SPI) == 1
    for spi in (b"\x00\x00\x00\x01", ESP_PROPOSAL.spi, b"\xff" * 4):
        offer = SaPayload((dataclasses.replace(ESP_PROPOSAL, spi=spi),))
        (again,) = _decoded([offer])
        assert again == offer and again.proposals[0].transforms is first.proposals[0].transforms
    assert len(sa_body.PROPOSALS_BUT_SPI) == 1


def test_a_changed_body_is_decoded_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every one-byte change of a memoized message decodes as it does with the memos empty.
    datagram = encode_message(message([*RECURRING, OFFER]))
    decode_message(datagram)
    assert sa_body.PROPOSALS_BUT_SPI
    variants = [
        datagram[:i] + bytes([datagram[i] ^ bit]) + datagram[i + 1 :]
        for i in range(28, len(datagram))
        for bit in (1, 0x80)
    ]
    with_memo = [_outcome(v) for v in variants]
    _clear()
    monkeypatch.setattr(codec, "_OUTER_STEP", {}.get)  # the full decoders alone
    without = [_outcome(v) for v in variants]
    assert with_memo == without
    assert sum(isinstance(o, list) and o != [*RECURRING, OFFER] for o in without) > 20


def test_a_stale_value_would_be_seen() -> None:
    # The test above can fail: a hit is not checked again, so a memo keyed on anything less
    # than the whole body (here: a wrong entry for the new bytes) hands out an old value.
    old = _decoded([TsrPayload((TS4,))])[0]
    other = TrafficSelectorWire(7, 0, 0, 65535, IPv4Address("10.9.0.0"), IPv4Address("10.9.0.255"))
    changed = encode_message(message([TsrPayload((other,))]))
    MEMOS[PayloadType.TSR][changed[32:]] = old
    assert decode_message(changed).payloads == [old] != [TsrPayload((other,))]


def test_a_truncated_payload_never_hits() -> None:
    # The body is sliced only within the message: a payload claiming more bytes than are
    # left is the full decoder's to judge, even when what is left matches a kept body.
    datagram = encode_message(message([VendorIdPayload(b"strongSwan")]))
    decode_message(datagram)
    head = struct.pack("!BBH", 0, 0, 4 + len(b"strongSwan") + 1)
    short = datagram[:28] + head + b"strongSwan"
    short = short[:24] + struct.pack("!I", len(short)) + short[28:]
    with pytest.raises(MalformedMessage) as e:
        decode_message(short)
    assert e.value.reason == "invalid_syntax"
    assert e.value.detail == "payload 43 at offset 28: length 15, 14 left"


def test_each_memo_is_bounded() -> None:
    for i in range(memo.MEMO_MAX + 10):
        _decoded([IdrPayload(2, f"hub{i}.example".encode())])
        assert len(MEMOS[PayloadType.IDR]) <= memo.MEMO_MAX
    assert _decoded([IdrPayload(2, b"x" * memo.MEMO_BODY_MAX)]) == [
        IdrPayload(2, b"x" * memo.MEMO_BODY_MAX)
    ]
    size = len(MEMOS[PayloadType.IDR])
    long = IdrPayload(2, b"x" * memo.MEMO_BODY_MAX)  # 4 bytes of fields more: too long
    assert _decoded([long]) == [long] and len(MEMOS[PayloadType.IDR]) == size


def _outcome(datagram: bytes) -> object:
    try:
        return decode_message(datagram).payloads
    except MalformedMessage as e:
        return (e.reason, e.detail, e.notify)


def test_memos_are_reached_only_through_the_steps() -> None:
    # The equivalence test of test_wire_payloads turns the steps off to compare with the
    # full decoders: the memos must go with them.
    names = {kind: codec.STEPS[kind].__name__ for kind in MEMOS}
    assert names == {kind: "step_sa" if kind == PayloadType.SA else "step_memo" for kind in MEMOS}


def test_the_sa_memos_are_bounded() -> None:
    for i in range(sa_body._CACHE_MAX + 10):
        transforms = (Transform(1, 12, 128), Transform(3, 12 + i % 200, (i // 200) or None))
        ike = SaPayload((Proposal(1, 1, b"", transforms),))
        esp = SaPayload((Proposal(1, 3, b"\x01\x02\x03\x04", transforms),))
        assert _decoded([ike, esp]) == [ike, esp]
        assert len(sa_body.OFFERS) <= sa_body._CACHE_MAX
        assert len(sa_body.PROPOSALS_BUT_SPI) <= sa_body._CACHE_MAX
    # 1 568 bytes of body: too long to keep
    long = SaPayload((Proposal(1, 1, b"", (Transform(1, 12, 128),) * 130),))
    size = len(sa_body.OFFERS)
    assert _decoded([long]) == [long] and len(sa_body.OFFERS) == size
