"""The SK payload cipher: published AEAD vectors, interop with an independent CBC+HMAC
construction, round trips, and "every bad body is an IntegrityError".

Vectors: AES-GCM test cases 4 and 16 of McGrew & Viega, "The Galois/Counter Mode of
Operation" (whose 12-byte IV splits as the RFC 4106 salt || explicit IV), Wycheproof
aes_gcm_test.json tcId 1, RFC 8439 §2.8.2 (ChaCha20-Poly1305 AEAD, whose nonce is the
RFC 7634 salt 07000000 || IV), RFC 3602 §4 case 2 (AES-128-CBC).
"""

import hashlib
import hmac
import itertools
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from pike.crypto.errors import CryptoError, IntegrityError
from pike.crypto.ids import EncrId, IntegId
from pike.crypto.sizes import encr_key_size, integ_key_size, is_aead
from pike.crypto.sk import SkCipher, sk_pair

H = bytes.fromhex
GCM, CBC, CHACHA = EncrId.AES_GCM_16, EncrId.AES_CBC, EncrId.CHACHA20_POLY1305
NONE = IntegId.NONE
S256, S384, S512 = IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256
S1 = IntegId.HMAC_SHA1_96  # RFC 2404: 20-byte key, 96-bit ICV


def fixed_random(seed: bytes = b"pike") -> Callable[[int], bytes]:
    """Deterministic 'randomness' for reproducible tests."""
    counter = itertools.count()

    def random(n: int) -> bytes:
        return hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)

    return random


def queue_random(*chunks: bytes) -> Callable[[int], bytes]:
    """Randomness that returns exactly the given chunks, in order."""
    pending = list(chunks)

    def random(n: int) -> bytes:
        chunk = pending.pop(0)
        assert len(chunk) == n
        return chunk

    return random


# --- published AEAD vectors ------------------------------------------------------------

