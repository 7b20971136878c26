"""pike.ikev1.keys and pike.ikev1.cipher against real strongSwan: every key, IV and hash
charon logged in tests/fixtures/ikev1/ is derived again from the captured messages
(and charon's g^xy, which needs private values the capture lacks), and every encrypted
message is decrypted (also through the ISAKMP codec, pike.wire.isakmp) and re-encrypted
byte for byte.

Scenarios (capture.py): Main Mode PSK aes128-sha1-modp2048 and aes256-sha256-ecp256, each
with and without Quick Mode PFS; aes256-sha1-modp2048 (SKEYID_e expanded, Appendix B);
aes128-sha256-x25519 with PFS x25519; Aggressive Mode PSK aes128-sha256-modp2048 with PFS.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

import pytest

from pike.crypto.prf import Prf
from pike.ikev1.cipher import Ikev1Cipher
from pike.ikev1.keys import (
    Phase1Keys,
    derive_phase1,
    derive_phase2,
    hash_i,
    hash_r,
    informational_hash,
    natd_hash,
    phase1_iv,
    phase1_prf,
    phase2_iv,
    qm_hash1,
    qm_hash2,
    qm_hash3,
    skeyid_psk,
)
from pike.wire.isakmp import decode_v1, decrypt_v1
from pike.wire.isakmp_constants import HashV1, ProtocolV1

from .strongswan_captures import (
    HASH,
    ID,
    KE,
    NONCE,
    SA,
    SCENARIOS,
    Capture,
    Message,
    Payload,
    find,
    load,
    sa_spi,
    walk,
)

AGGRESSIVE, INFORMATIONAL, QUICK_MODE = 4, 5, 32
_HASHES = {"PRF_HMAC_SHA1": HashV1.SHA1, "PRF_HMAC_SHA2_256": HashV1.SHA2_256}
_INTEG_KEY = {"HMAC_SHA1_96": 20, "HMAC_SHA2_256_128": 32}


def test_all_scenarios_present() -> None:
    assert len(SCENARIOS) == 7, SCENARIOS


@dataclass
class Phase1:
    """What the cleartext phase-1 messages carry, split out."""

    cap: Capture
    prf: Prf
    cky_i: bytes
    cky_r: bytes
    sai_b: bytes
    g_xi: bytes
    g_xr: bytes
    ni_b: bytes
    nr_b: bytes
    shared: bytes
    keys: Phase1Keys
    plaintexts: dict[int, list[Payload]] = field(default_factory=dict)


def _phase1(scenario: str) -> Phase1:
    cap = load(scenario)
    negotiated = cap.manifest["negotiated"]
    assert isinstance(negotiated, dict)
    prf = phase1_prf(_HASHES[negotiated["prf-alg"]])
    first, second = cap.messages[0], cap.messages[1]
    p1, _ = walk(first.first_payload, first.body)
    if cap.manifest["mode"] == "main":
        mm3, mm4 = cap.messages[2], cap.messages[3]
        kei, _ = walk(mm3.first_payload, mm3.body)
        ker, _ = walk(mm4.first_payload, mm4.body)
    else:
        assert first.exchange_type == AGGRESSIVE
        kei, _ = p1, b""
        ker, _ = walk(second.first_payload, second.body)
    g_xi, g_xr = find(kei, KE).body, find(ker, KE).body
    ni_b, nr_b = find(kei, NONCE).body, find(ker, NONCE).body
    shared = cap.dump("shared Diffie Hellman secret")
    assert shared == cap.dump("shared Diffie Hellman secret", "responder")
    skeyid = skeyid_psk(prf, cap.psk, ni_b, nr_b)
    enc_size = int(negotiated["encr-keysize"]) // 8
    keys = derive_phase1(prf, skeyid, shared, first.cky_i, second.cky_r, enc_size)
    return Phase1(
        cap, prf, first.cky_i, second.cky_r, find(p1, SA).body, g_xi, g_xr, ni_b, nr_b,
        shared, keys,
    )  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_phase1_keys_and_iv(scenario: str) -> None:
    p = _phase1(scenario)
    for side in ("initiator", "responder"):
        assert p.keys.skeyid == p.cap.dump("SKEYID", side)
        assert p.keys.skeyid_d == p.cap.dump("SKEYID_d", side)
        assert p.keys.skeyid_a == p.cap.dump("SKEYID_a", side)
        assert p.keys.skeyid_e == p.cap.dump("SKEYID_e", side)
        assert p.keys.enc_key == p.cap.dump("encryption key Ka", side)
        assert phase1_iv(p.prf, p.g_xi, p.g_xr, 16) == p.cap.dump("initial IV", side)
    if "aes256-sha1" in scenario:  # 20-byte SKEYID_e stretched to the 32-byte AES key
        assert len(p.keys.skeyid_e) == 20 and len(p.keys.enc_key) == 32
        assert p.keys.enc_key[:20] != p.keys.skeyid_e
    assert "bytes>" in repr(p.keys) and p.keys.skeyid.hex() not in repr(p.keys)


def _replay(p: Phase1) -> dict[int, tuple[Message, list[Payload], bytes]]:
    """Decrypt every encrypted message in wire order with one cipher per side, checking
    IVs and ciphertexts against both logs; returns n -> (message, payloads, chain bytes)."""
    ciphers = {
        side: Ikev1Cipher(p.prf, p.keys.enc_key, p.g_xi, p.g_xr)
        for side in ("initiator", "responder")
    }
    out = {}
    for msg in p.cap.messages:
        if not msg.encrypted or msg.retransmit:  # a retransmission does not chain the IV
            continue
        sender = msg.sender
        receiver = "responder" if sender == "initiator" else "initiator"
        iv, plain, padding = _sent(p.cap, sender, msg.body)
        # the sender's cipher re-encrypts to the captured bytes under the same IV
        assert ciphers[sender].iv(msg.message_id) == iv
        assert ciphers[sender].encrypt(msg.message_id, plain) == msg.body
        assert len(padding) == ciphers[sender].padded_length(len(plain)) - len(plain)
        # the receiver decrypts it, padding included
        assert ciphers[receiver].iv(msg.message_id) == iv
        receive = ciphers[receiver]
        # the ISAKMP codec opens it through the cipher (without moving the IV) ...
        opener = functools.partial(receive.decrypt, msg.message_id, commit=False)
        decoded = decrypt_v1(decode_v1(msg.data), opener)
        # ... and the engine then commits it
        text = receive.decrypt(msg.message_id, msg.body, commit=True)
        assert text == plain + padding
        payloads, rest = walk(msg.first_payload, text)
        assert rest == padding and not any(rest)
        assert list(decoded.raw) == [pl.raw for pl in payloads]
        out[msg.n] = (msg, payloads, plain)
        for side, c in ciphers.items():  # both chains now end on the same block
            assert c.iv(msg.message_id) == msg.body[-16:], side
    return out


def _sent(cap: Capture, side: str, body: bytes) -> tuple[bytes, bytes, bytes]:
    """(IV, plain, padding) the sender logged right before the dump of ``body``."""
    log = cap.log(side)
    for i, (_, label, value) in enumerate(log):
        if label == "encrypted" and value == body and i >= 3:
            assert [e[1] for e in log[i - 3 : i]] == ["IV", "plain", "padding"]
            return log[i - 3][2], log[i - 2][2], log[i - 1][2]
    raise AssertionError(f"{side} log has no encryption of a {len(body)}-byte body")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_messages_decrypt_and_reencrypt(scenario: str) -> None:
    p = _phase1(scenario)
    done = _replay(p)
    mode = p.cap.manifest["mode"]
    # MM5 MM6 / AM3, QM1-3, two Informational deletes (CHILD_SA, IKE_SA)
    assert len(done) == (2 + 3 + 2 if mode == "main" else 1 + 3 + 2)
    kinds = [m.exchange_type for m, _, _ in done.values()]
    assert kinds.count(QUICK_MODE) == 3 and kinds.count(INFORMATIONAL) == 2
    # phase 2 IVs: hash(last phase-1 block | M-ID), as both charons logged
    last_phase1 = [m for m, _, _ in done.values() if m.message_id == 0][-1]
    for m, _, _ in done.values():
        if m.message_id == 0:
            continue
        want = phase2_iv(p.prf, last_phase1.body[-16:], m.message_id, 16)
        label = f"next IV for MID {m.message_id}"
        assert want == p.cap.dump(label, "initiator") == p.cap.dump(label, "responder")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hash_i_and_hash_r(scenario: str) -> None:
    p = _phase1(scenario)
    done = _replay(p)
    if p.cap.manifest["mode"] == "main":
        mm5 = next(v for v in done.values() if v[0].sender == "initiator")[1]
        mm6 = next(v for v in done.values() if v[0].sender == "responder")[1]
        idii, got_i = find(mm5, ID).body, find(mm5, HASH).body
        idir, got_r = find(mm6, ID).body, find(mm6, HASH).body
    else:
        am1, _ = walk(p.cap.messages[0].first_payload, p.cap.messages[0].body)
        am2, _ = walk(p.cap.messages[1].first_payload, p.cap.messages[1].body)
        am3 = next(iter(done.values()))[1]
        idii, idir = find(am1, ID).body, find(am2, ID).body
        got_i, got_r = find(am3, HASH).body, find(am2, HASH).body
        assert idii[4:].decode() == "branch1.example.net"  # ID_FQDN (RFC 2407 §4.6.2.1)
    args = (p.prf, p.keys.skeyid, p.g_xi, p.g_xr, p.cky_i, p.cky_r, p.sai_b)
    assert hash_i(*args, idii) == got_i == p.cap.dump("HASH_I") == p.cap.dump("HASH_I", "responder")
    assert hash_r(*args, idir) == got_r == p.cap.dump("HASH_R") == p.cap.dump("HASH_R", "responder")
    assert hash_i(*args, idir) != got_i


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_quick_mode_hashes_and_keymat(scenario: str) -> None:
    p = _phase1(scenario)
    done = _replay(p)
    qm = [(m, pl, plain) for m, pl, plain in done.values() if m.exchange_type == QUICK_MODE]
    (m1, qm1, plain1), (m2, qm2, plain2), (m3, qm3, _) = qm
    mid = m1.message_id
    assert m2.message_id == m3.message_id == mid
    a = p.keys.skeyid_a
    ni_b, nr_b = find(qm1, NONCE).body, find(qm2, NONCE).body
    rest1 = plain1[len(qm1[0].raw) :]
    rest2 = plain2[len(qm2[0].raw) :]
    assert qm1[0].type == qm2[0].type == qm3[0].type == HASH
    assert qm_hash1(p.prf, a, mid, rest1) == qm1[0].body == p.cap.dump("Hash(1)")
    assert qm_hash2(p.prf, a, mid, ni_b, rest2) == qm2[0].body == p.cap.dump("Hash(2)")
    assert qm_hash3(p.prf, a, mid, ni_b, nr_b) == qm3[0].body == p.cap.dump("Hash(3)")
    assert qm_hash1(p.prf, a, mid ^ 1, rest1) != qm1[0].body

    pfs = bool(p.cap.manifest["pfs"])
    assert any(pl.type == KE for pl in qm1) is pfs
    shared = p.cap.dump("DH secret") if pfs else None
    child = p.cap.manifest["child"]
    assert isinstance(child, dict)
    enc, integ = int(child["encr-keysize"]) // 8, _INTEG_KEY[child["integ-alg"]]
    spi_i, spi_r = sa_spi(find(qm1, SA).body), sa_spi(find(qm2, SA).body)
    assert child["spi-in"] == spi_i.hex() and child["spi-out"] == spi_r.hex()
    keys = derive_phase2(
        p.prf, p.keys.skeyid_d, ProtocolV1.ESP, spi_i, spi_r, ni_b, nr_b, enc, integ, shared
    )
    # strongSwan's "initiator" keys protect initiator-to-responder traffic
    for side in ("initiator", "responder"):
        assert keys.i2r.encr == p.cap.dump("encryption initiator key", side)
        assert keys.i2r.integ == p.cap.dump("integrity initiator key", side)
        assert keys.r2i.encr == p.cap.dump("encryption responder key", side)
        assert keys.r2i.integ == p.cap.dump("integrity responder key", side)
    # its KEYMAT seeds: [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b
    tail = (shared or b"") + bytes((ProtocolV1.ESP,))
    assert p.cap.dump("initiator SA seed") == tail + spi_r + ni_b + nr_b
    assert p.cap.dump("responder SA seed") == tail + spi_i + ni_b + nr_b


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_informational_hash(scenario: str) -> None:
    p = _phase1(scenario)
    done = _replay(p)
    infos = [(m, pl, plain) for m, pl, plain in done.values() if m.exchange_type == INFORMATIONAL]
    assert len(infos) == 2
    logged = p.cap.dumps("Hash")
    for (m, payloads, plain), want in zip(infos, logged, strict=True):
        rest = plain[len(payloads[0].raw) :]
        got = informational_hash(p.prf, p.keys.skeyid_a, m.message_id, rest)
        assert got == payloads[0].body == want


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_natd_hashes(scenario: str) -> None:
    p = _phase1(scenario)
    chunks = p.cap.dumps("natd_chunk") + p.cap.dumps("natd_chunk", "responder")
    hashes = p.cap.dumps("natd_hash") + p.cap.dumps("natd_hash", "responder")
    assert len(chunks) == len(hashes) >= 4
    seen = set()
    for chunk, want in zip(chunks, hashes, strict=True):
        assert chunk[:16] == p.cky_i + p.cky_r
        ip = ipaddress.ip_address(chunk[16:20])
        port = int.from_bytes(chunk[20:22], "big")
        assert natd_hash(p.prf, p.cky_i, p.cky_r, str(ip), port) == want
        seen.add((str(ip), port))
    assert {("192.0.2.1", 500), ("192.0.2.2", 500)} <= seen
