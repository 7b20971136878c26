"""The Signer interface: what IKE needs of a private key, wherever the key lives.

A Signer names its key type, hands out the public key (to match it against our certificate)
and signs bytes with a named scheme. The scheme fixes hash and padding, so a backend never
guesses: a PKCS#11 token maps it to a mechanism (CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS with
its params, CKM_ECDSA over a digest we compute, CKM_EDDSA), a file key to ``cryptography``.

Output format is fixed per family so callers never depend on the backend: RSA gives the
signature octets, ECDSA gives a DER ECDSA-Sig-Value (as X.509 and RFC 7427 carry it; a token
returning raw r||s converts with ``ecdsa_raw_to_der``), Ed25519 gives the 64 raw octets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, TypeAlias, cast, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

if TYPE_CHECKING:
    # the key types load with the first key (``key_type_of``, ``PublicKey`` at run time):
    # ``ec`` and ``rsa`` (with ``random``) are 0.6 MiB of a PSK gateway's idle RSS
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from pike.hsm.uri import Pkcs11Uri

    PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

KeyType = Literal["rsa", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519"]
HashName = Literal["sha1", "sha256", "sha384", "sha512"]


class SignerError(Exception):
    """The key could not sign (token absent, wrong PIN, unsupported scheme...).

    Callers fail closed: there is never a fallback key.
    """


@dataclass(frozen=True, slots=True)
class _Scheme:
    family: Literal["rsa-pkcs1", "rsa-pss", "ecdsa", "ed25519"]
    # None: the algorithm hashes by itself (Ed25519), or the data already is a digest
    # (the *_NULL schemes: IKEv1 signs its HASH_I/HASH_R, RFC 2409 §5.1).
    hash: HashName | None


class SignatureScheme(Enum):
    """Hash + padding of one signature. SHA-1 exists only for classic RSA AUTH (method 1)."""

    RSA_PKCS1_SHA1 = _Scheme("rsa-pkcs1", "sha1")
    RSA_PKCS1_SHA256 = _Scheme("rsa-pkcs1", "sha256")
    RSA_PKCS1_SHA384 = _Scheme("rsa-pkcs1", "sha384")
    RSA_PKCS1_SHA512 = _Scheme("rsa-pkcs1", "sha512")
    # PSS with MGF1 over the same hash and a salt as long as the hash (RFC 8017 default
    # choice, and what strongSwan sends and expects).
    RSA_PSS_SHA256 = _Scheme("rsa-pss", "sha256")
    RSA_PSS_SHA384 = _Scheme("rsa-pss", "sha384")
    RSA_PSS_SHA512 = _Scheme("rsa-pss", "sha512")
    ECDSA_SHA256 = _Scheme("ecdsa", "sha256")
    ECDSA_SHA384 = _Scheme("ecdsa", "sha384")
    ECDSA_SHA512 = _Scheme("ecdsa", "sha512")
    ED25519 = _Scheme("ed25519", None)
    # IKEv1 (RFC 2409 §5.1, RFC 4754 §8): the signed data is the prf output itself. RSA pads
    # it PKCS#1 v1.5 without a DigestInfo (strongSwan's SIGN_RSA_EMSA_PKCS1_NULL, PKCS#11
    # CKM_RSA_PKCS); ECDSA signs it as the digest (SIGN_ECDSA_WITH_NULL, CKM_ECDSA). The
    # data must then be 20, 32, 48 or 64 bytes (a SHA-1/SHA-2 output).
    RSA_PKCS1_NULL = _Scheme("rsa-pkcs1", None)
    ECDSA_NULL = _Scheme("ecdsa", None)

    @property
    def family(self) -> str:
        return self.value.family

    @property
    def hash_name(self) -> HashName | None:
        return self.value.hash

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hash_algorithm(self.hash_name)

    @property
    def prehashed(self) -> bool:
        """The data is signed as it is (already a digest): the *_NULL schemes."""
        return self.hash_name is None and self.family != "ed25519"

    def fits(self, key_type: KeyType) -> bool:
        """Whether a key of ``key_type`` can make this kind of signature."""
        if key_type == "rsa":
            return self.family in ("rsa-pkcs1", "rsa-pss")
        if key_type == "ed25519":
            return self.family == "ed25519"
        return self.family == "ecdsa"


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_algorithm(name: HashName | None) -> hashes.HashAlgorithm:
    if name is None:
        raise ValueError("this scheme has no separate hash")
    return _HASHES[name]()


_BY_SIZE: dict[int, HashName] = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}


def digest_hash(digest: bytes) -> hashes.HashAlgorithm:
    """The hash whose output ``digest`` stands for, by its length (for a *_NULL scheme:
    ECDSA over a given digest needs its size). ValueError for other lengths."""
    name = _BY_SIZE.get(len(digest))
    if name is None:
        raise ValueError(f"{len(digest)} bytes are no SHA-1/SHA-2 digest")
    return _HASHES[name]()


@runtime_checkable
class Signer(Protocol):
    """A private key that signs; the key material itself is never exposed.

    ``sign`` may block (a token round trip): the daemon calls it off the event loop once
    signing goes through the engine's ``SignRequest`` action (key custody issue).
    """

    @property
    def key_type(self) -> KeyType: ...

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes: ...


def key_type_of(key: object) -> KeyType | None:
    """The KeyType of a ``cryptography`` public or private key, None if unsupported."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ecdsa-p256"
        if isinstance(key.curve, ec.SECP384R1):
            return "ecdsa-p384"
        if isinstance(key.curve, ec.SECP521R1):
            return "ecdsa-p521"
    return None


