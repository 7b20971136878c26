"""PRF, prf+ and IKEv2 key derivation against published vectors.

- HMAC-SHA-256/384/512: RFC 4231 §4.2, §4.3, §4.7 (test cases 1, 2, 6).
- PRF-HMAC-SHA-256/384/512: RFC 4868 §2.7.1 (test cases 1 and 2).
- SKEYSEED, prf+ and SKEYSEED(rekey) with HMAC-SHA-256: the NIST CAVP IKEv2 KDF sample
  (SP 800-135 §4.1.2), as NSS carries it in gtests/common/testvectors/ike-sha256-vectors.h.
- Child SA KEYMAT and the split into keys: no published vector found, so they are
  recomputed here from the RFC 7296 formulas with plain ``hmac`` (an independent
  second implementation, not the code under test).
"""

import hashlib
import hmac

import pytest

from pike.crypto.errors import CryptoError
from pike.crypto.ids import PrfId
from pike.crypto.kdf import (
    ChildKeys,
    IkeKeys,
    derive_child_keys,
    derive_ike_keys,
    rekey_skeyseed,
    skeyseed,
)
from pike.crypto.prf import Prf

H = bytes.fromhex
SHA256, SHA384, SHA512 = PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512

# RFC 4231 (key, data, {prf: expected})
RFC4231 = [
    (  # §4.2 test case 1
        b"\x0b" * 20,
        b"Hi There",
        {
            SHA256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            SHA384: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
            "faea9ea9076ede7f4af152e8b2fa9cb6",
            SHA512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        },
    ),
    (  # §4.3 test case 2
        b"Jefe",
        b"what do ya want for nothing?",
        {
            SHA256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            SHA384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
            "8e2240ca5e69e2c78b3239ecfab21649",
            SHA512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
            "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        },
    ),
    (  # §4.7 test case 6: key longer than the block size
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        {
            SHA256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            SHA384: "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
            "0c2ef6ab4030fe8296248df163f44952",
            SHA512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
            "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        },
    ),
]

# RFC 4868 §2.7.1: keys are the PRF's full preferred size
RFC4868 = [
    (
        SHA256,
        b"\x0b" * 32,
        b"Hi There",
        "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
    ),
    (
        SHA384,
        b"\x0b" * 48,
        b"Hi There",
        "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc"
        "4c5df61d5b3297b4fb68dab9f1b582c2",
    ),
    (
        SHA512,
        b"\x0b" * 64,
        b"Hi There",
        "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"
        "ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
    ),
    (
        SHA256,
        b"JefeJefeJefeJefeJefeJefeJefeJefe",
        b"what do ya want for nothing?",
        "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6",
    ),
    (
        SHA384,
        b"JefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefe",
        b"what do ya want for nothing?",
        "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184da86a368e9b8e16f5"
        "349524ca4e82400cbde0686d403371c9",
    ),
    (
        SHA512,
        b"JefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefeJefe",
        b"what do ya want for nothing?",
        "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454"
        "6aa334ae9fb9afc2184932d8695e397bfa0ffb93466cfcceaae38c833b7dba38",
    ),
]


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231)
def test_rfc4231_hmac(key: bytes, data: bytes, expected: dict[int, str]) -> None:
    for prf_id, digest in expected.items():
        assert Prf(prf_id).prf(key, data) == H(digest)


@pytest.mark.parametrize(("prf_id", "key", "data", "expected"), RFC4868)
def test_rfc4868_prf(prf_id: int, key: bytes, data: bytes, expected: str) -> None:
    prf = Prf(prf_id)
    assert len(key) == prf.key_size
    assert prf.prf(key, data) == H(expected)


@pytest.mark.parametrize(("prf_id", "size"), [(SHA256, 32), (SHA384, 48), (SHA512, 64)])
def test_sizes(prf_id: int, size: int) -> None:
    prf = Prf(prf_id)
    assert (prf.output_size, prf.key_size) == (size, size)


def test_prf_hmac_sha1_rfc2202() -> None:
    # RFC 2202 §3 test case 2 (RFC 8247 keeps PRF_HMAC_SHA1 as MUST-)
    prf = Prf(PrfId.HMAC_SHA1)
    assert (prf.output_size, prf.key_size) == (20, 20)
    assert prf.prf(b"Jefe", b"what do ya want for nothing?") == H(
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    )


@pytest.mark.parametrize("prf_id", [PrfId.HMAC_MD5, PrfId.AES128_XCBC, 99])
def test_unimplemented_prf(prf_id: int) -> None:
    with pytest.raises(CryptoError, match="not implemented"):
        Prf(prf_id)


def _reference_prf_plus(name: str, key: bytes, seed: bytes, length: int) -> bytes:
    # RFC 7296 §2.13 written out the plain way
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([n]), getattr(hashlib, name)).digest()
        out += t
        n += 1
    return out[:length]


