"""AlgorithmIdentifiers of RFC 7427 signatures: the DER that precedes the signature.

RFC 7427 §3 puts ``len(AlgorithmIdentifier) | AlgorithmIdentifier | signature`` in the AUTH
payload (method 14). Appendix A lists the encodings; RSASSA-PSS carries its parameters
(RFC 4055 §3.1), so a small DER reader/writer lives here rather than a general ASN.1 library.
"""

from __future__ import annotations

from dataclasses import dataclass

from pike.hsm.signer import HashName, SignatureScheme
from pike.sa.der import (
    CTX,
    INTEGER,
    NULL,
    OID,
    SEQUENCE,
    DerError,
    decode_oid,
    encode_oid,
    read,
    tlv,
)

# OIDs (RFC 8017 Appendix C, RFC 5758 §3.2, RFC 8410 §3, RFC 5754 §2)
OID_RSA_SHA1 = "1.2.840.113549.1.1.5"
OID_RSA_SHA256 = "1.2.840.113549.1.1.11"
OID_RSA_SHA384 = "1.2.840.113549.1.1.12"
OID_RSA_SHA512 = "1.2.840.113549.1.1.13"
OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
OID_MGF1 = "1.2.840.113549.1.1.8"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3"
OID_ECDSA_SHA512 = "1.2.840.10045.4.3.4"
OID_ED25519 = "1.3.101.112"
OID_SHA1 = "1.3.14.3.2.26"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_SHA384 = "2.16.840.1.101.3.4.2.2"
OID_SHA512 = "2.16.840.1.101.3.4.2.3"

_HASH_OIDS: dict[str, HashName] = {
    OID_SHA1: "sha1",
    OID_SHA256: "sha256",
    OID_SHA384: "sha384",
    OID_SHA512: "sha512",
}
_HASH_OID_OF = {v: k for k, v in _HASH_OIDS.items()}
_HASH_SIZE = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

# Signature OIDs whose parameters are NULL (RSA, RFC 8017) or absent (ECDSA, EdDSA).
_SIMPLE: dict[str, SignatureScheme] = {
    OID_RSA_SHA1: SignatureScheme.RSA_PKCS1_SHA1,
    OID_RSA_SHA256: SignatureScheme.RSA_PKCS1_SHA256,
    OID_RSA_SHA384: SignatureScheme.RSA_PKCS1_SHA384,
    OID_RSA_SHA512: SignatureScheme.RSA_PKCS1_SHA512,
    OID_ECDSA_SHA256: SignatureScheme.ECDSA_SHA256,
    OID_ECDSA_SHA384: SignatureScheme.ECDSA_SHA384,
    OID_ECDSA_SHA512: SignatureScheme.ECDSA_SHA512,
    OID_ED25519: SignatureScheme.ED25519,
}
_SIMPLE_OID_OF = {v: k for k, v in _SIMPLE.items()}
_PSS: dict[HashName, SignatureScheme] = {
    "sha256": SignatureScheme.RSA_PSS_SHA256,
    "sha384": SignatureScheme.RSA_PSS_SHA384,
    "sha512": SignatureScheme.RSA_PSS_SHA512,
}


class AlgorithmIdError(DerError):
    """The AlgorithmIdentifier is malformed or names an algorithm we do not verify."""


@dataclass(frozen=True, slots=True)
class SigAlg:
    """A parsed AlgorithmIdentifier: the scheme, and for PSS its MGF1 hash and salt."""

    scheme: SignatureScheme
    mgf_hash: HashName | None = None
    salt_length: int | None = None


# -- DER writing ---------------------------------------------------------------------------


def _hash_alg_id(name: HashName) -> bytes:
    # RFC 4055 §2.1: generate NULL parameters for SHA-2 (both forms are accepted on input).
    return tlv(SEQUENCE, encode_oid(_HASH_OID_OF[name]) + tlv(NULL, b""))


def encode_algorithm_id(scheme: SignatureScheme) -> bytes:
    """The DER AlgorithmIdentifier for ``scheme`` (RFC 7427 Appendix A)."""
    if scheme.family == "rsa-pss":
        h = scheme.hash_name
        assert h is not None
        params = tlv(
            SEQUENCE,
            tlv(CTX | 0, _hash_alg_id(h))
            + tlv(CTX | 1, tlv(SEQUENCE, encode_oid(OID_MGF1) + _hash_alg_id(h)))
            + tlv(CTX | 2, tlv(INTEGER, bytes((_HASH_SIZE[h],)))),
        )
        return tlv(SEQUENCE, encode_oid(OID_RSASSA_PSS) + params)
    oid = encode_oid(_SIMPLE_OID_OF[scheme])
    if scheme.family == "rsa-pkcs1":
        return tlv(SEQUENCE, oid + tlv(NULL, b""))
    return tlv(SEQUENCE, oid)


