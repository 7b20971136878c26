"""What the codec needs from the IKE SA's keys to seal and open an SK payload.

The codec does not import ``pike.crypto`` (dependencies point down, docs/architecture.md);
the crypto package implements this protocol as ``pike.crypto.sk.SkCipher``.

The SK payload body is ``IV || ciphertext || ICV`` (RFC 7296 §3.14), where the ciphertext
encrypts ``inner payloads || padding || pad length``. The crypter owns everything that
depends on the algorithm: IV, padding, the pad length byte and the ICV. The codec hands it
the inner payload chain and gets it back.
"""

from __future__ import annotations

from typing import Protocol


class SkCrypter(Protocol):
    def sealed_length(self, plaintext_len: int) -> int:
        """Length of the SK body that ``seal`` returns for ``plaintext_len`` bytes of inner
        payloads: the codec needs it to write the header Length before sealing, because
        the header is part of the associated data (RFC 5282 §5.1)."""
        ...

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and protect ``plaintext`` (the inner payloads, unpadded). ``aad`` is the
        IKE header and SK generic header, i.e. every byte of the message before the IV.
        Returns ``IV || ciphertext || ICV`` of exactly ``sealed_length(len(plaintext))``."""
        ...

    def open(self, aad: bytes, body: bytes) -> bytes:
        """Check the ICV and decrypt ``body`` (``IV || ciphertext || ICV``); return the inner
        payloads with the padding and pad length removed. Raise any ``Exception`` if the body
        is too short, the ICV is wrong or the padding is malformed."""
        ...
