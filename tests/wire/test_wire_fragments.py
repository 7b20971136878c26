"""IKE fragmentation (RFC 7383): split into SKF datagrams, open each, reassemble."""

from __future__ import annotations

import pytest

from pike.wire.codec import decode_message
from pike.wire.constants import HEADER_LEN, PayloadType
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.fragments import SKF_OVERHEAD, encode_fragments, open_fragment, reassemble
from pike.wire.payloads import CertPayload, IdiPayload, SkfPayload, SkPayload
from pike.wire.rules import check_payloads
from wire.wire_samples import SAMPLES, FakeSk, message

INNER = [p for p in SAMPLES if not isinstance(p, SkPayload | SkfPayload)]


@pytest.mark.parametrize("max_datagram", [100, 257, 576, 1280, 9000])
def test_fragments_round_trip(max_datagram: int) -> None:
    msg = message([*INNER, CertPayload(4, bytes(1500))], encrypted=True)
    cipher = FakeSk()
    datagrams = encode_fragments(msg, cipher, max_datagram)
    chunks = []
    first = None
    for number, data in enumerate(datagrams, start=1):
        assert len(data) <= max_datagram
        outer = decode_message(data)
        check_payloads(outer.exchange, outer.is_response, outer.payloads, inside_sk=False)
        skf, chunk = open_fragment(data, outer, cipher)
        assert (skf.fragment_number, skf.total_fragments) == (number, len(datagrams))
        assert (skf.first_payload != 0) is (number == 1)
        if number == 1:
            first = skf.first_payload
        chunks.append(chunk)
    assert first == INNER[0].TYPE
    assert reassemble(decode_message(datagrams[0]), first, chunks) == msg


def test_small_message_is_one_fragment() -> None:
    msg = message([IdiPayload(2, b"a")], encrypted=True)
    (data,) = encode_fragments(msg, FakeSk(), 1280)
    assert data[16] == PayloadType.SKF
    skf = decode_message(data).payloads[0]
    assert isinstance(skf, SkfPayload) and (skf.fragment_number, skf.total_fragments) == (1, 1)


def test_tampered_fragment_is_dropped_silently() -> None:
    cipher = FakeSk()
    data = bytearray(encode_fragments(message([IdiPayload(2, b"a")]), cipher, 1280)[0])
    data[HEADER_LEN + 7] = 2  # Total Fragments is in the associated data: 1 of 2 now
    tampered = bytes(data)
    with pytest.raises(MalformedMessage) as e:
        open_fragment(tampered, decode_message(tampered), cipher)
    assert e.value.reason == "integrity_check_failed" and e.value.notify is None


def test_no_room() -> None:
    with pytest.raises(EncodeError):
        encode_fragments(message([]), FakeSk(), SKF_OVERHEAD + 10)