# -- DER reading ---------------------------------------------------------------------------


def _alg_id(data: bytes, pos: int, end: int, what: str) -> tuple[str, bytes | None, int]:
    """(OID, parameters TLV or None, end) of the AlgorithmIdentifier at ``pos``."""
    tag, start, stop = read(data, pos, end, what)
    if tag != SEQUENCE:
        raise AlgorithmIdError(f"{what}: not a SEQUENCE")
    tag, ostart, ostop = read(data, start, stop, what)
    if tag != OID:
        raise AlgorithmIdError(f"{what}: no OID")
    oid = decode_oid(data[ostart:ostop])
    params = data[ostop:stop] if ostop < stop else None
    return oid, params, stop


def _absent_or_null(params: bytes | None, what: str) -> None:
    if params not in (None, b"\x05\x00"):
        raise AlgorithmIdError(f"{what}: unexpected parameters")


def _hash_of(data: bytes, pos: int, end: int, what: str) -> HashName:
    oid, params, stop = _alg_id(data, pos, end, what)
    _absent_or_null(params, what)
    if stop != end or oid not in _HASH_OIDS:
        raise AlgorithmIdError(f"{what}: hash {oid} not supported")
    return _HASH_OIDS[oid]


def _pss_params(params: bytes | None) -> SigAlg:
    """RSASSA-PSS-params (RFC 4055 §3.1); absent fields take their (SHA-1) defaults."""
    if params is None:
        raise AlgorithmIdError("RSASSA-PSS without parameters (SHA-1) is not accepted")
    tag, pos, end = read(params, 0, len(params), "RSASSA-PSS-params")
    if tag != SEQUENCE or end != len(params):
        raise AlgorithmIdError("RSASSA-PSS-params: not one SEQUENCE")
    hash_name: HashName = "sha1"
    mgf_hash: HashName = "sha1"
    salt, trailer = 20, 1
    while pos < end:
        tag, start, stop = read(params, pos, end, "RSASSA-PSS-params")
        if tag == CTX | 0:
            hash_name = _hash_of(params, start, stop, "PSS hashAlgorithm")
        elif tag == CTX | 1:
            oid, inner, _ = _alg_id(params, start, stop, "PSS maskGenAlgorithm")
            if oid != OID_MGF1 or inner is None:
                raise AlgorithmIdError(f"PSS mask generation {oid} is not MGF1")
            mgf_hash = _hash_of(inner, 0, len(inner), "MGF1 hash")
        elif tag in (CTX | 2, CTX | 3):
            itag, istart, istop = read(params, start, stop, "PSS integer")
            if itag != INTEGER or not 0 < istop - istart <= 4:
                raise AlgorithmIdError("PSS saltLength/trailerField: not a small INTEGER")
            value = int.from_bytes(params[istart:istop], "big", signed=True)
            if tag == CTX | 2:
                salt = value
            else:
                trailer = value
        else:
            raise AlgorithmIdError(f"RSASSA-PSS-params: unexpected tag {tag:#x}")
        pos = stop
    if trailer != 1 or salt < 0:
        raise AlgorithmIdError(f"PSS trailerField {trailer} / saltLength {salt}")
    if hash_name not in _PSS or mgf_hash == "sha1":
        raise AlgorithmIdError(f"PSS with {hash_name}/MGF1-{mgf_hash}: SHA-1 is not accepted")
    return SigAlg(_PSS[hash_name], mgf_hash, salt)


def decode_algorithm_id(data: bytes) -> SigAlg:
    """The scheme an AlgorithmIdentifier (exactly ``data``) names; AlgorithmIdError if not."""
    oid, params, stop = _alg_id(data, 0, len(data), "AlgorithmIdentifier")
    if stop != len(data):
        raise AlgorithmIdError("AlgorithmIdentifier: trailing bytes")
    if oid == OID_RSASSA_PSS:
        return _pss_params(params)
    scheme = _SIMPLE.get(oid)
    if scheme is None:
        raise AlgorithmIdError(f"signature algorithm {oid} not supported")
    if scheme.family == "rsa-pkcs1":
        _absent_or_null(params, "RSA AlgorithmIdentifier")
    elif params is not None:
        raise AlgorithmIdError(f"{scheme.name}: parameters must be absent (RFC 5758, RFC 8410)")
    return SigAlg(scheme)
