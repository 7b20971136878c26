"""Diffie-Hellman key exchange for IKEv2 (RFC 7296 §3.4) over the groups pike offers.

Wire formats: MODP public values and secrets are big-endian, zero-padded to the prime's
length (RFC 7296 §3.4); ECP public values are x || y, each padded to the field size,
without the SEC1 0x04 prefix, and the secret is the x coordinate (RFC 5903 §7);
Curve25519/Curve448 values are the raw RFC 7748 strings (RFC 8031 §2).

ML-KEM (FIPS 203) is a key encapsulation, not a Diffie-Hellman: the initiator sends its
encapsulation key, the responder answers with a ciphertext that only the initiator can
open (draft-ietf-ipsecme-ikev2-mlkem §2). So a ``KeyExchange`` knows its role: the
responder's is made with ``responder=True``, and its public value (the ciphertext) exists
only after ``shared_secret`` has seen the initiator's key.

Private keys come from the injected ``random`` so that tests are reproducible (ML-KEM key
pairs from a 64-octet seed; its encapsulation draws from the operating system).

MODP arithmetic runs in OpenSSL through cryptography's ``dh`` module: measured 1.2 ms
per 3072-bit exponentiation with a 384-bit exponent against 10.8 ms for Python's ``pow``.
cryptography marks finite-field DH deprecated, so the module's warning is silenced
locally and ``pow`` takes over if ``dh`` ever disappears.
"""

import warnings
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import mlkem, x448, x25519

from pike.crypto.errors import CryptoError, KeyExchangeError, ProposalError
from pike.crypto.ids import GroupId
from pike.crypto.modp_groups import MODP_GENERATOR, MODP_PRIMES
from pike.crypto.vocabulary import refused_group_message

try:  # cryptography deprecates FFDH; keep working with pow() once it is gone
    from cryptography.hazmat.primitives.asymmetric import dh as _dh
except ImportError:  # pragma: no cover - depends on the installed cryptography
    _dh = None  # type: ignore[assignment]

# ECP groups: curve class in ``ec``, field size in bytes (RFC 5903 §3.1-3.3). ``ec`` (with
# cryptography's OID tables, 0.4 MiB of idle RSS) is imported by the first ECP exchange.
_ECP: dict[int, tuple[str, int]] = {
    GroupId.ECP_256: ("SECP256R1", 32),
    GroupId.ECP_384: ("SECP384R1", 48),
    GroupId.ECP_521: ("SECP521R1", 66),
}
# Group orders n, for reducing random bytes to a scalar (SEC 2 §2.4.2, 2.5.1, 2.6.1)
_ECP_ORDER: dict[int, int] = {
    GroupId.ECP_256: int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16),
    GroupId.ECP_384: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    GroupId.ECP_521: int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA"
        "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}
_ECP_EXTRA_BYTES = 8  # 64 extra random bits make the mod-n bias negligible (FIPS 186-5 A.2.1)

_X_SIZES: dict[int, int] = {GroupId.CURVE25519: 32, GroupId.CURVE448: 56}  # RFC 7748 §5
_CURVE25519 = GroupId.CURVE25519  # per handshake: an Enum member lookup is slow on 3.11
_X25519_SIZE = _X_SIZES[_CURVE25519]

# Private exponent length of MODP groups: at least twice the group's security strength
# (RFC 3526 §8, NIST SP 800-56A rev 3 §5.6.1.1.1): 2048 -> 112, 3072 -> 128,
# 4096 -> 152, 6144 -> 176, 8192 -> 200 bits of strength
_MODP_EXPONENT_BYTES = {14: 32, 15: 48, 16: 64, 17: 64, 18: 64}

# ML-KEM: key class, encapsulation key and ciphertext sizes (FIPS 203 §8, table 3)
_MLKEM: dict[int, tuple[Any, int, int]] = {
    GroupId.ML_KEM_768: (mlkem.MLKEM768PrivateKey, 1184, 1088),
    GroupId.ML_KEM_1024: (mlkem.MLKEM1024PrivateKey, 1568, 1568),
}
_MLKEM_PUBLIC: dict[int, Any] = {
    GroupId.ML_KEM_768: mlkem.MLKEM768PublicKey,
    GroupId.ML_KEM_1024: mlkem.MLKEM1024PublicKey,
}
_MLKEM_SEED = 64  # d || z (FIPS 203 §7.1)

