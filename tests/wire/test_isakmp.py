"""The IKEv1 (ISAKMP) codec: round trips, exact bytes, bounds, rules, mutations."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.isakmp import decode_v1, decrypt_v1, encode_body, encode_chain, encode_v1
from pike.wire.isakmp_constants import (
    ExchangeV1,
    FlagV1,
    NotifyV1,
    P1Attr,
    PayloadV1,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import (
    V1Delete,
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1Nonce,
    V1Notify,
    V1Payload,
    V1Proposal,
    V1Sa,
    V1Transform,
    V1VendorId,
)
from pike.wire.isakmp_rules import check_v1
from wire.isakmp_samples import SAMPLES, SPI_I, SPI_R, XorSeal, message, messages

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("strongswan-ikev1-*.bin"))


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).__name__)
def test_each_payload_round_trips(payload: V1Payload) -> None:
    msg = message([payload, V1VendorId(b"x")])
    data = encode_v1(msg)
    back = decode_v1(data)
    assert back == msg
    # raw keeps each payload's bytes as sent, generic header included
    assert b"".join(back.raw) == data[28:]
    assert back.body_of(0) == encode_body(payload)


def test_header_layout_is_ikes_with_major_version_1() -> None:
    data = encode_v1(message([V1Nonce(bytes(16))], exchange=ExchangeV1.QUICK, message_id=7))
    assert data[:16] == SPI_I + SPI_R
    assert data[16] == PayloadV1.NONCE
    assert data[17] == 0x10  # major 1, minor 0
    assert data[18] == 32
    assert struct.unpack("!II", data[20:28]) == (7, len(data))


def test_attributes_pick_tv_or_tlv() -> None:
    t = V1Transform(1, 1, ((P1Attr.ENCRYPTION, 7), (P1Attr.LIFE_DURATION, 86400)))
    body = encode_body(V1Sa((V1Proposal(1, ProtocolV1.ISAKMP, b"", (t,)),)))
    attrs = body[-12:]
    # ENCRYPTION as TV; LIFE_DURATION as TLV of 4 bytes (RFC 2408 §3.3)
    assert attrs == bytes.fromhex("80010007000c000400015180")


def test_basic_attribute_too_large_is_our_bug() -> None:
    t = V1Transform(1, 1, ((P1Attr.ENCRYPTION, 70000),))
    with pytest.raises(EncodeError):
        encode_body(V1Sa((V1Proposal(1, ProtocolV1.ISAKMP, b"", (t,)),)))


def _decode_error(data: bytes) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as e:
        decode_v1(data)
    return e.value


def _sa_message(sa_body: bytes) -> bytes:
    chain = struct.pack("!BxH", 0, 4 + len(sa_body)) + sa_body
    return struct.pack("!8s8sBBBBII", SPI_I, SPI_R, 1, 0x10, 2, 0, 0, 28 + len(chain)) + chain


# SA { P(1 ISAKMP) { T(1 KEY_IKE) { ENCRYPTION as TLV (2 bytes) } } }
SA_TLV = "00000001 0000000100000016 010100010000000e 0101000000010002 0007"
SA_OK = encode_body(V1Sa((V1Proposal(1, 1, b"", (V1Transform(1, 1, ((1, 7),)),)),)))


def test_strongswan_style_sa_decodes() -> None:
    assert decode_v1(_sa_message(SA_OK)).payloads == [
        V1Sa((V1Proposal(1, 1, b"", (V1Transform(1, 1, ((1, 7),)),)),))
    ]


@pytest.mark.parametrize(
    ("sa_body", "detail"),
    [
        (b"\x00\x00\x00\x02" + SA_OK[4:], "DOI 2"),
        (SA_OK[:4] + b"\x00\x00\x00\x02" + SA_OK[8:], "situation"),
        (SA_OK[:8], "without proposals"),
        (SA_OK[:8] + b"\x03" + SA_OK[9:], "proposal followed by payload type 3"),
        (SA_OK + b"\x00", "after the last proposal"),
        (SA_OK[:10] + b"\x00\x30" + SA_OK[12:], "truncated"),
        (SA_OK[:14] + b"\x05" + SA_OK[15:], "SPI size 5"),
        (SA_OK[:15] + b"\x02" + SA_OK[16:], "transforms, proposal says 2"),
        (bytes.fromhex(SA_TLV), "basic attribute 1 in TLV form"),
    ],
)
def test_bad_sa_bodies_are_payload_malformed(sa_body: bytes, detail: str) -> None:
    e = _decode_error(_sa_message(sa_body))
    assert e.notify == NotifyV1.PAYLOAD_MALFORMED
    assert detail in str(e)


def test_header_checks() -> None:
    good = encode_v1(message([V1Nonce(bytes(16))]))
    assert _decode_error(good[:-1]).reason == "bad_length"
    assert _decode_error(good[:20]).reason == "truncated"
    v2 = bytearray(good)
    v2[17] = 0x20
    assert _decode_error(bytes(v2)).notify == NotifyV1.INVALID_MAJOR_VERSION
    flags = bytearray(good)
    flags[19] = 0x08
    assert _decode_error(bytes(flags)).notify == NotifyV1.INVALID_FLAGS
    zero = bytearray(good)
    zero[:8] = bytes(8)
    assert _decode_error(bytes(zero)).notify == NotifyV1.INVALID_COOKIE


@pytest.mark.parametrize(
    "payload",
    [
        V1Id(1, 0, 0, b"\x01\x02\x03"),  # IPV4_ADDR is 4 bytes
        V1Id(4, 0, 0, bytes(4)),  # IPV4_ADDR_SUBNET is 8
        V1Id(6, 0, 0, bytes(16)),  # IPV6_ADDR_SUBNET is 32
        V1Id(2, 0, 0, b""),  # empty FQDN
        V1Nonce(bytes(7)),  # RFC 2409 §5: 8..256
        V1Nonce(bytes(257)),
        V1Ke(b""),
        V1Hash(b""),
    ],
)
def test_out_of_bounds_bodies(payload: V1Payload) -> None:
    e = _decode_error(encode_v1(message([payload])))
    assert e.notify == NotifyV1.PAYLOAD_MALFORMED
    assert PayloadV1(payload.TYPE).name in str(e)


@pytest.mark.parametrize(
    "body",
    [
        struct.pack("!IBBH", 1, 3, 5, 1) + bytes(5),  # ESP SPI size 5
        struct.pack("!IBBH", 1, 1, 16, 2) + bytes(16),  # two SPIs announced, one sent
        struct.pack("!IBBH", 1, 3, 4, 0),  # no SPI at all
        struct.pack("!IBBH", 1, 9, 4, 1) + bytes(4),  # unknown protocol
    ],
)
def test_bad_delete_bodies(body: bytes) -> None:
    chain = struct.pack("!BxH", 0, 4 + len(body)) + body
    data = struct.pack("!8s8sBBBBII", SPI_I, SPI_R, 12, 0x10, 5, 0, 0, 28 + len(chain)) + chain
    assert _decode_error(data).notify == NotifyV1.PAYLOAD_MALFORMED


def test_notify_spi_past_end_is_truncated() -> None:
    body = struct.pack("!IBBH", 1, 1, 16, 36136) + bytes(8)
    chain = struct.pack("!BxH", 0, 4 + len(body)) + body
    data = struct.pack("!8s8sBBBBII", SPI_I, SPI_R, 11, 0x10, 5, 0, 0, 28 + len(chain)) + chain
    assert _decode_error(data).reason == "truncated"


def test_encrypted_body_and_padding() -> None:
    seal = XorSeal()
    msg = message([V1Hash(bytes(20)), V1Notify(NotifyV1.R_U_THERE, b"\x00\x00\x00\x01")])
    msg.flags = FlagV1.ENCRYPTION
    msg.exchange = ExchangeV1.INFORMATIONAL
    data = encode_v1(msg, seal.seal)
    assert (len(data) - 28) % 16 == 0
    outer = decode_v1(data)
    assert outer.payloads == [] and outer.encrypted
    inner = decrypt_v1(outer, seal.open)
    assert inner == msg
    # the HASH input is the rest of the chain as sent, padding excluded (RFC 2409 §5.7)
    _, rest = encode_chain(msg.payloads[1:])
    assert inner.after(0) == rest
    with pytest.raises(EncodeError):
        encode_v1(msg)


def test_wrong_key_is_decryption_failed_dropped() -> None:
    msg = message([V1Hash(bytes(20)), V1Delete(3, (b"\x01\x02\x03\x04",))], flags=1)
    data = encode_v1(msg, XorSeal(1).seal)
    with pytest.raises(MalformedMessage) as e:
        decrypt_v1(decode_v1(data), XorSeal(2).open)
    assert (e.value.reason, e.value.notify) == ("decryption_failed", None)


def test_rules() -> None:
    sa = V1Sa((V1Proposal(1, 1, b"", (V1Transform(1, 1),)),))
    check_v1(ExchangeV1.MAIN, 1, [sa, V1VendorId(b"x")])
    with pytest.raises(MalformedMessage, match="MAIN message 1: missing SA"):
        check_v1(ExchangeV1.MAIN, 1, [V1VendorId(b"x")])
    with pytest.raises(MalformedMessage, match="KE not allowed"):
        check_v1(ExchangeV1.MAIN, 2, [sa, V1Ke(b"k")])
    check_v1(ExchangeV1.QUICK, 3, [V1Hash(b"h")])
    with pytest.raises(MalformedMessage, match="3 ID, at most 2"):
        ids = [V1Id(1, 0, 0, bytes(4))] * 3
        check_v1(ExchangeV1.QUICK, 1, [V1Hash(b"h"), sa, V1Nonce(bytes(8)), *ids])
    with pytest.raises(MalformedMessage) as e:
        check_v1(ExchangeV1.NEW_GROUP, 1, [])
    assert e.value.notify == NotifyV1.INVALID_EXCHANGE_TYPE


# ---- real strongSwan messages (tests/wire/fixtures/README.md) ----


def test_strongswan_main_mode_cleartext_messages() -> None:
    assert len(FIXTURES) >= 6, "IKEv1 fixtures missing"
    mm = [decode_v1(f.read_bytes()) for f in FIXTURES[:4]]
    for step, msg in enumerate(mm, 1):
        assert msg.exchange == ExchangeV1.MAIN and not msg.encrypted
        check_v1(ExchangeV1.MAIN, step, msg.payloads)
        assert encode_v1(msg) == FIXTURES[step - 1].read_bytes()
    sa = mm[0].first(V1Sa)
    assert sa is not None
    t = sa.proposals[0].transforms[0]
    # aes256-sha256-modp3072, PSK
    assert (t.attr(P1Attr.ENCRYPTION), t.attr(P1Attr.KEY_LENGTH)) == (7, 256)
    assert (t.attr(P1Attr.HASH), t.attr(P1Attr.GROUP), t.attr(P1Attr.AUTH_METHOD)) == (4, 15, 1)
    vids = {v.data for v in mm[0].all(V1VendorId)}
    assert bytes.fromhex("4a131c81070358455c5728f20e95452f") in vids  # RFC 3947
    assert bytes.fromhex("afcad71368a1f1c96b8696fc77570100") in vids  # DPD
    assert len(mm[2].first(V1Ke).data) == 384  # type: ignore[union-attr]
    assert len(mm[2].all(type(mm[2].payloads[-1]))) >= 1


def test_strongswan_encrypted_messages_keep_their_body() -> None:
    for f in FIXTURES[4:]:
        msg = decode_v1(f.read_bytes())
        assert msg.encrypted and msg.payloads == []
        assert len(msg.ciphertext) % 16 == 0


# ---- properties ----


@FAST
@given(messages())
def test_plain_messages_round_trip(msg: V1Message) -> None:
    back = decode_v1(encode_v1(msg))
    assert back == msg


@FAST
@given(messages(encrypted=True))
def test_encrypted_messages_round_trip(msg: V1Message) -> None:
    seal = XorSeal()
    back = decrypt_v1(decode_v1(encode_v1(msg, seal.seal)), seal.open)
    assert back == msg


def _decode_all_ways(data: bytes) -> None:
    try:
        msg = decode_v1(data)
        if msg.encrypted:
            msg = decrypt_v1(msg, XorSeal().open)
        for step in (1, 2, 3):
            with contextlib.suppress(MalformedMessage):
                check_v1(msg.exchange, step, msg.payloads)
    except MalformedMessage:
        pass


@st.composite
def valid_datagrams(draw: st.DrawFn) -> bytes:
    if FIXTURES and bool(draw(st.booleans())):
        return draw(st.sampled_from(FIXTURES)).read_bytes()
    msg = draw(messages(encrypted=draw(st.booleans())))
    return encode_v1(msg, XorSeal().seal)


@FAST
@given(valid_datagrams(), st.data())
def test_mutations_only_raise_malformed(original: bytes, data: st.DataObject) -> None:
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "byte", "u16", "cut", "extend", "insert"]))
        if kind in ("flip", "byte", "u16") and len(buf) < 2:
            continue
        if kind == "flip":
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte":
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        elif kind == "u16":
            i = data.draw(st.integers(0, len(buf) - 2))
            struct.pack_into("!H", buf, i, data.draw(st.integers(0, 0xFFFF)))
        elif kind == "cut":
            del buf[data.draw(st.integers(0, len(buf))) :]
        elif kind == "extend":
            buf += data.draw(st.binary(min_size=1, max_size=40))
        else:
            i = data.draw(st.integers(0, len(buf)))
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    if data.draw(st.booleans()) and len(buf) >= 28:
        struct.pack_into("!I", buf, 24, len(buf))
    _decode_all_ways(bytes(buf))


@FAST
@given(st.binary(max_size=400), st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 7))
def test_random_payload_chains_only_raise_malformed(
    chain: bytes, first: int, xchg: int, flags: int
) -> None:
    header = struct.pack("!8s8sBBBBII", SPI_I, SPI_R, first, 0x10, xchg, flags, 0, 0)
    data = bytearray(header + chain)
    struct.pack_into("!I", data, 24, len(data))
    _decode_all_ways(bytes(data))


def test_notify_and_delete_values() -> None:
    n = decode_v1(
        encode_v1(message([V1Notify(NotifyV1.R_U_THERE_ACK, b"\x00\x00\x00\x09", 1, bytes(16))]))
    ).payloads[0]
    assert isinstance(n, V1Notify) and n.notify_type == 36137 and n.doi == 1
    assert encode_body(V1Delete(ProtocolV1.ISAKMP, (bytes(16),)))[:8] == bytes.fromhex(
        "0000000101100001"
    )


def test_strongswan_encrypted_messages_open_with_charons_keys() -> None:
    """Main Mode 5/6 and Quick Mode 1 decrypted with SKEYID_e and the IVs of RFC 2409
    Appendix B (computed here by hand): the chains parse to the payloads strongSwan sent."""
    import hashlib
    import json

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    meta = json.loads((FIXTURES[0].parent / "strongswan-ikev1-psk.json").read_text())
    key = bytes.fromhex(meta["initiator_keys"]["SKEYID_e"][0])[:32]  # AES-256
    mm = [decode_v1(f.read_bytes()) for f in FIXTURES]
    ke_i, ke_r = (m.first(V1Ke) for m in mm[2:4])
    assert ke_i is not None and ke_r is not None
    iv = hashlib.sha256(ke_i.data + ke_r.data).digest()[:16]

    def opener(iv: bytes):
        def open_(body: bytes) -> bytes:
            dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            return dec.update(body) + dec.finalize()

        return open_

    mm5 = decrypt_v1(mm[4], opener(iv))
    check_v1(ExchangeV1.MAIN, 5, mm5.payloads)
    id5 = mm5.first(V1Id)
    assert id5 is not None and id5.data == b"branch1.example.net"
    mm6 = decrypt_v1(mm[5], opener(mm[4].ciphertext[-16:]))
    check_v1(ExchangeV1.MAIN, 6, mm6.payloads)
    qm_iv = hashlib.sha256(mm[5].ciphertext[-16:] + mm[6].message_id.to_bytes(4, "big"))
    qm1 = decrypt_v1(mm[6], opener(qm_iv.digest()[:16]))
    check_v1(ExchangeV1.QUICK, 1, qm1.payloads)
    assert [type(p).__name__ for p in qm1.payloads][:3] == ["V1Hash", "V1Sa", "V1Nonce"]
    proxy = qm1.all(V1Id)
    assert [p.id_type for p in proxy] == [4, 4]  # IPV4_ADDR_SUBNET 10.1.0.0/24, 10.2.0.0/24
    assert proxy[0].data == bytes([10, 1, 0, 0, 255, 255, 255, 0])
