"""Security Association payload body (RFC 7296 §3.3): proposals, transforms, attributes.

Proposal substructure (§3.3.1):
    +---------------+---------------+-------------------------------+
    | Last Substruc |   RESERVED    |         Proposal Length       |
    +---------------+---------------+-------------------------------+
    | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
    +---------------+---------------+---------------+---------------+
    ~                        SPI (variable)                         ~
    ~                        <Transforms>                           ~

Transform substructure (§3.3.2):
    +---------------+---------------+-------------------------------+
    | Last Substruc |   RESERVED    |        Transform Length       |
    +---------------+---------------+-------------------------------+
    |Transform Type |   RESERVED    |          Transform ID         |
    +---------------+---------------+-------------------------------+
    ~                      Transform Attributes                     ~

Data attribute (§3.3.5):
    +-+-----------------------------+-------------------------------+
    |A|       Attribute Type        |    AF=0  Attribute Length     |
    |F|                             |    AF=1  Attribute Value      |
    +-+-----------------------------+-------------------------------+
    |                   AF=0  Attribute Value                       |
    +---------------------------------------------------------------+

Every length and count is checked against its container before any value is read for
meaning.
"""

from __future__ import annotations

import struct
from operator import attrgetter

from pike.wire.bodies import (
    ESP_AH_SPI_LEN,
    GENERIC,
    GENERIC_PACK,
    MAX_PAYLOAD_LEN,
    Unusual,
    invalid,
    too_long,
)
from pike.wire.buffer import Reader, truncated
from pike.wire.constants import ProtocolId
from pike.wire.errors import EncodeError
from pike.wire.memo import MEMO_BODY_MAX
from pike.wire.payloads import Proposal, SaPayload, Transform

PROPOSAL = struct.Struct("!BxHBBBB")
TRANSFORM = struct.Struct("!BxHBxH")
ATTRIBUTE = struct.Struct("!HH")

LAST = 0  # Last Substruc: this is the last one
MORE_PROPOSALS = 2  # §3.3.1
MORE_TRANSFORMS = 3  # §3.3.2
ATTR_TV = 0x8000  # AF bit: type/value format
ATTR_TYPE_MASK = 0x7FFF
KEY_LENGTH = 14  # §3.3.5: the only attribute RFC 7296 defines, TV format
IKE_SPI_SIZES = (0, 8)  # §3.3.1: 0 in IKE_SA_INIT, 8 when rekeying the IKE SA
_IKE = int(ProtocolId.IKE)  # plain ints: enum attribute access is slow on the hot path
_ESP_AH = (int(ProtocolId.ESP), int(ProtocolId.AH))


def _decode_attributes(r: Reader) -> tuple[int | None, tuple[int, ...]]:
    key_length: int | None = None
    unknown: list[int] = []
    while r.remaining:
        type_field, value = r.unpack(ATTRIBUTE, "transform attribute")
        attr_type = type_field & ATTR_TYPE_MASK
        if not type_field & ATTR_TV:
            r.sub(value, "TLV attribute value")  # skip: length checked by sub()
            if attr_type == KEY_LENGTH:
                raise invalid("Key Length attribute must be TV (RFC 7296 §3.3.5)")
            unknown.append(attr_type)
        elif attr_type == KEY_LENGTH:
            if key_length is not None:
                raise invalid("Key Length attribute twice in one transform")
            key_length = value
        else:
            unknown.append(attr_type)
    return key_length, tuple(unknown)


# Decoded values keyed by their exact bytes (and encoded bytes keyed by value). Every
# initiator with the same configuration sends the same transforms, and building the frozen
# objects is most of the decode cost; the values are immutable, so sharing them is safe.
# Bounded: a peer sending random transforms only empties them.
_TRANSFORMS_CACHE: dict[bytes, tuple[Transform, ...]] = {}
_ENCODED_TRANSFORMS: dict[tuple[Transform, ...], bytes] = {}
# The same by the tuple's identity, tried first: an answer's transforms are one shared
# tuple (``Chosen.transforms``), and hashing a tuple of Transforms runs each one's
# Python-level ``__hash__``. The entry holds the tuple, so its id is not reused meanwhile.
_ENCODED_BY_ID: dict[int, tuple[tuple[Transform, ...], bytes]] = {}
_CACHE_MAX = 256
_SPI = attrgetter("spi")


