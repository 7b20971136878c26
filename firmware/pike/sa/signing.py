"""Our signature that an exchange waits for, in both IKE versions: which SignRequest, and
how long before the exchange gives up (a TPM signs in tens to hundreds of ms; a hung token
must not hold the SA for ever). How the waiting message is built once the signature is in
is each version's own (IKEv2: the task's ``prepare``/``signed``, IKEv1: ``then``)."""

from __future__ import annotations

from dataclasses import dataclass

from pike.sa.context import SIGN_TIMEOUT


@dataclass(frozen=True)
class Awaited:
    ref: int  # the SignRequest's reference
    deadline: float

    @classmethod
    def since(cls, ref: int, now: float) -> Awaited:
        return cls(ref, now + SIGN_TIMEOUT)

    def late(self, now: float) -> TimeoutError | None:
        """At or after the deadline: what the exchange fails with, as for any signing
        error (a late answer is then ignored)."""
        if now < self.deadline:
            return None
        return TimeoutError(f"no signature after {SIGN_TIMEOUT:.0f}s")
