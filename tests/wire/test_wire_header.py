"""pike.wire.header: the 28-byte IKE header (RFC 7296 §3.1)."""

from __future__ import annotations

import pytest

from pike.wire.constants import NotifyType
from pike.wire.errors import MalformedMessage
from pike.wire.header import Header, decode_header, pack_header, peek_header

HEADER = Header(b"\x01" * 8, b"\x00" * 8, 33, 0x20, 34, 0x08, 0, 28)


def test_pack_then_decode() -> None:
    data = pack_header(HEADER)
    assert len(data) == 28
    header = decode_header(data)
    assert header == HEADER
    assert header.is_initiator and not header.is_response
    assert header.major_version == 2


def test_peek_does_not_judge() -> None:
    data = pack_header(Header(b"\x01" * 8, b"\x02" * 8, 0, 0x10, 5, 0x20, 7, 999))
    header = peek_header(data + b"extra")
    assert (header.exchange, header.message_id, header.is_response) == (5, 7, True)
    assert header.version == 0x10


@pytest.mark.parametrize("size", [0, 1, 27])
def test_short_datagram_is_truncated(size: int) -> None:
    with pytest.raises(MalformedMessage) as e:
        decode_header(pack_header(HEADER)[:size])
    assert e.value.reason == "truncated"


@pytest.mark.parametrize("length", [0, 27, 29, 0xFFFFFFFF])
def test_length_field_must_match_datagram(length: int) -> None:
    with pytest.raises(MalformedMessage) as e:
        decode_header(pack_header(HEADER._replace(length=length)))
    assert e.value.reason == "bad_length"
    assert e.value.notify is None


@pytest.mark.parametrize("version", [0x10, 0x30, 0xF0, 0x00])
def test_major_version_must_be_2(version: int) -> None:
    with pytest.raises(MalformedMessage) as e:
        decode_header(pack_header(HEADER._replace(version=version)))
    assert e.value.reason == "invalid_major_version"
    assert e.value.notify == NotifyType.INVALID_MAJOR_VERSION


def test_minor_version_is_ignored() -> None:
    assert decode_header(pack_header(HEADER._replace(version=0x21))).version == 0x21