def ecdsa_der_to_raw(der: bytes, size: int) -> bytes:
    """DER ECDSA-Sig-Value -> r||s, each ``size`` octets (RFC 4754 §7)."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def ecdsa_raw_to_der(raw: bytes) -> bytes:
    """r||s (two equal halves, as PKCS#11 CKM_ECDSA returns) -> DER ECDSA-Sig-Value.

    Put together from slices of ``raw`` rather than through integers and an ASN.1
    library: it runs after every token signature, and this way it costs a third as much
    (the same octets as ``encode_dss_signature``, the tests compare them)."""
    n = len(raw)
    if not n or n % 2:
        raise ValueError(f"raw ECDSA signature of odd length {len(raw)}")
    if n > 120:  # P-521 and beyond need long-form DER lengths: left to the library
        half = n // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
    r = raw[: n // 2].lstrip(b"\x00")
    s = raw[n // 2 :].lstrip(b"\x00")
    # A zero, or a high bit that would read as negative, takes a leading zero octet.
    if not r or r[0] > 0x7F:
        r = b"\x00" + r
    if not s or s[0] > 0x7F:
        s = b"\x00" + s
    # At most 2 * (2 + 61) = 126 octets inside: every length fits the short form.
    return bytes((0x30, len(r) + len(s) + 4, 0x02, len(r))) + r + bytes((0x02, len(s))) + s


class TokenState(Enum):
    UNKNOWN = "unknown"  # not tried yet
    READY = "ready"
    MODULE_MISSING = "module_missing"  # the .so cannot be loaded
    ABSENT = "absent"  # no such token, or it went away
    NO_KEY = "no_key"  # the token is there, the key is not
    PIN_MISSING = "pin_missing"  # no PIN file / variable
    PIN_INCORRECT = "pin_incorrect"  # the token refused the PIN: not presented again
    PIN_LOCKED = "pin_locked"  # never logged in to again by this process
    FAILED = "failed"  # anything else the token said


class TokenSigner(Signer, Protocol):
    """A ``Signer`` whose key is in a token (``pike.hsm.pkcs11.Pkcs11Signer``): it can be
    absent, locked or not looked at yet, so it has a state and is probed off the loop."""

    in_token: ClassVar[bool]  # True: see token_signer

    uri: Pkcs11Uri
    probed: bool  # a probe has answered

    @property
    def state(self) -> TokenState: ...
    @property
    def public_known(self) -> bool: ...

    def probe(self) -> TokenState: ...
    def reprobe(self) -> TokenState: ...


def token_signer(signer: Signer) -> TokenSigner | None:
    """``signer`` if its key is in a token. A class flag, not ``isinstance`` on a protocol:
    that would read ``key_type``, which asks the token (and may wait for its PIN)."""
    return cast(TokenSigner, signer) if getattr(type(signer), "in_token", False) else None


def __getattr__(name: str) -> object:
    """``PublicKey`` for a module that uses it at run time: made with its key types."""
    if name == "PublicKey":
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        return rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
