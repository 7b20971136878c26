"""The codec's two error roots (docs/architecture.md): what the peer sent wrong, our bugs."""

from __future__ import annotations


class MalformedMessage(Exception):
    """The peer sent bytes that are not a valid IKE message.

    ``reason`` is a short stable label (used as a metrics label, e.g. ``truncated``,
    ``bad_length``, ``unsupported_critical_payload``, ``invalid_syntax``,
    ``integrity_check_failed``); ``notify`` is the RFC 7296 notify type to answer with,
    or None when the message must be dropped silently.
    """

    def __init__(self, reason: str, detail: str = "", notify: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.notify = notify


class EncodeError(Exception):
    """We asked the codec to build something invalid: a local bug, never the peer's fault."""
