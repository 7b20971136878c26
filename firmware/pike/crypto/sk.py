"""The Encrypted payload's cipher: IV || ciphertext || ICV (RFC 7296 §3.14).

AEAD transforms follow RFC 5282 (AES-GCM with 16-octet ICV) and RFC 7634
(ChaCha20-Poly1305): nonce = salt (last 4 bytes of the key material) || 8-byte IV, AAD =
everything of the message before the IV. AES-CBC uses a random 16-byte IV and an
HMAC-SHA-2 ICV, truncated per RFC 4868, over AAD || IV || ciphertext.

CBC speed: creating a cryptography Cipher costs ~10 µs, three times the rest of a seal,
so each SkCipher keeps one CBC encryptor and one decryptor for its lifetime. The IV of a
message is the encryption of a fresh random block chained on the previous ciphertext
(IV = E_K(R xor C_prev), the "encrypted nonce" IV of NIST SP 800-38A Appendix C), which is
as unpredictable as R itself; decryption feeds IV || ciphertext and drops the first
output block, so the decryptor's chaining state never matters.

Every way a received body can be wrong raises IntegrityError, and nothing else.
"""

import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pike.crypto.errors import CryptoError, IntegrityError
from pike.crypto.ids import EncrId, IntegId
from pike.crypto.prf import hmac_digest
from pike.crypto.sizes import (
    AEAD_ICV_SIZE,
    AEAD_IDS,
    AEAD_IV_SIZE,
    AEAD_SALT_SIZE,
    AES_BLOCK_SIZE,
    INTEG_PARAMS,
    encr_key_size,
    integ_key_size,
)

_IV_SPACE = 1 << 64  # the 8-byte AEAD IV is a 64-bit counter
# two ciphers per IKE SA: an Enum member lookup is slow on Python 3.11
_INTEG_NONE, _CHACHA20 = IntegId.NONE, EncrId.CHACHA20_POLY1305


