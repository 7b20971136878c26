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
    AEAD_IV_SIZE,
    AEAD_SALT_SIZE,
    AES_BLOCK_SIZE,
    INTEG_PARAMS,
    encr_key_size,
    integ_key_size,
    is_aead,
)

_IV_SPACE = 1 << 64  # the 8-byte AEAD IV is a 64-bit counter
# two ciphers per IKE SA: an Enum member lookup is slow on Python 3.11
_INTEG_NONE, _CHACHA20 = IntegId.NONE, EncrId.CHACHA20_POLY1305


class SkCipher:
    """Seals and opens SK payload bodies for one direction's keys (SK_ei/SK_ai or
    SK_er/SK_ar). Not thread-safe: the AEAD IV counter is plain state."""

    def __init__(
        self,
        encr_id: int,
        key_length_bits: int | None,
        integ_id: int,
        encr_key: bytes,
        integ_key: bytes,
        random: Callable[[int], bytes],
    ) -> None:
        if len(encr_key) != encr_key_size(encr_id, key_length_bits):
            raise CryptoError(f"wrong encryption key length {len(encr_key)} for {encr_id}")
        self._random = random
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        if is_aead(encr_id):
            if integ_id != _INTEG_NONE or integ_key:
                raise CryptoError("an AEAD cipher takes no separate integrity algorithm")
            key, self._salt = encr_key[:-AEAD_SALT_SIZE], encr_key[-AEAD_SALT_SIZE:]
            if encr_id == _CHACHA20:
                self._aead = ChaCha20Poly1305(key)
            else:
                self._aead = AESGCM(key)
            self.iv_size = AEAD_IV_SIZE
            self.icv_size = AEAD_ICV_SIZE
            self.block_size = 1  # no block padding for AEAD (RFC 5282 §3)
            # RFC 5282 §3.1 / RFC 7634 §2: the IV must never repeat for a key; a counter
            # from a random start is unique for 2^64 messages
            self._counter = int.from_bytes(random(AEAD_IV_SIZE), "big")
            self._sealed = 0
        else:
            if integ_key_size(integ_id) == 0 or len(integ_key) != integ_key_size(integ_id):
                raise CryptoError(f"integrity transform {integ_id} needs a key of its size")
            aes = algorithms.AES(encr_key)
            # The initial chaining value only seeds the first IV, see the module docstring
            self._encryptor = Cipher(aes, modes.CBC(random(AES_BLOCK_SIZE))).encryptor()
            self._decryptor = Cipher(aes, modes.CBC(bytes(AES_BLOCK_SIZE))).decryptor()
            self._hash, _, self.icv_size = INTEG_PARAMS[integ_id]
            self._integ_key = integ_key
            self.iv_size = AES_BLOCK_SIZE
            self.block_size = AES_BLOCK_SIZE

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
        data = plaintext + self._padding(len(plaintext))
        if self._aead is not None:
            if self._sealed >= _IV_SPACE:
                raise CryptoError("AEAD IV space exhausted: rekey the SA")
            iv = (self._counter % _IV_SPACE).to_bytes(AEAD_IV_SIZE, "big")
            self._counter += 1
            self._sealed += 1
            return iv + self._aead.encrypt(self._salt + iv, data, aad)
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
