"""Bounded floods before authentication against piked (issue 13), run inside a namespace.

``python flood_tool.py KIND DST SRC[,SRC...] COUNT RATE`` sends at most COUNT attempts at
RATE per second to DST (an address of the test's own namespaces) and prints one JSON line
of what it did. KIND:

- ``spoof``: IKE_SA_INIT requests from SRC, a network (``198.18.0.0/15``): every datagram
  carries another source address and port (raw socket, IP_HDRINCL); nothing is answered.
- ``echo``: IKE_SA_INIT from one address that echoes every COOKIE it gets.
- ``certs``: a proper IKE_SA_INIT (COOKIE echoed when asked), then an IKE_AUTH sealed with
  the real keys that carries MAX_CERT_PAYLOADS certificates from an unknown CA after IDi,
  and a signature AUTH of junk; every other one carries twice as many certificates.
- ``frags``: a proper IKE_SA_INIT, then the IKE_AUTH as valid SKF fragments of a 30 KB
  message (over max_packet), all but the last, and the same under a message ID nobody
  expects; the half-open SA is left to time out.

SRC is a comma-separated list of source addresses for the last three (bound to port 500,
so that the engine's NAT detection sees no NAT), used in turn.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pike.ikev1.engine import Ikev1Engine
from pike.ikev2.engine import Ikev2Engine
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.sa.actions import SendDatagram
from pike.sa.certs import MAX_CERT_PAYLOADS
from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.constants import NotifyType, PayloadType
from pike.wire.fragments import encode_fragments
from pike.wire.payloads import (
    AuthPayload,
    CertPayload,
    IdPayload,
    Message,
    NotifyPayload,
    Payload,
)
from pike.wire.sk import SkCrypter

FLOOD_ID = "flood.example"
CONFIG = """
[daemon]
control_socket = "/nonexistent/flood.sock"
[connections.x]
local_addrs = ["{src}"]
remote_addrs = ["{dst}"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {{ auth = "psk", id = "{fid}" }}
remote = {{ auth = "psk", id = "rw.example" }}
[connections.x.children.c]
local_ts = ["10.9.0.0/24"]
remote_ts = ["10.1.0.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.s]
secret = "flood-psk-unused-by-piked"
id = ["{fid}", "rw.example"]
"""


def _engine(src: str, dst: str) -> Ikev2Engine:
    text = CONFIG.format(src=src, dst=dst, fid=FLOOD_ID)
    return Ikev2Engine(load_config_text(text), random=os.urandom, kernel_caps=KernelCaps(True))


def _datagrams(eng: Ikev2Engine) -> list[SendDatagram]:
    out = []
    while (act := eng.next_action()) is not None:
        if isinstance(act, SendDatagram):
            out.append(act)
    return out


def _init_request(src: str, dst: str) -> bytes:
    eng = _engine(src, dst)
    eng.initiate("x", 0.0)
    return _datagrams(eng)[0].data


# -- spoofed sources ---------------------------------------------------------------------------


def _ip_udp(src: str, sport: int, dst: str, payload: bytes) -> bytes:
    """IPv4 + UDP headers (the kernel fills the IP checksum; UDP checksum 0 = none)."""
    udp = struct.pack("!HHHH", sport, 500, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        socket.IPPROTO_UDP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return ip + udp


def spoof(dst: str, net: str, count: int, rate: float) -> dict[str, int | float]:
    hosts = ipaddress.ip_network(net)
    init = _init_request(str(hosts[1]), dst)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(13)
    t0 = time.monotonic()
    sent = 0
    for i in range(count):
        src = str(hosts[rng.randrange(1, hosts.num_addresses - 1)])
        data = rng.randbytes(8) + init[8:]
        raw.sendto(_ip_udp(src, rng.randrange(1024, 65535), dst, data), (dst, 0))
        sent += 1
        _pace(t0, i, rate)
    raw.close()
    return {"sent": sent, "seconds": round(time.monotonic() - t0, 2)}


# -- IKEv1 -------------------------------------------------------------------------------------

CONFIG_V1 = """
[daemon]
control_socket = "/nonexistent/flood.sock"
[connections.x]
version = 1
aggressive = {aggressive}
local_addrs = ["{src}"]
remote_addrs = ["{dst}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk", id = "{fid}" }}
remote = {{ auth = "psk", id = "rw1.example" }}
[connections.x.children.c]
local_ts = ["10.9.0.0/24"]
remote_ts = ["10.1.0.0/24"]
esp_proposals = ["aes128-sha256"]
[secrets.s]
secret = "flood-psk-unused-by-piked"
id = ["{fid}", "rw1.example"]
"""


def _v1_first(src: str, dst: str, aggressive: bool) -> bytes:
    """Main Mode's first message (SA), or Aggressive Mode's (SA, KE, nonce, ID)."""
    text = CONFIG_V1.format(src=src, dst=dst, fid=FLOOD_ID, aggressive=str(aggressive).lower())
    eng = Ikev1Engine(load_config_text(text), random=os.urandom, kernel_caps=KernelCaps(True))
    eng.initiate("x", 0.0)
    out = [a for a in iter(eng.next_action, None) if isinstance(a, SendDatagram)]
    return out[0].data


def v1spoof(
    dst: str, net: str, count: int, rate: float, aggressive: bool
) -> dict[str, int | float]:
    """MM1s or AM1s from random addresses of ``net`` (new initiator cookie each)."""
    hosts = ipaddress.ip_network(net)
    first = _v1_first(str(hosts[1]), dst, aggressive)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(14 if aggressive else 15)
    t0 = time.monotonic()
    for i in range(count):
        src = str(hosts[rng.randrange(1, hosts.num_addresses - 1)])
        data = rng.randbytes(8) + first[8:]
        raw.sendto(_ip_udp(src, rng.randrange(1024, 65535), dst, data), (dst, 0))
        _pace(t0, i, rate)
    raw.close()
    return {"sent": count, "seconds": round(time.monotonic() - t0, 2)}


def v1half(dst: str, srcs: list[str], count: int, rate: float) -> dict[str, int | float]:
    """MM1s from one real address, each a new ISAKMP SA left half-open (MM2 not answered)."""
    peer = _Peer(srcs[0], dst, timeout=min(0.1, 0.5 / rate))
    first = _v1_first(srcs[0], dst, False)
    t0 = time.monotonic()
    answered = 0
    for i in range(count):
        cookie = random.randbytes(8)
        peer.send(cookie + first[8:])
        got = peer.recv()
        answered += got is not None and got[:8] == cookie
        _pace(t0, i, rate)
    return {"sent": count, "answered": answered, "seconds": round(time.monotonic() - t0, 2)}


# -- from real addresses -----------------------------------------------------------------------


class _Peer:
    """One UDP socket at (src, 500) talking to dst:500."""

    def __init__(self, src: str, dst: str, timeout: float = 0.1) -> None:
        self.src, self.dst = src, dst
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((src, 500))
        self.sock.settimeout(timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (self.dst, 500))

    def recv(self) -> bytes | None:
        try:
            return self.sock.recv(65536)
        except OSError:
            return None

    def reply(self, spi: bytes, late: Callable[[bytes], None] | None = None) -> bytes | None:
        """The answer to our request with initiator SPI ``spi``. Any other datagram is a late
        answer to an earlier request: it goes to ``late`` (or nowhere), as taking it for this
        one would pair every later answer with the wrong request."""
        while (got := self.recv()) is not None:
            if got[:8] == spi:
                return got
            if late is not None:
                late(got)
        return None

    def handshake(self) -> tuple[Ikev2Engine, bytes] | None:
        """IKE_SA_INIT through the engine (it echoes a COOKIE itself); its IKE_AUTH."""
        eng = _engine(self.src, self.dst)
        eng.initiate("x", 0.0)
        for _ in range(3):  # INIT, INIT with COOKIE, then the AUTH request
            out = _datagrams(eng)
            if not out:
                return None
            if decode_message(out[0].data).exchange != 34:  # not IKE_SA_INIT: IKE_AUTH
                return eng, out[0].data
            self.send(out[0].data)
            got = self.reply(out[0].data[:8])
            if got is None:
                return None
            eng.receive_datagram(got, (self.dst, 500), (self.src, 500), 0.1)
        return None


def echo(dst: str, srcs: list[str], count: int, rate: float) -> dict[str, int | float]:
    # a blocked source gets no answer at all: wait no longer than the pace allows
    peer = _Peer(srcs[0], dst, timeout=min(0.1, 0.5 / rate))
    init = _init_request(srcs[0], dst)
    t0 = time.monotonic()
    echoed: set[bytes] = set()  # SPIs whose COOKIE we echoed and that have no answer yet
    n_echoed = answered = 0

    def settle(got: bytes) -> None:
        """An IKE_SA_INIT answer without a COOKIE to an SPI we echoed: a half-open SA for us
        (whenever it arrives: a slow piked may answer after the wait gave up)."""
        nonlocal answered
        if got[:8] in echoed and decode_message(got).notify(NotifyType.COOKIE) is None:
            echoed.discard(got[:8])
            answered += 1

    for i in range(count):
        data = random.randbytes(8) + init[8:]
        spi = data[:8]
        peer.send(data)
        got = peer.reply(spi, settle)
        cookie = decode_message(got).notify(NotifyType.COOKIE) if got else None
        if cookie is not None:
            msg = decode_message(data)
            msg.payloads.insert(0, NotifyPayload(NotifyType.COOKIE, cookie.data))
            peer.send(encode_message(msg))
            echoed.add(spi)
            n_echoed += 1
            got = peer.reply(spi, settle)
            if got is not None:
                settle(got)
        _pace(t0, i, rate)
    peer.sock.settimeout(0.5)  # the last answers, however late
    while (got := peer.recv()) is not None:
        settle(got)
    return {
        "sent": count,
        "cookies_echoed": n_echoed,
        "answered_after_cookie": answered,
        "seconds": round(time.monotonic() - t0, 2),
    }


def _junk_certs(n: int) -> list[bytes]:
    """``n`` distinct P-256 certificates, each issued by a CA nobody trusts."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a trusted CA")])
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    now = datetime.datetime.now(datetime.UTC)
    out = []
    for i in range(n):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{FLOOD_ID} {i}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_name)
            .public_key(key)
            .serial_number(i + 1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(FLOOD_ID)]), False)
            .sign(ca_key, hashes.SHA256())
        )
        out.append(cert.public_bytes(serialization.Encoding.DER))
    return out