def _decode_transforms(
    data: bytes, start: int, end: int, count: int, number: int
) -> tuple[Transform, ...]:
    key = data[start:end]
    cached = _TRANSFORMS_CACHE.get(key)
    if cached is not None and len(cached) == count:
        return cached
    r = Reader(data, start, end)
    transforms = []
    for i in range(count):
        tlast, tlength, ttype, tid = r.unpack(TRANSFORM, "transform")
        if tlength < TRANSFORM.size:
            raise invalid(f"proposal {number}: transform length {tlength}")
        attrs = r.sub(tlength - TRANSFORM.size, "transform")
        if tlast != (LAST if i == count - 1 else MORE_TRANSFORMS):
            raise invalid(f"proposal {number}: transform {i} Last Substruc {tlast}")
        key_length, unknown = _decode_attributes(attrs) if attrs.remaining else (None, ())
        transforms.append(Transform(ttype, tid, key_length, unknown))
    if r.remaining:
        raise invalid(f"proposal {number}: {r.remaining} bytes after {count} transforms")
    result = tuple(transforms)
    if len(_TRANSFORMS_CACHE) >= _CACHE_MAX:
        _TRANSFORMS_CACHE.clear()
    _TRANSFORMS_CACHE[key] = result
    return result


def _decode_proposal(data: bytes, pos: int, end: int) -> tuple[Proposal, int]:
    """The proposal at ``pos`` and the offset after it (walked by offsets like the payload
    chain: the Reader's calls were most of the cost of an IKE_AUTH or CREATE_CHILD_SA)."""
    if end - pos < PROPOSAL.size:
        raise truncated(f"proposal: need {PROPOSAL.size} bytes at offset {pos}, have {end - pos}")
    last, length, number, protocol, spi_size, count = PROPOSAL.unpack_from(data, pos)
    if length < PROPOSAL.size + spi_size:
        raise invalid(f"proposal length {length} < header + SPI {spi_size}")
    stop = pos + length
    if stop > end:
        raise truncated(f"proposal: length {length} at offset {pos}, have {end - pos}")
    if last != (MORE_PROPOSALS if stop < end else LAST):
        raise invalid(f"proposal {number}: Last Substruc {last} inconsistent with length")
    if protocol == _IKE:
        if spi_size not in IKE_SPI_SIZES:
            raise invalid(f"proposal {number}: IKE SPI size {spi_size}")
    elif protocol in _ESP_AH and spi_size != ESP_AH_SPI_LEN:
        raise invalid(f"proposal {number}: ESP/AH SPI size {spi_size}")
    spi_end = pos + PROPOSAL.size + spi_size
    transforms = _decode_transforms(data, spi_end, stop, count, number)
    return Proposal(number, protocol, data[pos + PROPOSAL.size : spi_end], transforms), stop


def decode_sa(data: bytes, start: int, end: int) -> SaPayload:
    # The offers that recur (IKE_SA_INIT's, without SPIs) are found by the chain walker's
    # memo (``pike.wire.memo``) before this runs.
    proposals: list[Proposal] = []
    pos = start
    while pos < end:
        proposal, pos = _decode_proposal(data, pos, end)
        # §3.3.1: numbered from 1, each one more than the previous. A response carries one
        # proposal whose number is the one accepted, so only the sequence is checked.
        if proposal.number == 0 or (proposals and proposal.number != proposals[-1].number + 1):
            raise invalid(f"proposal number {proposal.number} out of sequence")
        proposals.append(proposal)
    if not proposals:
        raise invalid("SA payload without proposals")
    return SaPayload(tuple(proposals))


def _encode_transform(t: Transform, last: bool) -> bytes:
    attrs = b""
    if t.key_length is not None:
        attrs = ATTRIBUTE.pack(ATTR_TV | KEY_LENGTH, t.key_length)
    # Unknown attributes carry no value in the model; they are only ever echoed in tests,
    # so they are sent as TV with value 0.
    for attr_type in t.unknown_attributes:
        if attr_type > ATTR_TYPE_MASK or attr_type == KEY_LENGTH:
            raise EncodeError(f"cannot encode attribute type {attr_type}")
        attrs += ATTRIBUTE.pack(ATTR_TV | attr_type, 0)
    head = TRANSFORM.pack(
        LAST if last else MORE_TRANSFORMS, TRANSFORM.size + len(attrs), t.type, t.id
    )
    return head + attrs


def _encode_transforms(transforms: tuple[Transform, ...]) -> bytes:
    same = _ENCODED_BY_ID.get(id(transforms))
    if same is not None and same[0] is transforms:
        return same[1]
    encoded = _ENCODED_TRANSFORMS.get(transforms)
    if encoded is None:
        count = len(transforms)
        encoded = b"".join(_encode_transform(t, j == count - 1) for j, t in enumerate(transforms))
        if len(_ENCODED_TRANSFORMS) >= _CACHE_MAX:
            _ENCODED_TRANSFORMS.clear()
        _ENCODED_TRANSFORMS[transforms] = encoded
    if len(_ENCODED_BY_ID) >= _CACHE_MAX:
        _ENCODED_BY_ID.clear()
    _ENCODED_BY_ID[id(transforms)] = (transforms, encoded)
    return encoded


