"""Signatures off the event loop: the engine's SignRequest actions, answered from threads.

A token signs in milliseconds (SoftHSM) to hundreds of milliseconds (a TPM, RSA); the
event loop must keep moving datagrams, timers and the control socket meanwhile. Each
request runs ``CredentialStore.sign`` in a thread of its own key's queue: one thread per
PKCS#11 module (a module does one call at a time anyway, under its lock) and one for file
keys, so a hung token delays only its own signatures. The answer goes back to the engine
on the loop; every result is reported with its duration (the signing itself, not the
wait in the queue) for the metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pike.hsm.signer import SignerError
from pike.ikev2.actions import SignRequest
from pike.ikev2.credentials import CredentialError, CredentialStore

if TYPE_CHECKING:
    from pike.hsm.pkcs11 import TokenState

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
    return "error"


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
        self._queues: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self.in_flight = 0

    def _queue(self, key: str) -> concurrent.futures.ThreadPoolExecutor:
        return self._queue_for(_queue_name(key))

    def _queue_for(self, name: str) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._queues.get(name)
        if pool is None:
            pool = self._queues[name] = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="pike-sign"
            )
        return pool

    def submit(self, req: SignRequest) -> None:
        store = self._store()
        self.in_flight += 1
        fut = self._loop.run_in_executor(self._queue(req.key), _sign, store, req)
        fut.add_done_callback(lambda f: self._done(req, f))

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

    def reprobe(self, store: CredentialStore) -> None:
        """Look at every token now (a USB token came or went), each in its module's queue
        so that it waits for a signature in progress; state changes log themselves and
        show in the metrics at the next scrape."""
        for signer in store.token_signers():
            key = signer.uri.describe()
            fut = self._loop.run_in_executor(self._queue_for(signer.uri.module()), signer.reprobe)
            fut.add_done_callback(functools.partial(_log_reprobe, key))

    def close(self) -> None:
        """Drop what has not started; a signature in a token call finishes on its own."""
        for pool in self._queues.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._queues.clear()


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
