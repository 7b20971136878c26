"""IKEv1 / ISAKMP protocol numbers (RFC 2407, 2408, 2409, 3706, 3947, 4304, 4868).

Only values defined by an RFC (or a draft strongSwan still sends) live here.
"""

from enum import IntEnum

ISAKMP_VERSION = 0x10  # RFC 2408 §3.1: major 1, minor 0
ISAKMP_MAJOR_VERSION = 1
DOI_IPSEC = 1  # RFC 2407 §4.2
SIT_IDENTITY_ONLY = 1  # RFC 2407 §4.2.1
ISAKMP_SPI_LEN = 16  # RFC 2408 §3.15: the cookie pair names an ISAKMP SA
NONCE_MIN = 8  # RFC 2409 §5: nonces are 8..256 bytes
NONCE_MAX = 256


class ExchangeV1(IntEnum):
    """RFC 2408 §3.1 and RFC 2409 §9."""

    BASE = 1
    MAIN = 2  # Identity Protection
    AUTH_ONLY = 3
    AGGRESSIVE = 4
    INFORMATIONAL = 5
    TRANSACTION = 6  # draft-ietf-ipsec-isakmp-mode-cfg (XAUTH / Mode Config)
    QUICK = 32
    NEW_GROUP = 33


class FlagV1(IntEnum):
    """RFC 2408 §3.1 header flags."""

    ENCRYPTION = 0x01
    COMMIT = 0x02
    AUTH_ONLY = 0x04


class PayloadV1(IntEnum):
    """RFC 2408 §3.1 next-payload values, RFC 3947 §3.2/§5.2."""

    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KE = 4
    ID = 5
    CERT = 6
    CERTREQ = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    NOTIFY = 11
    DELETE = 12
    VENDOR_ID = 13
    ATTRIBUTE = 14  # Mode Config
    NAT_D = 20  # RFC 3947
    NAT_OA = 21  # RFC 3947
    NAT_D_DRAFT = 130  # draft-ietf-ipsec-nat-t-ike-02/03
    NAT_OA_DRAFT = 131


class ProtocolV1(IntEnum):
    """RFC 2407 §4.4.1 Security Protocol Identifiers."""

    ISAKMP = 1
    AH = 2
    ESP = 3
    IPCOMP = 4


KEY_IKE = 1  # RFC 2407 §4.4.2: the only phase 1 transform ID


class IdV1(IntEnum):
    """RFC 2407 §4.6.2.1."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class P1Attr(IntEnum):
    """RFC 2409 Appendix A phase 1 attribute classes."""

    ENCRYPTION = 1
    HASH = 2
    AUTH_METHOD = 3
    GROUP = 4
    GROUP_TYPE = 5
    GROUP_PRIME = 6
    GROUP_GEN_ONE = 7
    GROUP_GEN_TWO = 8
    GROUP_CURVE_A = 9
    GROUP_CURVE_B = 10
    LIFE_TYPE = 11
    LIFE_DURATION = 12
    PRF = 13
    KEY_LENGTH = 14
    FIELD_SIZE = 15
    GROUP_ORDER = 16


# RFC 2409 Appendix A marks these "V" (variable); the rest are basic (TV only).
P1_VARIABLE = frozenset({6, 7, 8, 9, 10, 12, 16})


class P2Attr(IntEnum):
    """RFC 2407 §4.5 phase 2 (IPsec DOI) attribute classes, RFC 4304."""

    LIFE_TYPE = 1
    LIFE_DURATION = 2
    GROUP = 3
    ENCAP_MODE = 4
    AUTH_ALGORITHM = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICT_SIZE = 8
    COMPRESS_PRIVATE_ALG = 9
    ESN = 11  # RFC 4304


P2_VARIABLE = frozenset({2, 9})


class LifeType(IntEnum):
    """RFC 2409 Appendix A / RFC 2407 §4.5."""

    SECONDS = 1
    KILOBYTES = 2


class EncrV1(IntEnum):
    """RFC 2409 Appendix A Encryption Algorithm, RFC 3602."""

    DES_CBC = 1
    IDEA_CBC = 2
    BLOWFISH_CBC = 3
    RC5_CBC = 4
    TRIPLE_DES_CBC = 5
    CAST_CBC = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class HashV1(IntEnum):
    """RFC 2409 Appendix A Hash Algorithm, RFC 4868 §4."""

    MD5 = 1
    SHA1 = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthV1(IntEnum):
    """RFC 2409 Appendix A Authentication Method, RFC 4754 §5."""

    PSK = 1
    DSS_SIG = 2
    RSA_SIG = 3
    RSA_ENC = 4
    RSA_ENC_REV = 5
    ECDSA_SHA256 = 9
    ECDSA_SHA384 = 10
    ECDSA_SHA512 = 11


class EncapMode(IntEnum):
    """RFC 2407 §4.5, RFC 3947 §5.1 and the draft values strongSwan still accepts."""

    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3
    UDP_TRANSPORT = 4
    UDP_TUNNEL_DRAFT = 61443
    UDP_TRANSPORT_DRAFT = 61444


class AuthAlgV1(IntEnum):
    """RFC 2407 §4.5 Authentication Algorithm (ESP integrity), RFC 4868 §4."""

    HMAC_MD5 = 1
    HMAC_SHA = 2
    DES_MAC = 3
    KPDK = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    AES_XCBC_MAC = 9


class NotifyV1(IntEnum):
    """RFC 2408 §3.14.1 (errors < 8192), RFC 2407 §4.6.3, RFC 3706 §5."""

    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    R_U_THERE = 36136
    R_U_THERE_ACK = 36137


NOTIFY_ERROR_MAX = 8191  # RFC 2408 §3.14.1: 1-8191 are errors


class CertEncodingV1(IntEnum):
    """RFC 2408 §3.9."""

    PKCS7 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    X509_KEY_EXCHANGE = 5
    KERBEROS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10


# Vendor IDs announcing capabilities: MD5 of a text, as their RFCs define them.
VID_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")  # RFC 3947 §3.1
VID_NATT_DRAFT_02 = bytes.fromhex("cd60464335df21f87cfdb2fc68b6a448")
VID_NATT_DRAFT_02N = bytes.fromhex("90cb80913ebb696e086381b5ec427b1f")
VID_NATT_DRAFT_03 = bytes.fromhex("7d9419a65310ca6f2c179d9215529d56")
VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")  # RFC 3706 §5 (version 1.0)


def notify_v1_name(notify_type: int) -> str:
    """An ISAKMP notify type's name (its number when unknown)."""
    try:
        return NotifyV1(notify_type).name
    except ValueError:
        return str(notify_type)
