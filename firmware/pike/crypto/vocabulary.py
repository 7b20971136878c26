"""strongSwan's proposal keywords that pike implements, and the ones it refuses.

Names follow strongSwan's ``proposal_keywords_static.txt``; the first name listed for an
algorithm is the one pike prints. Refusals follow RFC 8247 (IKEv2) and RFC 8221 (ESP).
"""

from typing import Final

from pike.crypto.ids import EncrId, EsnId, GroupId, IntegId, PrfId, TransformType

# (transform type, transform id, key length in bits or None)
Token = tuple[TransformType, int, int | None]

_E, _I, _P, _K, _N = (
    TransformType.ENCR,
    TransformType.INTEG,
    TransformType.PRF,
    TransformType.KE,
    TransformType.ESN,
)


def _table() -> dict[str, Token]:
    t: dict[str, Token] = {}
    for bits in (128, 192, 256):
        t[f"aes{bits}"] = (_E, EncrId.AES_CBC, bits)
        # strongSwan: aesNNNgcm16 == aesNNNgcm128 == aesNNNgcm (16-octet ICV)
        for suffix in ("gcm16", "gcm128", "gcm"):
            t[f"aes{bits}{suffix}"] = (_E, EncrId.AES_GCM_16, bits)
    t["aes"] = (_E, EncrId.AES_CBC, 128)  # strongSwan: bare "aes" is AES-CBC-128
    t["chacha20poly1305"] = (_E, EncrId.CHACHA20_POLY1305, None)
    for bits, integ, prf in (
        (256, IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256),
        (384, IntegId.HMAC_SHA2_384_192, PrfId.HMAC_SHA2_384),
        (512, IntegId.HMAC_SHA2_512_256, PrfId.HMAC_SHA2_512),
    ):
        t[f"sha{bits}"] = (_I, integ, None)
        t[f"sha2_{bits}"] = (_I, integ, None)
        t[f"prfsha{bits}"] = (_P, prf, None)
        t[f"prfsha2_{bits}"] = (_P, prf, None)
    # HMAC-SHA-1 stays available for head offices whose parameter sheets still name it:
    # RFC 8247 (IKEv2) and RFC 8221 (ESP) keep HMAC_SHA1_96 and PRF_HMAC_SHA1 as MUST-.
    t["sha1"] = (_I, IntegId.HMAC_SHA1_96, None)
    t["sha"] = (_I, IntegId.HMAC_SHA1_96, None)
    t["prfsha1"] = (_P, PrfId.HMAC_SHA1, None)
    for bits, group in (
        (2048, GroupId.MODP_2048),
        (3072, GroupId.MODP_3072),
        (4096, GroupId.MODP_4096),
        (6144, GroupId.MODP_6144),
        (8192, GroupId.MODP_8192),
    ):
        t[f"modp{bits}"] = (_K, group, None)
    t["ecp256"] = (_K, GroupId.ECP_256, None)
    t["ecp384"] = (_K, GroupId.ECP_384, None)
    t["ecp521"] = (_K, GroupId.ECP_521, None)
    t["x25519"] = (_K, GroupId.CURVE25519, None)
    t["curve25519"] = (_K, GroupId.CURVE25519, None)
    t["x448"] = (_K, GroupId.CURVE448, None)
    t["curve448"] = (_K, GroupId.CURVE448, None)
    # ML-KEM (FIPS 203) as a key exchange method; usually an additional one (RFC 9370):
    # ``ke1_mlkem768`` (see proposal.py), or alone where both ends allow it
    t["mlkem768"] = (_K, GroupId.ML_KEM_768, None)
    t["mlkem1024"] = (_K, GroupId.ML_KEM_1024, None)
    t["esn"] = (_N, EsnId.YES, None)
    t["noesn"] = (_N, EsnId.NO, None)
    return t


TOKENS: Final[dict[str, Token]] = _table()

# The name pike prints for each algorithm: the first keyword above that names it.
CANONICAL: Final[dict[Token, str]] = {}
for _name, _tok in TOKENS.items():
    CANONICAL.setdefault(_tok, _name)

_SMALL_MODP = "RFC 8247 forbids MODP groups below 2048 bits"
_RFC5114 = (
    "RFC 8247 deprecates the RFC 5114 MODP groups with small subgroups "
    "(groups 22, 23, 24) as being of questionable origin"
)
_EC2N = (
    "it is an elliptic curve over a characteristic-2 (binary) field, "
    "a group type RFC 8247 deprecates"
)

# Key exchange groups pike refuses: group -> (keyword, why). RFC 8247 §2.4.
REFUSED_GROUPS: Final[dict[int, tuple[str, str]]] = {
    GroupId.MODP_768: ("modp768", _SMALL_MODP),
    GroupId.MODP_1024: ("modp1024", _SMALL_MODP),
    GroupId.MODP_1536: ("modp1536", _SMALL_MODP),
    GroupId.MODP_1024_160: ("modp1024s160", _RFC5114),
    GroupId.MODP_2048_224: ("modp2048s224", _RFC5114),
    GroupId.MODP_2048_256: ("modp2048s256", _RFC5114),
    GroupId.EC2N_155: ("ec2n155", _EC2N),
    GroupId.EC2N_185: ("ec2n185", _EC2N),
}


def refused_group_message(group: int) -> str | None:
    """The ProposalError text for a refused group, or None if it is not refused."""
    entry = REFUSED_GROUPS.get(group)
    if entry is None:
        return None
    name, why = entry
    return f"{name} (group {group}) is refused: {why}"


_REFUSED_KEYWORDS: dict[str, str] = {
    "des": "des is refused: RFC 8247 and RFC 8221 forbid DES (56-bit key)",
    "3des": "3des is refused: RFC 8247 demotes 3DES (64-bit block) and pike does not offer it",
    "md5": "md5 is refused: RFC 8247 and RFC 8221 forbid HMAC-MD5 integrity",
    "md5_128": "md5_128 is refused: RFC 8247 and RFC 8221 forbid HMAC-MD5 integrity",
    "prfmd5": "prfmd5 is refused: RFC 8247 forbids PRF_HMAC_MD5",
    "null": "null is refused: pike never sends traffic unencrypted (ENCR_NULL, RFC 8221)",
    "mlkem512": (
        "mlkem512 is not implemented: pike offers ML-KEM-768 and ML-KEM-1024 "
        "(NIST category 3 and 5)"
    ),
}
for _bits in (128, 192, 256):
    for _icv in ("8", "64", "12", "96"):
        _kw = f"aes{_bits}gcm{_icv}"
        _REFUSED_KEYWORDS[_kw] = (
            f"{_kw} is not implemented: pike offers AES-GCM only with the 16-octet ICV "
            f"(aes{_bits}gcm16)"
        )
for _group in REFUSED_GROUPS:
    _REFUSED_KEYWORDS[REFUSED_GROUPS[_group][0]] = refused_group_message(_group) or ""

REFUSED_KEYWORDS: Final[dict[str, str]] = _REFUSED_KEYWORDS
