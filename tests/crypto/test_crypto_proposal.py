"""strongSwan proposal strings: parsing to exact transforms, canonical printing, refusals."""

import pytest

from pike.crypto.errors import CryptoError, ProposalError
from pike.crypto.ids import EncrId, EsnId, GroupId, IntegId, PrfId, TransformType
from pike.crypto.ke import check_group
from pike.crypto.proposal import (
    Algorithm,
    ProposalSpec,
    algorithm_name,
    format_proposal,
    format_transforms,
    parse_proposal,
)

E, IN, P, K, N = (
    TransformType.ENCR,
    TransformType.INTEG,
    TransformType.PRF,
    TransformType.KE,
    TransformType.ESN,
)
GCM, CBC, CHACHA = EncrId.AES_GCM_16, EncrId.AES_CBC, EncrId.CHACHA20_POLY1305
S256, S384, S512 = IntegId.HMAC_SHA2_256_128, IntegId.HMAC_SHA2_384_192, IntegId.HMAC_SHA2_512_256
P256, P384, P512 = PrfId.HMAC_SHA2_256, PrfId.HMAC_SHA2_384, PrfId.HMAC_SHA2_512
NOESN = Algorithm(N, EsnId.NO)


def A(t: TransformType, i: int, k: int | None = None) -> Algorithm:
    return Algorithm(t, i, k)