@pytest.mark.parametrize(
    ("prf_id", "name"), [(SHA256, "sha256"), (SHA384, "sha384"), (SHA512, "sha512")]
)
@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 100, 255 * 32])
def test_prf_plus_matches_rfc_formula(prf_id: int, name: str, length: int) -> None:
    prf = Prf(prf_id)
    length = min(length, 255 * prf.output_size)
    assert prf.plus(b"k" * 7, b"seed", length) == _reference_prf_plus(
        name, b"k" * 7, b"seed", length
    )


def test_prf_plus_refuses_more_than_255_iterations() -> None:
    prf = Prf(SHA256)
    assert len(prf.plus(b"k", b"s", 255 * 32)) == 255 * 32
    with pytest.raises(CryptoError, match="255"):
        prf.plus(b"k", b"s", 255 * 32 + 1)


# NIST CAVP IKEv2 KDF sample, HMAC-SHA-256 (via NSS ike-sha256-vectors.h, tests 6-8)
CAVP_NI = H("3f302be1abcb28e1")
CAVP_NR = H("8c332ee006064c9b")
CAVP_SPII = H("40dac39e1e1a8640")
CAVP_SPIR = H("8619a1cf9a6e4c07")
CAVP_GIR = H("0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29")
CAVP_GIR_NEW = H("25f3b12d6f282739256e39bf54eda53b60ffcf379bb7bcc90c27b4c4c578616c")
CAVP_SKEYSEED = H("5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe")
CAVP_DKM = H(
    "0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ec"
    "e98aca531188d16041b3bb936d2dbb3b4993a6e768a809160de45d0283f273a6"
    "cdf6854379e31be72b8d3d1fa990cf9c5b015ca9f918a7df6253c958114a09d4"
    "e1c19bdcd4db14b29d98db1a74ad405c588662c14a04d0d36aa4ab55e90f8986"
    "d12d4aad"
)
CAVP_SKEYSEED_REKEY = H("2d63f6debc92048b4fef3889c4c99ca67d6496e0fac14a2bca9a2d6566ff2398")


def test_cavp_skeyseed() -> None:
    assert skeyseed(Prf(SHA256), CAVP_NI, CAVP_NR, CAVP_GIR) == CAVP_SKEYSEED


def test_cavp_dkm_prf_plus() -> None:
    seed = CAVP_NI + CAVP_NR + CAVP_SPII + CAVP_SPIR
    assert Prf(SHA256).plus(CAVP_SKEYSEED, seed, 132) == CAVP_DKM


def test_cavp_ike_keys_split() -> None:
    # The 132-byte DKM split as SK_d 32 | SK_a 2x16 | SK_e 2x2 | SK_p 2x32 (odd sizes
    # chosen so the seven keys use exactly the published 132 bytes)
    keys = derive_ike_keys(
        Prf(SHA256), CAVP_SKEYSEED, CAVP_NI, CAVP_NR, CAVP_SPII, CAVP_SPIR, 2, 16
    )
    sizes = [32, 16, 16, 2, 2, 32, 32]
    at, parts = 0, []
    for size in sizes:
        parts.append(CAVP_DKM[at : at + size])
        at += size
    assert keys == IkeKeys(*parts)


