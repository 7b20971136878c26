"""Key, IV and ICV sizes of the transforms pike implements.

Encryption key sizes include the salt that AEAD transforms take from the keying
material (RFC 5282 §7.1 / RFC 4106 §8.1 for AES-GCM, RFC 7634 §2 for ChaCha20-Poly1305).
"""

import functools

from pike.crypto.errors import CryptoError
from pike.crypto.ids import EncrId, IntegId

AEAD_SALT_SIZE = 4  # RFC 5282 §7.1, RFC 7634 §2: 4-octet salt after the key
AEAD_IV_SIZE = 8  # RFC 5282 §3.1, RFC 7634 §2: 8-octet explicit IV
AEAD_ICV_SIZE = 16  # RFC 5282 §3 (GCM with 16-octet ICV), RFC 7634 §2 (Poly1305 tag)
AES_BLOCK_SIZE = 16  # RFC 3602 §2.4: IV and padding unit of AES-CBC

AES_KEY_BITS = (128, 192, 256)
CHACHA20_KEY_SIZE = 32  # RFC 7634 §2: fixed 256-bit key, no Key Length attribute

# combined-mode ciphers (no separate integrity transform)
AEAD_IDS = frozenset(
    {
        EncrId.AES_CCM_8,
        EncrId.AES_CCM_12,
        EncrId.AES_CCM_16,
        EncrId.AES_GCM_8,
        EncrId.AES_GCM_12,
        EncrId.AES_GCM_16,
        EncrId.CHACHA20_POLY1305,
    }
)

# integrity transform -> (hash name for hmac.digest, key size, truncated ICV size)
# RFC 4868 §2.1.1 / §2.6: key = full hash output, ICV = half of it; RFC 2404: HMAC-SHA-1-96
INTEG_PARAMS: dict[int, tuple[str, int, int]] = {
    IntegId.HMAC_SHA1_96: ("sha1", 20, 12),
    IntegId.HMAC_SHA2_256_128: ("sha256", 32, 16),
    IntegId.HMAC_SHA2_384_192: ("sha384", 48, 24),
    IntegId.HMAC_SHA2_512_256: ("sha512", 64, 32),
}


# every key derivation asks: an Enum member lookup is slow on Python 3.11
_AES_CBC, _AES_GCM_16 = EncrId.AES_CBC, EncrId.AES_GCM_16
_CHACHA20, _INTEG_NONE = EncrId.CHACHA20_POLY1305, IntegId.NONE


def is_aead(encr_id: int) -> bool:
    """True for combined-mode ciphers, which take no separate integrity transform."""
    return encr_id in AEAD_IDS


def _aes_key_bytes(encr_id: int, key_length_bits: int | None) -> int:
    if key_length_bits not in AES_KEY_BITS:
        raise CryptoError(
            f"{_encr_name(encr_id)} needs a key length of 128, 192 or 256 bits, "
            f"not {key_length_bits}"
        )
    return key_length_bits // 8


def _encr_name(encr_id: int) -> str:
    try:
        return EncrId(encr_id).name
    except ValueError:
        return f"encryption transform {encr_id}"


@functools.lru_cache(maxsize=64)  # four times a handshake, for the few we configure
# Both asked several times per IKE SA and CHILD_SA (key derivation, each SkCipher) with
# the same few transform IDs: cached (bounded, keyed on ints; a refusal is not cached).
@functools.lru_cache(maxsize=64)
def encr_key_size(encr_id: int, key_length_bits: int | None) -> int:
    """Bytes of keying material one direction of ``encr_id`` takes, salt included."""
    if encr_id == _AES_CBC:
        return _aes_key_bytes(encr_id, key_length_bits)
    if encr_id == _AES_GCM_16:
        return _aes_key_bytes(encr_id, key_length_bits) + AEAD_SALT_SIZE
    if encr_id == _CHACHA20:
        if key_length_bits not in (None, 256):
            raise CryptoError(f"CHACHA20_POLY1305 has no key length {key_length_bits}")
        return CHACHA20_KEY_SIZE + AEAD_SALT_SIZE
    raise CryptoError(f"{_encr_name(encr_id)} is not implemented")


@functools.lru_cache(maxsize=64)
def integ_key_size(integ_id: int) -> int:
    """Bytes of keying material of the integrity transform (0 for NONE)."""
    if integ_id == _INTEG_NONE:
        return 0
    try:
        return INTEG_PARAMS[integ_id][1]
    except KeyError:
        raise CryptoError(f"integrity transform {integ_id} is not implemented") from None