class SkCipher:
    """Seals and opens SK payload bodies for one direction's keys (SK_ei/SK_ai or
    SK_er/SK_ar). Not thread-safe: the AEAD IV counter is plain state."""

    # An AEAD cipher's sizes (RFC 5282 §3, RFC 7634 §2) and state, as class defaults: two
    # ciphers per IKE SA, so its common kind stores no constants of its own; AES-CBC sets
    # its own sizes. No block padding for AEAD.
    iv_size = AEAD_IV_SIZE
    icv_size = AEAD_ICV_SIZE
    block_size = 1
    _sealed = 0  # messages sealed (AEAD: the IV space is 2^64)

    def __init__(
        self,
        encr_id: int,
        key_length_bits: int | None,
        integ_id: int,
        encr_key: bytes,
        integ_key: bytes,
        random: Callable[[int], bytes],
        start: bytes | None = None,
    ) -> None:
        """``start``: the random start (``start_size`` bytes: the AEAD IV counter's, or
        the CBC chaining value's); drawn from ``random`` when not given."""
        if len(encr_key) != encr_key_size(encr_id, key_length_bits):
            raise CryptoError(f"wrong encryption key length {len(encr_key)} for {encr_id}")
        self._random = random
        if encr_id in AEAD_IDS:
            if integ_id != _INTEG_NONE or integ_key:
                raise CryptoError("an AEAD cipher takes no separate integrity algorithm")
            key, self._salt = encr_key[:-AEAD_SALT_SIZE], encr_key[-AEAD_SALT_SIZE:]
            self._aead: AESGCM | ChaCha20Poly1305 | None = (
                ChaCha20Poly1305(key) if encr_id == _CHACHA20 else AESGCM(key)
            )
            # RFC 5282 §3.1 / RFC 7634 §2: the IV must never repeat for a key; a counter
            # from a random start is unique for 2^64 messages
            if start is None:
                start = random(AEAD_IV_SIZE)
            self._counter = int.from_bytes(start, "big")
        else:
            self._aead = None
            if integ_key_size(integ_id) == 0 or len(integ_key) != integ_key_size(integ_id):
                raise CryptoError(f"integrity transform {integ_id} needs a key of its size")
            aes = algorithms.AES(encr_key)
            # The initial chaining value only seeds the first IV, see the module docstring
            if start is None:
                start = random(AES_BLOCK_SIZE)
            self._encryptor = Cipher(aes, modes.CBC(start)).encryptor()
            self._decryptor = Cipher(aes, modes.CBC(bytes(AES_BLOCK_SIZE))).decryptor()
            self._hash, _, self.icv_size = INTEG_PARAMS[integ_id]
            self._integ_key = integ_key
            self.iv_size = AES_BLOCK_SIZE
            self.block_size = AES_BLOCK_SIZE

    @staticmethod
    def start_size(encr_id: int) -> int:
        """Bytes of the random start a cipher of ``encr_id`` takes."""
        return AEAD_IV_SIZE if encr_id in AEAD_IDS else AES_BLOCK_SIZE

    def sealed_length(self, plaintext_len: int) -> int:
        """Length of the body ``seal`` returns for a plaintext of this length."""
        padded = plaintext_len + 1  # the Pad Length octet
        padded += -padded % self.block_size
        return self.iv_size + padded + self.icv_size

    def _padding(self, plaintext_len: int) -> bytes:
        # RFC 7296 §3.14: Padding then Pad Length; padding content is arbitrary, use zeros
        pad = -(plaintext_len + 1) % self.block_size
        return bytes(pad) + bytes((pad,))

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate: returns IV || ciphertext || ICV."""
        if self._aead is not None:
            data = plaintext + b"\x00"  # no padding (block size 1): the Pad Length octet
            if self._sealed >= _IV_SPACE:
                raise CryptoError("AEAD IV space exhausted: rekey the SA")
            iv = (self._counter % _IV_SPACE).to_bytes(AEAD_IV_SIZE, "big")
            self._counter += 1
            self._sealed += 1
            return iv + self._aead.encrypt(self._salt + iv, data, aad)
        data = plaintext + self._padding(len(plaintext))
        iv_ct = self._encryptor.update(self._random(AES_BLOCK_SIZE) + data)
        icv = hmac_digest(self._integ_key, aad + iv_ct, self._hash)[: self.icv_size]
        return iv_ct + icv

    def open(self, aad: bytes, body: bytes) -> bytes:
        """Verify and decrypt IV || ciphertext || ICV; return the plaintext without
        padding. Raises IntegrityError on any failure."""
        if self._aead is not None:
            if len(body) < self.iv_size + 1 + self.icv_size:
                raise IntegrityError(f"SK body of {len(body)} bytes is too short")
            iv = body[: self.iv_size]
            try:
                data = self._aead.decrypt(self._salt + iv, body[self.iv_size :], aad)
            except InvalidTag:
                raise IntegrityError("SK payload AEAD tag check failed") from None
        else:
            data = self._open_cbc(aad, body)
        pad = data[-1]
        if pad + 1 > len(data):
            raise IntegrityError(f"SK pad length {pad} exceeds the {len(data)}-byte plaintext")
        return data[: len(data) - pad - 1]

    def _open_cbc(self, aad: bytes, body: bytes) -> bytes:
        ct_len = len(body) - self.iv_size - self.icv_size
        if ct_len < AES_BLOCK_SIZE or ct_len % AES_BLOCK_SIZE:
            raise IntegrityError(f"SK body of {len(body)} bytes is not IV + blocks + ICV")
        mac_end = len(body) - self.icv_size
        want = hmac_digest(self._integ_key, aad + body[:mac_end], self._hash)
        if not hmac.compare_digest(want[: self.icv_size], body[mac_end:]):
            raise IntegrityError("SK payload ICV check failed")
        return self._decryptor.update(body[:mac_end])[AES_BLOCK_SIZE:]


def sk_pair(
    encr_id: int,
    key_length_bits: int | None,
    integ_id: int,
    out_keys: tuple[bytes, bytes],
    in_keys: tuple[bytes, bytes],
    random: Callable[[int], bytes],
) -> tuple[SkCipher, SkCipher]:
    """An IKE SA's two ciphers, (outbound, inbound), from (encryption, integrity) keys;
    their random starts come from one draw (two independent halves of it)."""
    n = SkCipher.start_size(encr_id)
    starts = random(2 * n)
    return (
        SkCipher(encr_id, key_length_bits, integ_id, *out_keys, random, starts[:n]),
        SkCipher(encr_id, key_length_bits, integ_id, *in_keys, random, starts[n:]),
    )
