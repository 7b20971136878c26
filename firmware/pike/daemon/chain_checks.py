"""Peers' certificate chains checked off the event loop: the engine's CheckChain actions.

Parsing and verifying a peer's certificates is CPU work on unauthenticated input (up to
nine certificates of any key size before AUTH); done on the loop it would hold datagrams,
timers, DPD and the watchdog meanwhile. With pike-keyd (``key_helper``) the check runs in
that process (``Op.CHECK``); without it, in one worker thread of piked (the GIL is then
shared with the loop, which still runs between the thread's slices). Either way the
answer comes back on the loop to ``engine.chain_checked``, at the latest after
``CHECK_TIMEOUT`` (then the check fails and the IKE_AUTH with it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

from pike.keyd.client import KeyHelper, path_of
from pike.sa.actions import CheckChain
from pike.sa.cert_error import CertError

log = logging.getLogger("pike.daemon")

CHECK_TIMEOUT = 10.0  # seconds; a chain of nine certificates checks in milliseconds

Answer = Callable[[int, tuple[int, ...] | Exception], None]


class ChainChecks:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, answer: Answer, helper: KeyHelper | None
    ) -> None:
        self._loop = loop
        self._answer = answer
        self._helper = helper
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self.in_flight = 0

    def submit(self, req: CheckChain) -> None:
        self.in_flight += 1
        task = self._loop.create_task(asyncio.wait_for(self._check(req), CHECK_TIMEOUT))
        task.add_done_callback(lambda t: self._done(req, t))

    async def _check(self, req: CheckChain) -> tuple[int, ...]:
        if self._helper is not None:
            fields = await asyncio.wrap_future(
                self._helper.check_chain(req.certs, req.anchors, req.when)
            )
            return path_of(fields)
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, "pike-chains")
        return await asyncio.wrap_future(self._worker.submit(_indices, req))

    def _done(self, req: CheckChain, task: asyncio.Task[tuple[int, ...]]) -> None:
        self.in_flight -= 1
        if task.cancelled():
            return
        result: tuple[int, ...] | Exception
        exc = task.exception()
        if isinstance(exc, TimeoutError):
            result = CertError(f"certificate check took longer than {CHECK_TIMEOUT:.0f} s")
        elif isinstance(exc, Exception):
            result = exc
        else:
            result = task.result()
        if isinstance(result, Exception) and not isinstance(result, CertError):
            log.error("%s: certificate check failed: %s", req.conn, result)
        self._answer(req.ref, result)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)


def _indices(req: CheckChain) -> tuple[int, ...]:
    from pike.sa.certs import check_chain  # deferred: x509 only once a chain comes

    return check_chain(req.certs, req.anchors, req.when)
