"""IKEv2 protocol numbers (RFC 7296 and the IANA IKEv2 registries).

Only values defined by an RFC live here; tunables live beside the code that uses them.
"""

from enum import IntEnum

IKE_VERSION = 0x20  # RFC 7296 §3.1: major 2, minor 0
HEADER_LEN = 28  # RFC 7296 §3.1
GENERIC_PAYLOAD_HEADER_LEN = 4  # RFC 7296 §3.2
NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 §2.2
NATT_KEEPALIVE = b"\xff"  # RFC 3948 §2.3


class ExchangeType(IntEnum):
    """RFC 7296 §3.1."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38  # RFC 5723
    IKE_INTERMEDIATE = 43  # RFC 9242
    IKE_FOLLOWUP_KE = 44  # RFC 9370


class HeaderFlag(IntEnum):
    """RFC 7296 §3.1 flags byte."""

    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


class PayloadType(IntEnum):
    """RFC 7296 §3.2 next-payload values."""

    NONE = 0
    SA = 33
    KE = 34
    IDI = 35
    IDR = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSI = 44
    TSR = 45
    SK = 46
    CP = 47
    EAP = 48
    SKF = 53  # RFC 7383


class ProtocolId(IntEnum):
    """RFC 7296 §3.3.1 Security Protocol Identifiers."""

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3


class IdType(IntEnum):
    """RFC 7296 §3.5."""

    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11


class AuthMethod(IntEnum):
    """RFC 7296 §3.8, RFC 4754, RFC 7427."""

    RSA_SIG = 1
    SHARED_KEY_MIC = 2
    DSS_SIG = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    DIGITAL_SIGNATURE = 14


class TsType(IntEnum):
    """RFC 7296 §3.13.1."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8


class CertEncoding(IntEnum):
    """RFC 7296 §3.6."""

    X509_SIGNATURE = 4
    RAW_RSA_KEY = 11
    HASH_URL_X509 = 12


class CfgType(IntEnum):
    """RFC 7296 §3.15."""

    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


class NotifyType(IntEnum):
    """RFC 7296 §3.10.1 (errors < 16384, status >= 16384) and later RFCs."""

    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    STATE_NOT_FOUND = 47  # RFC 9370: an IKE_FOLLOWUP_KE whose link we do not know
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396  # RFC 4555 (MOBIKE)
    ADDITIONAL_IP4_ADDRESS = 16397
    ADDITIONAL_IP6_ADDRESS = 16398
    NO_ADDITIONAL_ADDRESSES = 16399
    UPDATE_SA_ADDRESSES = 16400
    COOKIE2 = 16401
    MULTIPLE_AUTH_SUPPORTED = 16404
    REDIRECT_SUPPORTED = 16406
    IKEV2_FRAGMENTATION_SUPPORTED = 16430  # RFC 7383
    SIGNATURE_HASH_ALGORITHMS = 16431  # RFC 7427
    CHILDLESS_IKEV2_SUPPORTED = 16418  # RFC 6023
    USE_PPK = 16435  # RFC 8784
    PPK_IDENTITY = 16436
    NO_PPK_AUTH = 16437
    INTERMEDIATE_EXCHANGE_SUPPORTED = 16438  # RFC 9242
    ADDITIONAL_KEY_EXCHANGE = 16441  # RFC 9370


# IANA names of notify types pike does not act on (logs name them, not their numbers)
_OTHER_NOTIFIES = {
    40: "UNACCEPTABLE_ADDRESSES",
    41: "UNEXPECTED_NAT_DETECTED",
    45: "INVALID_GROUP_ID",
    46: "AUTHORIZATION_FAILED",
    47: "STATE_NOT_FOUND",
    16402: "NO_NATS_ALLOWED",
    16403: "AUTH_LIFETIME",  # RFC 4478
    16405: "ANOTHER_AUTH_FOLLOWS",  # RFC 4739
    16407: "REDIRECT",  # RFC 5685
    16408: "REDIRECTED_FROM",
    16419: "QUICK_CRASH_DETECTION",  # RFC 6290
    16432: "CLONE_IKE_SA_SUPPORTED",  # RFC 7791
    16433: "CLONE_IKE_SA",
}


def notify_name(notify_type: int) -> str:
    """An IKEv2 notify type's name (its number when IANA's list is news to us)."""
    try:
        return NotifyType(notify_type).name
    except ValueError:
        return _OTHER_NOTIFIES.get(notify_type, str(notify_type))


ERROR_NOTIFY_MAX = 16383  # RFC 7296 §3.10.1: types below 16384 are errors
