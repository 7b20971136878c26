"""The wire between piked and pike-keyd: length-prefixed frames on a stream socket.

A frame is a 4-octet big-endian length, then the body: an octet (a request's operation, or
an answer's status), a 4-octet request id, and fields, each a 4-octet length and its
octets. Requests carry no secret: key references (a ``pkcs11:`` URI names a PIN *source*,
never a PIN), data to sign, certificates. Answers carry signatures, public keys, token
states and certificate verdicts. Frames above ``MAX_FRAME`` end the connection: neither
side ever needs one (a CERT chain is at most ``max_packet`` octets).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

MAX_FRAME = 1 << 20
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">BI")


class Op(IntEnum):
    SIGN = 1  # key, spki, scheme name, data -> signature
    PUBLIC = 2  # key -> SubjectPublicKeyInfo (DER)
    PROBE = 3  # key -> state, SubjectPublicKeyInfo or b"" (first look at a token key)
    REPROBE = 4  # key -> state, SubjectPublicKeyInfo or b"" (hot-plug)
    CHECK = 5  # wall time, peer certificate count, certificates..., anchors... -> path


class Status(IntEnum):
    OK = 0
    ERROR = 1  # fields: kind ("token:<state>", "signer", "cert", "request"), text


class ProtocolError(Exception):
    """The other side broke the framing: the connection is closed."""


@dataclass(frozen=True, slots=True)
class Frame:
    code: int  # an Op in a request, a Status in an answer
    id: int
    fields: tuple[bytes, ...]


def encode(code: int, rid: int, fields: tuple[bytes, ...] | list[bytes]) -> bytes:
    body = [_HEAD.pack(code, rid)]
    for f in fields:
        body.append(_LEN.pack(len(f)))
        body.append(f)
    data = b"".join(body)
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(data)} octets, at most {MAX_FRAME}")
    return _LEN.pack(len(data)) + data


def decode(body: bytes) -> Frame:
    if len(body) < _HEAD.size:
        raise ProtocolError("frame shorter than its header")
    code, rid = _HEAD.unpack_from(body)
    fields = []
    pos = _HEAD.size
    while pos < len(body):
        if pos + 4 > len(body):
            raise ProtocolError("field length cut short")
        (n,) = _LEN.unpack_from(body, pos)
        pos += 4
        if pos + n > len(body):
            raise ProtocolError("field longer than its frame")
        fields.append(body[pos : pos + n])
        pos += n
    return Frame(code, rid, tuple(fields))


def _exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` octets, or None at a clean end of stream before the first one."""
    parts = []
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            if got == 0:
                return None
            raise ProtocolError("connection closed inside a frame")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_frame(sock: socket.socket) -> Frame | None:
    """The next frame (blocking), None when the other side closed the connection."""
    head = _exactly(sock, 4)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} octets announced, at most {MAX_FRAME}")
    body = _exactly(sock, n)
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return decode(body)