def test_cavp_rekey_skeyseed() -> None:
    sk_d = CAVP_DKM[:32]
    assert rekey_skeyseed(Prf(SHA256), sk_d, CAVP_GIR_NEW, CAVP_NI, CAVP_NR) == (
        CAVP_SKEYSEED_REKEY
    )


@pytest.mark.parametrize(
    ("prf_id", "name"), [(SHA256, "sha256"), (SHA384, "sha384"), (SHA512, "sha512")]
)
@pytest.mark.parametrize(("encr", "integ"), [(20, 0), (36, 0), (32, 32), (16, 64)])
def test_ike_keys_match_rfc_formula(prf_id: int, name: str, encr: int, integ: int) -> None:
    prf = Prf(prf_id)
    ni, nr, spi_i, spi_r, g_ir = b"\x01" * 32, b"\x02" * 32, b"I" * 8, b"R" * 8, b"\x03" * 256
    seed_key = hmac.new(ni + nr, g_ir, name).digest()
    assert skeyseed(prf, ni, nr, g_ir) == seed_key
    km = _reference_prf_plus(
        name, seed_key, ni + nr + spi_i + spi_r, 3 * prf.key_size + 2 * (encr + integ)
    )
    keys = derive_ike_keys(prf, seed_key, ni, nr, spi_i, spi_r, encr, integ)
    p = prf.key_size
    assert keys.sk_d == km[:p]
    assert keys.sk_ai + keys.sk_ar == km[p : p + 2 * integ]
    assert keys.sk_ei + keys.sk_er == km[p + 2 * integ : p + 2 * integ + 2 * encr]
    assert keys.sk_pi + keys.sk_pr == km[p + 2 * integ + 2 * encr :]
    assert len(keys.sk_ei) == encr and len(keys.sk_ai) == integ and len(keys.sk_pr) == p


def test_ike_keys_spi_size_checked() -> None:
    with pytest.raises(CryptoError):
        derive_ike_keys(Prf(SHA256), b"s" * 32, b"n", b"n", b"short", b"R" * 8, 16, 32)


@pytest.mark.parametrize("shared", [None, b"\x42" * 32])
def test_child_keys_match_rfc_formula(shared: bytes | None) -> None:
    prf = Prf(SHA384)
    sk_d, ni, nr = b"d" * 48, b"i" * 32, b"r" * 32
    km = _reference_prf_plus("sha384", sk_d, (shared or b"") + ni + nr, 2 * (36 + 0))
    keys = derive_child_keys(prf, sk_d, ni, nr, shared, 36, 0)
    assert keys == ChildKeys(km[:36], b"", km[36:], b"")
    km = _reference_prf_plus("sha384", sk_d, (shared or b"") + ni + nr, 2 * (16 + 32))
    keys = derive_child_keys(prf, sk_d, ni, nr, shared, 16, 32)
    # RFC 7296 §2.17: initiator->responder first; encryption before integrity
    assert keys == ChildKeys(km[:16], km[16:48], km[48:64], km[64:])


def test_reprs_hide_keys() -> None:
    keys = derive_ike_keys(Prf(SHA256), b"s" * 32, b"n", b"n", b"I" * 8, b"R" * 8, 16, 32)
    text = repr(keys)
    assert "sk_d=<32 bytes>" in text and "sk_ai=<32 bytes>" in text
    for value in (keys.sk_d, keys.sk_ei, keys.sk_pr):
        assert value.hex() not in text and repr(value) not in text
    child = derive_child_keys(Prf(SHA256), b"d" * 32, b"i", b"r", None, 20, 0)
    assert (
        repr(child)
        == "ChildKeys(encr_i=<20 bytes>, integ_i=<0 bytes>, encr_r=<20 bytes>, integ_r=<0 bytes>)"
    )
