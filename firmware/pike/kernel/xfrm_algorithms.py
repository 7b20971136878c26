"""IKEv2 transform IDs -> Linux crypto API names and XFRM algorithm attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pike.crypto.ids import EncrId, IntegId
from pike.kernel.interface import KernelError


@dataclass(frozen=True, slots=True)
class Aead:
    name: str
    icv_bits: int
    salt_bytes: int


@dataclass(frozen=True, slots=True)
class Integ:
    name: str
    trunc_bits: int


# RFC 4106 / RFC 7634: KEYMAT holds key || 4-byte salt; the kernel takes both as the key.
AEADS: dict[int, Aead] = {
    EncrId.AES_GCM_16: Aead("rfc4106(gcm(aes))", 128, 4),
    EncrId.AES_GCM_12: Aead("rfc4106(gcm(aes))", 96, 4),
    EncrId.AES_GCM_8: Aead("rfc4106(gcm(aes))", 64, 4),
    EncrId.CHACHA20_POLY1305: Aead("rfc7539esp(chacha20,poly1305)", 128, 4),
}

CIPHERS: dict[int, str] = {
    EncrId.AES_CBC: "cbc(aes)",
    EncrId.AES_CTR: "rfc3686(ctr(aes))",
    EncrId.NULL: "ecb(cipher_null)",
}

INTEGS: dict[int, Integ] = {
    IntegId.HMAC_SHA2_256_128: Integ("hmac(sha256)", 128),
    IntegId.HMAC_SHA2_384_192: Integ("hmac(sha384)", 192),
    IntegId.HMAC_SHA2_512_256: Integ("hmac(sha512)", 256),
    IntegId.HMAC_SHA1_96: Integ("hmac(sha1)", 96),
}


def algorithm_attrs(
    encr_id: int,
    encr_key: bytes,
    integ_id: int,
    integ_key: bytes,
    encr_key_length: int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The XFRMA_ALG_* attributes for one SA. ``encr_key_length`` (bits, without salt), when
    given, must agree with the key: a mismatch is a bug on our side, caught before the kernel
    silently installs an SA the peer cannot decrypt."""
    aead = AEADS.get(encr_id)
    salt = aead.salt_bytes if aead is not None else 0
    if encr_key_length is not None and (len(encr_key) - salt) * 8 != encr_key_length:
        raise KernelError(
            f"ENCR transform {encr_id}: key of {len(encr_key)} bytes "
            f"does not match key length {encr_key_length} bits (+{salt} bytes salt)"
        )
    if aead is not None:
        if integ_id != IntegId.NONE:
            raise KernelError(f"AEAD cipher {EncrId(encr_id).name} with integrity {integ_id}")
        attr = {
            "alg_name": aead.name.encode(),
            "alg_key_len": len(encr_key) * 8,
            "alg_icv_len": aead.icv_bits,
            "alg_key": encr_key,
        }
        return [("XFRMA_ALG_AEAD", attr)]
    cipher = CIPHERS.get(encr_id)
    integ = INTEGS.get(integ_id)
    if cipher is None:
        raise KernelError(f"no kernel cipher for ENCR transform {encr_id}")
    if integ is None:
        raise KernelError(f"no kernel integrity algorithm for INTEG transform {integ_id}")
    crypt = {"alg_name": cipher.encode(), "alg_key_len": len(encr_key) * 8, "alg_key": encr_key}
    auth = {
        "alg_name": integ.name.encode(),
        "alg_key_len": len(integ_key) * 8,
        "alg_trunc_len": integ.trunc_bits,
        "alg_key": integ_key,
    }
    return [("XFRMA_ALG_CRYPT", crypt), ("XFRMA_ALG_AUTH_TRUNC", auth)]