SUPPORTED_GROUPS: tuple[int, ...] = (*MODP_PRIMES, *_ECP, *_X_SIZES, *_MLKEM)


def is_kem(group: int) -> bool:
    """Whether ``group`` is a key encapsulation (ML-KEM) rather than a Diffie-Hellman."""
    return group in _MLKEM


def check_group(group: int) -> None:
    """Accept an offered group; ProposalError if refused, CryptoError if unknown."""
    message = refused_group_message(group)
    if message is not None:
        raise ProposalError(message)
    if group not in SUPPORTED_GROUPS:
        raise CryptoError(f"key exchange group {group} is not implemented")


def public_length(group: int, *, from_responder: bool = False) -> int:
    """Length in bytes of a KE payload's public value for ``group`` (for ML-KEM: the
    initiator's encapsulation key, or with ``from_responder`` the ciphertext)."""
    check_group(group)
    if group in _MLKEM:
        return _MLKEM[group][2 if from_responder else 1]
    if group in MODP_PRIMES:
        return _modp_length(MODP_PRIMES[group])
    if group in _ECP:
        return 2 * _ECP[group][1]
    return _X_SIZES[group]


def _modp_length(prime: int) -> int:
    return (prime.bit_length() + 7) // 8


class _ModpOpenSsl:
    """Cached cryptography DH objects of one MODP group."""

    def __init__(self, prime: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.numbers = _dh.DHParameterNumbers(prime, MODP_GENERATOR)
            # exchanging with the public value g yields g^x: our public value
            self.generator = _dh.DHPublicNumbers(MODP_GENERATOR, self.numbers).public_key()

    def private_key(self, x: int) -> Any:
        # The public half is not checked against x; g^x is computed by exchange() below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _dh.DHPrivateNumbers(
                x, _dh.DHPublicNumbers(MODP_GENERATOR, self.numbers)
            ).private_key()

    def power(self, private: Any, base: int) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = _dh.DHPublicNumbers(base, self.numbers).public_key()
            result: bytes = private.exchange(peer)
            return result


_openssl_modp: dict[int, _ModpOpenSsl] = {}


def _modp_backend(group: int) -> _ModpOpenSsl | None:
    if _dh is None:  # pragma: no cover
        return None
    backend = _openssl_modp.get(group)
    if backend is None:
        try:
            backend = _openssl_modp[group] = _ModpOpenSsl(MODP_PRIMES[group])
        except (UnsupportedAlgorithm, ValueError):  # pragma: no cover - FIPS builds etc.
            return None
    return backend