# (text, protocol, transforms, canonical text)
CASES = [
    (
        "aes128gcm16-prfsha256-x25519",
        "ike",
        [A(E, GCM, 128), A(P, P256), A(K, GroupId.CURVE25519)],
        "aes128gcm16-prfsha256-x25519",
    ),
    (
        "aes256gcm16-prfsha384-ecp384",
        "ike",
        [A(E, GCM, 256), A(P, P384), A(K, GroupId.ECP_384)],
        "aes256gcm16-prfsha384-ecp384",
    ),
    (
        "aes256-sha256-modp3072",
        "ike",
        [A(E, CBC, 256), A(IN, S256), A(P, P256), A(K, GroupId.MODP_3072)],
        "aes256-sha256-prfsha256-modp3072",
    ),
    (
        "aes128-sha256-modp3072",
        "ike",
        [A(E, CBC, 128), A(IN, S256), A(P, P256), A(K, GroupId.MODP_3072)],
        "aes128-sha256-prfsha256-modp3072",
    ),
    (
        "chacha20poly1305-prfsha256-x25519",
        "ike",
        [A(E, CHACHA), A(P, P256), A(K, GroupId.CURVE25519)],
        "chacha20poly1305-prfsha256-x25519",
    ),
    ("aes128gcm16", "esp", [A(E, GCM, 128), NOESN], "aes128gcm16-noesn"),
    ("aes256-sha256", "esp", [A(E, CBC, 256), A(IN, S256), NOESN], "aes256-sha256-noesn"),
    (
        "aes128gcm16-x25519",
        "esp",
        [A(E, GCM, 128), A(K, GroupId.CURVE25519), NOESN],
        "aes128gcm16-x25519-noesn",
    ),
    ("aes128gcm16-esn", "esp", [A(E, GCM, 128), A(N, EsnId.YES)], "aes128gcm16-esn"),
    ("aes128gcm16-noesn", "esp", [A(E, GCM, 128), NOESN], "aes128gcm16-noesn"),
    (
        "aes128gcm16-esn-noesn",
        "esp",
        [A(E, GCM, 128), A(N, EsnId.YES), NOESN],
        "aes128gcm16-esn-noesn",
    ),
    (
        "aes256gcm16-prfsha512-curve448",
        "ike",
        [A(E, GCM, 256), A(P, P512), A(K, GroupId.CURVE448)],
        "aes256gcm16-prfsha512-x448",
    ),
    (
        "aes256gcm16-prfsha512-x448",
        "ike",
        [A(E, GCM, 256), A(P, P512), A(K, GroupId.CURVE448)],
        "aes256gcm16-prfsha512-x448",
    ),
    (
        "aes128-sha384-ecp256",
        "ike",
        [A(E, CBC, 128), A(IN, S384), A(P, P384), A(K, GroupId.ECP_256)],
        "aes128-sha384-prfsha384-ecp256",
    ),
    (
        "aes256-sha512-ecp521",
        "ike",
        [A(E, CBC, 256), A(IN, S512), A(P, P512), A(K, GroupId.ECP_521)],
        "aes256-sha512-prfsha512-ecp521",
    ),
    (
        "aes256-sha512-prfsha256-modp2048-modp4096",
        "ike",
        [
            A(E, CBC, 256),
            A(IN, S512),
            A(P, P256),
            A(K, GroupId.MODP_2048),
            A(K, GroupId.MODP_4096),
        ],
        "aes256-sha512-prfsha256-modp2048-modp4096",
    ),
    (
        "aes128gcm-prfsha256-ecp256",
        "ike",
        [A(E, GCM, 128), A(P, P256), A(K, GroupId.ECP_256)],
        "aes128gcm16-prfsha256-ecp256",
    ),
    (  # HMAC-SHA-1 (RFC 8247/8221: MUST-) for legacy head offices: implies prfsha1
        "aes128-sha1-modp2048",
        "ike",
        [A(E, CBC, 128), A(IN, IntegId.HMAC_SHA1_96), A(P, PrfId.HMAC_SHA1), A(K, 14)],
        "aes128-sha1-prfsha1-modp2048",
    ),
    (
        "aes256-sha",
        "esp",
        [A(E, CBC, 256), A(IN, IntegId.HMAC_SHA1_96), NOESN],
        "aes256-sha1-noesn",
    ),
    ("aes128gcm128", "esp", [A(E, GCM, 128), NOESN], "aes128gcm16-noesn"),
    ("aes192gcm16", "esp", [A(E, GCM, 192), NOESN], "aes192gcm16-noesn"),
    (
        "aes128-aes256-sha256-modp3072-ecp256",
        "ike",
        [
            A(E, CBC, 128),
            A(E, CBC, 256),
            A(IN, S256),
            A(P, P256),
            A(K, GroupId.MODP_3072),
            A(K, GroupId.ECP_256),
        ],
        "aes128-aes256-sha256-prfsha256-modp3072-ecp256",
    ),
    (  # one implied PRF per integrity algorithm, in order
        "aes256-sha384-sha256-x25519",
        "ike",
        [A(E, CBC, 256), A(IN, S384), A(IN, S256), A(P, P384), A(P, P256), A(K, 31)],
        "aes256-sha384-sha256-prfsha384-prfsha256-x25519",
    ),
    (  # order written is kept within a type, types are put in canonical order
        "x25519-prfsha256-aes128gcm16-aes256gcm16",
        "ike",
        [A(E, GCM, 128), A(E, GCM, 256), A(P, P256), A(K, 31)],
        "aes128gcm16-aes256gcm16-prfsha256-x25519",
    ),
    ("AES256-SHA2_256", "esp", [A(E, CBC, 256), A(IN, S256), NOESN], "aes256-sha256-noesn"),
    ("aes-sha256", "esp", [A(E, CBC, 128), A(IN, S256), NOESN], "aes128-sha256-noesn"),
    (
        "aes256-sha512-modp8192-modp6144",
        "esp",
        [A(E, CBC, 256), A(IN, S512), A(K, 18), A(K, 17), NOESN],
        "aes256-sha512-modp8192-modp6144-noesn",
    ),
]


@pytest.mark.parametrize(("text", "protocol", "transforms", "canonical"), CASES)
def test_parse_and_format(
    text: str, protocol: str, transforms: list[Algorithm], canonical: str
) -> None:
    spec = parse_proposal(text, protocol)  # type: ignore[arg-type]
    assert spec == ProposalSpec(protocol, tuple(transforms))  # type: ignore[arg-type]
    assert format_proposal(spec) == canonical
    # the canonical text is a fixed point
    assert parse_proposal(canonical, protocol) == spec  # type: ignore[arg-type]
    assert format_transforms((a.type, a.id, a.key_length) for a in spec.transforms) == canonical


