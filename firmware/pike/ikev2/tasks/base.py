"""The task contract (strongSwan's task_t): one step of an exchange, role fixed at birth.

The initiator's task ``build``s a request and ``process``es the response; the responder's
``process``es the request and ``build``s the response. Several tasks fill one message.
A task whose build needs a signature asks for it in ``prepare`` (a ``SignRequest`` action)
and the task manager holds the message until ``signed`` brings the answer.
"""

from __future__ import annotations

from typing import Protocol

from pike.policy.config import ConnectionConfig
from pike.sa.context import ConnCounters, Context
from pike.sa.signing import Wanted
from pike.sa.state import IkeState
from pike.wire.constants import notify_name
from pike.wire.payloads import Message


class ExchangeSa(Protocol):
    """What the task manager and the task contract use of an IKE SA (a protocol, so that
    they need not import ``ike_sa``, which imports them: no import cycle). Each task
    names the full ``IkeSa`` it works on."""

    init_request: bytes  # the IKE_SA_INIT messages as sent (AUTH signs them)
    init_response: bytes

    @property
    def ctx(self) -> Context: ...

    @property
    def name(self) -> str: ...

    @property
    def conn(self) -> ConnectionConfig | None: ...

    @property
    def state(self) -> IkeState: ...

    @property
    def counters(self) -> ConnCounters | None: ...

    def conn_counters(self) -> ConnCounters: ...

    @property
    def unproven(self) -> bool: ...  # a responder's SA not yet up: logs rate-limited

    def tag(self) -> str: ...

    def new_message(self, exchange: int, message_id: int, response: bool) -> Message: ...

    def encode_datagrams(self, msg: Message) -> tuple[bytes, ...]: ...

    def send(self, data: bytes, response: bool = False) -> None: ...

    def fail(self, reason: str, now: float, quiet: bool = False) -> None: ...


class TaskFailed(Exception):
    """The exchange failed in a way that ends the IKE SA (reason is a stable label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RespondError(Exception):
    """A request that gets only an error notify back (RFC 7296 §2.21).

    ``fatal`` ends the IKE SA once the answer is sent.
    """

    def __init__(
        self, notify: int, data: bytes = b"", fatal: bool = True, detail: str = ""
    ) -> None:
        super().__init__(detail or f"notify {notify_name(notify)}")
        self.notify = notify
        self.data = data
        self.fatal = fatal


class RestartExchange(Exception):
    """IKE_SA_INIT must be sent again (COOKIE or INVALID_KE_PAYLOAD, RFC 7296 §2.6/§1.2)."""


class Task:
    name = "task"
    # Whether the class has a ``prepare``/``completed`` of its own: the task manager calls
    # only those (most tasks have neither; a handshake's seven tasks, one and three).
    prepares = False
    completes = False

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.prepares = cls.prepare is not Task.prepare
        cls.completes = cls.completed is not Task.completed

    def __init__(self, sa: ExchangeSa, initiator: bool) -> None:
        self.sa = sa
        self.initiator = initiator

    @property
    def exchange(self) -> int:
        """The exchange this task's next step belongs to."""
        raise NotImplementedError

    def build(self, msg: Message, now: float) -> None:
        raise NotImplementedError

    def process(self, msg: Message, now: float) -> None:
        raise NotImplementedError

    def prepare(self, now: float) -> Wanted | None:
        """Before ``build``: the signature it needs, made off the loop (the task manager
        waits for it through ``pike.sa.signing``), or None when ``build`` can run now.
        Raises what ``build`` would raise for a failure found early."""
        return None

    def signed(self, ref: int, result: bytes | Exception) -> None:
        """The answer to the ``SignRequest`` ``ref``: the signature, or why an optional
        one (``Wanted.required`` False) is missing. Raises ``SignatureUnusable`` for a
        signature that cannot be used."""

    def done(self) -> bool:
        """True when the task has nothing left to do after its last process/build."""
        return True

    def completed(self, now: float) -> None:
        """Called once the exchange is over (response sent or processed)."""

    def abandoned(self) -> None:
        """The IKE SA ended with this task unfinished: undo what it set up outside the
        engine (an inbound SA installed ahead)."""