class KeyExchange:
    """Our half of one Diffie-Hellman exchange: a private key and its public value."""

    def __init__(
        self,
        group: int,
        random: Callable[[int], bytes],
        *,
        use_openssl: bool = True,
        responder: bool = False,
    ):
        self.group = group
        self.responder = responder
        if group == _CURVE25519:  # the usual group (offered, never refused): no checks
            self._private: Any = x25519.X25519PrivateKey.from_private_bytes(random(32))
            self._public = self._private.public_key().public_bytes_raw()
            return
        check_group(group)
        self._private = None
        self._public = b""
        if group in _MLKEM:
            if not responder:  # the responder only encapsulates to the initiator's key
                self._private = _MLKEM[group][0].from_seed_bytes(random(_MLKEM_SEED))
                self._public = self._private.public_key().public_bytes_raw()
        elif group in MODP_PRIMES:
            self._prime = MODP_PRIMES[group]
            self._length = _modp_length(self._prime)
            x = int.from_bytes(random(_MODP_EXPONENT_BYTES[group]), "big")
            self._x = max(x, 2)  # 0 and 1 would give a constant public value
            self._modp = _modp_backend(group) if use_openssl else None
            if self._modp is not None:
                self._private = self._modp.private_key(self._x)
                self._public = self._modp.power(self._private, MODP_GENERATOR)
            else:
                self._public = self._pow(MODP_GENERATOR)
        elif group in _ECP:
            from cryptography.hazmat.primitives.asymmetric import ec

            curve, self._length = _ECP[group]
            n = _ECP_ORDER[group]
            d = int.from_bytes(random(self._length + _ECP_EXTRA_BYTES), "big") % (n - 1) + 1
            self._curve: ec.EllipticCurve = getattr(ec, curve)()
            self._private = ec.derive_private_key(d, self._curve)
            # x | y without SEC1's 0x04 prefix (RFC 5903 §7); from the numbers, as
            # cryptography's serialization package costs piked 0.9 MiB (idle RSS)
            nums = self._private.public_key().public_numbers()
            self._public = nums.x.to_bytes(self._length, "big") + nums.y.to_bytes(
                self._length, "big"
            )
        else:
            self._private = x448.X448PrivateKey.from_private_bytes(random(56))
            self._public = self._private.public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return f"KeyExchange(group={self.group})"

    def public_bytes(self) -> bytes:
        """Our public value in KE payload wire format."""
        if not self._public:  # an ML-KEM responder before it saw the initiator's key
            raise CryptoError(f"group {self.group}: no ciphertext before the peer's key")
        return self._public

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^ir (or the ML-KEM shared secret) from the peer's KE payload data;
        KeyExchangeError if it is invalid."""
        if self.group == _CURVE25519:  # the usual group: its size known, no lookups
            if len(peer_public) != _X25519_SIZE:
                raise KeyExchangeError(
                    f"group {self.group} public value must be {_X25519_SIZE} bytes, "
                    f"got {len(peer_public)}"
                )
            return self._x_shared(peer_public)
        expected = public_length(self.group, from_responder=not self.responder)
        if len(peer_public) != expected:
            raise KeyExchangeError(
                f"group {self.group} public value must be {expected} bytes, got {len(peer_public)}"
            )
        if self.group in _MLKEM:
            return self._kem_shared(peer_public)
        if self.group in MODP_PRIMES:
            return self._modp_shared(peer_public)
        if self.group in _ECP:
            return self._ecp_shared(peer_public)
        return self._x_shared(peer_public)

    def _kem_shared(self, peer_public: bytes) -> bytes:
        try:
            if self.responder:
                key = _MLKEM_PUBLIC[self.group].from_public_bytes(peer_public)
                secret, self._public = key.encapsulate()
            else:
                # Implicit rejection (FIPS 203 §6.3): a forged ciphertext gives a random
                # secret, so a tampered exchange shows only as a failed AUTH.
                secret = self._private.decapsulate(peer_public)
        except ValueError as exc:  # the encapsulation key's modulus check (FIPS 203 §7.2)
            raise KeyExchangeError(f"group {self.group} public value is invalid") from exc
        result: bytes = secret
        return result

    def _pow(self, base: int) -> bytes:
        return pow(base, self._x, self._prime).to_bytes(self._length, "big")

    def _modp_shared(self, peer_public: bytes) -> bytes:
        y = int.from_bytes(peer_public, "big")
        # 1 and p-1 (and 0, p..) would force a known secret (RFC 6989 §2.1)
        if y <= 1 or y >= self._prime - 1:
            raise KeyExchangeError(f"MODP group {self.group} public value out of range")
        if self._modp is None:
            return self._pow(y)
        try:
            return self._modp.power(self._private, y)
        except ValueError as exc:  # OpenSSL's own public key checks
            raise KeyExchangeError(f"invalid MODP group {self.group} public value") from exc

    def _ecp_shared(self, peer_public: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, b"\x04" + peer_public)
            secret: bytes = self._private.exchange(ec.ECDH(), peer)
        except ValueError as exc:  # not on the curve (RFC 6989 §2.3 asks us to check)
            raise KeyExchangeError(f"ECP group {self.group} point is not on the curve") from exc
        return secret  # already the x coordinate padded to the field size

    def _x_shared(self, peer_public: bytes) -> bytes:
        try:
            if self.group == _CURVE25519:
                peer: Any = x25519.X25519PublicKey.from_public_bytes(peer_public)
            else:
                peer = x448.X448PublicKey.from_public_bytes(peer_public)
            secret: bytes = self._private.exchange(peer)
        except ValueError as exc:  # cryptography refuses an all-zero result
            raise KeyExchangeError(f"group {self.group} public value is invalid") from exc
        if not any(secret):  # RFC 8031 §2.3: MUST check for the all-zero value
            raise KeyExchangeError(f"group {self.group} shared secret is all zeros")
        return secret