def test_ids_are_plain_ints() -> None:
    spec = parse_proposal("aes256-sha256-modp3072", "ike")
    assert all(type(a.id) is int for a in spec.transforms)


_SMALL = "is refused: RFC 8247 forbids MODP groups below 2048 bits"
_RFC5114 = "is refused: RFC 8247 deprecates the RFC 5114 MODP groups"
_EC2N = "is refused: it is an elliptic curve over a characteristic-2 (binary) field"
REFUSED = [
    ("modp768", 1, f"modp768 (group 1) {_SMALL}"),
    ("modp1024", 2, f"modp1024 (group 2) {_SMALL}"),
    ("modp1536", 5, f"modp1536 (group 5) {_SMALL}"),
    ("modp1024s160", 22, f"modp1024s160 (group 22) {_RFC5114}"),
    ("modp2048s224", 23, f"modp2048s224 (group 23) {_RFC5114}"),
    ("modp2048s256", 24, f"modp2048s256 (group 24) {_RFC5114}"),
    ("ec2n155", 3, f"ec2n155 (group 3) {_EC2N}"),
    ("ec2n185", 4, f"ec2n185 (group 4) {_EC2N}"),
]


@pytest.mark.parametrize(("word", "group", "message"), REFUSED)
def test_refused_groups(word: str, group: int, message: str) -> None:
    for text, protocol in ((f"aes128-sha256-{word}", "ike"), (f"aes128gcm16-{word}", "esp")):
        with pytest.raises(ProposalError) as info:
            parse_proposal(text, protocol)  # type: ignore[arg-type]
        assert str(info.value).startswith(message)
    # the key exchange layer refuses a peer's group with the same words
    with pytest.raises(ProposalError) as info:
        check_group(group)
    assert str(info.value).startswith(message)
    if word.startswith("ec2n"):
        assert str(info.value).endswith("a group type RFC 8247 deprecates")


def test_check_group() -> None:
    for group in (14, 15, 16, 17, 18, 19, 20, 21, 31, 32):
        check_group(group)
    for group in (0, 25, 26, 33, 99):
        with pytest.raises(CryptoError, match="not implemented"):
            check_group(group)


@pytest.mark.parametrize(
    ("text", "protocol", "message"),
    [
        ("des-sha256-modp2048", "ike", "des is refused: RFC 8247 and RFC 8221 forbid DES"),
        ("3des-sha256-modp2048", "ike", "3des is refused"),
        ("aes128-md5-modp2048", "ike", "md5 is refused: RFC 8247 and RFC 8221 forbid HMAC-MD5"),
        ("aes128-sha256-prfmd5-modp2048", "ike", "prfmd5 is refused"),
        ("null-sha256", "esp", "null is refused"),
        ("aes128gcm8", "esp", "aes128gcm8 is not implemented: pike offers AES-GCM only with"),
        ("aes256gcm12", "esp", "aes256gcm12 is not implemented"),
        ("aes128ctr-sha256", "esp", "unknown algorithm 'aes128ctr' in esp proposal"),
        ("aes128-sha256-frobnicate", "esp", "unknown algorithm 'frobnicate'"),
        ("aes128--sha256", "esp", "empty algorithm name in esp proposal 'aes128--sha256'"),
        ("", "esp", "empty algorithm name"),
        ("aes128-sha256-aes128", "esp", "'aes128' names an algorithm listed twice"),
        ("sha256-modp2048", "ike", "no encryption algorithm in ike proposal"),
        ("aes128", "esp", "aes128 needs an integrity algorithm (e.g. sha256)"),
        ("aes128-x25519", "ike", "aes128 needs an integrity algorithm"),
        (
            "aes128gcm16-sha256-x25519",
            "ike",
            "aes128gcm16 is an AEAD cipher with its own integrity check: remove sha256",
        ),
        ("aes128gcm16-sha256", "esp", "aes128gcm16 is an AEAD cipher"),
        ("aes128gcm16-aes128-sha256", "esp", "AEAD and non-AEAD ciphers cannot be mixed"),
        ("aes128gcm16-x25519", "ike", "an IKE proposal with an AEAD cipher needs a PRF"),
        ("aes128gcm16-prfsha256", "ike", "an IKE proposal needs a key exchange group"),
        ("aes128-sha256", "ike", "an IKE proposal needs a key exchange group"),
        ("aes128gcm16-prfsha256-x25519-esn", "ike", "esn is an ESP option, not IKE"),
        ("aes128gcm16-prfsha256", "esp", "prfsha256 is a PRF, which ESP proposals do not take"),
    ],
)
def test_refused_and_malformed(text: str, protocol: str, message: str) -> None:
    with pytest.raises(ProposalError) as info:
        parse_proposal(text, protocol)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_protocol() -> None:
    with pytest.raises(ProposalError, match="unknown protocol 'ah'"):
        parse_proposal("sha256", "ah")  # type: ignore[arg-type]