def _auth_plaintext(eng: Ikev2Engine, auth: bytes) -> tuple[Message, SkCrypter]:
    (sa,) = eng.sas.values()
    cipher = sa.cipher_out  # AEAD: the same key opens what it sealed
    assert cipher is not None
    return decrypt_message(auth, decode_message(auth), cipher), cipher


def _sealed(msg: Message, payloads: list[Payload], cipher: SkCrypter, mid: int) -> list[bytes]:
    out = Message(msg.spi_i, msg.spi_r, msg.exchange, mid, True, False, payloads, True)
    return encode_fragments(out, cipher, 1280)


def certs(dst: str, srcs: list[str], count: int, rate: float) -> dict[str, int | float]:
    ders = _junk_certs(2 * MAX_CERT_PAYLOADS)
    t0 = time.monotonic()
    done = refused = nbytes = 0
    for i in range(count):
        peer = _Peer(srcs[i % len(srcs)], dst)
        try:
            hs = peer.handshake()
            if hs is None:
                refused += 1
                continue
            eng, auth = hs
            msg, cipher = _auth_plaintext(eng, auth)
            n = MAX_CERT_PAYLOADS * (2 if i % 2 else 1)
            payloads: list[Payload] = []
            for p in msg.payloads:
                if isinstance(p, AuthPayload):
                    p = AuthPayload(14, b"\x00" * 96)  # a "signature" over nothing
                payloads.append(p)
                if isinstance(p, IdPayload) and p.TYPE == PayloadType.IDI:
                    payloads.extend(CertPayload(4, d) for d in ders[:n])
            for frag in _sealed(msg, payloads, cipher, msg.message_id):
                peer.send(frag)
                nbytes += len(frag)
            done += 1
            peer.recv()  # AUTHENTICATION_FAILED, or nothing when over max_packet
        finally:
            peer.sock.close()
        _pace(t0, i, rate)
    return {
        "ike_auth_sent": done,
        "init_refused": refused,
        "bytes": nbytes,
        "seconds": round(time.monotonic() - t0, 2),
    }


