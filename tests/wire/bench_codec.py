"""Print the codec's cost per message (a benchmark script, not a test).

    .venv/bin/python tests/wire/bench_codec.py

Uses the strongSwan fixtures when present, and a null SK crypter so that only the codec is
measured (the real cipher's cost is crypto's figure). Takes the best of several rounds:
the development machines are shared.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, as pytest has it

from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.payloads import (
    AuthPayload,
    IdiPayload,
    IdrPayload,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
    Transform,
    TsiPayload,
    TsrPayload,
)
from pike.wire.rules import check_payloads
from wire.wire_samples import IKE_PROPOSAL, SPI_I, SPI_R, TS4

FIXTURES = Path(__file__).parent / "fixtures"


class NullSk:
    """IV of 8 zero bytes, no encryption, 16-byte zero ICV: the codec's share only."""

    def sealed_length(self, plaintext_len: int) -> int:
        return 8 + plaintext_len + 1 + 16

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        return bytes(8) + plaintext + b"\x00" + bytes(16)

    def open(self, aad: bytes, body: bytes) -> bytes:
        return body[8:-17]


def best(fn: Callable[[], object], n: int = 5000, rounds: int = 7) -> float:
    return min(timeit.repeat(fn, number=n, repeat=rounds)) / n * 1e6


def main() -> None:
    path = FIXTURES / "strongswan-ikev2-sa-init-req.bin"
    init_req = path.read_bytes()
    msg = decode_message(init_req)
    dec = best(lambda: decode_message(init_req))
    enc = best(lambda: encode_message(msg))
    chk = best(lambda: check_payloads(msg.exchange, msg.is_response, msg.payloads, False))
    print(f"{path.name} ({len(init_req)} bytes, {len(msg.payloads)} payloads)")
    print(f"  decode {dec:.1f} us  encode {enc:.1f} us  rules {chk:.1f} us")
    print(f"  decode + encode {dec + enc:.1f} us")

    # The responder's codec work for one IKE_SA: decode IKE_SA_INIT request, encode its
    # response, decode + open IKE_AUTH request, encode + seal its response, rules on all.
    sk = NullSk()
    init_resp = Message(
        msg.spi_i,
        SPI_R,
        34,
        0,
        False,
        True,
        [
            SaPayload((Proposal(1, 1, b"", IKE_PROPOSAL.transforms),)),
            KePayload(31, bytes(32)),
            NoncePayload(bytes(32)),
            NotifyPayload(16388, bytes(20)),
            NotifyPayload(16389, bytes(20)),
            NotifyPayload(16430),
            NotifyPayload(16431, bytes.fromhex("0002000300040005")),
        ],
    )
    esp = SaPayload(
        (Proposal(1, 3, b"\xc1\x02\x03\x04", (Transform(1, 20, 128), Transform(5, 0))),)
    )
    auth_inner: list[Payload] = [
        IdrPayload(2, b"hq.example.net"),
        AuthPayload(2, bytes(32)),
        esp,
        TsiPayload((TS4,)),
        TsrPayload((TS4,)),
        NotifyPayload(16396),
    ]
    req_inner = [IdiPayload(2, b"branch1.example.net"), *auth_inner[1:]]
    auth_req = encode_message(Message(SPI_I, SPI_R, 35, 1, True, False, req_inner, True), sk)
    auth_resp = Message(SPI_I, SPI_R, 35, 1, False, True, auth_inner, True)

    def ike_sa() -> None:
        m = decode_message(init_req)
        check_payloads(m.exchange, m.is_response, m.payloads, False)
        encode_message(init_resp)
        outer = decode_message(auth_req)
        check_payloads(outer.exchange, outer.is_response, outer.payloads, False)
        inner = decrypt_message(auth_req, outer, sk)
        check_payloads(inner.exchange, inner.is_response, inner.payloads, True)
        encode_message(auth_resp, sk)

    print(f"responder codec work per IKE_SA (4 messages): {best(ike_sa, n=2000):.1f} us")


if __name__ == "__main__":
    main()
