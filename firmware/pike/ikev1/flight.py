"""Retransmission of one IKEv1 exchange (one message ID), both roles.

IKEv1 has no response bit and no window: whoever expects an answer retransmits its last
message (same backoff as the IKEv2 task manager: ``retransmit_timeout`` x
``retransmit_base``^n, ``retransmit_tries`` times), and whoever receives the very same
datagram again sends the very same answer again (RFC 2408 §5.1, strongSwan's
task_manager_v1). The bytes are kept, never rebuilt: the IV chain has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Flight:
    last_rx: bytes | None = None  # the last datagram of this exchange we accepted
    answer: bytes | None = None  # what we sent in reply to it (None: nothing)
    pending: bytes | None = None  # our message that awaits a reply
    deadline: float | None = None
    tries: int = 0
    done: bool = False  # exchange complete: only duplicates may still arrive

    def received(self, data: bytes) -> None:
        """A new message of this exchange was accepted: our pending one is answered."""
        self.last_rx = data
        self.answer = None
        self.pending = None
        self.deadline = None
        self.tries = 0

    def sent(self, data: bytes, now: float, first_timeout: float, *, wait: bool) -> None:
        if self.last_rx is not None and self.answer is None:
            self.answer = data
        self.pending = data if wait else None
        self.deadline = now + first_timeout if wait else None
        self.tries = 0

    def complete(self) -> None:
        """The exchange's last message is handled: nothing more to wait for or resend."""
        self.pending, self.deadline, self.done = None, None, True

    def due(self, now: float) -> bool:
        """Our pending message waited its timeout unanswered."""
        return self.pending is not None and self.deadline is not None and now >= self.deadline

    def retry(self, now: float, timeout: float) -> bytes:
        """The next retransmission (``timeout`` until the one after): the bytes to send."""
        assert self.pending is not None
        self.tries += 1
        self.deadline = now + timeout
        return self.pending

    def abandon(self) -> None:
        """Retransmitted enough: no more deadlines (the SA goes)."""
        self.deadline = None
