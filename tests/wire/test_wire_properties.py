"""Property tests: generated messages round-trip; no byte string makes the decoder raise
anything but MalformedMessage (RFC 7296 §2.21: a peer's garbage is counted and dropped or
answered, never a crash)."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.errors import MalformedMessage
from pike.wire.payloads import Message
from pike.wire.rules import check_payloads
from wire.wire_samples import FakeSk, messages

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.bin"))


def _decode_all_ways(data: bytes) -> None:
    """Whatever the bytes: decode, check rules, try to open with a key. Only
    MalformedMessage may come out."""
    try:
        msg = decode_message(data)
        check_payloads(msg.exchange, msg.is_response, msg.payloads, inside_sk=False)
        decrypt_message(data, msg, FakeSk())
    except MalformedMessage:
        pass


@FAST
@given(messages(encrypted=False))
def test_plain_messages_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


@FAST
@given(messages(encrypted=True))
def test_encrypted_messages_round_trip(msg: Message) -> None:
    cipher = FakeSk()
    data = encode_message(msg, cipher)
    assert decrypt_message(data, decode_message(data), cipher) == msg


@st.composite
def valid_datagrams(draw: st.DrawFn) -> bytes:
    if FIXTURES and bool(draw(st.booleans())):
        return draw(st.sampled_from(FIXTURES)).read_bytes()
    msg = draw(messages())
    return encode_message(msg, FakeSk() if msg.encrypted else None)


def _fix_length(data: bytearray) -> None:
    """Keep the header length right so that mutations reach the payloads."""
    if len(data) >= 28:
        struct.pack_into("!I", data, 24, len(data))


@FAST
@given(valid_datagrams(), st.data())
def test_mutations_only_raise_malformed(original: bytes, data: st.DataObject) -> None:
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "byte", "u16", "cut", "extend", "insert"]))
        if kind in ("flip", "byte", "u16") and not buf:
            continue
        if kind == "flip":
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte":
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        elif kind == "u16" and len(buf) >= 2:
            # Length and count fields are mostly 16-bit: aim at them directly.
            i = data.draw(st.integers(0, len(buf) - 2))
            struct.pack_into("!H", buf, i, data.draw(st.integers(0, 0xFFFF)))
        elif kind == "cut":
            del buf[data.draw(st.integers(0, len(buf))) :]
        elif kind == "extend":
            buf += data.draw(st.binary(min_size=1, max_size=40))
        else:
            i = data.draw(st.integers(0, len(buf)))
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    if data.draw(st.booleans()):
        _fix_length(buf)
    _decode_all_ways(bytes(buf))


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_malformed(noise: bytes) -> None:
    _decode_all_ways(noise)


@FAST
@given(st.binary(max_size=400), st.integers(0, 0xFF), st.integers(0, 0xFF))
def test_random_payload_chains_only_raise_malformed(chain: bytes, first: int, xchg: int) -> None:
    """A valid header in front of random bytes: the payload walker gets all the abuse."""
    header = struct.pack("!8s8sBBBBII", b"i" * 8, b"r" * 8, first, 0x20, xchg, 8, 0, 28)
    data = bytearray(header + chain)
    _fix_length(data)
    _decode_all_ways(bytes(data))