def encode_sa(p: SaPayload) -> bytes:
    parts: list[bytes] = []
    n = len(p.proposals)
    for i, proposal in enumerate(p.proposals):
        transforms = _encode_transforms(proposal.transforms)
        length = PROPOSAL.size + len(proposal.spi) + len(transforms)
        parts.append(
            PROPOSAL.pack(
                LAST if i == n - 1 else MORE_PROPOSALS,
                length,
                proposal.number,
                proposal.protocol,
                len(proposal.spi),
                len(proposal.transforms),
            )
        )
        parts.append(proposal.spi)
        parts.append(transforms)
    return b"".join(parts)


# The generic payload header with a proposal's header: an answer carries one proposal.
_ONE_PROPOSAL = struct.Struct(GENERIC.format + PROPOSAL.format[1:])


def write_sa(p: SaPayload, next_kind: int) -> bytes:
    """The whole SA payload: generic header and body (one pack for the headers of an SA
    payload with a single proposal, as every answer is)."""
    if len(p.proposals) != 1:
        body = encode_sa(p)
        length = GENERIC.size + len(body)
        if length > MAX_PAYLOAD_LEN:
            raise too_long(p, length)
        return GENERIC_PACK(next_kind, 0, length) + body
    (proposal,) = p.proposals
    spi = proposal.spi
    transforms = _encode_transforms(proposal.transforms)
    length = _ONE_PROPOSAL.size + len(spi) + len(transforms)
    if length > MAX_PAYLOAD_LEN:
        raise too_long(p, length)
    head = _ONE_PROPOSAL.pack(
        next_kind,
        0,
        length,
        LAST,
        length - GENERIC.size,
        proposal.number,
        proposal.protocol,
        len(spi),
        len(proposal.transforms),
    )
    return head + spi + transforms


# What the chain walker's step for SA payloads finds without decoding (see ``pike.wire.memo``
# for the rules: exact bytes that decoded, values shared, bounded). Offers without SPIs (every
# IKE_SA_INIT's) by their body; an offer of one proposal with an SPI (every CHILD_SA's, an
# IKE SA rekey's) by its body without the SPI: the SPI is new in each, the rest recurs from
# branch to branch, and no check of the decoder looks at the SPI's value, only at its size
# (byte 6, kept in the key), so the same bytes with another SPI decode to the same proposal
# with that SPI.
OFFERS: dict[bytes, SaPayload] = {}
PROPOSALS_BUT_SPI: dict[bytes, Proposal] = {}
_GENERIC_UNPACK = GENERIC.unpack_from
_HEAD = GENERIC.size
_SPI_AT = PROPOSAL.size  # the SPI follows the proposal's fixed fields
_SPI_SIZE_AT = 6


def step_sa(data: bytes, pos: int, end: int) -> tuple[SaPayload, int, int]:
    """The whole SA payload at ``pos`` (see ``bodies.Step``)."""
    next_kind, _, length = _GENERIC_UNPACK(data, pos)
    stop = pos + length
    if length < _HEAD or stop > end:
        raise Unusual  # the full way names what is wrong
    body = data[pos + _HEAD : stop]
    sa = OFFERS.get(body)
    if sa is not None:
        return sa, next_kind, stop
    spi_end = _SPI_AT + (body[_SPI_SIZE_AT] if len(body) > _SPI_SIZE_AT else 0)
    if spi_end <= len(body):
        key = body[:_SPI_AT] + body[spi_end:]
        proposal = PROPOSALS_BUT_SPI.get(key)
        if proposal is not None:
            spi = body[_SPI_AT:spi_end]
            again = Proposal(proposal.number, proposal.protocol, spi, proposal.transforms)
            return SaPayload((again,)), next_kind, stop
    sa = decode_sa(data, pos + _HEAD, stop)
    if length <= MEMO_BODY_MAX + _HEAD:
        _keep(sa, body)
    return sa, next_kind, stop


def _keep(sa: SaPayload, body: bytes) -> None:
    proposals = sa.proposals
    if not any(map(_SPI, proposals)):
        if len(OFFERS) >= _CACHE_MAX:
            OFFERS.clear()
        OFFERS[body] = sa
    elif len(proposals) == 1:
        (proposal,) = proposals
        if len(PROPOSALS_BUT_SPI) >= _CACHE_MAX:
            PROPOSALS_BUT_SPI.clear()
        PROPOSALS_BUT_SPI[body[:_SPI_AT] + body[_SPI_AT + len(proposal.spi) :]] = proposal
