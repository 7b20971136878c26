"""pike.ikev1.keys and pike.ikev1.cipher: published vectors, the RFC 2409 formulas written
out again with plain hmac/hashlib (an independent second implementation), refusals, and
the IV state machine. The strongSwan known answers are in test_keys_strongswan.py."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pike.crypto.errors import CryptoError, IntegrityError, ProposalError
from pike.crypto.ids import PrfId
from pike.crypto.prf import Prf
from pike.ikev1 import cipher as cipher_mod
from pike.ikev1.cipher import Ikev1Cipher
from pike.ikev1.keys import (
    derive_phase1,
    derive_phase2,
    digest,
    encryption_key,
    keymat,
    natd_hash,
    phase1_iv,
    phase1_prf,
    phase2_iv,
    skeyid_psk,
    skeyid_signature,
)
from pike.wire.isakmp_constants import HashV1, ProtocolV1

CKY_I, CKY_R = bytes(range(8)), bytes(range(8, 16))
GXI, GXR = b"\x11" * 256, b"\x22" * 256


def _h(name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, name).digest()


def test_hmac_sha1_prf_rfc2202() -> None:
    # RFC 2202 §3 test cases 1 and 2 (HMAC-SHA-1)
    prf = phase1_prf(HashV1.SHA1)
    assert prf.prf(b"\x0b" * 20, b"Hi There").hex() == "b617318655057264e28bc0b6fb378c8ef146be00"
    assert (
        prf.prf(b"Jefe", b"what do ya want for nothing?").hex()
        == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    )
    assert (prf.output_size, prf.hash_name) == (20, "sha1")


@pytest.mark.parametrize(
    ("alg", "name"),
    [(HashV1.SHA1, "sha1"), (HashV1.SHA2_256, "sha256"), (HashV1.SHA2_384, "sha384"),
     (HashV1.SHA2_512, "sha512")],
)  # fmt: skip
def test_phase1_prf_is_hmac_of_the_hash(alg: int, name: str) -> None:
    prf = phase1_prf(alg)
    assert prf.prf(b"k", b"data") == _h(name, b"k", b"data")
    assert digest(prf, b"data") == hashlib.new(name, b"data").digest()


def test_md5_refused_and_unknown_hashes() -> None:
    with pytest.raises(ProposalError, match="RFC 8247"):
        phase1_prf(HashV1.MD5)
    for alg in (HashV1.TIGER, 99):
        with pytest.raises(CryptoError, match="not implemented"):
            phase1_prf(alg)
    with pytest.raises(CryptoError, match="not implemented"):
        Prf(PrfId.HMAC_MD5)


def test_skeyids_written_out() -> None:
    prf = phase1_prf(HashV1.SHA1)
    ni, nr, gxy = b"N" * 16, b"n" * 32, b"\x5a" * 256
    assert skeyid_psk(prf, b"psk", ni, nr) == _h("sha1", b"psk", ni + nr)
    assert skeyid_signature(prf, ni, nr, gxy) == _h("sha1", ni + nr, gxy)
    skeyid = b"S" * 20
    keys = derive_phase1(prf, skeyid, gxy, CKY_I, CKY_R, 16)
    d = _h("sha1", skeyid, gxy + CKY_I + CKY_R + b"\0")
    a = _h("sha1", skeyid, d + gxy + CKY_I + CKY_R + b"\1")
    e = _h("sha1", skeyid, a + gxy + CKY_I + CKY_R + b"\2")
    assert (keys.skeyid_d, keys.skeyid_a, keys.skeyid_e, keys.enc_key) == (d, a, e, e[:16])
    with pytest.raises(CryptoError, match="cookies"):
        derive_phase1(prf, skeyid, gxy, CKY_I[:4], CKY_R, 16)


def test_encryption_key_appendix_b() -> None:
    prf = phase1_prf(HashV1.SHA1)
    e = b"E" * 20
    k1 = _h("sha1", e, b"\0")
    k2 = _h("sha1", e, k1)
    k3 = _h("sha1", e, k2)
    assert encryption_key(prf, e, 32) == (k1 + k2)[:32]
    assert encryption_key(prf, e, 48) == (k1 + k2 + k3)[:48]
    assert encryption_key(prf, e, 16) == e[:16]  # long enough: truncated, not expanded
    assert encryption_key(prf, e, 20) == e
    with pytest.raises(CryptoError):
        encryption_key(prf, e, 0)


def test_keymat_expansion_and_directions() -> None:
    prf = phase1_prf(HashV1.SHA2_256)
    d, ni, nr, spi, g = b"D" * 32, b"i" * 32, b"r" * 32, b"\1\2\3\4", b"G" * 32
    seed = g + bytes((ProtocolV1.ESP,)) + spi + ni + nr
    k1 = _h("sha256", d, seed)
    k2 = _h("sha256", d, k1 + seed)
    k3 = _h("sha256", d, k2 + seed)
    assert keymat(prf, d, ProtocolV1.ESP, spi, ni, nr, 80, g) == (k1 + k2 + k3)[:80]
    no_pfs = _h("sha256", d, bytes((3,)) + spi + ni + nr)
    assert keymat(prf, d, ProtocolV1.ESP, spi, ni, nr, 20) == no_pfs[:20]
    with pytest.raises(CryptoError):
        keymat(prf, d, ProtocolV1.ESP, spi, ni, nr, 0)
    spi_i, spi_r = b"\xaa" * 4, b"\xbb" * 4
    keys = derive_phase2(prf, d, ProtocolV1.ESP, spi_i, spi_r, ni, nr, 32, 32, g)
    i2r = keymat(prf, d, ProtocolV1.ESP, spi_r, ni, nr, 64, g)
    r2i = keymat(prf, d, ProtocolV1.ESP, spi_i, ni, nr, 64, g)
    assert (keys.i2r.encr, keys.i2r.integ) == (i2r[:32], i2r[32:])
    assert (keys.r2i.encr, keys.r2i.integ) == (r2i[:32], r2i[32:])
    assert i2r.hex() not in repr(keys) and "32 bytes" in repr(keys)


def test_ivs_and_natd() -> None:
    prf = phase1_prf(HashV1.SHA1)
    assert phase1_iv(prf, GXI, GXR, 16) == hashlib.sha1(GXI + GXR).digest()[:16]
    assert (
        phase2_iv(prf, b"L" * 16, 0x01020304, 16)
        == hashlib.sha1(b"L" * 16 + b"\1\2\3\4").digest()[:16]
    )
    with pytest.raises(CryptoError):
        phase1_iv(prf, GXI, GXR, 32)  # SHA-1 cannot make a 32-byte IV
    v6 = natd_hash(prf, CKY_I, CKY_R, "2001:db8::1", 4500)
    assert (
        v6
        == hashlib.sha1(
            CKY_I + CKY_R + bytes.fromhex("20010db8" + "00" * 11 + "01") + b"\x11\x94"
        ).digest()
    )
    assert (
        natd_hash(prf, CKY_I, CKY_R, "192.0.2.1", 500)
        == hashlib.sha1(CKY_I + CKY_R + bytes([192, 0, 2, 1]) + b"\x01\xf4").digest()
    )


def _pair(key: bytes = b"K" * 16) -> tuple[Ikev1Cipher, Ikev1Cipher]:
    prf = phase1_prf(HashV1.SHA2_256)
    return Ikev1Cipher(prf, key, GXI, GXR), Ikev1Cipher(prf, key, GXI, GXR)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_cipher_round_trip_and_chaining(size: int) -> None:
    a, b = _pair(b"K" * size)
    for mid, text in ((0, b"x" * 36), (0, b"y" * 48), (7, b"z" * 5), (7, b"w" * 16), (0, b"v")):
        ct = a.encrypt(mid, text)
        assert len(ct) == a.padded_length(len(text)) and len(ct) % 16 == 0
        plain = b.decrypt(mid, ct, commit=True)
        assert plain[: len(text)] == text and not any(plain[len(text) :])
        assert a.iv(mid) == b.iv(mid) == ct[-16:]
    # padding is 1..16 zero octets: an aligned chain gets a whole block
    assert [a.padded_length(n) for n in (1, 15, 16, 17, 32)] == [16, 16, 32, 32, 48]


def test_phase2_iv_comes_from_phase1_chain() -> None:
    a, _ = _pair()
    ct = a.encrypt(0, b"phase one")
    prf = phase1_prf(HashV1.SHA2_256)
    assert a.iv(0x12345678) == phase2_iv(prf, ct[-16:], 0x12345678, 16)
    assert a.iv(0) == ct[-16:]


def test_decrypt_without_commit_keeps_the_chain() -> None:
    a, b = _pair()
    ct = b.encrypt(0, b"genuine")
    before = a.iv(0)
    forged = bytes(32)
    a.decrypt(0, forged, commit=False)  # its HASH would not verify: the engine does not commit
    assert a.iv(0) == before
    assert a.decrypt(0, ct, commit=False)[:7] == b"genuine"
    a.commit(0, ct)
    assert a.iv(0) == b.iv(0) == ct[-16:]


def test_cipher_refuses_bad_input() -> None:
    prf = phase1_prf(HashV1.SHA1)
    with pytest.raises(CryptoError, match="key"):
        Ikev1Cipher(prf, b"k" * 20, GXI, GXR)
    a, _ = _pair()
    for bad in (b"", b"x" * 15, b"x" * 33):
        with pytest.raises(IntegrityError, match="blocks"):
            a.decrypt(0, bad, commit=True)
        with pytest.raises(IntegrityError):
            a.commit(0, bad)
    with pytest.raises(CryptoError, match="nothing"):
        a.encrypt(0, b"")
    assert "K" * 16 not in repr(a) and "AES-CBC-128" in repr(a)


def test_exchange_state_is_bounded() -> None:
    a, _ = _pair()
    first = a.iv(1)
    a.encrypt(1, b"moves the chain of exchange 1")
    a.forget(1)
    assert a.iv(1) == first  # forgotten: derived afresh from phase 1
    for mid in range(100, 100 + cipher_mod.MAX_EXCHANGES + 10):
        a.encrypt(mid, b"informational")
    assert len(a._phase2) == cipher_mod.MAX_EXCHANGES
    assert 100 not in a._phase2 and 100 + cipher_mod.MAX_EXCHANGES + 9 in a._phase2
    a.forget(424242)  # unknown: nothing happens
