"""Shared material for the ISAKMP codec tests: one sample of each payload, strategies."""

from __future__ import annotations

from hypothesis import strategies as st

from pike.wire.isakmp_constants import (
    KEY_IKE,
    EncapMode,
    ExchangeV1,
    IdV1,
    LifeType,
    NotifyV1,
    P1Attr,
    P2Attr,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import (
    V1Cert,
    V1CertReq,
    V1Delete,
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1NatD,
    V1NatDDraft,
    V1NatOa,
    V1Nonce,
    V1Notify,
    V1Payload,
    V1Proposal,
    V1Sa,
    V1Sig,
    V1Transform,
    V1Unknown,
    V1VendorId,
)

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8")

P1_PROPOSAL = V1Proposal(
    1,
    ProtocolV1.ISAKMP,
    b"",
    (
        V1Transform(
            1,
            KEY_IKE,
            (
                (P1Attr.ENCRYPTION, 7),
                (P1Attr.KEY_LENGTH, 256),
                (P1Attr.HASH, 4),
                (P1Attr.AUTH_METHOD, 1),
                (P1Attr.GROUP, 15),
                (P1Attr.LIFE_TYPE, LifeType.SECONDS),
                (P1Attr.LIFE_DURATION, 86400),  # > 16 bits: goes as TLV
            ),
        ),
        V1Transform(2, KEY_IKE, ((P1Attr.ENCRYPTION, 7), (P1Attr.LIFE_DURATION, 3600))),
    ),
)
P2_PROPOSAL = V1Proposal(
    1,
    ProtocolV1.ESP,
    b"\xc0\x01\x02\x03",
    (
        V1Transform(
            1,
            12,  # ESP_AES
            (
                (P2Attr.LIFE_TYPE, LifeType.SECONDS),
                (P2Attr.LIFE_DURATION, 3600),
                (P2Attr.LIFE_TYPE, LifeType.KILOBYTES),
                (P2Attr.LIFE_DURATION, 4608000),
                (P2Attr.ENCAP_MODE, EncapMode.UDP_TUNNEL_DRAFT),
                (P2Attr.AUTH_ALGORITHM, 5),
                (P2Attr.KEY_LENGTH, 128),
                (P2Attr.GROUP, 14),
            ),
        ),
    ),
)

SAMPLES: list[V1Payload] = [
    V1Sa((P1_PROPOSAL,)),
    V1Sa((P2_PROPOSAL, V1Proposal(2, ProtocolV1.AH, b"\x00\x00\x10\x01", (V1Transform(1, 5),)))),
    V1Ke(bytes(range(256))),
    V1Id(IdV1.IPV4_ADDR, 17, 500, bytes([192, 0, 2, 1])),
    V1Id(IdV1.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 1, 0, 0, 255, 255, 255, 0])),
    V1Id(IdV1.IPV6_ADDR_SUBNET, 6, 443, bytes(16) + b"\xff" * 8 + bytes(8)),
    V1Id(IdV1.IPV4_ADDR_RANGE, 0, 0, bytes([10, 0, 0, 1, 10, 0, 0, 9])),
    V1Id(IdV1.IPV6_ADDR_RANGE, 0, 0, bytes(16) + b"\xff" * 16),
    V1Id(IdV1.IPV6_ADDR, 0, 0, bytes(15) + b"\x01"),
    V1Id(IdV1.FQDN, 0, 0, b"gw.example.org"),
    V1Id(IdV1.USER_FQDN, 0, 0, b"ops@example.org"),
    V1Id(IdV1.DER_ASN1_DN, 0, 0, b"\x30\x0bdn"),
    V1Cert(4, b"\x30\x82cert"),
    V1CertReq(4, b""),
    V1Hash(bytes(32)),
    V1Sig(bytes(64)),
    V1Nonce(bytes(range(32))),
    V1Notify(NotifyV1.INITIAL_CONTACT, b"", ProtocolV1.ISAKMP, SPI_I + SPI_R),
    V1Notify(NotifyV1.R_U_THERE, (7).to_bytes(4, "big"), ProtocolV1.ISAKMP, SPI_I + SPI_R),
    V1Notify(
        NotifyV1.RESPONDER_LIFETIME, b"\x80\x01\x00\x01\x80\x02\x0e\x10", 3, b"\x01\x02\x03\x04"
    ),
    V1Delete(ProtocolV1.ISAKMP, (SPI_I + SPI_R,)),
    V1Delete(ProtocolV1.ESP, (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")),
    V1VendorId(bytes.fromhex("4a131c81070358455c5728f20e95452f")),
    V1NatD(bytes(32)),
    V1NatDDraft(bytes(20)),
    V1NatOa(IdV1.IPV4_ADDR, bytes([192, 168, 1, 2])),
    V1Unknown(200, b"whatever"),
]


def message(payloads: list[V1Payload], **kw: object) -> V1Message:
    fields: dict[str, object] = {
        "spi_i": SPI_I,
        "spi_r": SPI_R,
        "exchange": ExchangeV1.MAIN,
        "message_id": 0,
    }
    fields.update(kw)
    return V1Message(payloads=payloads, **fields)  # type: ignore[arg-type]


class XorSeal:
    """A toy cipher for the encrypted body: XOR with a key stream, zero padding to 16.

    It exercises the codec's contract (the body after the header is ciphertext, padding
    after the last payload is skipped), not security."""

    def __init__(self, key: int = 0x5A) -> None:
        self.key = key

    def seal(self, plaintext: bytes) -> bytes:
        padded = plaintext + bytes(-len(plaintext) % 16)
        return bytes(b ^ self.key for b in padded)

    def open(self, body: bytes) -> bytes:
        if not body or len(body) % 16:
            raise ValueError("not a whole number of blocks")
        return bytes(b ^ self.key for b in body)


# ---- hypothesis strategies ----

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
blob = st.binary(max_size=48)
attr_value = st.integers(0, 0xFFFF) | st.integers(0x10000, 2**64)


@st.composite
def transforms(draw: st.DrawFn, number: int, protocol: int) -> V1Transform:
    variable = (6, 7, 8, 9, 10, 12, 16) if protocol == 1 else (2, 9)
    attrs = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(1, 0x7FFF))
        value = draw(attr_value) if kind in variable else draw(u16)
        attrs.append((kind, value))
    return V1Transform(number, draw(u8), tuple(attrs))


