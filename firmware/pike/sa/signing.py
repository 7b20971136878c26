"""Our signature that an exchange waits for, the same for both IKE versions.

A message that carries our signature (IKEv2's IKE_AUTH, IKEv1's MM5/MM6/AM2/AM3) cannot be
built until the runtime has signed off its event loop (a TPM signs in tens to hundreds of
ms; a hung token or a gone pike-keyd must not hold the SA for ever). Each version makes
its ``SignRequest`` and says how the message is built once the signature is in
(``resume``) and how it refuses without one (``refuse``); everything else is here, once:

- ``Signatures.wait`` emits the request and holds it as a ``PendingSignature``: which
  request, what is signed, for which SA (and which of the peer's requests waits for the
  answer, so its retransmissions neither answer nor sign again), the deadline;
- ``Signatures.settle`` gives the answer to ``resume``, or fails closed: any error (token
  absent, wrong PIN, pike-keyd gone, a signature that does not decode) or the deadline
  (``expire``) logs one line, "cannot authenticate ourselves: cannot sign our X: why",
  and calls ``refuse``. The policy is the same in both versions: the initiator ends the
  SA (``no_credentials``); the responder answers AUTHENTICATION_FAILED where its protocol
  has an answer for it (IKEv2's IKE_AUTH response; an IKEv1 phase-1 responder ends the SA
  without one, as strongSwan's does);
- ``Signatures.take`` finds the waiting exchange for an answer; an answer that comes after
  the exchange gave up (the deadline, or the SA ended) is ignored, logged and counted
  (``late_signatures``) the same way whichever version asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pike.sa.actions import SignRequest
from pike.sa.state import IkeState

log = logging.getLogger("pike.sa")

# How long an exchange waits for our signature (a TPM signs in tens to hundreds of ms; a
# hung token must not hold the IKE SA for ever).
SIGN_TIMEOUT = 20.0
# How long a given-up reference is remembered, to tell a late answer from a stray one
# (the runtime answers every SignRequest: pike-keyd's calls end after 30 s).
LATE_MEMORY = 600.0

R = TypeVar("R")


class Waiter(Protocol):
    """The SA an exchange of which waits (IKEv2's ``IkeSa``, IKEv1's ``IsakmpSa``)."""

    @property
    def state(self) -> IkeState: ...
    @property
    def name(self) -> str: ...
    def tag(self) -> str: ...


class SignatureUnusable(Exception):
    """Raised by a ``resume`` step whose signature cannot be used (a signer that returned
    no DER ECDSA-Sig-Value): failed closed like any other signing error."""


@dataclass(frozen=True)
class Wanted:
    """A signature a version's build step needs: the request, and what it is for."""

    request: SignRequest
    what: str  # for the log lines: "AUTH", "HASH_I", "HASH_R", "NO_PPK_AUTH"
    # False: the message goes without it (IKEv2's NO_PPK_AUTH, RFC 8784 §3), a failure
    # is a warning and ``refuse`` carries on
    required: bool = True


@dataclass(eq=False)
class PendingSignature(Generic[R]):
    """One signature one exchange waits for."""

    ref: int  # the SignRequest's reference
    version: int  # the IKE version of the engine that asked: only it takes the answer
    sa: Waiter
    what: str  # what is signed, for the log lines: "AUTH", "HASH_I", "HASH_R"
    deadline: float
    # the version's build step: sends the message with the signature
    resume: Callable[[bytes, float], R]
    # the version's refusal (see the module's policy), with why there is no signature
    refuse: Callable[[str, float], R]
    answering: int | None = None  # responder: the message ID of the request that waits
    required: bool = True  # see ``Wanted``

    def due(self, now: float) -> bool:
        return now >= self.deadline


@dataclass(frozen=True)
class _GaveUp:
    name: str
    tag: str
    what: str
    why: str
    at: float


class Signatures:
    """The signatures the exchanges of both engines wait for (one per ``Context``)."""

    def __init__(
        self, emit: Callable[[SignRequest], None], count_late: Callable[[str], None]
    ) -> None:
        self._emit = emit
        self._count_late = count_late  # by the SA's name
        self._waiting: dict[int, PendingSignature[Any]] = {}
        self._gave_up: dict[int, _GaveUp] = {}  # refs whose exchange no longer waits
        self._forget_at = 0.0

    def wait(
        self,
        version: int,
        sa: Waiter,
        wanted: Wanted,
        now: float,
        resume: Callable[[bytes, float], R],
        refuse: Callable[[str, float], R],
        answering: int | None = None,
    ) -> PendingSignature[R]:
        """Send the request to the runtime and hold what waits for it."""
        self._forget(now)
        ref, what = wanted.request.ref, wanted.what
        deadline = now + SIGN_TIMEOUT
        pending = PendingSignature(
            ref, version, sa, what, deadline, resume, refuse, answering, wanted.required
        )
        self._waiting[ref] = pending
        log.debug("%s: waiting for signature %d of our %s", sa.tag(), ref, what)
        self._emit(wanted.request)
        return pending

    def take(self, ref: int, version: int) -> PendingSignature[Any] | None:
        """The exchange of engine ``version`` waiting for signature ``ref``, no longer
        waiting; None for another engine's reference, or for an answer that came after its
        exchange gave up (logged and counted, once)."""
        pending = self._waiting.get(ref)
        if pending is not None:
            if pending.version != version:
                return None
            del self._waiting[ref]
            if pending.sa.state != IkeState.DESTROYED:
                return pending
            gone = _GaveUp(pending.sa.name, pending.sa.tag(), pending.what, "its SA ended", 0.0)
        else:
            found = self._gave_up.pop(ref, None)
            if found is None:
                return None
            gone = found
        self._count_late(gone.name)
        log.info(
            "%s: signature %d of our %s came after %s: ignored", gone.tag, ref, gone.what, gone.why
        )
        return None

    def settle(self, pending: PendingSignature[R], result: bytes | Exception, now: float) -> R:
        """The answer taken for ``pending``: the message it completes, or the refusal."""
        self._waiting.pop(pending.ref, None)
        if not isinstance(result, Exception):
            try:
                return pending.resume(result, now)
            except SignatureUnusable as exc:
                result = exc
        why = f"cannot sign our {pending.what}: {result}"
        if pending.required:
            log.error("%s: cannot authenticate ourselves: %s", pending.sa.tag(), why)
        else:
            log.warning("%s: without %s: %s", pending.sa.tag(), pending.what, why)
        return pending.refuse(why, now)

    def expire(self, pending: PendingSignature[R], now: float) -> R:
        """The deadline passed without an answer: the exchange fails closed, and the
        answer, when it comes, is ignored."""
        late = TimeoutError(f"no signature after {SIGN_TIMEOUT:.0f}s")
        why = f"the exchange gave up ({late})"
        self._gave_up[pending.ref] = _GaveUp(
            pending.sa.name, pending.sa.tag(), pending.what, why, now
        )
        return self.settle(pending, late, now)

    def waiting(self) -> int:
        return len(self._waiting)

    def _forget(self, now: float) -> None:
        """Drop what no answer will come for any more (bounded memory; a look at most
        once a minute, so many signatures under way cost no quadratic time)."""
        if now < self._forget_at:
            return
        self._forget_at = now + 60.0
        for ref, gone in list(self._gave_up.items()):
            if gone.at < now - LATE_MEMORY:
                del self._gave_up[ref]
        for ref, pending in list(self._waiting.items()):
            if pending.sa.state == IkeState.DESTROYED and pending.deadline < now - LATE_MEMORY:
                del self._waiting[ref]
