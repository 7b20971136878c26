"""Signatures off the event loop: the engine's SignRequest actions, answered from threads.

A token signs in milliseconds (SoftHSM) to hundreds of milliseconds (a TPM, RSA); the
event loop must keep moving datagrams, timers and the control socket meanwhile. Each
request runs ``CredentialStore.sign`` in a thread of its own key's queue: one thread per
PKCS#11 module (a module does one call at a time anyway, under its lock) and one for file
keys, so a hung token delays only its own signatures. The first look at a token
(C_Initialize, login: ``probe``) runs in the same thread, so the loop never does token I/O;
until it has answered, a signature with that token's key fails closed at once. The answer
goes back to the engine on the loop; every result is reported with its duration (the
signing itself, not the wait in the queue) for the metrics. The threads are daemon
threads: a token call that never returns delays shutdown by ``stopped``'s bound only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pike.hsm.signer import SignerError, TokenState
from pike.sa.actions import SignRequest
from pike.sa.credentials import CredentialError, CredentialStore

if TYPE_CHECKING:
    from pike.hsm.pkcs11 import TokenUnavailable
    from pike.policy.config import Config

log = logging.getLogger("pike.daemon")


class SignResults(Protocol):
    """Where durations and failures go (``pike.metrics.recorder.Recorder``)."""

    def signed(
        self, token: str, key: str, mechanism: str, seconds: float, failure: str | None
    ) -> None: ...


Answer = Callable[[int, bytes | Exception], None]


def key_labels(key: str) -> tuple[str, str]:
    """(token, key) metric labels of a configured key: the token label and the object
    label (or id) of a ``pkcs11:`` URI, ``file`` and the file name otherwise. Never the
    module path, the PIN source or anything secret."""
    if key.lower().startswith("pkcs11:"):
        from pike.hsm.uri import UriError, parse

        try:
            uri = parse(key)
        except UriError:
            return "?", "?"
        name = uri.object or (uri.id.hex() if uri.id is not None else "*")
        return uri.token or "*", name
    return "file", os.path.basename(key)


def failure_reason(exc: BaseException) -> str:
    """A stable label for why a signature failed: the token state when a token said so."""
    state = getattr(exc, "state", None)
    value = getattr(state, "value", None)
    if isinstance(value, str):
        return value  # TokenUnavailable: absent, pin_incorrect, pin_locked, ...
    if isinstance(exc, CredentialError):
        return "config"
    if type(exc).__name__ == "HelperGone":  # pike.keyd.client, not imported without it
        return "helper_gone"
    return "error"


_T = TypeVar("_T")
_Job = tuple["concurrent.futures.Future[Any]", Callable[[], Any], str]


class _Worker:
    """One daemon thread and its FIFO of calls. A daemon thread because a token call that
    never returns must not keep the process alive: shutdown waits a bounded time and then
    leaves the thread behind (``Signing.stopped``)."""

    def __init__(self, name: str) -> None:
        self.name = name  # the PKCS#11 module path, or "file"
        self.busy_with: str | None = None  # what the running call is for ("token gw")
        self._closing = False
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"pike-sign {name}", daemon=True)
        self._thread.start()

    def submit(self, what: str, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._jobs.put((fut, fn, what))
        return fut

    def stop(self) -> None:
        """Run nothing more: calls still queued are cancelled, the running one finishes."""
        self._closing = True
        self._jobs.put(None)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, fn, what = job
            if self._closing:
                fut.cancel()
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            self.busy_with = what
            try:
                result = fn()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            finally:
                self.busy_with = None


class Signing:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        store: Callable[[], CredentialStore],
        answer: Answer,
        results: SignResults | None = None,
    ) -> None:
        self._loop = loop
        self._store = store
        self._answer = answer
        self._results = results
        self._queues: dict[str, _Worker] = {}
        self._probing: set[str] = set()  # token keys whose first probe has not answered
        self.in_flight = 0

    def _queue(self, key: str) -> _Worker:
        return self._queue_for(_queue_name(key))

    def _queue_for(self, name: str) -> _Worker:
        worker = self._queues.get(name)
        if worker is None:
            worker = self._queues[name] = _Worker(name)
        return worker

    def _run(self, name: str, what: str, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        """``fn()`` in the thread of queue ``name``; its answer comes back on the loop."""
        return asyncio.wrap_future(self._queue_for(name).submit(what, fn), loop=self._loop)

    def submit(self, req: SignRequest) -> None:
        store = self._store()
        self.in_flight += 1
        unprobed = self._unprobed(store, req)
        if unprobed is not None:
            fut: asyncio.Future[tuple[bytes | Exception, float]] = self._loop.create_future()
            fut.set_result((unprobed, 0.0))
        else:
            what = " ".join(key_labels(req.key))
            fut = self._run(_queue_name(req.key), what, functools.partial(_sign, store, req))
        fut.add_done_callback(lambda f: self._done(req, f))

    def _unprobed(self, store: CredentialStore, req: SignRequest) -> TokenUnavailable | None:
        """A token key whose first probe has not answered yet fails closed at once, as an
        absent token does, rather than waiting behind a probe that may hang."""
        if req.key[:7].lower() != "pkcs11:":
            return None
        try:
            signer = store.signer(req.key)
        except CredentialError:
            return None  # _sign reports it
        if req.key not in self._probing and getattr(signer, "probed", True):
            return None
        from pike.hsm.pkcs11 import TokenUnavailable

        if req.key not in self._probing:  # no probe asked for yet (a key nobody preloaded)
            self.probe(store, None, [req.key])
        token = key_labels(req.key)[0]
        log.error("%s: cannot sign: token %s not probed yet (fails closed)", req.conn, token)
        return TokenUnavailable(f"token {token} not probed yet", TokenState.UNKNOWN)

    def _done(self, req: SignRequest, fut: asyncio.Future[tuple[bytes | Exception, float]]) -> None:
        self.in_flight -= 1
        if fut.cancelled():
            return
        result, took = fut.result()
        failure = failure_reason(result) if isinstance(result, Exception) else None
        if self._results is not None:
            token, key = key_labels(req.key)
            try:
                self._results.signed(token, key, req.scheme.name.lower(), took, failure)
            except Exception:  # observability must never break authentication
                log.exception("recording a signature failed")
        if failure is not None:
            log.debug("%s: signature %d failed (%s): %s", req.conn, req.ref, failure, result)
        self._answer(req.ref, result)

    def probe(
        self, store: CredentialStore, config: Config | None, keys: list[str] | None = None
    ) -> None:
        """The first look at each token key not looked at yet (at start, after a reload
        that adds one): C_Initialize, login and key lookup in the module's thread, never on
        the loop. The token logs its state when known; a key that does not belong to its
        certificate (``config``'s connections) is logged then, and fails closed."""
        for key in store.unprobed() if keys is None else keys:
            if key in self._probing:
                continue
            self._probing.add(key)
            fut = self._run(
                _queue_name(key),
                f"token {key_labels(key)[0]}",
                functools.partial(store.probe_key, key, config),
            )
            fut.add_done_callback(functools.partial(self._probed, key))

    def probing(self, key: str) -> bool:
        """The first probe of ``key`` has not answered on the loop yet: its signatures fail
        closed (the token may already say READY from the probe's thread)."""
        return key in self._probing

    def _probed(self, key: str, fut: asyncio.Future[list[str]]) -> None:
        self._probing.discard(key)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            log.error("probe of %s failed: %s", " ".join(key_labels(key)), exc)
            return
        problems = fut.result()
        for problem in problems:
            log.error("%s (signatures with it fail closed)", problem)
        if not problems and self._store().token_states().get(key) is TokenState.READY:
            # from here on its signatures run (an operator sees when a boot's key is usable)
            log.info("token %s: key %s ready to sign", *key_labels(key))

    def reprobe(self, store: CredentialStore) -> None:
        """Look at every token now (a USB token came or went), each in its module's queue
        so that it waits for a signature in progress; state changes log themselves and
        show in the metrics at the next scrape."""
        for signer in store.token_signers():
            key = signer.uri.describe()
            fut = self._run(signer.uri.module(), f"token {signer.uri.token or '*'}", signer.reprobe)
            fut.add_done_callback(functools.partial(_log_reprobe, key))

    def close(self) -> None:
        """Drop what has not started; a call in progress finishes on its own (or never)."""
        for worker in self._queues.values():
            worker.stop()

    async def stopped(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` for the threads to end after ``close``; the calls still
        running then (a hung token), one log line each. Their threads are daemon threads:
        the process exits without them."""
        deadline = self._loop.time() + timeout
        while any(w.alive for w in self._queues.values()) and self._loop.time() < deadline:
            await asyncio.sleep(0.02)
        stuck = [w.busy_with or w.name for w in self._queues.values() if w.alive]
        for what in stuck:
            log.error("%s still in a call after %.1f s: stopping without it", what, timeout)
        self._queues.clear()
        return stuck


def _log_reprobe(key: str, fut: asyncio.Future[TokenState]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.error("re-probe of %s failed: %s", key, exc)
    else:
        log.info("re-probed %s: %s", key, fut.result().value)


def _queue_name(key: str) -> str:
    """The PKCS#11 module of a token key, or "file"."""
    if key.lower().startswith("pkcs11:"):
        from pike.hsm.uri import UriError, parse

        try:
            return parse(key).module()
        except UriError:
            return "?"
    return "file"


def _sign(store: CredentialStore, req: SignRequest) -> tuple[bytes | Exception, float]:
    """In a pool thread: the signature or the error, and how long it took."""
    t0 = time.perf_counter()
    result: bytes | Exception
    try:
        result = store.sign(req.key, req.spki, req.data, req.scheme)
    except (SignerError, CredentialError) as exc:
        result = exc
    except Exception as exc:  # a backend bug: fail closed, keep the trace in the log
        log.exception("%s: signing with %s failed", req.conn, key_labels(req.key)[1])
        result = SignerError(f"signer failed: {type(exc).__name__}")
    return result, time.perf_counter() - t0