@st.composite
def proposals(draw: st.DrawFn, number: int) -> V1Proposal:
    protocol = draw(st.sampled_from([1, 2, 3, 4]))
    spi_size = {1: draw(st.sampled_from([0, 16])), 4: draw(st.sampled_from([2, 4]))}.get(
        protocol, 4
    )
    n = draw(st.integers(1, 4))
    return V1Proposal(
        number,
        protocol,
        draw(st.binary(min_size=spi_size, max_size=spi_size)),
        tuple(draw(transforms(i + 1, protocol)) for i in range(n)),
    )


@st.composite
def sa_payloads(draw: st.DrawFn) -> V1Sa:
    numbers = sorted(draw(st.lists(st.integers(1, 255), min_size=1, max_size=3)))
    return V1Sa(tuple(draw(proposals(n)) for n in numbers))


@st.composite
def ids(draw: st.DrawFn) -> V1Id:
    id_type = draw(st.sampled_from(list(IdV1)))
    size = {1: 4, 4: 8, 7: 8, 5: 16, 6: 32, 8: 32}.get(id_type)
    data = draw(st.binary(min_size=size or 1, max_size=size or 64))
    return V1Id(id_type, draw(u8), draw(u16), data)


@st.composite
def deletes(draw: st.DrawFn) -> V1Delete:
    protocol, size = draw(st.sampled_from([(1, 16), (2, 4), (3, 4), (4, 2)]))
    spi = st.binary(min_size=size, max_size=size)
    return V1Delete(protocol, tuple(draw(st.lists(spi, min_size=1, max_size=4))))


nonempty = st.binary(min_size=1, max_size=48)
payloads = st.one_of(
    sa_payloads(),
    st.builds(V1Ke, nonempty),
    ids(),
    st.builds(V1Cert, u8, blob),
    st.builds(V1CertReq, u8, blob),
    st.builds(V1Hash, nonempty),
    st.builds(V1Sig, nonempty),
    st.builds(V1Nonce, st.binary(min_size=8, max_size=256)),
    st.builds(V1Notify, u16, blob, u8, st.binary(max_size=16), st.integers(0, 2**32 - 1)),
    deletes(),
    st.builds(V1VendorId, blob),
    st.builds(V1NatD, nonempty),
    st.builds(V1NatDDraft, nonempty),
    st.builds(V1NatOa, st.just(1), st.binary(min_size=4, max_size=4)),
    st.builds(V1Unknown, st.sampled_from([15, 16, 99, 132, 200]), blob),
)


@st.composite
def messages(draw: st.DrawFn, encrypted: bool = False) -> V1Message:
    return V1Message(
        draw(st.binary(min_size=8, max_size=8).filter(any)),
        draw(st.binary(min_size=8, max_size=8)),
        draw(u8),
        draw(st.integers(0, 2**32 - 1)),
        (1 if encrypted else 0) | draw(st.sampled_from([0, 2, 4, 6])),
        draw(st.lists(payloads, min_size=1 if encrypted else 0, max_size=8)),
    )
