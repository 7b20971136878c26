"""The IKEv2 pseudorandom function and prf+ (RFC 7296 §2.13), HMAC-SHA-2 (RFC 4868).

Implemented on CPython's OpenSSL binding (``_hashlib``, what ``hashlib`` and ``hmac`` are
built on): an HMAC object made and finished in two C calls takes ~0.70 µs for 130 bytes,
where the one-shot ``hmac.digest`` takes ~1.26 µs (OpenSSL 3's one-shot ``HMAC()`` looks
the digest up on every call), ``hmac.new(...).digest()`` ~1.10 µs and cryptography's HMAC
object ~1.25 µs (x86_64, Python 3.11, OpenSSL 3; a handshake makes 13). Without that
module (another Python), ``hmac.digest``.
"""

import hmac
from collections.abc import Callable
from typing import Protocol

from pike.crypto.errors import CryptoError
from pike.crypto.ids import PrfId


class _Hmac(Protocol):
    def digest(self) -> bytes: ...


# An HMAC object of (key, data, hash name): Prf calls it directly (13 times a handshake,
# no wrapper frame), hmac_digest is it finished.
_new_hmac: Callable[[bytes, bytes, str], _Hmac]
try:
    from _hashlib import hmac_new as _new_hmac
except ImportError:  # pragma: no cover - CPython builds hashlib on it
    _new_hmac = hmac.new


def hmac_digest(key: bytes, data: bytes, name: str) -> bytes:
    """HMAC of ``data`` under ``key`` with the hashlib hash ``name``."""
    return _new_hmac(key, data, name).digest()


PRF_PLUS_MAX_ITERATIONS = 255  # RFC 7296 §2.13: the counter octet runs 0x01..0xff
_COUNTERS = [bytes((n,)) for n in range(PRF_PLUS_MAX_ITERATIONS + 1)]

# PRF transform -> (hash name, output size); RFC 4868 §2.1.2: preferred key size = output.
# PRF_HMAC_SHA1 (RFC 2104) stays: RFC 8247 §2.3 keeps it as MUST-.
_PRF_HASHES: dict[int, tuple[str, int]] = {
    PrfId.HMAC_SHA1: ("sha1", 20),
    PrfId.HMAC_SHA2_256: ("sha256", 32),
    PrfId.HMAC_SHA2_384: ("sha384", 48),
    PrfId.HMAC_SHA2_512: ("sha512", 64),
}
# IKEv1 (RFC 2409 §4) makes the HMAC of the negotiated phase-1 hash its PRF: the same
# table. HMAC-MD5 is refused everywhere (RFC 8247 §2.3).


class Prf:
    """One negotiated PRF transform; stateless, so one instance serves any number of SAs."""

    __slots__ = ("_hash", "key_size", "output_size", "prf_id")

    def __init__(self, prf_id: int) -> None:
        try:
            self._hash, self.output_size = _PRF_HASHES[prf_id]
        except KeyError:
            raise CryptoError(f"PRF transform {prf_id} is not implemented") from None
        self.prf_id = prf_id
        self.key_size = self.output_size  # RFC 4868 §2.1.2: key length = output length

    @staticmethod
    def of(prf_id: int) -> "Prf":
        """The one instance for ``prf_id`` (stateless: IKE SAs share it rather than hold
        one each; at most one per implemented PRF)."""
        prf = _SHARED.get(prf_id)
        if prf is None:
            prf = _SHARED[prf_id] = Prf(prf_id)  # raises for one not implemented
        return prf

    def __repr__(self) -> str:
        return f"Prf({PrfId(self.prf_id).name})"

    @property
    def hash_name(self) -> str:
        """hashlib name of the underlying hash (IKEv1 also uses the bare hash)."""
        return self._hash

    def prf(self, key: bytes, data: bytes) -> bytes:
        """prf(key, data) = HMAC-SHA2(key, data)."""
        return _new_hmac(key, data, self._hash).digest()

    def plus(self, key: bytes, seed: bytes, length: int) -> bytes:
        """prf+(key, seed) truncated to ``length`` bytes (RFC 7296 §2.13).

        T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n); output T1 | T2 | ...
        """
        rounds = -(-length // self.output_size)
        if rounds > PRF_PLUS_MAX_ITERATIONS:
            raise CryptoError(
                f"prf+ cannot produce {length} bytes: more than "
                f"{PRF_PLUS_MAX_ITERATIONS} iterations of {self._hash}"
            )
        new, name = _new_hmac, self._hash
        out = block = new(key, seed + b"\x01", name).digest()
        for counter in _COUNTERS[2 : rounds + 1]:
            block = new(key, block + seed + counter, name).digest()
            out += block  # a few blocks (IKE keys: 5, CHILD_SA keys: 2): no list to join
        return out[:length]


_SHARED: dict[int, Prf] = {}  # Prf.of
