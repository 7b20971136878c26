"""IKEv2 codec: bytes <-> ``Message`` (RFC 7296 §3), SK sealing, per-exchange rules.

Modules: ``buffer`` (bounded reader/writer), ``header`` (IKE header), ``bodies``,
``sa_body``, ``ts_body`` (payload layouts), ``codec`` (payload chain, messages, SK),
``fragments`` (RFC 7383), ``rules`` (which payloads each exchange carries), ``sk`` (the
``SkCrypter`` protocol the crypto package implements).
"""

from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.payloads import Message
from pike.wire.rules import check_payloads
from pike.wire.sk import SkCrypter

__all__ = [
    "EncodeError",
    "MalformedMessage",
    "Message",
    "SkCrypter",
    "check_payloads",
    "decode_message",
    "decrypt_message",
    "encode_message",
]
