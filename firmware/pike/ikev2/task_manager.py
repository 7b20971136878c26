"""The only owner of message IDs, the window, retransmission and cached responses.

Window size 1 (RFC 7296 §2.3): one outstanding request each way. Retransmission follows
strongSwan's defaults: timeout 4 s x 1.8^n, 5 retransmits, then the SA is given up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.ikev2.describe import describe_payloads, exchange_name
from pike.ikev2.state import IkeState, log
from pike.ikev2.tasks.base import RespondError, RestartExchange, Task, TaskFailed
from pike.wire.constants import ExchangeType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

MAX_RESTARTS = 5  # COOKIE / INVALID_KE_PAYLOAD rounds before giving up


class TaskManager:
    def __init__(self, sa: IkeSa) -> None:
        self.sa = sa
        self.queued: list[Task] = []
        self.active: list[Task] = []
        self.active_exchange = 0
        self.mid_out = 0  # next request we send
        self.mid_in = 0  # next request we expect
        self.request: list[bytes] | None = None  # datagrams (several when fragmented)
        self.retransmits = 0
        self.deadline: float | None = None
        self.cached_response: tuple[int, list[bytes]] | None = None
        self.restarts = 0

    # -- initiator side ------------------------------------------------------------------
    def queue(self, task: Task) -> None:
        self.queued.append(task)

    def busy(self) -> bool:
        return bool(self.active)

    def initiate(self, now: float) -> None:
        if self.active or not self.queued or self.sa.state == IkeState.DESTROYED:
            return
        exchange = self.queued[0].exchange
        self.active = [t for t in self.queued if t.exchange == exchange]
        self.queued = [t for t in self.queued if t.exchange != exchange]
        self.active_exchange = exchange
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
        self._log_out(msg, len(datagrams))
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
        self._log_in(msg)
        tasks, self.active = self.active, []
        self.request = None
        self.deadline = None
        try:
            for task in tasks:
                task.process(msg, now)
        except RestartExchange:
            self.restarts += 1
            if self.restarts > MAX_RESTARTS:
                self.sa.fail("too_many_restarts", now)
                return
            self.queued[:0] = tasks
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
        self.queued[:0] = remaining
        for task in tasks:
            if task.done():
                task.completed(now)
        self.initiate(now)

    def _timeout(self, n: int) -> float:
        d = self.sa.ctx.config.daemon
        return d.retransmit_timeout * d.retransmit_base**n

    def on_timer(self, now: float) -> None:
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
    def on_request(self, msg: Message, data: bytes, tasks: list[Task], now: float) -> None:
        mid = msg.message_id
        if self.cached_response is not None and mid == self.cached_response[0]:
            # A retransmitted request: answer with the same bytes (RFC 7296 §2.1).
            log.debug("%s: retransmitting response %d", self.sa.tag(), mid)
            self._send(self.cached_response[1])
            return
        if mid != self.mid_in:
            self.sa.ctx.counters.drop("invalid_message_id")
            log.info("%s: request %d out of window (expected %d)", self.sa.tag(), mid, self.mid_in)
            return
        self._log_in(msg)
        request = data
        resp = self.sa.new_message(msg.exchange, mid, response=True)
        fatal = False
        try:
            for task in tasks:
                task.process(msg, now)
            for task in tasks:
                task.build(resp, now)
        except RespondError as e:
            resp.payloads = [NotifyPayload(e.notify, e.data)]
            fatal = e.fatal
            log.info(
                "%s: answering %s with error: %s", self.sa.tag(), exchange_name(msg.exchange), e
            )
        if msg.exchange == ExchangeType.IKE_SA_INIT and fatal:
            # Stateless error answer: nothing of ours exists yet (RFC 7296 §2.6).
            resp.spi_r = bytes(8)
        datagrams = self.sa.encode_datagrams(resp)
        if msg.exchange == ExchangeType.IKE_SA_INIT and not fatal:
            self.sa.init_request, self.sa.init_response = request, datagrams[0]
        self.mid_in = mid + 1
        self.cached_response = (mid, datagrams)
        self._log_out(resp, len(datagrams))
        self._send(datagrams)
        if fatal:
            self.sa.fail("refused", now, quiet=True)
            return
        for task in tasks:
            task.completed(now)
        # Our own queued work may have waited for this exchange (e.g. after IKE_AUTH).
        self.initiate(now)

    def _send(self, datagrams: list[bytes]) -> None:
        for data in datagrams:
            self.sa.send(data)

    # -- logs ----------------------------------------------------------------------------
    def _log_in(self, msg: Message) -> None:
        kind = "response" if msg.is_response else "request"
        log.info(
            "%s: received %s %s %d %s",
            self.sa.tag(),
            exchange_name(msg.exchange),
            kind,
            msg.message_id,
            describe_payloads(msg.payloads),
        )
        key = exchange_name(msg.exchange)
        c = self.sa.ctx.counters.conn(self.sa.name).messages_in
        c[key] = c.get(key, 0) + 1

    def _log_out(self, msg: Message, fragments: int = 1) -> None:
        kind = "response" if msg.is_response else "request"
        log.info(
            "%s: sending %s %s %d %s%s",
            self.sa.tag(),
            exchange_name(msg.exchange),
            kind,
            msg.message_id,
            describe_payloads(msg.payloads),
            f" in {fragments} fragments" if fragments > 1 else "",
        )
        key = exchange_name(msg.exchange)
        c = self.sa.ctx.counters.conn(self.sa.name).messages_out
        c[key] = c.get(key, 0) + 1
