"""Encryption of ISAKMP message bodies and the IV chaining of IKEv1 (RFC 2408 §3.1 E flag,
RFC 2409 §5.3 and Appendix B).

Everything after the ISAKMP header is encrypted with the phase-1 cipher in CBC mode. Each
exchange (message ID) has its own IV chain: phase 1 (M-ID 0) starts at
hash(g^xi | g^xr), any later exchange at hash(last phase-1 CBC block | M-ID), and every
message, sent or received, moves its exchange's IV to its last ciphertext block.

IKEv1 encryption has no integrity check and no pad-length field: the HASH payload inside
authenticates, and the payload chain's own lengths say where the plaintext ends. So we pad
as strongSwan does, with 1 to block-size zero octets (a whole block when already aligned;
RFC 2409 §5.3 asks for padding in every message), and hand back a received plaintext whole,
padding included, whatever the peer padded with; a garbled message only shows later as a
bad HASH or a malformed payload chain. The IV of a received message therefore moves only on
:meth:`Ikev1Cipher.commit` (or ``decrypt(commit=True)``), so that the engine can refuse a
forged message without losing the chain, as strongSwan's confirm_iv() does.
"""

from collections import OrderedDict

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pike.crypto.errors import CryptoError, IntegrityError
from pike.crypto.prf import Prf
from pike.crypto.sizes import AES_BLOCK_SIZE, AES_KEY_BITS
from pike.ikev1.keys import phase1_iv, phase2_iv

PHASE1_MESSAGE_ID = 0  # RFC 2408 §3.1: phase-1 messages carry M-ID 0
# Open exchanges whose IVs are kept beside phase 1; the oldest is forgotten beyond that,
# so a peer sending Informationals under ever new message IDs cannot grow our state.
MAX_EXCHANGES = 32


class Ikev1Cipher:
    """AES-CBC for the messages of one ISAKMP SA, with one IV chain per message ID.

    ``enc_key`` is :attr:`pike.ikev1.keys.Phase1Keys.enc_key`; ``g_xi``/``g_xr`` the KE data
    of initiator and responder (they seed the phase-1 IV). Not thread-safe.
    """

    def __init__(self, prf: Prf, enc_key: bytes, g_xi: bytes, g_xr: bytes) -> None:
        if len(enc_key) * 8 not in AES_KEY_BITS:
            raise CryptoError(f"AES takes a 16, 24 or 32-byte key, not {len(enc_key)} bytes")
        self._prf = prf
        self._aes = algorithms.AES(enc_key)
        self.block_size = AES_BLOCK_SIZE
        self._phase1 = phase1_iv(prf, g_xi, g_xr, self.block_size)
        self._phase2: OrderedDict[int, bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"Ikev1Cipher(AES-CBC-{self._aes.key_size}, exchanges={len(self._phase2)})"

    # -- IV state ---------------------------------------------------------------------------

    def iv(self, message_id: int) -> bytes:
        """The IV the next message of exchange ``message_id`` is encrypted under."""
        if message_id == PHASE1_MESSAGE_ID:
            return self._phase1
        iv = self._phase2.get(message_id)
        if iv is None:
            # derived from the phase-1 chain as it stands now: phase 1 is over by the time
            # a Quick Mode or Informational exchange starts
            iv = phase2_iv(self._prf, self._phase1, message_id, self.block_size)
            self._set(message_id, iv)
        return iv

    def _set(self, message_id: int, iv: bytes) -> None:
        if message_id == PHASE1_MESSAGE_ID:
            self._phase1 = iv
            return
        self._phase2[message_id] = iv
        self._phase2.move_to_end(message_id)
        while len(self._phase2) > MAX_EXCHANGES:
            self._phase2.popitem(last=False)

    def commit(self, message_id: int, ciphertext: bytes) -> None:
        """Chain on a received message that was accepted: its last block is the next IV."""
        self._check_length(ciphertext)
        self._set(message_id, ciphertext[-self.block_size :])

    def forget(self, message_id: int) -> None:
        """Drop the IV of a finished Quick Mode / Informational exchange."""
        self._phase2.pop(message_id, None)

    # -- bodies -----------------------------------------------------------------------------

    def padded_length(self, plaintext_len: int) -> int:
        """Length of the ciphertext :meth:`encrypt` returns for this plaintext length."""
        return plaintext_len + self._pad(plaintext_len)

    def _pad(self, plaintext_len: int) -> int:
        return self.block_size - plaintext_len % self.block_size

    def encrypt(self, message_id: int, plaintext: bytes) -> bytes:
        """Encrypt a payload chain (zero-padded to the block size) and chain the IV."""
        if not plaintext:
            raise CryptoError("nothing to encrypt: an encrypted message has payloads")
        data = plaintext + bytes(self._pad(len(plaintext)))
        enc = Cipher(self._aes, modes.CBC(self.iv(message_id))).encryptor()
        ciphertext = enc.update(data) + enc.finalize()
        self._set(message_id, ciphertext[-self.block_size :])
        return ciphertext

    def decrypt(self, message_id: int, ciphertext: bytes, *, commit: bool) -> bytes:
        """Decrypt a message body; the plaintext keeps the sender's padding.

        The IV moves only with ``commit=True`` or a later :meth:`commit`. IntegrityError if
        the body is not a whole number of blocks (the peer's mistake)."""
        self._check_length(ciphertext)
        dec = Cipher(self._aes, modes.CBC(self.iv(message_id))).decryptor()
        plaintext = dec.update(ciphertext) + dec.finalize()
        if commit:
            self._set(message_id, ciphertext[-self.block_size :])
        return plaintext

    def _check_length(self, ciphertext: bytes) -> None:
        if not ciphertext or len(ciphertext) % self.block_size:
            raise IntegrityError(
                f"encrypted ISAKMP body of {len(ciphertext)} bytes is not a whole number "
                f"of {self.block_size}-byte blocks"
            )