GCM_P = H(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_A = H("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_SALT, GCM_IV = H("cafebabe"), H("facedbaddecaf888")
GCM_VECTORS = [
    (  # test case 4, AES-128
        128,
        H("feffe9928665731c6d6a8f9467308308"),
        H(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        ),
        H("5bc94fbc3221a5db94fae95ae7121a47"),
    ),
    (  # test case 16, AES-256
        256,
        H("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
        H(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ),
        H("76fc6ece0f4e1768cddf8853bb2d551b"),
    ),
]

CHACHA_KEY = H("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
CHACHA_SALT, CHACHA_IV = H("07000000"), H("4041424344454647")
CHACHA_AAD = H("50515253c0c1c2c3c4c5c6c7")
CHACHA_P = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
CHACHA_C = H(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
CHACHA_TAG = H("1ae10b594f09e26a7e902ecbd0600691")


@pytest.mark.parametrize(("bits", "key", "ct", "tag"), GCM_VECTORS)
def test_gcm_vectors(bits: int, key: bytes, ct: bytes, tag: bytes) -> None:
    # the raw primitive first, so a failure below points at the SK framing
    assert AESGCM(key).encrypt(GCM_SALT + GCM_IV, GCM_P, GCM_A) == ct + tag
    sk = SkCipher(GCM, bits, NONE, key + GCM_SALT, b"", queue_random(GCM_IV))
    # open: the last plaintext byte (0x39) reads as the Pad Length
    assert sk.open(GCM_A, GCM_IV + ct + tag) == GCM_P[: len(GCM_P) - 0x39 - 1]
    # seal: the first IV is the random start; the keystream matches the vector
    body = sk.seal(GCM_A, GCM_P[:-1])
    assert body[:8] == GCM_IV
    assert body[8 : 8 + len(GCM_P) - 1] == ct[:-1]
    assert len(body) == sk.sealed_length(len(GCM_P) - 1) == 8 + len(GCM_P) + 16


def test_wycheproof_gcm_tc1() -> None:
    key, iv = H("5b9604fe14eadba931b0ccf34843dab9"), H("028318abc1824029138141a2")
    msg, ct, tag = (
        H("001d0c231287c1182784554ca3a21908"),
        H("26073cc1d851beff176384dc9896d5ff"),
        H("0a3ea7a5487cb5f7d70fb6c58d038554"),
    )
    sk = SkCipher(GCM, 128, NONE, key + iv[:4], b"", queue_random(iv[4:]))
    assert sk.open(b"", iv[4:] + ct + tag) == msg[: len(msg) - msg[-1] - 1]
    assert sk.seal(b"", msg[:-1])[8:23] == ct[:15]


def test_chacha20poly1305_rfc8439_vector() -> None:
    nonce = CHACHA_SALT + CHACHA_IV
    assert ChaCha20Poly1305(CHACHA_KEY).encrypt(nonce, CHACHA_P, CHACHA_AAD) == (
        CHACHA_C + CHACHA_TAG
    )
    sk = SkCipher(CHACHA, None, NONE, CHACHA_KEY + CHACHA_SALT, b"", queue_random(CHACHA_IV))
    # the plaintext ends in "." (0x2e): read as Pad Length, 46 bytes of padding + itself
    opened = sk.open(CHACHA_AAD, CHACHA_IV + CHACHA_C + CHACHA_TAG)
    assert opened == CHACHA_P[: len(CHACHA_P) - 0x2E - 1]
    body = sk.seal(CHACHA_AAD, CHACHA_P[:-1])
    assert body[:8] == CHACHA_IV
    assert body[8 : 8 + len(CHACHA_P) - 1] == CHACHA_C[:-1]


# --- AES-CBC + HMAC ---------------------------------------------------------------------

RFC3602_KEY = H("c286696d887c9aa0611bbb3e2025a45a")
RFC3602_IV = H("562e17996d093d28ddb3ba695a2e6f58")
RFC3602_P = bytes(range(32))
RFC3602_C = H("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")


def _independent_cbc_seal(key: bytes, ikey: bytes, aad: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    return iv + ct + hmac.new(ikey, aad + iv + ct, hashlib.sha256).digest()[:16]


def test_cbc_rfc3602_vector_and_icv() -> None:
    body = _independent_cbc_seal(RFC3602_KEY, b"k" * 32, b"aad", RFC3602_IV, RFC3602_P)
    assert body[16:48] == RFC3602_C
    sk = SkCipher(CBC, 128, S256, RFC3602_KEY, b"k" * 32, fixed_random())
    assert sk.open(b"aad", body) == b""  # last byte 0x1f: 31 bytes of padding + itself
    data = b"IKE_AUTH payloads" + bytes(14) + b"\x0e"
    body = _independent_cbc_seal(RFC3602_KEY, b"k" * 32, b"aad", RFC3602_IV, data)
    assert sk.open(b"aad", body) == b"IKE_AUTH payloads"


@pytest.mark.parametrize(
    ("integ", "name", "icv"),
    [(S1, "sha1", 12), (S256, "sha256", 16), (S384, "sha384", 24), (S512, "sha512", 32)],
)
def test_cbc_seal_is_standard_cbc_with_truncated_hmac(integ: int, name: str, icv: int) -> None:
    key, ikey = b"K" * 32, b"I" * integ_key_size(integ)
    sk = SkCipher(CBC, 256, integ, key, ikey, fixed_random())
    assert (sk.iv_size, sk.icv_size, sk.block_size) == (16, icv, 16)
    ivs = set()
    for n in range(40):
        body = sk.seal(b"hdr", b"x" * n)
        assert len(body) == sk.sealed_length(n)
        iv, ct, tag = body[:16], body[16:-icv], body[-icv:]
        ivs.add(iv)
        assert tag == hmac.new(ikey, b"hdr" + iv + ct, name).digest()[:icv]
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        plain = dec.update(ct) + dec.finalize()
        pad = plain[-1]
        assert plain[: -pad - 1] == b"x" * n and pad == (-(n + 1)) % 16
    assert len(ivs) == 40


# --- every transform: round trips, tampering, truncation --------------------------------

CIPHERS = [
    (GCM, 128, NONE),
    (GCM, 192, NONE),
    (GCM, 256, NONE),
    (CHACHA, None, NONE),
    (CBC, 128, S256),
    (CBC, 192, S384),
    (CBC, 256, S512),
    (CBC, 256, S256),
    (CBC, 128, S1),
]


def make(encr: int, bits: int | None, integ: int, seed: bytes = b"k") -> SkCipher:
    ekey = hashlib.shake_256(seed + b"e").digest(encr_key_size(encr, bits))
    ikey = hashlib.shake_256(seed + b"i").digest(integ_key_size(integ))
    return SkCipher(encr, bits, integ, ekey, ikey, fixed_random(seed))


@pytest.mark.parametrize(("encr", "bits", "integ"), CIPHERS)
def test_round_trip(encr: int, bits: int | None, integ: int) -> None:
    sender, receiver = make(encr, bits, integ), make(encr, bits, integ)
    aad = b"\x00" * 28 + b"\x21\x00\x00\x00"
    seen = set()
    for n in [0, 1, 15, 16, 17, 200, 1400]:
        plaintext = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        body = sender.seal(aad, plaintext)
        assert len(body) == sender.sealed_length(n)
        assert body[: sender.iv_size] not in seen
        seen.add(body[: sender.iv_size])
        assert receiver.open(aad, body) == plaintext
    if is_aead(encr):
        assert (sender.iv_size, sender.icv_size, sender.block_size) == (8, 16, 1)
        assert sender.sealed_length(10) == 8 + 10 + 1 + 16  # Pad Length 0, no padding


@pytest.mark.parametrize(("encr", "bits", "integ"), CIPHERS)
def test_any_tampering_is_detected(encr: int, bits: int | None, integ: int) -> None:
    sk = make(encr, bits, integ)
    aad, body = b"header+sk-generic", sk.seal(b"header+sk-generic", b"payloads" * 5)
    for i in range(len(body)):
        bad = bytearray(body)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            sk.open(aad, bytes(bad))
    for i in range(len(aad)):
        bad = bytearray(aad)
        bad[i] ^= 0x80
        with pytest.raises(IntegrityError):
            sk.open(bytes(bad), body)
    for cut in range(len(body)):
        with pytest.raises(IntegrityError):
            sk.open(aad, body[:cut])
    with pytest.raises(IntegrityError):
        sk.open(aad, body + b"\x00")
    assert sk.open(aad, body) == b"payloads" * 5  # still usable


@pytest.mark.parametrize(("encr", "bits", "integ"), CIPHERS)
def test_wrong_key_is_detected(encr: int, bits: int | None, integ: int) -> None:
    body = make(encr, bits, integ, b"one").seal(b"a", b"secret")
    with pytest.raises(IntegrityError):
        make(encr, bits, integ, b"two").open(b"a", body)


@pytest.mark.parametrize(("encr", "bits", "integ"), CIPHERS)
def test_authentic_but_impossible_pad_length(encr: int, bits: int | None, integ: int) -> None:
    # A peer that authenticates a plaintext whose Pad Length exceeds it
    ekey = hashlib.shake_256(b"e").digest(encr_key_size(encr, bits))
    ikey = hashlib.shake_256(b"i").digest(integ_key_size(integ))
    sk = SkCipher(encr, bits, integ, ekey, ikey, fixed_random())
    if is_aead(encr):
        iv = b"\x00" * 8
        key, salt = ekey[:-4], ekey[-4:]
        aead = ChaCha20Poly1305(key) if encr == CHACHA else AESGCM(key)
        body = iv + aead.encrypt(salt + iv, b"abc\x09", b"a")
    else:
        iv = b"\x01" * 16
        enc = Cipher(algorithms.AES(ekey), modes.CBC(iv)).encryptor()
        ct = enc.update(b"x" * 15 + b"\x10") + enc.finalize()
        name = {S1: "sha1", S256: "sha256", S384: "sha384", S512: "sha512"}[IntegId(integ)]
        body = iv + ct + hmac.new(ikey, b"a" + iv + ct, name).digest()[: sk.icv_size]
    with pytest.raises(IntegrityError, match="pad length"):
        sk.open(b"a", body)


@settings(max_examples=300, deadline=None)
@given(
    cipher=st.sampled_from(CIPHERS),
    aad=st.binary(max_size=64),
    body=st.binary(max_size=200),
)
def test_random_bodies_only_raise_integrity_error(
    cipher: tuple[int, int | None, int], aad: bytes, body: bytes
) -> None:
    sk = make(*cipher)
    with pytest.raises(IntegrityError):
        sk.open(aad, body)


@settings(max_examples=100, deadline=None)
@given(plaintext=st.binary(max_size=300), aad=st.binary(max_size=64))
def test_round_trip_property(plaintext: bytes, aad: bytes) -> None:
    for cipher in CIPHERS:
        sk = make(*cipher)
        assert sk.open(aad, sk.seal(aad, plaintext)) == plaintext


def test_aead_iv_is_a_counter_from_a_random_start() -> None:
    start = (2**64 - 2).to_bytes(8, "big")
    sk = SkCipher(GCM, 128, NONE, b"k" * 20, b"", queue_random(start))
    ivs = [sk.seal(b"", b"")[:8] for _ in range(3)]
    assert ivs == [start, (2**64 - 1).to_bytes(8, "big"), bytes(8)]


def test_construction_errors() -> None:
    with pytest.raises(CryptoError, match="key length"):
        SkCipher(GCM, 128, NONE, b"k" * 16, b"", fixed_random())  # salt missing
    with pytest.raises(CryptoError, match="AEAD"):
        SkCipher(GCM, 128, S256, b"k" * 20, b"i" * 32, fixed_random())
    with pytest.raises(CryptoError):
        SkCipher(CBC, 128, NONE, b"k" * 16, b"", fixed_random())
    with pytest.raises(CryptoError):
        SkCipher(CBC, 128, S256, b"k" * 16, b"i" * 16, fixed_random())
    with pytest.raises(CryptoError, match="key length"):
        SkCipher(CBC, 100, S256, b"k" * 16, b"i" * 32, fixed_random())
    with pytest.raises(CryptoError, match="not implemented"):
        SkCipher(EncrId.TRIPLE_DES, None, S256, b"k" * 24, b"i" * 32, fixed_random())


def test_sizes() -> None:
    assert [encr_key_size(GCM, b) for b in (128, 192, 256)] == [20, 28, 36]
    assert encr_key_size(CHACHA, None) == 36
    assert [encr_key_size(CBC, b) for b in (128, 192, 256)] == [16, 24, 32]
    assert [integ_key_size(i) for i in (NONE, S1, S256, S384, S512)] == [0, 20, 32, 48, 64]
    assert is_aead(GCM) and is_aead(CHACHA) and not is_aead(CBC)
    with pytest.raises(CryptoError):
        integ_key_size(IntegId.HMAC_MD5_96)
    with pytest.raises(CryptoError):
        encr_key_size(GCM, None)


@pytest.mark.parametrize(
    ("encr", "bits", "integ", "start"),
    [(GCM, 128, NONE, 8), (CHACHA, None, NONE, 8), (CBC, 256, S256, 16)],
)
def test_sk_pair_draws_both_starts_at_once(
    encr: int, bits: int | None, integ: int, start: int
) -> None:
    """An IKE SA's two ciphers take their random starts (AEAD IV counters, CBC chaining
    values) from one draw, one half each, and work as ciphers made one by one: each
    opens what a cipher with the other's keys sealed."""
    ekey, ikey = encr_key_size(encr, bits), integ_key_size(integ)
    out_keys, in_keys = (b"o" * ekey, b"p" * ikey), (b"i" * ekey, b"j" * ikey)
    starts = bytes(range(1, 2 * start + 1))
    assert SkCipher.start_size(encr) == start
    iv = () if is_aead(encr) else (b"r" * 16,)  # CBC: each seal draws its IV block
    out, inn = sk_pair(encr, bits, integ, out_keys, in_keys, queue_random(starts, *iv))
    if is_aead(encr):  # the first IVs are the two halves
        assert out.seal(b"aad", b"x")[:8] == starts[:8]
        assert inn.seal(b"aad", b"x")[:8] == starts[8:]
    peer_in = SkCipher(encr, bits, integ, *out_keys, fixed_random(b"a"))
    peer_out = SkCipher(encr, bits, integ, *in_keys, fixed_random(b"b"))
    assert peer_in.open(b"hdr", out.seal(b"hdr", b"to the peer")) == b"to the peer"
    assert inn.open(b"hdr", peer_out.seal(b"hdr", b"from the peer")) == b"from the peer"