def test_algorithm_names() -> None:
    assert algorithm_name(A(E, GCM, 256)) == "aes256gcm16"
    assert algorithm_name(A(E, CHACHA)) == "chacha20poly1305"
    assert algorithm_name(A(IN, S384)) == "sha384"
    assert algorithm_name(A(P, P512)) == "prfsha512"
    assert algorithm_name(A(K, GroupId.CURVE25519)) == "x25519"
    assert algorithm_name(A(K, GroupId.MODP_1024)) == "modp1024"  # a peer's offer, printed
    assert algorithm_name(A(N, EsnId.YES)) == "esn"
    # algorithms pike has no keyword for are still printed recognisably
    assert algorithm_name(A(E, EncrId.AES_CTR, 128)) == "encr13_128"
    assert algorithm_name(A(IN, IntegId.HMAC_SHA1_96)) == "sha1"
    assert algorithm_name(A(IN, IntegId.HMAC_MD5_96)) == "integ1"


def test_format_transforms_negotiated_set() -> None:
    # (type, id, key length) triples as the engine holds them, in wire order
    negotiated = [(4, 19, None), (2, 6, None), (1, 20, 256)]
    assert format_transforms(negotiated) == "aes256gcm16-prfsha384-ecp256"
    assert format_transforms([(1, 12, 128), (3, 12, None), (5, 1, None)]) == "aes128-sha256-esn"
    # RFC 9370 additional key exchanges print as strongSwan 6 writes them
    assert format_transforms([(9, 3, None)]) == "ke4_ec2n155"
    assert format_transforms([(6, 36, None), (4, 31, None)]) == "x25519-ke1_mlkem768"
    assert format_transforms([(13, 3, None)]) == "type13_3"


def test_additional_key_exchanges_parse_as_strongswan6_writes_them() -> None:
    spec = parse_proposal("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none", "ike")
    assert [(a.type, a.id) for a in spec.transforms if a.type > 5] == [(6, 36), (7, 37), (7, 0)]
    assert (
        format_proposal(spec) == "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none"
    )
    esp = parse_proposal("aes256gcm16-x25519-ke1_mlkem768", "esp")
    assert format_proposal(esp) == "aes256gcm16-x25519-ke1_mlkem768-noesn"
    assert format_proposal(parse_proposal("aes256gcm16-prfsha384-mlkem768", "ike")).endswith(
        "-mlkem768"
    )
    for bad, why in (
        ("ke8_mlkem768", "unknown algorithm"),
        ("ke1_sha256", "names no key exchange method"),
        ("ke1_mlkem512", "mlkem512 is not implemented"),
        ("ke1_modp1024", "refused"),
    ):
        with pytest.raises(ProposalError, match=why):
            parse_proposal(f"aes256gcm16-prfsha384-x25519-{bad}", "ike")
