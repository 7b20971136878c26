"""IKEv2 key derivation: SKEYSEED, the IKE SA keys and Child SA KEYMAT (RFC 7296 §2.14,
§2.17, §2.18).

All PRFs pike implements are HMACs with variable-length keys, so the nonces are used
whole (the half-nonce rule of §2.14 applies only to fixed-key PRFs such as AES-XCBC).
"""

import functools
import itertools
from dataclasses import fields
from typing import TYPE_CHECKING

from pike.crypto.errors import CryptoError
from pike.crypto.prf import Prf
from pike.frozen import frozen

IKE_SPI_SIZE = 8  # RFC 7296 §3.1: IKE SA SPIs are 8 octets


if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _hidden_repr(obj: "DataclassInstance") -> str:
    # Keys never reach logs: show only their lengths
    parts = ", ".join(f"{f.name}=<{len(getattr(obj, f.name))} bytes>" for f in fields(obj))
    return f"{type(obj).__name__}({parts})"


@frozen(repr=False)
class IkeKeys:
    """The seven IKE SA keys of RFC 7296 §2.14, "i" = initiator's, "r" = responder's."""

    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes

    def __repr__(self) -> str:
        return _hidden_repr(self)


@frozen(repr=False)
class ChildKeys:
    """Child SA keys (RFC 7296 §2.17); "_i" protects initiator-to-responder traffic."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return _hidden_repr(self)


def skeyseed(prf: Prf, ni: bytes, nr: bytes, shared: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir)  (RFC 7296 §2.14)."""
    return prf.prf(ni + nr, shared)


def rekey_skeyseed(
    prf: Prf, old_sk_d: bytes, shared: bytes, ni: bytes, nr: bytes, extra: bytes = b""
) -> bytes:
    """SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)  (RFC 7296 §2.18), with the
    additional key exchanges' SK(1) | ... | SK(n) as ``extra`` (RFC 9370 §2.2.4)."""
    return prf.prf(old_sk_d, shared + ni + nr + extra)


def derive_ike_keys(
    prf: Prf,
    skeyseed: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    encr_key_size: int,
    integ_key_size: int,
) -> IkeKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)  (RFC 7296 §2.14).

    Sizes are in bytes; ``encr_key_size`` includes any AEAD salt, ``integ_key_size`` is 0
    for AEAD. SK_d, SK_pi and SK_pr take the PRF's preferred key size.
    """
    if len(spi_i) != IKE_SPI_SIZE or len(spi_r) != IKE_SPI_SIZE:
        raise CryptoError(f"IKE SPIs are {IKE_SPI_SIZE} bytes, got {len(spi_i)}/{len(spi_r)}")
    p, a, e = prf.key_size, integ_key_size, encr_key_size
    length, parts = _layout((p, a, a, e, e, p, p))
    km = prf.plus(skeyseed, ni + nr + spi_i + spi_r, length)
    return IkeKeys(*map(km.__getitem__, parts))


@functools.lru_cache(maxsize=64)  # keyed on a few sizes: the few transforms configured
def _layout(sizes: tuple[int, ...]) -> tuple[int, tuple[slice, ...]]:
    """Keys of these sizes one after the other: the KEYMAT's length and where each lies."""
    ends = tuple(itertools.accumulate(sizes))
    return ends[-1], tuple(map(slice, (0, *ends[:-1]), ends))


def derive_child_keys(
    prf: Prf,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    shared: bytes | None,
    encr_key_size: int,
    integ_key_size: int,
    extra: bytes = b"",
) -> ChildKeys:
    """KEYMAT = prf+ (SK_d, [g^ir (new)] | Ni | Nr)  (RFC 7296 §2.17), followed by the
    additional key exchanges' SK(1) | ... | SK(n) as ``extra`` (RFC 9370 §2.2.4).

    Initiator-to-responder keys come first; in each direction the encryption key
    precedes the integrity key.
    """
    length, parts = _layout((encr_key_size, integ_key_size, encr_key_size, integ_key_size))
    km = prf.plus(sk_d, (shared or b"") + ni + nr + extra, length)
    return ChildKeys(*map(km.__getitem__, parts))
