"""Key exchange: RFC 7748 (X25519/X448), RFC 5903 §8 (ECP in IKE wire form), the RFC 3526
primes recomputed from their definition, agreement in every group, invalid peer values.
"""

import hashlib
import itertools
from collections.abc import Callable

import pytest

from pike.crypto.errors import CryptoError, KeyExchangeError, ProposalError
from pike.crypto.ke import SUPPORTED_GROUPS, KeyExchange, check_group, public_length
from pike.crypto.modp_groups import MODP_PRIMES


def H(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def fixed_random(seed: bytes) -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: hashlib.shake_256(seed + next(counter).to_bytes(8, "big")).digest(n)


def exactly(data: bytes) -> Callable[[int], bytes]:
    def random(n: int) -> bytes:
        assert n == len(data)
        return data

    return random


# --- RFC 7748 ----------------------------------------------------------------------------

X25519_A = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
X25519_A_PUB = H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
X25519_B = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
X25519_B_PUB = H("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
X25519_K = H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

X448_A = H(
    "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf5"
    "74a9419744897391006382a6f127ab1d9ac2d8c0a598726b"
)
X448_A_PUB = H(
    "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bb"
    "c836647241d953d40c5b12da88120d53177f80e532c41fa0"
)
X448_B = H(
    "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120"
    "bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"
)
X448_B_PUB = H(
    "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972"
    "fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"
)
X448_K = H(
    "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56"
    "fd2464c335543936521c24403085d59a449a5037514a879d"
)


@pytest.mark.parametrize(
    ("group", "a", "a_pub", "b", "b_pub", "k"),
    [
        (31, X25519_A, X25519_A_PUB, X25519_B, X25519_B_PUB, X25519_K),  # RFC 7748 §6.1
        (32, X448_A, X448_A_PUB, X448_B, X448_B_PUB, X448_K),  # RFC 7748 §6.2
    ],
)
def test_rfc7748_diffie_hellman(
    group: int, a: bytes, a_pub: bytes, b: bytes, b_pub: bytes, k: bytes
) -> None:
    alice, bob = KeyExchange(group, exactly(a)), KeyExchange(group, exactly(b))
    assert alice.public_bytes() == a_pub
    assert bob.public_bytes() == b_pub
    assert alice.shared_secret(b_pub) == k
    assert bob.shared_secret(a_pub) == k


def test_rfc7748_x25519_function_vector() -> None:
    # §5.2: scalar a546e3... times u-coordinate e6db68...
    ke = KeyExchange(
        31, exactly(H("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"))
    )
    u = H("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert ke.shared_secret(u) == H(
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    )


# --- RFC 5903 §8 -------------------------------------------------------------------------

RFC5903 = [
    (  # §8.1, 256-bit random ECP group
        19,
        "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
        "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180"
        "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
        "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63"
        "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
    ),
    (  # §8.2, 384-bit random ECP group
        20,
        "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655"
        "E35B5380 41E649EE 3FAEF896 783AB194",
        "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6"
        "DE3AC808 ACB4BDB4 C88732AE E95F41AA"
        "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E"
        "EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942"
        "E0308312 916B8ED2 960E4BD5 5A7448FC",
        "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D"
        "0D1AC43A 0336DEF9 6FDA41D0 774A3571"
        "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF"
        "F83FA401 42209DFF 5EAAD96D B9E6386C",
        "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4"
        "D6031355 69B9E9D0 9CF5D4A2 70F59746",
    ),
    (  # §8.3, 521-bit random ECP group
        21,
        "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0"
        "95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D 4A52",
        "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE"
        "E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C ED3E"
        "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A"
        "D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F 9582",
        "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E"
        "9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168 5EB9",
        "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21"
        "9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9 460F"
        "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87"
        "220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F C56A",
        "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04"
        "D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3 DDEA",
    ),
]


def _ecp_random_for(private: bytes) -> Callable[[int], bytes]:
    # KeyExchange maps random bytes r to the scalar (r mod (n-1)) + 1; feed r = d - 1
    d = int.from_bytes(private, "big")
    return exactly((d - 1).to_bytes(len(private) + 8, "big"))


@pytest.mark.parametrize(("group", "i", "gi", "r", "gr", "gir"), RFC5903)
def test_rfc5903_vectors(group: int, i: str, gi: str, r: str, gr: str, gir: str) -> None:
    initiator = KeyExchange(group, _ecp_random_for(H(i)))
    responder = KeyExchange(group, _ecp_random_for(H(r)))
    assert initiator.public_bytes() == H(gi)  # KEi data: x || y, no 0x04
    assert responder.public_bytes() == H(gr)
    assert initiator.shared_secret(H(gr)) == H(gir)  # g^ir is the x coordinate
    assert responder.shared_secret(H(gi)) == H(gir)


# --- RFC 3526 ----------------------------------------------------------------------------


def _pi_fixed(bits: int) -> int:
    """floor(pi * 2^bits), by Machin's formula in integers."""
    guard = 32
    one = 1 << (bits + guard)

    def arctan_inv(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> guard


@pytest.mark.parametrize(
    ("group", "bits", "k"),
    [
        (14, 2048, 124476),
        (15, 3072, 1690314),
        (16, 4096, 240904),
        (17, 6144, 929484),
        (18, 8192, 4743158),
    ],
)
def test_rfc3526_primes_match_their_definition(group: int, bits: int, k: int) -> None:
    # RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + k )
    p = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_fixed(bits - 130) + k)
    assert MODP_PRIMES[group] == p


def test_rfc3526_2048_text() -> None:
    # the first and last words as printed in RFC 3526 §3
    text = f"{MODP_PRIMES[14]:X}"
    assert text.startswith("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1")
    assert text.endswith("15728E5A8AACAA68FFFFFFFFFFFFFFFF")


# --- every group -------------------------------------------------------------------------

LENGTHS = {14: 256, 15: 384, 16: 512, 17: 768, 18: 1024, 19: 64, 20: 96, 21: 132, 31: 32, 32: 56}
SECRET_LENGTHS = {**LENGTHS, 19: 32, 20: 48, 21: 66}


@pytest.mark.parametrize("group", sorted(LENGTHS))
def test_both_sides_agree(group: int) -> None:
    a = KeyExchange(group, fixed_random(b"a"))
    b = KeyExchange(group, fixed_random(b"b"))
    assert len(a.public_bytes()) == len(b.public_bytes()) == public_length(group) == LENGTHS[group]
    secret = a.shared_secret(b.public_bytes())
    assert secret == b.shared_secret(a.public_bytes())
    assert len(secret) == SECRET_LENGTHS[group]
    # deterministic from the injected randomness
    assert KeyExchange(group, fixed_random(b"a")).public_bytes() == a.public_bytes()
    assert a.group == group and repr(a) == f"KeyExchange(group={group})"


@pytest.mark.parametrize("group", [14, 15, 16, 17, 18])
def test_modp_matches_plain_pow(group: int) -> None:
    p, x_bytes = MODP_PRIMES[group], fixed_random(b"x")(64)
    fast = KeyExchange(group, fixed_random(b"x"))
    slow = KeyExchange(group, fixed_random(b"x"), use_openssl=False)
    assert fast.public_bytes() == slow.public_bytes()
    x = int.from_bytes(x_bytes[: {14: 32, 15: 48}.get(group, 64)], "big")
    assert fast.public_bytes() == pow(2, x, p).to_bytes(LENGTHS[group], "big")
    peer = KeyExchange(group, fixed_random(b"peer")).public_bytes()
    assert fast.shared_secret(peer) == slow.shared_secret(peer)
    # a small public value still comes out padded to the prime length
    assert fast.shared_secret((2).to_bytes(LENGTHS[group], "big")) == fast.public_bytes()


@pytest.mark.parametrize("use_openssl", [True, False])
@pytest.mark.parametrize("group", [14, 15])
def test_modp_invalid_values(group: int, use_openssl: bool) -> None:
    ke = KeyExchange(group, fixed_random(b"a"), use_openssl=use_openssl)
    p, n = MODP_PRIMES[group], LENGTHS[group]
    for value in (0, 1, p - 1, p, 2 ** (8 * n) - 1):
        with pytest.raises(KeyExchangeError, match="out of range"):
            ke.shared_secret(value.to_bytes(n, "big"))
    for length in (0, n - 1, n + 1):
        with pytest.raises(KeyExchangeError, match="must be"):
            ke.shared_secret(b"\x05" * length)


@pytest.mark.parametrize("group", [19, 20, 21])
def test_ecp_invalid_points(group: int) -> None:
    ke = KeyExchange(group, fixed_random(b"a"))
    good = KeyExchange(group, fixed_random(b"b")).public_bytes()
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(KeyExchangeError, match="not on the curve"):
        ke.shared_secret(bytes(bad))
    with pytest.raises(KeyExchangeError):
        ke.shared_secret(bytes(len(good)))  # (0, 0)
    with pytest.raises(KeyExchangeError, match="must be"):
        ke.shared_secret(b"\x04" + good)  # SEC1 form is not the IKE wire form
    with pytest.raises(KeyExchangeError, match="must be"):
        ke.shared_secret(good[:-1])


# Curve25519 points of small order (u = 0, u = 1, and the order-8 point of RFC 7748's
# errata discussion): every one forces the all-zero shared secret (RFC 8031 §2.3)
X25519_LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    H("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.mark.parametrize("point", X25519_LOW_ORDER)
def test_x25519_all_zero_secret_refused(point: bytes) -> None:
    ke = KeyExchange(31, fixed_random(b"a"))
    with pytest.raises(KeyExchangeError):
        ke.shared_secret(point)


def test_x_wrong_lengths() -> None:
    for group, n in ((31, 32), (32, 56)):
        ke = KeyExchange(group, fixed_random(b"a"))
        for length in (0, n - 1, n + 1):
            with pytest.raises(KeyExchangeError, match="must be"):
                ke.shared_secret(b"\x09" * length)
    with pytest.raises(KeyExchangeError):
        KeyExchange(32, fixed_random(b"a")).shared_secret(bytes(56))


def test_groups() -> None:
    assert sorted(SUPPORTED_GROUPS) == sorted([*LENGTHS, 36, 37])  # + ML-KEM-768/1024
    with pytest.raises(ProposalError, match="modp1024 \\(group 2\\) is refused"):
        KeyExchange(2, fixed_random(b"a"))
    with pytest.raises(ProposalError):
        public_length(5)
    with pytest.raises(CryptoError, match="not implemented"):
        KeyExchange(26, fixed_random(b"a"))
    check_group(31)


def test_system_random() -> None:
    from pike.crypto.random import system_random

    a, b = system_random(32), system_random(32)
    assert len(a) == 32 and a != b
    assert len(KeyExchange(31, system_random).public_bytes()) == 32


@pytest.mark.parametrize(("group", "key", "ciphertext"), [(36, 1184, 1088), (37, 1568, 1568)])
def test_mlkem_encapsulates_to_the_initiators_key(group: int, key: int, ciphertext: int) -> None:
    """ML-KEM (FIPS 203): the initiator sends its encapsulation key, the responder a
    ciphertext; both end with the same 32-octet secret; the key pair follows the seed."""
    init = KeyExchange(group, fixed_random(b"i"))
    assert init.public_bytes() == KeyExchange(group, fixed_random(b"i")).public_bytes()
    assert len(init.public_bytes()) == key == public_length(group)
    resp = KeyExchange(group, fixed_random(b"r"), responder=True)
    with pytest.raises(CryptoError):
        resp.public_bytes()  # no ciphertext before the initiator's key
    secret = resp.shared_secret(init.public_bytes())
    assert len(resp.public_bytes()) == ciphertext == public_length(group, from_responder=True)
    assert init.shared_secret(resp.public_bytes()) == secret and len(secret) == 32
    # a ciphertext of the wrong length, or a key whose coefficients exceed q, is refused
    with pytest.raises(KeyExchangeError, match="must be"):
        init.shared_secret(resp.public_bytes()[:-1])
    with pytest.raises(KeyExchangeError):
        KeyExchange(group, fixed_random(b"r"), responder=True).shared_secret(b"\xff" * key)
    # a changed ciphertext opens to another secret (implicit rejection)
    forged = bytes([resp.public_bytes()[0] ^ 1]) + resp.public_bytes()[1:]
    assert init.shared_secret(forged) != secret
