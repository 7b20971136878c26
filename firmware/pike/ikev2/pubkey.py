"""Signature AUTH payloads: RFC 7427 digital signatures and the classic methods.

The signed octets are those of RFC 7296 §2.15 (as for a PSK); only the AUTH data differs:

- method 14 (RFC 7427 §3): ``len | AlgorithmIdentifier | signature`` for RSA PKCS#1 v1.5
  and PSS with SHA-2, ECDSA (DER ECDSA-Sig-Value) and Ed25519 (RFC 8420);
- method 1 (RFC 7296 §3.8): RSA PKCS#1 v1.5 over SHA-1;
- methods 9/10/11 (RFC 4754): ECDSA P-256/P-384/P-521 with SHA-256/384/512, raw r||s.

We verify all of them. We sign with method 14 when the peer announced
SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), else with the classic method of our key type.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from pike.hsm.signer import (
    KeyType,
    SignatureScheme,
    Signer,
    ecdsa_der_to_raw,
    ecdsa_raw_to_der,
    hash_algorithm,
)
from pike.ikev2.sigalg import decode_algorithm_id, encode_algorithm_id
from pike.sa.der import DerError
from pike.wire.constants import AuthMethod

if TYPE_CHECKING:
    # with dsa, ed448, mldsa: 0.1 MiB a PSK-only piked does not load
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes


class HashAlg(IntEnum):
    """IKEv2 Hash Algorithms registry (RFC 7427 §7, RFC 8420 §2)."""

    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5


# What we announce and accept in method 14: SHA-1 is out (RFC 8247 §3.2).
OUR_HASHES: tuple[HashAlg, ...] = (
    HashAlg.SHA2_256,
    HashAlg.SHA2_384,
    HashAlg.SHA2_512,
    HashAlg.IDENTITY,
)
_HASH_ID = {"sha256": HashAlg.SHA2_256, "sha384": HashAlg.SHA2_384, "sha512": HashAlg.SHA2_512}

# Classic ECDSA methods (RFC 4754 §3): curve (its class in ``ec``), hash, size of r and of
# s. The key types (``ec``, ``rsa``: 0.6 MiB of idle RSS) load with the first signature.
_CLASSIC_EC: dict[int, tuple[str, SignatureScheme, int]] = {
    AuthMethod.ECDSA_SHA256_P256: ("SECP256R1", SignatureScheme.ECDSA_SHA256, 32),
    AuthMethod.ECDSA_SHA384_P384: ("SECP384R1", SignatureScheme.ECDSA_SHA384, 48),
    AuthMethod.ECDSA_SHA512_P521: ("SECP521R1", SignatureScheme.ECDSA_SHA512, 66),
}
_CLASSIC_OF_KEY: dict[KeyType, int] = {
    "ecdsa-p256": AuthMethod.ECDSA_SHA256_P256,
    "ecdsa-p384": AuthMethod.ECDSA_SHA384_P384,
    "ecdsa-p521": AuthMethod.ECDSA_SHA512_P521,
}
# The hash of each curve's classic method, also our first choice for method 14 (RFC 4754 §3).
_CURVE_HASH: dict[KeyType, SignatureScheme] = {
    kind: _CLASSIC_EC[method][1] for kind, method in _CLASSIC_OF_KEY.items()
}
SIGNATURE_METHODS = frozenset({AuthMethod.RSA_SIG, AuthMethod.DIGITAL_SIGNATURE, *_CLASSIC_EC})


class SignatureError(Exception):
    """A peer's AUTH does not verify or cannot be understood (the text says which)."""


class NoUsableScheme(Exception):
    """We cannot sign in a way the peer accepts (a local configuration problem)."""


def encode_hash_algorithms(algs: Collection[int] = OUR_HASHES) -> bytes:
    """SIGNATURE_HASH_ALGORITHMS notify data: 16-bit identifiers (RFC 7427 §4)."""
    return b"".join(int(a).to_bytes(2, "big") for a in algs)


def decode_hash_algorithms(data: bytes) -> frozenset[int]:
    """The peer's hash list; an odd trailing byte is ignored (we only look for values)."""
    return frozenset(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2))


# -- signing -------------------------------------------------------------------------------


def choose_scheme(
    kind: KeyType, peer_hashes: frozenset[int] | None, rsa_pss: bool = False
) -> tuple[int, SignatureScheme]:
    """(AUTH method, scheme) for our key of type ``kind``: method 14 when the peer
    announced hashes.

    ECDSA takes the hash of its curve, RSA SHA-256 first (what strongSwan prefers),
    Ed25519 needs the peer to accept "Identity" (RFC 8420).
    """
    if peer_hashes is None:
        if kind == "rsa":
            return AuthMethod.RSA_SIG, SignatureScheme.RSA_PKCS1_SHA1
        if kind in _CLASSIC_OF_KEY:
            return _CLASSIC_OF_KEY[kind], _CURVE_HASH[kind]
        raise NoUsableScheme(
            "an Ed25519 key needs RFC 7427 signatures, but the peer sent no "
            "SIGNATURE_HASH_ALGORITHMS"
        )
    if kind == "ed25519":
        candidates = [SignatureScheme.ED25519] if HashAlg.IDENTITY in peer_hashes else []
    elif kind == "rsa":
        pss, pkcs1 = (
            [SignatureScheme.RSA_PSS_SHA256, SignatureScheme.RSA_PSS_SHA384],
            [SignatureScheme.RSA_PKCS1_SHA256, SignatureScheme.RSA_PKCS1_SHA384],
        )
        candidates = (pss if rsa_pss else pkcs1) + [
            SignatureScheme.RSA_PSS_SHA512 if rsa_pss else SignatureScheme.RSA_PKCS1_SHA512
        ]
    else:
        first = _CURVE_HASH[kind]
        candidates = [first] + [
            s
            for s in (
                SignatureScheme.ECDSA_SHA256,
                SignatureScheme.ECDSA_SHA384,
                SignatureScheme.ECDSA_SHA512,
            )
            if s is not first
        ]
    for scheme in candidates:
        if scheme.hash_name is None or _HASH_ID[scheme.hash_name] in peer_hashes:
            return AuthMethod.DIGITAL_SIGNATURE, scheme
    raise NoUsableScheme(
        f"the peer's hash algorithms {sorted(peer_hashes)} fit no signature of a {kind} key"
    )


