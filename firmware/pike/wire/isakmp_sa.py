"""ISAKMP SA payload body (RFC 2408 §3.4-3.6, RFC 2407 §4.6.1): proposals, transforms,
data attributes.

SA body after the generic header (IPsec DOI):
    +---------------------------------------------------------------+
    |              Domain of Interpretation  (DOI)                  |
    +---------------------------------------------------------------+
    |                           Situation                           |
    +---------------------------------------------------------------+
    ~                  Proposal payloads (type 2)                   ~

Proposal payload (each with its own generic header, next payload 2 or 0):
    +---------------+---------------+-------------------------------+
    | Next Payload  |   RESERVED    |         Payload Length        |
    +---------------+---------------+---------------+---------------+
    |  Proposal #   |  Protocol-Id  |    SPI Size   |# of Transforms|
    +---------------+---------------+---------------+---------------+
    ~                        SPI (variable)                         ~
    ~                 Transform payloads (type 3)                   ~

Transform payload:
    +---------------+---------------+-------------------------------+
    | Next Payload  |   RESERVED    |         Payload Length        |
    +---------------+---------------+-------------------------------+
    |  Transform #  |  Transform-Id |           RESERVED2           |
    +---------------+---------------+-------------------------------+
    ~                        SA Attributes                          ~

Data attribute (RFC 2408 §3.3): AF=1 type/value (16-bit value), AF=0 type/length/value.
"""

from __future__ import annotations

import struct

