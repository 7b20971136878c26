"""Byte layout of the flat ISAKMP payload bodies (RFC 2408 §3.7-3.16, RFC 2407 §4.6,
RFC 3947 §3.2/§5.2), declared with the IKEv2 codec's ``FixedSpec``.

Notification and Delete carry counts and sizes and have their own small pair.
"""

from __future__ import annotations

import struct

from pike.wire.bodies import FixedSpec, invalid
from pike.wire.buffer import Reader, truncated
from pike.wire.errors import EncodeError
from pike.wire.isakmp_constants import (
    ISAKMP_SPI_LEN,
    NONCE_MAX,
    NONCE_MIN,
    IdV1,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import (
    V1Cert,
    V1CertReq,
    V1Delete,
    V1Hash,
    V1Id,
    V1Ke,
    V1NatD,
    V1NatDDraft,
    V1NatOa,
    V1NatOaDraft,
    V1Nonce,
    V1Notify,
    V1Sig,
    V1VendorId,
)

_NONE = struct.Struct("!")

# RFC 2407 §4.6.2.1: exact lengths of the address identities.
ID_DATA_LEN = {
    int(IdV1.IPV4_ADDR): 4,
    int(IdV1.IPV4_ADDR_SUBNET): 8,
    int(IdV1.IPV4_ADDR_RANGE): 8,
    int(IdV1.IPV6_ADDR): 16,
    int(IdV1.IPV6_ADDR_SUBNET): 32,
    int(IdV1.IPV6_ADDR_RANGE): 32,
}
_NAT_OA_LEN = {int(IdV1.IPV4_ADDR): 4, int(IdV1.IPV6_ADDR): 16}


def _check_id(p: V1Id) -> None:
    expected = ID_DATA_LEN.get(p.id_type)
    if expected is not None and len(p.data) != expected:
        raise invalid(f"ID type {p.id_type} with {len(p.data)} bytes")
    if expected is None and not p.data:
        raise invalid(f"empty ID of type {p.id_type}")


def _check_nat_oa(p: V1NatOa) -> None:
    if _NAT_OA_LEN.get(p.id_type) != len(p.data):
        raise invalid(f"NAT-OA type {p.id_type} with {len(p.data)} bytes")


# RFC 2408 §3.7 Key Exchange, §3.11 Hash, §3.12 Signature, §3.13 Nonce, §3.16 Vendor ID,
# RFC 3947 §3.2 NAT-D: opaque data after the generic header.
KE = FixedSpec(V1Ke, _NONE, (), tail_min=1)
HASH = FixedSpec(V1Hash, _NONE, (), tail_min=1)
SIG = FixedSpec(V1Sig, _NONE, (), tail_min=1)
NONCE = FixedSpec(V1Nonce, _NONE, (), tail_min=NONCE_MIN, tail_max=NONCE_MAX)
VENDOR_ID = FixedSpec(V1VendorId, _NONE, ())
NAT_D = FixedSpec(V1NatD, _NONE, (), tail_min=1)
NAT_D_DRAFT = FixedSpec(V1NatDDraft, _NONE, (), tail_min=1)

# RFC 2407 §4.6.2 Identification Payload
#    +---------------+---------------+---------------+---------------+
#    |   ID Type     |  Protocol ID  |             Port              |
#    +---------------+---------------+---------------+---------------+
#    ~                     Identification Data                       ~
ID = FixedSpec(V1Id, struct.Struct("!BBH"), ("id_type", "protocol", "port"), check=_check_id)

# RFC 2408 §3.9 Certificate, §3.10 Certificate Request
#    +---------------+
#    | Cert Encoding |  Certificate Data / Certificate Authority ~
CERT = FixedSpec(V1Cert, struct.Struct("!B"), ("encoding",))
CERTREQ = FixedSpec(V1CertReq, struct.Struct("!B"), ("encoding",))

# RFC 3947 §5.2 NAT-OA
#    +---------------+---------------+---------------+---------------+
#    |    ID Type    |   RESERVED    |            RESERVED           |
#    +---------------+---------------+---------------+---------------+
#    |         IPv4 (4 octets) or IPv6 address (16 octets)           |
NAT_OA = FixedSpec(V1NatOa, struct.Struct("!B3x"), ("id_type",), check=_check_nat_oa)
NAT_OA_DRAFT = FixedSpec(V1NatOaDraft, struct.Struct("!B3x"), ("id_type",), check=_check_nat_oa)

# RFC 2408 §3.14 Notification
#    +---------------------------------------------------------------+
#    |              Domain of Interpretation  (DOI)                  |
#    +---------------+---------------+-------------------------------+
#    |  Protocol-ID  |   SPI Size    |      Notify Message Type      |
#    +---------------+---------------+-------------------------------+
#    ~                Security Parameter Index (SPI)                 ~
#    ~                       Notification Data                       ~
_NOTIFY = struct.Struct("!IBBH")


def decode_notify(r: Reader) -> V1Notify:
    if r.remaining < _NOTIFY.size:
        raise truncated(f"Notification body of {r.remaining} bytes")
    doi, protocol, spi_size, notify_type = r.unpack(_NOTIFY, "Notification")
    spi = r.read(spi_size, "Notification SPI")
    return V1Notify(notify_type, r.rest(), protocol, spi, doi)


def encode_notify(p: V1Notify) -> bytes:
    return _NOTIFY.pack(p.doi, p.protocol, len(p.spi), p.notify_type) + p.spi + p.data


# RFC 2408 §3.15 Delete
#    +---------------------------------------------------------------+
#    |              Domain of Interpretation  (DOI)                  |
#    +---------------+---------------+-------------------------------+
#    |  Protocol-Id  |   SPI Size    |           # of SPIs           |
#    +---------------+---------------+-------------------------------+
#    ~               Security Parameter Index(es) (SPI)              ~
_DELETE = struct.Struct("!IBBH")
_DELETE_SPI_LEN = {
    int(ProtocolV1.ISAKMP): (ISAKMP_SPI_LEN,),
    int(ProtocolV1.ESP): (4,),
    int(ProtocolV1.AH): (4,),
    int(ProtocolV1.IPCOMP): (2, 4),
}


def decode_delete(r: Reader) -> V1Delete:
    doi, protocol, spi_size, count = r.unpack(_DELETE, "Delete")
    sizes = _DELETE_SPI_LEN.get(protocol)
    if sizes is None or spi_size not in sizes:
        raise invalid(f"Delete: protocol {protocol} with SPI size {spi_size}")
    if count == 0 or spi_size * count != r.remaining:
        raise invalid(f"Delete: {count} SPIs of {spi_size} bytes in {r.remaining} bytes")
    return V1Delete(protocol, tuple(r.read(spi_size, "SPI") for _ in range(count)), doi)


def encode_delete(p: V1Delete) -> bytes:
    if not p.spis:
        raise EncodeError("a Delete names at least one SA")
    size = len(p.spis[0])
    if any(len(spi) != size for spi in p.spis):
        raise EncodeError("Delete SPIs must all have the same size")
    return _DELETE.pack(p.doi, p.protocol, size, len(p.spis)) + b"".join(p.spis)
