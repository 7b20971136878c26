"""The only owner of message IDs, the window, retransmission and cached responses.

Window size 1 (RFC 7296 §2.3): one outstanding request each way. Retransmission follows
strongSwan's defaults: timeout 4 s x 1.8^n, 5 retransmits, then the SA is given up.

A message that needs our signature (IKE_AUTH with a certificate) waits for it in the
shared ``pike.sa.signing`` (as IKEv1's phase 1 does): a task's ``prepare`` says what it
needs signed, and the request (initiator) or the response (responder) is built only once
``sign_done`` brings the answer, at most SIGN_TIMEOUT later. Meanwhile the peer's
retransmissions of the request are ignored (never a second signature).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from functools import partial
from operator import attrgetter

from pike.frozen import frozen
from pike.ikev2.describe import EXCHANGE_NAMES, describe_payloads, exchange_name
from pike.ikev2.log import log
from pike.ikev2.tasks.base import ExchangeSa, RespondError, RestartExchange, Task, TaskFailed
from pike.sa.revocation import RevocationPending
from pike.sa.signing import PendingSignature
from pike.sa.state import IkeState
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import Message, NotifyPayload

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_DESTROYED = IkeState.DESTROYED

MAX_RESTARTS = 5  # COOKIE / INVALID_KE_PAYLOAD rounds before giving up


@frozen
class _Held:
    """A processed request whose response waits for our signature."""

    msg: Message
    data: bytes
    tasks: Sequence[Task]


_IKE_SA_INIT = ExchangeType.IKE_SA_INIT  # per message: Enum lookups are slow on 3.11
_INFO = logging.INFO
# the tasks with a prepare/completed of their own (Task.__init_subclass__), picked in C
_PREPARES, _COMPLETES = attrgetter("prepares"), attrgetter("completes")


class TaskManager:
    __slots__ = (
        "active",
        "active_exchange",
        "cached_response",
        "deadline",
        "mid_in",
        "mid_out",
        "pending",
        "queued",
        "request",
        "restarts",
        "retransmits",
        "sa",
    )  # one per IKE SA: no instance dict

    def __init__(self, sa: ExchangeSa) -> None:
        self.sa = sa
        # tuples, not lists: a hub holds 10 000 SAs whose task lists stay empty, and every
        # list is one more object for the cyclic collector to scan
        self.queued: tuple[Task, ...] = ()
        self.active: tuple[Task, ...] = ()
        self.active_exchange = 0
        self.mid_out = 0  # next request we send
        self.mid_in = 0  # next request we expect
        self.request: tuple[bytes, ...] | None = None  # datagrams (several when fragmented)
        self.retransmits = 0
        self.deadline: float | None = None
        # a tuple of bytes: the collector stops tracking it (and the pair) after one pass
        self.cached_response: tuple[int, tuple[bytes, ...]] | None = None
        self.restarts = 0
        # the signature the current message waits for; it holds what follows (pike.sa.signing)
        self.pending: PendingSignature[Message | None] | None = None

    def release(self) -> None:
        """Let go of what refers back to the SA (its tasks, a signature it waited for)
        and keep the SA itself only weakly: the IKE SA is destroyed and its engine has
        forgotten it, or it is an IKE rekey's successor not adopted yet (a failed rekey
        drops it). Reference counting then frees both: a hub deletes and rekeys
        thousands, and a cycle would wait for a full collection, which walks the whole
        heap. Whoever still holds a destroyed SA finds it DESTROYED, which every entry
        point here looks at first."""
        self.queued = self.active = ()
        self.pending = None
        self.request = None
        self.deadline = None
        if not isinstance(self.sa, weakref.ProxyType):
            self.sa = weakref.proxy(self.sa)

    @property
    def held(self) -> int | None:
        """Responder: the message ID of the request whose answer waits for our signature."""
        return self.pending.answering if self.pending is not None else None

    @property
    def sign_deadline(self) -> float | None:
        return self.pending.deadline if self.pending is not None else None

    # -- initiator side ------------------------------------------------------------------
    def queue(self, task: Task) -> None:
        self.queued += (task,)

    def busy(self) -> bool:
        return bool(self.active)

    def initiate(self, now: float) -> None:
        if self.active or self.held is not None or not self.queued or self.sa.state == _DESTROYED:
            return
        exchange = self.queued[0].exchange
        if exchange == ExchangeType.CREATE_CHILD_SA:
            # One CHILD_SA, CHILD rekey or IKE rekey per exchange (RFC 7296 §1.3).
            self.active, self.queued = self.queued[:1], self.queued[1:]
        else:
            self.active = tuple(t for t in self.queued if t.exchange == exchange)
            self.queued = tuple(t for t in self.queued if t.exchange != exchange)
        self.active_exchange = exchange
        try:
            if self._wait_for_signature(self.active, now):
                return
        except TaskFailed as e:
            self.sa.fail(e.reason, now)
            return
        self._send_request(now)

    def _wait_for_signature(
        self, tasks: Sequence[Task], now: float, request: tuple[Message, bytes] | None = None
    ) -> bool:
        """Let the tasks start what their build needs; True when a signature is awaited.
        ``request``: the request (and its bytes) whose answer then waits (responder)."""
        for task in filter(_PREPARES, tasks):
            wanted = task.prepare(now)
            if wanted is not None:
                held = _Held(request[0], request[1], tasks) if request is not None else None
                ref = wanted.request.ref
                self.pending = self.sa.ctx.signatures.wait(
                    2,
                    self.sa,
                    wanted,
                    now,
                    partial(self._signed, ref, tasks, held),
                    partial(self._refused, ref, tasks, held, wanted.required),
                    answering=held.msg.message_id if held is not None else None,
                )
                return True
        return False

    def sign_done(
        self, pending: PendingSignature[Message | None], result: bytes | Exception, now: float
    ) -> Message | None:
        """The answer to ``pending`` (taken from ``ctx.signatures``): build and send what
        waited for it. Returns the request answered, when a held response went out."""
        if pending is not self.pending or self.sa.state == IkeState.DESTROYED:
            return None
        self.pending = None
        return self.sa.ctx.signatures.settle(pending, result, now)

    def _signed(
        self,
        ref: int,
        tasks: Sequence[Task],
        held: _Held | None,
        result: bytes | Exception,
        now: float,
    ) -> Message | None:
        for task in tasks:
            task.signed(ref, result)
        if held is not None:
            self._respond(held.msg, held.data, held.tasks, now, log.isEnabledFor(_INFO))
            return held.msg
        try:
            # one more signature for the same message (RFC 8784 NO_PPK_AUTH)?
            if self._wait_for_signature(self.active, now):
                return None
        except TaskFailed as e:
            self.sa.fail(e.reason, now)
            return None
        self._send_request(now)
        return None

    def _refused(
        self,
        ref: int,
        tasks: Sequence[Task],
        held: _Held | None,
        required: bool,
        why: str,
        now: float,
    ) -> Message | None:
        """No signature (pike.sa.signing's policy): the message goes without an optional
        one; else the initiator ends the SA, the responder answers AUTHENTICATION_FAILED."""
        if not required:
            return self._signed(ref, tasks, held, RuntimeError(why), now)
        if held is not None:
            error = RespondError(NotifyType.AUTHENTICATION_FAILED, detail=why)
            info = log.isEnabledFor(_INFO)
            self._respond(held.msg, held.data, held.tasks, now, info, error)
            return held.msg
        self.sa.fail("no_credentials", now)
        return None

    def _send_request(self, now: float) -> None:
        exchange = self.active_exchange
        msg = self.sa.new_message(exchange, self.mid_out, response=False)
        try:
            for task in self.active:
                task.build(msg, now)
        except TaskFailed as e:
            self.sa.fail(e.reason, now)
            return
        datagrams = self.sa.encode_datagrams(msg)
        if exchange == ExchangeType.IKE_SA_INIT:
            self.sa.init_request = datagrams[0]
        self.request = datagrams
        self.retransmits = 0
        self.deadline = now + self._timeout(0)
        self._log_out(msg, now, len(datagrams))
        self._send(datagrams)

    def on_response(self, msg: Message, data: bytes, now: float) -> None:
        if (
            not self.active
            or msg.message_id != self.mid_out
            or msg.exchange != self.active_exchange
        ):
            self.sa.ctx.counters.drop("unexpected_response")
            log.debug("%s: unexpected response %d dropped", self.sa.tag(), msg.message_id)
            return
        self._log_in(msg, now)
        tasks, self.active = self.active, ()
        request, deadline = self.request, self.deadline
        self.request = None
        self.deadline = None
        try:
            for task in tasks:
                task.process(msg, now)
        except RevocationPending as e:
            # The peer's certificate status is being fetched: as if this response was
            # lost, our retransmission brings the peer's cached answer back to look again.
            self.active, self.request, self.deadline = tasks, request, deadline
            self.sa.ctx.counters.drop("revocation_pending")
            log.info("%s: %s; response %d set aside", self.sa.tag(), e, msg.message_id)
            return
        except RestartExchange:
            self.restarts += 1
            if self.restarts > MAX_RESTARTS:
                self.sa.fail("too_many_restarts", now)
                return
            self.queued = (*tasks, *self.queued)
            if msg.exchange != ExchangeType.IKE_SA_INIT:
                self.mid_out += 1  # only IKE_SA_INIT is repeated with the same ID
            self.initiate(now)
            return
        except TaskFailed as e:
            self.sa.fail(e.reason, now)
            return
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            self.sa.init_response = data
        self.mid_out += 1
        remaining = [t for t in tasks if not t.done()]
        self.queued = (*remaining, *self.queued)
        for task in tasks:
            if task.done():
                task.completed(now)
        self.initiate(now)

    def _timeout(self, n: int) -> float:
        d = self.sa.ctx.config.daemon
        return d.retransmit_timeout * d.retransmit_base**n

    def on_timer(self, now: float) -> None:
        pending = self.pending
        if pending is not None and pending.due(now):
            # initiator: the SA ends; responder: answers AUTHENTICATION_FAILED
            self.pending = None
            self.sa.ctx.signatures.expire(pending, now)
        if self.deadline is None or now < self.deadline or self.request is None:
            return
        tries = self.sa.ctx.config.daemon.retransmit_tries
        if self.retransmits >= tries:
            log.info(
                "%s: giving up after %d retransmits of %s request %d",
                self.sa.tag(),
                self.retransmits,
                exchange_name(self.active_exchange),
                self.mid_out,
            )
            self.deadline = None
            self.sa.fail("retransmit_timeout", now)
            return
        self.retransmits += 1
        self.sa.ctx.counters.conn(self.sa.name).retransmits += 1
        self.deadline = now + self._timeout(self.retransmits)
        log.info(
            "%s: retransmit %d of %s request %d",
            self.sa.tag(),
            self.retransmits,
            exchange_name(self.active_exchange),
            self.mid_out,
        )
        self._send(self.request)

    # -- responder side ------------------------------------------------------------------
    def on_request(self, msg: Message, data: bytes, tasks: Sequence[Task], now: float) -> None:
        mid = msg.message_id
        if (mid != self.mid_in or self.pending is not None) and not self._new_request(mid, now):
            return
        sa = self.sa
        info = log.isEnabledFor(_INFO)  # (asked once a message: for the answer too)
        if info:
            self._log_message("received", "half_open_received", msg, now)
        # counted by exchange name, per connection (as _count, without its frame)
        counts = (sa.counters or sa.conn_counters()).messages_in
        key = EXCHANGE_NAMES.get(msg.exchange) or exchange_name(msg.exchange)
        counts[key] = counts.get(key, 0) + 1
        try:
            for task in tasks:
                task.process(msg, now)
            if self._wait_for_signature(tasks, now, (msg, data)):
                return
        except RevocationPending as e:
            # Not answered and not consumed: the peer's retransmission of this request is
            # processed anew once the status fetched for its certificate is in.
            self.sa.ctx.counters.drop("revocation_pending")
            log.info("%s: %s; request %d left unanswered for now", self.sa.tag(), e, mid)
            return
        except RespondError as e:
            self._respond(msg, data, tasks, now, info, e)
            return
        self._respond(msg, data, tasks, now, info)

    def _new_request(self, mid: int, now: float) -> bool:
        """Whether request ``mid`` is new work: else it is a retransmission, answered with
        the cached response, or out of the window (asked only when ``mid`` is not the
        next one expected or an answer waits for our signature)."""
        if self.cached_response is not None and mid == self.cached_response[0]:
            # A retransmitted request: answer with the same bytes (RFC 7296 §2.1).
            log.debug("%s: retransmitting response %d", self.sa.tag(), mid)
            self._send(self.cached_response[1], response=True)
            return False
        if self.pending is not None and mid == self.pending.answering:
            # Retransmitted while our signature is being made: the answer follows it.
            log.debug("%s: request %d again, our signature is pending", self.sa.tag(), mid)
            return False
        if mid != self.mid_in:
            self.sa.ctx.counters.drop("invalid_message_id")
            if self._wanted("invalid_message_id", now):
                log.info(
                    "%s: request %d out of window (expected %d)", self.sa.tag(), mid, self.mid_in
                )
            return False
        return True

    def _respond(
        self,
        msg: Message,
        request: bytes,
        tasks: Sequence[Task],
        now: float,
        info: bool,
        error: RespondError | None = None,
    ) -> None:
        """Answer request ``msg`` (``info``: whether INFO lines are written, which the
        caller has asked already)."""
        sa, mid, exchange = self.sa, msg.message_id, msg.exchange
        resp = sa.new_message(exchange, mid, response=True)
        if error is None:
            try:
                for task in tasks:
                    task.build(resp, now)
            except RespondError as e:
                error = e
        if error is not None:
            self._error_answer(resp, exchange, error, now)
            if error.fatal:
                self._respond_fatal(resp, exchange, error, now)
                return
        datagrams = sa.encode_datagrams(resp)
        if exchange == _IKE_SA_INIT:
            sa.init_request, sa.init_response = request, datagrams[0]
        self.mid_in = mid + 1
        self.cached_response = (mid, datagrams)
        if info:
            self._log_message("sending", "half_open_sent", resp, now, len(datagrams))
        counts = (sa.counters or sa.conn_counters()).messages_out  # (as _count)
        key = EXCHANGE_NAMES.get(exchange) or exchange_name(exchange)
        counts[key] = counts.get(key, 0) + 1
        for data in datagrams:
            sa.send(data, True)
        for task in filter(_COMPLETES, tasks):
            task.completed(now)
        if self.queued:
            # Our own queued work may have waited for this exchange (e.g. after IKE_AUTH).
            self.initiate(now)

    def _error_answer(self, resp: Message, exchange: int, error: RespondError, now: float) -> None:
        """The response is the error notify alone (RFC 7296 §2.21)."""
        resp.payloads = [NotifyPayload(error.notify, error.data)]
        if self._wanted("half_open_refused", now):
            name = exchange_name(exchange)
            log.info("%s: answering %s with error: %s", self.sa.tag(), name, error)
        if exchange == _IKE_SA_INIT and error.fatal:
            # Stateless error answer: nothing of ours exists yet (RFC 7296 §2.6).
            resp.spi_r = bytes(8)

    def _respond_fatal(self, resp: Message, exchange: int, error: RespondError, now: float) -> None:
        """Send the error answer, then end the SA."""
        sa, mid = self.sa, resp.message_id
        datagrams = sa.encode_datagrams(resp)
        self.mid_in = mid + 1
        self.cached_response = (mid, datagrams)
        if log.isEnabledFor(_INFO):
            self._log_message("sending", "half_open_sent", resp, now, len(datagrams))
        self._count(exchange, True)
        self._send(datagrams, response=True)
        # A refused authentication is reported (pike_ike_auth_failures_total), as the
        # initiator's is; other refusals of a half-open SA end it quietly.
        auth = (
            error.notify == NotifyType.AUTHENTICATION_FAILED
            and exchange == ExchangeType.IKE_AUTH
            and sa.conn is not None
        )
        sa.fail("auth_failed" if auth else "refused", now, quiet=not auth)

    def resend(self, now: float) -> None:
        """Send the outstanding request again at once (MOBIKE: over a new path), keeping
        its place in the retransmission schedule."""
        if self.request is None:
            return
        self.deadline = now + self._timeout(self.retransmits)
        self._send(self.request)

    def _send(self, datagrams: Sequence[bytes], response: bool = False) -> None:
        for data in datagrams:
            self.sa.send(data, response)

    # -- logs ----------------------------------------------------------------------------
    def _wanted(self, reason: str, now: float) -> bool:
        """Whether to write an info line; an unproven SA's go through the rate limit."""
        if not log.isEnabledFor(logging.INFO):  # four times a handshake: ask first
            return False
        return self.sa.ctx.log_limit.wanted(log, logging.INFO, reason, now, self.sa.unproven)

    def _log_in(self, msg: Message, now: float) -> None:
        if log.isEnabledFor(_INFO):
            self._log_message("received", "half_open_received", msg, now)
        self._count(msg.exchange, False)

    def _log_out(self, msg: Message, now: float, fragments: int = 1) -> None:
        if log.isEnabledFor(_INFO):
            self._log_message("sending", "half_open_sent", msg, now, fragments)
        self._count(msg.exchange, True)

    def _log_message(
        self, what: str, reason: str, msg: Message, now: float, fragments: int = 1
    ) -> None:
        """The info line of a message received or sent (asked for only at INFO: describing
        payloads costs more than a MAC, and a hub at WARNING asks no more than that)."""
        if not self._wanted(reason, now):
            return
        log.info(
            "%s: %s %s %s %d %s%s",
            self.sa.tag(),
            what,
            exchange_name(msg.exchange),
            "response" if msg.is_response else "request",
            msg.message_id,
            describe_payloads(msg.payloads),
            f" in {fragments} fragments" if fragments > 1 else "",
        )

    def _count(self, exchange: int, sent: bool) -> None:
        """One more message of ``exchange`` on the SA's connection (counted by name)."""
        sa = self.sa
        c = sa.counters or sa.conn_counters()
        counts = c.messages_out if sent else c.messages_in
        key = EXCHANGE_NAMES.get(exchange) or exchange_name(exchange)
        counts[key] = counts.get(key, 0) + 1