from pike.wire.bodies import invalid
from pike.wire.buffer import Reader
from pike.wire.errors import EncodeError
from pike.wire.isakmp_constants import (
    DOI_IPSEC,
    P1_VARIABLE,
    P2_VARIABLE,
    SIT_IDENTITY_ONLY,
    PayloadV1,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import Attribute, V1Proposal, V1Sa, V1Transform

SA_HEAD = struct.Struct("!II")
GENERIC = struct.Struct("!BxH")
PROPOSAL = struct.Struct("!BBBB")
TRANSFORM = struct.Struct("!BBxx")
ATTRIBUTE = struct.Struct("!HH")
ATTR_TV = 0x8000
ATTR_TYPE_MASK = 0x7FFF
MAX_TLV = 256  # longest variable attribute we take (a life of 2^2048 is no life)
ESP_AH_SPI_LEN = 4
IPCOMP_SPI_LENS = (2, 4)  # RFC 2407 §4.4.3: CPI, optionally sent in 4 bytes
ISAKMP_SPI_LENS = (0, 16)  # RFC 2408 §3.5: the header's cookies may be repeated

_ISAKMP = int(ProtocolV1.ISAKMP)


def _variable(protocol: int) -> frozenset[int]:
    return P1_VARIABLE if protocol == _ISAKMP else P2_VARIABLE


def decode_attributes(r: Reader, variable: frozenset[int]) -> tuple[Attribute, ...]:
    attrs: list[Attribute] = []
    while r.remaining:
        type_field, value = r.unpack(ATTRIBUTE, "data attribute")
        kind = type_field & ATTR_TYPE_MASK
        if type_field & ATTR_TV:
            attrs.append((kind, value))
            continue
        # RFC 2408 §3.3: basic attributes MUST NOT be encoded as variable.
        if kind not in variable:
            raise invalid(f"basic attribute {kind} in TLV form")
        if not 1 <= value <= MAX_TLV:
            raise invalid(f"attribute {kind} of {value} bytes")
        attrs.append((kind, int.from_bytes(r.read(value, "attribute value"), "big")))
    return tuple(attrs)


def encode_attributes(attrs: tuple[Attribute, ...], variable: frozenset[int]) -> bytes:
    parts: list[bytes] = []
    for kind, value in attrs:
        if not 0 <= kind <= ATTR_TYPE_MASK or value < 0:
            raise EncodeError(f"attribute {kind}={value}")
        # Variable attributes MAY go as basic when they fit in two octets (§3.3).
        if value <= 0xFFFF:
            parts.append(ATTRIBUTE.pack(ATTR_TV | kind, value))
        elif kind in variable:
            data = value.to_bytes(max(4, (value.bit_length() + 7) // 8), "big")
            parts.append(ATTRIBUTE.pack(kind, len(data)) + data)
        else:
            raise EncodeError(f"basic attribute {kind} value {value} > 16 bits")
    return b"".join(parts)


def _substructs(r: Reader, kind: int, count: int | None, what: str) -> list[Reader]:
    """Walk proposal (2) or transform (3) payloads: next-payload must say ``kind`` until
    the last, which says 0 and ends the container exactly."""
    items: list[Reader] = []
    while True:
        nxt, length = r.unpack(GENERIC, what)
        if length < GENERIC.size:
            raise invalid(f"{what} length {length}")
        items.append(r.sub(length - GENERIC.size, what))
        if nxt == 0:
            break
        if nxt != kind:
            raise invalid(f"{what} followed by payload type {nxt}")
        if not r.remaining:
            raise invalid(f"{what} says more follow, container ends")
    if r.remaining:
        raise invalid(f"{r.remaining} bytes after the last {what}")
    if count is not None and len(items) != count:
        raise invalid(f"{len(items)} transforms, proposal says {count}")
    return items


def _decode_proposal(r: Reader) -> V1Proposal:
    number, protocol, spi_size, count = r.unpack(PROPOSAL, "proposal")
    if protocol == _ISAKMP:
        ok = spi_size in ISAKMP_SPI_LENS
    elif protocol == ProtocolV1.IPCOMP:
        ok = spi_size in IPCOMP_SPI_LENS
    else:
        ok = spi_size == ESP_AH_SPI_LEN
    if not ok:
        raise invalid(f"proposal {number}: SPI size {spi_size} for protocol {protocol}")
    spi = r.read(spi_size, "proposal SPI")
    if count == 0:
        raise invalid(f"proposal {number} without transforms")
    variable = _variable(protocol)
    transforms = []
    for t in _substructs(r, PayloadV1.TRANSFORM, count, "transform"):
        tnum, tid = t.unpack(TRANSFORM, "transform")
        transforms.append(V1Transform(tnum, tid, decode_attributes(t, variable)))
    return V1Proposal(number, protocol, spi, tuple(transforms))


def decode_sa(r: Reader) -> V1Sa:
    doi, situation = r.unpack(SA_HEAD, "SA")
    if doi != DOI_IPSEC:
        raise invalid(f"DOI {doi}")
    # RFC 2407 §4.6.1: secrecy and integrity situations add labels we do not speak.
    if situation != SIT_IDENTITY_ONLY:
        raise invalid(f"situation {situation:#x}")
    if not r.remaining:
        raise invalid("SA without proposals")
    proposals = tuple(
        _decode_proposal(p) for p in _substructs(r, PayloadV1.PROPOSAL, None, "proposal")
    )
    # §3.5: numbers increase monotonically; equal numbers are ANDed protocols.
    numbers = [p.number for p in proposals]
    if numbers != sorted(numbers):
        raise invalid(f"proposal numbers {numbers} not increasing")
    return V1Sa(proposals, doi, situation)


def _chain(kind: int, bodies: list[bytes]) -> bytes:
    parts: list[bytes] = []
    for i, body in enumerate(bodies):
        length = GENERIC.size + len(body)
        if length > 0xFFFF:
            raise EncodeError(f"substructure of {length} bytes")
        parts.append(GENERIC.pack(kind if i < len(bodies) - 1 else 0, length))
        parts.append(body)
    return b"".join(parts)


def encode_sa(p: V1Sa) -> bytes:
    props: list[bytes] = []
    for prop in p.proposals:
        variable = _variable(prop.protocol)
        transforms = [
            TRANSFORM.pack(t.number, t.transform_id) + encode_attributes(t.attributes, variable)
            for t in prop.transforms
        ]
        head = PROPOSAL.pack(prop.number, prop.protocol, len(prop.spi), len(transforms))
        props.append(head + prop.spi + _chain(PayloadV1.TRANSFORM, transforms))
    return SA_HEAD.pack(p.doi, p.situation) + _chain(PayloadV1.PROPOSAL, props)
