"""Shared material for the codec tests: sample payloads, a fake SK crypter, strategies."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from pike.wire.constants import ExchangeType, IdType, NotifyType, ProtocolId, TsType
from pike.wire.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpPayload,
    DeletePayload,
    EapPayload,
    IdiPayload,
    IdrPayload,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
    SkfPayload,
    SkPayload,
    TrafficSelectorWire,
    Transform,
    TsiPayload,
    TsrPayload,
    UnknownPayload,
    VendorIdPayload,
)

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8")

IKE_PROPOSAL = Proposal(
    1,
    ProtocolId.IKE,
    b"",
    (
        Transform(1, 20, 256),  # ENCR_AES_GCM_16, 256 bits
        Transform(2, 5),  # PRF_HMAC_SHA2_256
        Transform(4, 31),  # Curve25519
    ),
)
ESP_PROPOSAL = Proposal(
    2,
    ProtocolId.ESP,
    b"\xc0\x01\x02\x03",
    (Transform(1, 12, 128), Transform(3, 12), Transform(5, 0), Transform(1, 12, 256, (17, 99))),
)
TS4 = TrafficSelectorWire(
    TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, IPv4Address("10.1.0.0"), IPv4Address("10.1.255.255")
)
TS6 = TrafficSelectorWire(
    TsType.TS_IPV6_ADDR_RANGE, 17, 500, 500, IPv6Address("2001:db8::"), IPv6Address("2001:db8::ff")
)

# One sample of every payload of RFC 7296 (and SKF, unknown), for round trips.
SAMPLES: list[Payload] = [
    SaPayload((IKE_PROPOSAL, ESP_PROPOSAL)),
    KePayload(31, bytes(range(32))),
    IdiPayload(IdType.ID_FQDN, b"gw.example.org"),
    IdrPayload(IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1])),
    IdiPayload(IdType.ID_IPV6_ADDR, bytes(16)),
    CertPayload(4, b"\x30\x82cert"),
    CertReqPayload(4, bytes(20)),
    AuthPayload(2, bytes(32)),
    NoncePayload(bytes(range(32))),
    NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(20)),
    NotifyPayload(NotifyType.REKEY_SA, b"", ProtocolId.ESP, b"\x01\x02\x03\x04"),
    NotifyPayload(NotifyType.INVALID_KE_PAYLOAD, b"\x00\x13"),
    DeletePayload(ProtocolId.IKE),
    DeletePayload(ProtocolId.ESP, (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")),
    VendorIdPayload(b"strongSwan"),
    TsiPayload((TS4, TS6)),
    TsrPayload((TS4,)),
    TsrPayload(()),
    CpPayload(1, ((1, b""), (3, b"\x0a\x00\x00\x01"))),
    EapPayload(b"\x01\x02\x00\x05\x01"),
    UnknownPayload(200, False, b"whatever"),
]


def message(payloads: list[Payload], **kw: object) -> Message:
    fields: dict[str, object] = {
        "spi_i": SPI_I,
        "spi_r": SPI_R,
        "exchange": ExchangeType.IKE_AUTH,
        "message_id": 1,
        "is_initiator": True,
        "is_response": False,
    }
    fields.update(kw)
    return Message(payloads=payloads, **fields)  # type: ignore[arg-type]


class FakeSk:
    """A toy SkCrypter: SHA-256 keystream XOR and a 16-byte HMAC ICV over aad || IV || ct.

    It exercises the codec's contract (lengths, aad, padding ownership), not security.
    """

    IV = 8
    BLOCK = 16
    ICV = 16

    def __init__(self, key: bytes = b"k" * 32) -> None:
        self.key = key
        self.counter = 0

    def _padded(self, n: int) -> int:
        return (n + 1 + self.BLOCK - 1) // self.BLOCK * self.BLOCK

    def _stream(self, iv: bytes, n: int) -> bytes:
        out = b"".join(
            hashlib.sha256(self.key + iv + i.to_bytes(4, "big")).digest()
            for i in range(n // 32 + 1)
        )
        return out[:n]

    def sealed_length(self, plaintext_len: int) -> int:
        return self.IV + self._padded(plaintext_len) + self.ICV

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        self.counter += 1
        iv = self.counter.to_bytes(self.IV, "big")
        pad = self._padded(len(plaintext)) - len(plaintext) - 1
        padded = plaintext + bytes(pad) + bytes([pad])
        ct = bytes(a ^ b for a, b in zip(padded, self._stream(iv, len(padded)), strict=True))
        icv = hmac.new(self.key, aad + iv + ct, "sha256").digest()[: self.ICV]
        return iv + ct + icv

    def open(self, aad: bytes, body: bytes) -> bytes:
        n = len(body) - self.IV - self.ICV
        if n < self.BLOCK or n % self.BLOCK:
            raise ValueError("bad SK body length")
        iv, ct, icv = body[: self.IV], body[self.IV : -self.ICV], body[-self.ICV :]
        want = hmac.new(self.key, aad + iv + ct, "sha256").digest()[: self.ICV]
        if not hmac.compare_digest(icv, want):
            raise ValueError("ICV mismatch")
        padded = bytes(a ^ b for a, b in zip(ct, self._stream(iv, len(ct)), strict=True))
        pad = padded[-1]
        if pad >= len(padded):
            raise ValueError("bad padding")
        return padded[: -pad - 1]


# ---- hypothesis strategies: any valid payload, any valid message ----

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
blob = st.binary(max_size=64)

transforms = st.builds(
    Transform,
    st.integers(1, 5),
    u16,
    st.none() | u16,
    st.lists(st.integers(1, 0x7FFF).filter(lambda t: t != 14), max_size=2).map(tuple),
)


@st.composite
def proposals(draw: st.DrawFn, number: int) -> Proposal:
    protocol = draw(st.sampled_from([1, 2, 3, 7]))
    spi_size = {1: draw(st.sampled_from([0, 8])), 2: 4, 3: 4}.get(protocol, draw(st.integers(0, 9)))
    return Proposal(
        number,
        protocol,
        draw(st.binary(min_size=spi_size, max_size=spi_size)),
        tuple(draw(st.lists(transforms, max_size=6))),
    )


@st.composite
def sa_payloads(draw: st.DrawFn) -> SaPayload:
    first = draw(st.integers(1, 250))
    n = draw(st.integers(1, 4))
    return SaPayload(tuple(draw(proposals(first + i)) for i in range(min(n, 256 - first))))


@st.composite
def selectors(draw: st.DrawFn) -> TrafficSelectorWire:
    if draw(st.booleans()):
        addr = st.integers(0, 2**32 - 1).map(IPv4Address)
        ts_type = TsType.TS_IPV4_ADDR_RANGE
    else:
        addr = st.integers(0, 2**128 - 1).map(IPv6Address)  # type: ignore[arg-type]
        ts_type = TsType.TS_IPV6_ADDR_RANGE
    return TrafficSelectorWire(ts_type, draw(u8), draw(u16), draw(u16), draw(addr), draw(addr))


@st.composite
def deletes(draw: st.DrawFn) -> DeletePayload:
    protocol = draw(st.sampled_from([1, 3, 2]))
    if protocol == 1:
        return DeletePayload(protocol)
    spi = st.binary(min_size=4, max_size=4)
    return DeletePayload(protocol, tuple(draw(st.lists(spi, max_size=5))))


ts_list = st.lists(selectors(), max_size=4).map(tuple)
known_ids = st.sampled_from([2, 3, 9, 10, 11])

payloads = st.one_of(
    sa_payloads(),
    st.builds(KePayload, u16, blob),
    st.builds(IdiPayload, known_ids, blob),
    st.builds(IdrPayload, known_ids, blob),
    st.builds(CertPayload, u8, blob),
    st.builds(CertReqPayload, u8, blob),
    st.builds(AuthPayload, u8, blob),
    st.builds(NoncePayload, st.binary(min_size=16, max_size=256)),
    st.builds(NotifyPayload, u16, blob, u8, st.binary(max_size=16)),
    deletes(),
    st.builds(VendorIdPayload, blob),
    st.builds(TsiPayload, ts_list),
    st.builds(TsrPayload, ts_list),
    st.builds(
        CpPayload,
        u8,
        st.lists(st.tuples(st.integers(0, 0x7FFF), st.binary(max_size=16)), max_size=4).map(tuple),
    ),
    st.builds(EapPayload, blob),
    st.builds(UnknownPayload, st.integers(49, 52) | st.integers(54, 255), st.just(False), blob),
)

encrypted_tail = st.one_of(
    st.builds(SkPayload, u8, blob),
    st.builds(SkfPayload, st.just(0), st.integers(2, 10), st.just(10), blob),
    st.builds(SkfPayload, u8, st.just(1), st.integers(1, 10), blob),
)


@st.composite
def messages(draw: st.DrawFn, encrypted: bool | None = None) -> Message:
    body = draw(st.lists(payloads, max_size=8))
    is_encrypted = draw(st.booleans()) if encrypted is None else encrypted
    if not is_encrypted and draw(st.booleans()):
        body.append(draw(encrypted_tail))
    return Message(
        draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        draw(u8),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.booleans()),
        draw(st.booleans()),
        body,
        is_encrypted,
    )
