"""Open strongSwan's real SK payloads with the keys charon logged (the Wireshark
``ikev2_decryption_table`` beside the fixtures), then seal them again byte for byte.

The crypters here are test doubles built on ``cryptography`` (AES-GCM per RFC 5282, AES-CBC
+ HMAC-SHA2-256-128 per RFC 7296 §3.14 / RFC 4868); the product cipher is
``pike.crypto.sk.SkCipher``, tested by crypto. What this proves is the codec's side: the
associated data, the SK body boundaries and every inner payload as a real peer sends it.
"""

from __future__ import annotations

import csv
import hmac
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.constants import ExchangeType
from pike.wire.errors import MalformedMessage
from pike.wire.payloads import AuthPayload, IdiPayload, IdrPayload, SkPayload
from pike.wire.rules import check_payloads

FIXTURES = Path(__file__).parent / "fixtures"
TABLES = sorted(FIXTURES.glob("strongswan-ikev2-*.ikev2_decryption_table"))


@dataclass
class ReplaySk:
    """An SkCrypter for one direction that remembers the IV and padding of the last body it
    opened, so that sealing the same plaintext reproduces the peer's bytes exactly."""

    enc_key: bytes
    auth_key: bytes  # empty for AEAD
    iv: bytes = b""
    pad: bytes = b""
    aead: bool = field(init=False)

    def __post_init__(self) -> None:
        self.aead = not self.auth_key

    @property
    def _overhead(self) -> int:
        return 8 + 16 if self.aead else 16 + 16

    def sealed_length(self, plaintext_len: int) -> int:
        return self._overhead + plaintext_len + len(self.pad)

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        padded = plaintext + self.pad
        if self.aead:
            key, salt = self.enc_key[:-4], self.enc_key[-4:]
            return self.iv + AESGCM(key).encrypt(salt + self.iv, padded, aad)
        enc = Cipher(algorithms.AES(self.enc_key), modes.CBC(self.iv)).encryptor()
        ct = enc.update(padded) + enc.finalize()
        return self.iv + ct + hmac.new(self.auth_key, aad + self.iv + ct, "sha256").digest()[:16]

    def open(self, aad: bytes, body: bytes) -> bytes:
        if self.aead:
            key, salt = self.enc_key[:-4], self.enc_key[-4:]
            iv = body[:8]
            padded = AESGCM(key).decrypt(salt + iv, body[8:], aad)
        else:
            iv, ct, icv = body[:16], body[16:-16], body[-16:]
            want = hmac.new(self.auth_key, aad + iv + ct, "sha256").digest()[:16]
            if not hmac.compare_digest(icv, want):
                raise ValueError("ICV")
            dec = Cipher(algorithms.AES(self.enc_key), modes.CBC(iv)).decryptor()
            padded = dec.update(ct) + dec.finalize()
        pad_len = padded[-1]
        if pad_len >= len(padded):
            raise ValueError("padding")
        self.iv, self.pad = iv, padded[len(padded) - pad_len - 1 :]
        return padded[: len(padded) - pad_len - 1]


def _keys(table: Path) -> tuple[bytes, bytes, dict[bool, ReplaySk]]:
    (row,) = csv.reader(table.read_text().splitlines())
    spi_i, spi_r, ei, er, encr, ai, ar, integ = row
    if "GCM" not in encr and "HMAC_SHA2_256_128" not in integ:
        pytest.skip(f"test crypter lacks {encr} / {integ}")
    b = bytes.fromhex
    return (
        b(spi_i),
        b(spi_r),
        {True: ReplaySk(b(ei), b(ai) if ai else b""), False: ReplaySk(b(er), b(ar) if ar else b"")},
    )


def _messages(table: Path) -> list[Path]:
    scenario = table.name.removesuffix(".ikev2_decryption_table")
    return sorted(FIXTURES.glob(f"{scenario}-*.bin"))


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.stem)
def test_open_check_and_reseal_every_encrypted_message(table: Path) -> None:
    spi_i, spi_r, crypters = _keys(table)
    opened = 0
    for path in _messages(table):
        data = path.read_bytes()
        outer = decode_message(data)
        if not outer.payloads or not isinstance(outer.payloads[-1], SkPayload):
            continue
        if (outer.spi_i, outer.spi_r) != (spi_i, spi_r):
            continue  # a later IKE SA (after a rekey): keys not in the table
        cipher = crypters[outer.is_initiator]
        msg = decrypt_message(data, outer, cipher)
        assert msg.encrypted
        check_payloads(msg.exchange, msg.is_response, msg.payloads, inside_sk=True)
        if msg.exchange == ExchangeType.IKE_AUTH:
            ident = msg.first(IdrPayload if msg.is_response else IdiPayload)
            assert ident is not None and msg.first(AuthPayload) is not None
        # Same IV, same padding: our inner encoding must be strongSwan's, byte for byte.
        assert encode_message(msg, cipher) == data, path.name
        opened += 1
    assert opened >= 2


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.stem)
def test_wrong_direction_key_is_an_integrity_failure(table: Path) -> None:
    crypters = _keys(table)[2]
    for path in _messages(table):
        data = path.read_bytes()
        outer = decode_message(data)
        if outer.payloads and isinstance(outer.payloads[-1], SkPayload):
            with pytest.raises(MalformedMessage) as e:
                decrypt_message(data, outer, crypters[not outer.is_initiator])
            assert e.value.reason == "integrity_check_failed" and e.value.notify is None
            return
    pytest.skip("no encrypted message")
