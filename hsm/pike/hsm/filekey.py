"""A private key in a PEM file: for development and tests only.

The production gateway keeps its key in a token (PKCS#11 or TPM); a file key can be copied
off the device, so loading one logs a warning (once per key file, at load).
"""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from pike.hsm.signer import (
    KeyType,
    PublicKey,
    SignatureScheme,
    SignerError,
    digest_hash,
    key_type_of,
)

log = logging.getLogger("pike.hsm")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class FileKeySigner:
    """A Signer over an unencrypted (or ``password``-protected) PEM private key."""

    def __init__(self, path: str, password: bytes | None = None) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise SignerError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(data, password)
        except TypeError:  # encrypted, and no password given
            raise SignerError(f"{path} is not a usable PEM private key: encrypted") from None
        except ValueError:
            # The library's text (ASN.1 details) helps nobody: say what the file must be.
            raise SignerError(
                f"{path} is not a usable PEM private key (PKCS#8, SEC1 or PKCS#1, unencrypted)"
            ) from None
        kind = key_type_of(key)
        if kind is None or not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise SignerError(
                f"{path}: unsupported key (RSA, ECDSA P-256/P-384/P-521 or Ed25519 only)"
            )
        self._key: PrivateKey = key
        self._type: KeyType = kind
        log.warning(
            "private key %s is a file, not a token: for development only "
            "(use a pkcs11: URI on a gateway)",
            path,
        )

    def __repr__(self) -> str:
        return f"FileKeySigner({self.path!r}, {self._type})"

    @property
    def key_type(self) -> KeyType:
        return self._type

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        if not scheme.fits(self._type):
            raise SignerError(f"{scheme.name} does not fit a {self._type} key ({self.path})")
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if scheme.prehashed:
            return _sign_digest(key, data, self.path)
        digest = scheme.hash_algorithm()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(digest))
        return key.sign(data, rsa_padding(scheme), digest)


def _sign_digest(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes, path: str
) -> bytes:
    """RSA_PKCS1_NULL / ECDSA_NULL: ``data`` is signed as the digest it is."""
    try:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(utils.Prehashed(digest_hash(data))))
        return key.sign(data, padding.PKCS1v15(), utils.NoDigestInfo())
    except (ValueError, TypeError) as exc:  # a data length no digest has, a too small key
        raise SignerError(f"{path}: cannot sign a {len(data)}-byte digest: {exc}") from None


def rsa_padding(scheme: SignatureScheme) -> padding.AsymmetricPadding:
    """The RSA padding a scheme names; PSS salt = hash length (see SignatureScheme)."""
    if scheme.family == "rsa-pss":
        digest: hashes.HashAlgorithm = scheme.hash_algorithm()
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()