def auth_data(method: int, scheme: SignatureScheme, sig: bytes) -> bytes:
    """AUTH payload data of ``method`` around a signature in the Signer format (DER for
    ECDSA). Raises ValueError for an ECDSA signature that is not DER."""
    if method == AuthMethod.DIGITAL_SIGNATURE:
        alg = encode_algorithm_id(scheme)
        return bytes((len(alg),)) + alg + sig
    if method in _CLASSIC_EC:
        return ecdsa_der_to_raw(sig, _CLASSIC_EC[method][2])
    return sig


def sign_auth(
    signer: Signer, octets: bytes, peer_hashes: frozenset[int] | None, rsa_pss: bool = False
) -> tuple[int, bytes]:
    """(AUTH method, AUTH data) signing ``octets`` (RFC 7296 §2.15) with ``signer``, in one
    blocking call (tools and tests; the engine asks by ``SignRequest`` instead)."""
    method, scheme = choose_scheme(signer.key_type, peer_hashes, rsa_pss)
    return method, auth_data(method, scheme, signer.sign(octets, scheme))


# -- verification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    """How a peer signed, for the log line (strongSwan names the scheme the same way)."""

    method: int
    scheme: SignatureScheme


def verify_auth(
    method: int, data: bytes, key: CertificatePublicKeyTypes, octets: bytes
) -> Verified:
    """Check the peer's AUTH data over ``octets`` with its certificate's ``key``.

    Raises SignatureError naming what failed.
    """
    # key types, RSA paddings: loaded with the first certificate's signature, not by a
    # PSK gateway
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    if method == AuthMethod.DIGITAL_SIGNATURE:
        return _verify_rfc7427(data, key, octets)
    if method == AuthMethod.RSA_SIG:
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError("AUTH method 1 (RSA) but the certificate key is not RSA")
        _check(key.verify, data, octets, padding.PKCS1v15(), hashes.SHA1())
        return Verified(method, SignatureScheme.RSA_PKCS1_SHA1)
    classic = _CLASSIC_EC.get(method)
    if classic is None:
        raise SignatureError(f"AUTH method {method} is not a signature method we accept")
    curve_class, scheme, size = classic
    curve: type[ec.EllipticCurve] = getattr(ec, curve_class)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
        raise SignatureError(f"AUTH method {method} needs an ECDSA {curve.name} key")
    if len(data) != 2 * size:
        raise SignatureError(f"AUTH method {method}: {len(data)} bytes, expected {2 * size}")
    der = ecdsa_raw_to_der(data)
    _check(key.verify, der, octets, ec.ECDSA(scheme.hash_algorithm()))
    return Verified(method, scheme)


def _verify_rfc7427(data: bytes, key: CertificatePublicKeyTypes, octets: bytes) -> Verified:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # as above

    if not data or len(data) < 1 + data[0]:
        raise SignatureError("RFC 7427 AUTH data shorter than its AlgorithmIdentifier")
    try:
        alg = decode_algorithm_id(data[1 : 1 + data[0]])
    except DerError as exc:
        raise SignatureError(f"RFC 7427 AUTH: {exc}") from None
    scheme, sig = alg.scheme, data[1 + data[0] :]
    if scheme.hash_name == "sha1":
        raise SignatureError("RFC 7427 AUTH with SHA-1 is not accepted (RFC 8247)")
    if scheme.family == "ed25519":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise SignatureError("Ed25519 signature but the certificate key is not Ed25519")
        _check(key.verify, sig, octets)
    elif scheme.family == "ecdsa":
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureError(f"{scheme.name} signature but the certificate key is not ECDSA")
        _check(key.verify, sig, octets, ec.ECDSA(scheme.hash_algorithm()))
    else:
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError(f"{scheme.name} signature but the certificate key is not RSA")
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        if scheme.family == "rsa-pss":
            assert alg.mgf_hash is not None and alg.salt_length is not None
            pad = padding.PSS(
                mgf=padding.MGF1(hash_algorithm(alg.mgf_hash)), salt_length=alg.salt_length
            )
        _check(key.verify, sig, octets, pad, scheme.hash_algorithm())
    return Verified(AuthMethod.DIGITAL_SIGNATURE, scheme)


def _check(verify: Callable[..., None], *args: object) -> None:
    try:
        verify(*args)
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None
    except ValueError as exc:  # a DER signature cryptography cannot parse, and the like
        raise SignatureError(f"signature is malformed: {exc}") from None
