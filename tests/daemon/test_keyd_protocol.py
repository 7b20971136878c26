"""The piked <-> pike-keyd frames: what they carry, and what the helper does with frames
that break the rules (answers a malformed request, closes on broken framing)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from pike.keyd.protocol import MAX_FRAME, Op, ProtocolError, Status, decode, encode, read_frame
from pike.keyd.server import Connection, KeyService


def test_frames_round_trip() -> None:
    data = encode(Op.SIGN, 7, [b"pkcs11:token=gw", b"", b"\x00" * 300])
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    frame = decode(data[4:])
    assert (frame.code, frame.id, frame.fields) == (
        Op.SIGN,
        7,
        (b"pkcs11:token=gw", b"", bytes(300)),
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x01\x00\x00", "shorter than its header"),
        (b"\x01\x00\x00\x00\x01\x00\x00", "field length cut short"),
        (b"\x01\x00\x00\x00\x01\x00\x00\x00\x09abc", "field longer than its frame"),
    ],
)
def test_broken_bodies_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(body)


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(ProtocolError):
        encode(Op.CHECK, 1, [bytes(MAX_FRAME)])
    a, b = socket.socketpair()
    a.sendall(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match="announced"):
        read_frame(b)
    a.close()
    b.close()


def _serve() -> tuple[socket.socket, threading.Thread]:
    ours, theirs = socket.socketpair()
    t = threading.Thread(target=Connection(theirs, KeyService()).serve, daemon=True)
    t.start()
    return ours, t


def test_the_helper_answers_malformed_requests_and_closes_on_broken_framing() -> None:
    sock, served = _serve()
    sock.sendall(encode(Op.SIGN, 1, [b"key"]))  # fields missing
    sock.sendall(encode(99, 2, []))  # no such operation
    answers = {}
    for _ in range(2):
        frame = read_frame(sock)
        assert frame is not None
        answers[frame.id] = frame
    for rid in (1, 2):
        assert answers[rid].code == Status.ERROR
        assert answers[rid].fields[0] == b"request"
    sock.sendall(struct.pack(">I", 3) + b"\x01\x00\x00")  # a body shorter than its header
    served.join(5)
    assert not served.is_alive()
    assert read_frame(sock) is None  # the helper closed the connection
    sock.close()
