"""Stateless cookies for IKE_SA_INIT under load (RFC 7296 §2.6).

Cookie = VersionID | Hash(Ni | IPi | SPIi | secret): the responder keeps no state until the
initiator proves it receives at its address by sending the cookie back.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from pike.wire.constants import NotifyType
from pike.wire.payloads import Message, NoncePayload, NotifyPayload

COOKIE_VERSION = b"\x00\x00\x00\x01"  # our format's version id


class CookieJar:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def make(self, msg: Message, src_ip: str) -> bytes:
        nonce = msg.first(NoncePayload)
        ni = nonce.data if nonce is not None else b""
        ip = ipaddress.ip_address(src_ip).packed
        mac = hmac.new(self._secret, ni + ip + msg.spi_i, hashlib.sha256).digest()
        return COOKIE_VERSION + mac[:16]

    def valid(self, msg: Message, src_ip: str) -> bool:
        """The request starts with N(COOKIE) carrying what we would give this initiator."""
        first = msg.payloads[0] if msg.payloads else None
        if not isinstance(first, NotifyPayload) or first.notify_type != NotifyType.COOKIE:
            return False
        return hmac.compare_digest(first.data, self.make(msg, src_ip))
