"""Errors of ``pike.crypto``.

Two roots, as everywhere in pike: ``CryptoError`` for what went wrong in a cryptographic
operation (its subclasses name peer mistakes the engine answers or drops), and
``ProposalError`` (a ``ValueError``) for a configured or printed proposal we refuse.
"""


class CryptoError(Exception):
    """A cryptographic operation failed or was asked for something unsupported."""


class IntegrityError(CryptoError):
    """An SK payload failed its ICV / AEAD tag check, or its framing is impossible.

    Always a peer problem (or an attacker): the engine drops the message and counts it.
    """


class KeyExchangeError(CryptoError):
    """The peer's key exchange public value is invalid (length, range, not on curve)."""


class ProposalError(ValueError):
    """A proposal string, or an algorithm in it, is malformed, unknown or refused."""
