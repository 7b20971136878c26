"""The strongSwan IKEv1 captures in tests/fixtures/ikev1/ (see capture.py there), loaded.

``load(scenario)`` -> :class:`Capture`: the messages in wire order (raw bytes, header
fields, who sent them) and the labelled hex dumps of both charon logs. A deliberately tiny
ISAKMP payload walker (:func:`walk`) lets the key tests find nonces, KE data, SA and ID
bodies without the codec under test; the codec's own tests decode the same messages.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ikev1"
SCENARIOS = sorted(p.name[len("strongswan-") : -len(".json")] for p in FIXTURES.glob("*.json"))

HEADER_SIZE = 28  # RFC 2408 §3.1
GENERIC_HEADER_SIZE = 4  # RFC 2408 §3.2
ENCRYPTION_FLAG = 0x01  # RFC 2408 §3.1: E(ncryption) bit

# RFC 2408 §3.1 Next Payload values, RFC 3947 §3.2 NAT-D (20) and NAT-OA (21)
SA, KE, ID, HASH, NONCE, N, D, VID, NAT_D = 1, 4, 5, 8, 10, 11, 12, 13, 20


@dataclass(frozen=True)
class Message:
    n: int
    sender: str  # "initiator" / "responder" (of the IKE SA)
    exchange_type: int
    flags: int
    message_id: int
    data: bytes
    retransmit: bool = False  # the same bytes were sent before (charon retransmitted)

    @property
    def cky_i(self) -> bytes:
        return self.data[0:8]

    @property
    def cky_r(self) -> bytes:
        return self.data[8:16]

    @property
    def first_payload(self) -> int:
        return self.data[16]

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & ENCRYPTION_FLAG)

    @property
    def body(self) -> bytes:
        return self.data[HEADER_SIZE:]


@dataclass(frozen=True)
class Capture:
    scenario: str
    manifest: dict[str, object]
    messages: list[Message]
    initiator_log: list[tuple[str, str, bytes]]
    responder_log: list[tuple[str, str, bytes]]

    @property
    def psk(self) -> bytes:
        psk = self.manifest["psk"]
        assert isinstance(psk, str)
        return psk.encode()

    def log(self, side: str) -> list[tuple[str, str, bytes]]:
        return self.initiator_log if side == "initiator" else self.responder_log

    def dump(self, label: str, side: str = "initiator", index: int = 0) -> bytes:
        """The ``index``-th hex dump labelled ``label`` in ``side``'s log."""
        found = [v for _, lab, v in self.log(side) if lab == label]
        return found[index]

    def dumps(self, label: str, side: str = "initiator") -> list[bytes]:
        return [v for _, lab, v in self.log(side) if lab == label]

    def exchange(self, exchange_type: int) -> list[Message]:
        return [m for m in self.messages if m.exchange_type == exchange_type]


def load(scenario: str) -> Capture:
    manifest = json.loads((FIXTURES / f"strongswan-{scenario}.json").read_text())
    messages: list[Message] = []
    seen: set[bytes] = set()
    for m in manifest["messages"]:
        data = bytes.fromhex(m["hex"])
        messages.append(
            Message(
                m["n"],
                m["from"],
                m["exchange_type"],
                m["flags"],
                m["message_id"],
                data,
                data in seen,
            )
        )
        seen.add(data)

    def log(key: str) -> list[tuple[str, str, bytes]]:
        return [(g, lab, bytes.fromhex(h)) for g, lab, h in manifest[key]]

    return Capture(scenario, manifest, messages, log("initiator_log"), log("responder_log"))


@dataclass(frozen=True)
class Payload:
    type: int
    raw: bytes  # generic header included

    @property
    def body(self) -> bytes:
        return self.raw[GENERIC_HEADER_SIZE:]


def walk(first: int, data: bytes) -> tuple[list[Payload], bytes]:
    """Split a payload chain starting with type ``first``; returns the payloads and what
    follows the last one (the padding of an encrypted body). AssertionError if a length
    does not fit."""
    payloads: list[Payload] = []
    kind, pos = first, 0
    while kind != 0:
        assert pos + GENERIC_HEADER_SIZE <= len(data), f"truncated header at {pos}"
        nxt, _, length = struct.unpack_from("!BBH", data, pos)
        assert GENERIC_HEADER_SIZE <= length <= len(data) - pos, f"bad length {length} at {pos}"
        payloads.append(Payload(kind, data[pos : pos + length]))
        kind, pos = nxt, pos + length
    return payloads, data[pos:]


def find(payloads: list[Payload], kind: int, index: int = 0) -> Payload:
    return [p for p in payloads if p.type == kind][index]


def sa_spi(sa_body: bytes) -> bytes:
    """The SPI of the first proposal of an IPsec DOI SA payload body (RFC 2407 §4.6.1,
    RFC 2408 §3.5): DOI(4) Situation(4), then the proposal's header and SPI."""
    proposal = sa_body[8:]
    spi_size = proposal[6]
    return proposal[8 : 8 + spi_size]