def frags(dst: str, srcs: list[str], count: int, rate: float) -> dict[str, int | float]:
    t0 = time.monotonic()
    held = nfrag = 0
    for i in range(count):
        peer = _Peer(srcs[i % len(srcs)], dst)
        try:
            hs = peer.handshake()
            if hs is None:
                continue
            eng, auth = hs
            msg, cipher = _auth_plaintext(eng, auth)
            big = [*msg.payloads, NotifyPayload(NotifyType.COOKIE + 40000, os.urandom(30000))]
            for mid in (msg.message_id, msg.message_id + 7):
                for frag in _sealed(msg, big, cipher, mid)[:-1]:
                    peer.send(frag)
                    nfrag += 1
            held += 1
        finally:
            peer.sock.close()
        _pace(t0, i, rate)
    return {
        "half_open_sas": held,
        "fragments": nfrag,
        "seconds": round(time.monotonic() - t0, 2),
    }


def _pace(t0: float, i: int, rate: float) -> None:
    delay = t0 + (i + 1) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def main(argv: list[str]) -> None:
    kind, dst, src, count, rate = argv[0], argv[1], argv[2], int(argv[3]), float(argv[4])
    if kind == "spoof":
        result = spoof(dst, src, count, rate)
    elif kind in ("v1mm", "v1am"):
        result = v1spoof(dst, src, count, rate, kind == "v1am")
    elif kind == "v1half":
        result = v1half(dst, src.split(","), count, rate)
    else:
        fn = {"echo": echo, "certs": certs, "frags": frags}[kind]
        result = fn(dst, src.split(","), count, rate)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
