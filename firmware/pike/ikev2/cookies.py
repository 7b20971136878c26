"""Stateless cookies for IKE_SA_INIT under load (RFC 7296 §2.6).

Cookie = VersionID | Hash(Ni | IPi | port | SPIi | secret): the responder keeps no state
until the initiator proves it receives at its address and port by sending the cookie back.
The secret changes every ROTATE seconds; a cookie made with the one before still counts
(the VersionID says which), so an initiator caught by a rotation is not refused, and a
cookie learnt once is worth at most two periods (RFC 7296 §2.6: "regenerate secret
periodically").
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable

from pike.wire.constants import NotifyType
from pike.wire.payloads import Message, NoncePayload, NotifyPayload

ROTATE = 120.0  # seconds a secret makes cookies
SECRET_SIZE = 32


class CookieJar:
    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._random = random
        self._version = 0
        self._secrets = {0: random(SECRET_SIZE)}  # this version and the one before
        self._rotate_at: float | None = None

    def _rotate(self, now: float) -> None:
        if self._rotate_at is None:
            self._rotate_at = now + ROTATE
        elif now >= self._rotate_at:
            # The one before stays valid, unless two periods went by without a cookie.
            previous = self._secrets[self._version] if now < self._rotate_at + ROTATE else None
            self._version = (self._version + 1) & 0xFFFFFFFF
            self._secrets = {self._version: self._random(SECRET_SIZE)}
            if previous is not None:
                self._secrets[(self._version - 1) & 0xFFFFFFFF] = previous
            self._rotate_at = now + ROTATE

    def _mac(self, version: int, msg: Message, src: tuple[str, int]) -> bytes | None:
        secret = self._secrets.get(version)
        if secret is None:
            return None
        nonce = msg.first(NoncePayload)
        ni = nonce.data if nonce is not None else b""
        where = ipaddress.ip_address(src[0]).packed + src[1].to_bytes(2, "big")
        return hmac.new(secret, ni + where + msg.spi_i, hashlib.sha256).digest()[:16]

    def make(self, msg: Message, src: tuple[str, int], now: float) -> bytes:
        self._rotate(now)
        mac = self._mac(self._version, msg, src)
        assert mac is not None  # the current version always has its secret
        return self._version.to_bytes(4, "big") + mac

    def valid(self, msg: Message, src: tuple[str, int], now: float) -> bool:
        """The request starts with N(COOKIE) carrying what we gave this initiator, with
        this secret or the one before."""
        self._rotate(now)
        first = msg.payloads[0] if msg.payloads else None
        if not isinstance(first, NotifyPayload) or first.notify_type != NotifyType.COOKIE:
            return False
        if len(first.data) != 20:
            return False
        mac = self._mac(int.from_bytes(first.data[:4], "big"), msg, src)
        return mac is not None and hmac.compare_digest(first.data[4:], mac)
