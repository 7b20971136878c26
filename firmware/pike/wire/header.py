"""The IKE header (RFC 7296 §3.1).

                     1                   2                   3
 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|                       IKE SA Initiator's SPI                  |
|                                                               |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|                       IKE SA Responder's SPI                  |
|                                                               |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|                          Message ID                           |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|                            Length                             |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pike.wire.constants import HEADER_LEN, HeaderFlag, NotifyType
from pike.wire.errors import MalformedMessage

HEADER = struct.Struct("!8s8sBBBBII")
IKE_MAJOR_VERSION = 2  # RFC 7296 §3.1

# plain ints: asked for every datagram, and an Enum member lookup is slow on 3.11
_INITIATOR, _RESPONSE = int(HeaderFlag.INITIATOR), int(HeaderFlag.RESPONSE)


class Header(NamedTuple):
    """The header's fields as unpacked: a tuple, made from the unpacked fields in one C call
    (every datagram has one; a frozen value's ``__init__`` stored them one by one)."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int  # the whole byte: major in the high nibble, minor in the low one
    exchange: int
    flags: int
    message_id: int
    length: int

    @property
    def major_version(self) -> int:
        return self.version >> 4

    @property
    def is_initiator(self) -> bool:
        return bool(self.flags & _INITIATOR)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & _RESPONSE)


_new_header = tuple.__new__


def peek_header(data: bytes | memoryview) -> Header:
    """Unpack the 28 header bytes without judging them: for dispatch (IKEv1 vs IKEv2, which
    SA, retransmit detection) before the full decode."""
    if len(data) < HEADER_LEN:
        raise MalformedMessage("truncated", f"{len(data)} bytes < IKE header", None)
    return _new_header(Header, HEADER.unpack_from(data, 0))


def decode_header(data: bytes | memoryview) -> Header:
    """Unpack and check the header of a whole datagram (lengths first, then meaning)."""
    if len(data) < HEADER_LEN:
        return peek_header(data)  # raises "truncated"
    header = _new_header(Header, HEADER.unpack_from(data, 0))
    if header.length != len(data):
        raise MalformedMessage(
            "bad_length", f"header says {header.length}, datagram is {len(data)}", None
        )
    if header.version >> 4 != IKE_MAJOR_VERSION:
        # RFC 7296 §2.5: answer INVALID_MAJOR_VERSION naming the highest version we speak.
        raise MalformedMessage(
            "invalid_major_version",
            f"major version {header.major_version}",
            NotifyType.INVALID_MAJOR_VERSION,
        )
    return header


def pack_header(header: Header) -> bytes:
    return HEADER.pack(
        header.spi_i,
        header.spi_r,
        header.next_payload,
        header.version,
        header.exchange,
        header.flags,
        header.message_id,
        header.length,
    )
