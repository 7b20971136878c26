"""The SK payload (RFC 7296 §3.14): seal on encode, open on decrypt, with a toy crypter."""

from __future__ import annotations

import pytest

from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.constants import GENERIC_PAYLOAD_HEADER_LEN, HEADER_LEN, PayloadType
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.payloads import (
    IdiPayload,
    Message,
    NotifyPayload,
    SkfPayload,
    SkPayload,
    VendorIdPayload,
)
from pike.wire.sk import SkCrypter
from wire.wire_samples import SAMPLES, FakeSk, message

INNER = [p for p in SAMPLES if not isinstance(p, SkPayload | SkfPayload)]


def round_trip(msg: Message, cipher: SkCrypter) -> tuple[bytes, Message]:
    data = encode_message(msg, cipher)
    return data, decrypt_message(data, decode_message(data), cipher)


def test_encrypted_message_round_trips() -> None:
    msg = message(list(INNER), encrypted=True)
    data, opened = round_trip(msg, FakeSk())
    assert opened == msg
    outer = decode_message(data)
    assert data[16] == PayloadType.SK
    assert outer.encrypted is False
    (sk,) = outer.payloads
    assert isinstance(sk, SkPayload) and sk.first_payload == INNER[0].TYPE


def test_empty_encrypted_message() -> None:
    """INFORMATIONAL {} is the liveness check (RFC 7296 §1.4): SK with Next Payload 0."""
    msg = message([], exchange=37, encrypted=True)
    data, opened = round_trip(msg, FakeSk())
    assert opened == msg
    sk = decode_message(data).payloads[0]
    assert isinstance(sk, SkPayload) and sk.first_payload == 0


def test_lengths_and_aad() -> None:
    cipher = FakeSk()
    seen: list[bytes] = []
    seal = cipher.seal

    def spy(aad: bytes, plaintext: bytes) -> bytes:
        seen.append(aad)
        return seal(aad, plaintext)

    cipher.seal = spy  # type: ignore[method-assign]
    data = encode_message(message([VendorIdPayload(b"abc")], encrypted=True), cipher)
    (aad,) = seen
    assert len(aad) == HEADER_LEN + GENERIC_PAYLOAD_HEADER_LEN
    assert data.startswith(aad)
    assert int.from_bytes(data[24:28], "big") == len(data)  # header length covers it all
    assert int.from_bytes(aad[30:32], "big") == len(data) - HEADER_LEN
    assert len(data) == HEADER_LEN + GENERIC_PAYLOAD_HEADER_LEN + cipher.sealed_length(4 + 3)


@pytest.mark.parametrize("offset", [0, 17, 18, 19, 29, 33, -1])
def test_tampering_fails_integrity_and_is_silent(offset: int) -> None:
    cipher = FakeSk()
    data = bytearray(encode_message(message([IdiPayload(2, b"x")], encrypted=True), cipher))
    data[offset] ^= 0x01
    tampered = bytes(data)
    with pytest.raises(MalformedMessage) as e:
        decrypt_message(tampered, decode_message(tampered), cipher)
    assert e.value.reason == "integrity_check_failed"
    assert e.value.notify is None


def test_wrong_key() -> None:
    data = encode_message(message([IdiPayload(2, b"x")], encrypted=True), FakeSk(b"a" * 32))
    with pytest.raises(MalformedMessage) as e:
        decrypt_message(data, decode_message(data), FakeSk(b"b" * 32))
    assert e.value.reason == "integrity_check_failed"


def test_authentic_but_malformed_inner_chain() -> None:
    """A peer with the keys can still send garbage inside: that is invalid syntax."""
    cipher = FakeSk()
    msg = message([VendorIdPayload(b"v")], encrypted=True)
    plain = message([VendorIdPayload(b"v")])
    # Seal a chain whose first payload claims a Nonce of 3 bytes.
    from pike.wire.codec import GENERIC, HEADER

    inner = GENERIC.pack(0, 0, 7) + b"abc"
    body_len = cipher.sealed_length(len(inner))
    total = HEADER_LEN + 4 + body_len
    aad = HEADER.pack(msg.spi_i, msg.spi_r, PayloadType.SK, 0x20, msg.exchange, 0x08, 1, total)
    aad += GENERIC.pack(PayloadType.NONCE, 0, 4 + body_len)
    data = aad + cipher.seal(aad, inner)
    with pytest.raises(MalformedMessage) as e:
        decrypt_message(data, decode_message(data), cipher)
    assert e.value.reason == "invalid_syntax"
    assert plain  # the plaintext twin encodes fine: only the inner bytes are wrong


def test_sk_inside_sk_is_invalid() -> None:
    cipher = FakeSk()
    from pike.wire.codec import GENERIC, HEADER

    inner = GENERIC.pack(0, 0, 4 + 16) + bytes(16)
    body_len = cipher.sealed_length(len(inner))
    total = HEADER_LEN + 4 + body_len
    aad = HEADER.pack(b"i" * 8, b"r" * 8, PayloadType.SK, 0x20, 37, 0x08, 1, total)
    aad += GENERIC.pack(PayloadType.SK, 0, 4 + body_len)
    data = aad + cipher.seal(aad, inner)
    with pytest.raises(MalformedMessage) as e:
        decrypt_message(data, decode_message(data), cipher)
    assert e.value.reason == "invalid_syntax"


def test_decrypt_without_sk() -> None:
    msg = message([NotifyPayload(16384)])
    data = encode_message(msg)
    with pytest.raises(MalformedMessage) as e:
        decrypt_message(data, decode_message(data), FakeSk())
    assert e.value.reason == "invalid_syntax"


def test_cipher_that_lies_about_its_length_is_a_local_bug() -> None:
    class Liar(FakeSk):
        def sealed_length(self, plaintext_len: int) -> int:
            return super().sealed_length(plaintext_len) + 1

    with pytest.raises(EncodeError):
        encode_message(message([VendorIdPayload(b"v")], encrypted=True), Liar())


def test_sk_payload_cannot_be_nested_on_encode() -> None:
    with pytest.raises(EncodeError):
        encode_message(message([SkPayload(0, b"")], encrypted=True), FakeSk())


def test_keyboard_interrupt_is_not_swallowed() -> None:
    class Interrupted(FakeSk):
        def open(self, aad: bytes, body: bytes) -> bytes:
            raise KeyboardInterrupt

    data = encode_message(message([], encrypted=True), FakeSk())
    with pytest.raises(KeyboardInterrupt):
        decrypt_message(data, decode_message(data), Interrupted())
