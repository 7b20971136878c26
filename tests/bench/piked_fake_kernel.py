"""``piked`` with a kernel that accepts everything and installs nothing, for benchmarks
beside charon's load-tester ``fake_kernel`` (both then do the IKE work only, and both keep
their CHILD_SAs). Not a product mode: it lives with the benchmarks.

    python tests/bench/piked_fake_kernel.py --config pike.toml

With ``PIKE_BENCH_ENGINE_CPU=FILE`` the thread CPU time spent inside the engines'
datagram and timer entry points is summed, and written to FILE as ``N SECONDS GC_SECONDS
GC0 GC1 GC2`` (N counts the requests) on every SIGUSR2: ``bench_hub.py --split`` tells the
engine's share of piked's CPU from the runtime's around it (two ``thread_time`` calls per
datagram), and the collector's (its collections by generation and the thread CPU they
took, wherever they ran: in the engine's entry points or around them).

With ``PIKE_BENCH_RECORD=FILE`` the engines draw their randomness from a fixed seed and
every datagram and timer they are given is kept, with its time, and written to FILE
(pickled, with the config text) on every SIGUSR2: ``live_replay.py`` feeds a real
generator's conversation into an in-memory engine that answers it byte for byte.
"""

from __future__ import annotations

import gc
import itertools
import os
import pickle
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pike.cli.piked_entry  # first: piked's process without ssl, as installed
from pike.cli import piked
from pike.daemon.nokernel import NoKernel
from pike.policy.ipsec import KernelCaps, PolicySpec, SaCounters, SaSpec
from pike.policy.ts import IPAddress


class FakeKernel(NoKernel):
    """KernelIpsec that says yes: ESP present, SPIs counted up, SAs and policies dropped
    (the rest, nothing to remove or read, as ``NoKernel``)."""

    def __init__(self) -> None:
        super().__init__("fake kernel")
        self._spis = itertools.count(0xC0000001)

    def probe(self) -> KernelCaps:
        return KernelCaps(esp=True)

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        return next(self._spis)

    def add_sa(self, sa: SaSpec) -> None:
        pass

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters:
        return SaCounters(0, 0)

    def add_policy(self, p: PolicySpec) -> None:
        pass


def account_engine_cpu(path: Path) -> None:
    """Sum the thread CPU time inside ``Engines.receive_datagram``/``handle_timer``;
    write it to ``path`` on SIGUSR2."""
    from pike.daemon.engines import Engines

    spent = [0.0]
    asked = itertools.count(1)
    collector = CollectorClock()

    def timed(fn: Callable[..., None]) -> Callable[..., None]:
        def wrapper(*args: Any) -> None:
            t0 = time.thread_time()
            try:
                fn(*args)
            finally:
                spent[0] += time.thread_time() - t0

        return wrapper

    Engines.receive_datagram = timed(Engines.receive_datagram)  # type: ignore[method-assign]
    Engines.handle_timer = timed(Engines.handle_timer)  # type: ignore[method-assign]

    def report(*_: object) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{next(asked)} {spent[0]!r} {collector.text()}")
        tmp.replace(path)  # whole: the bench may read it at once

    signal.signal(signal.SIGUSR2, report)


RECORD_SEED = 12  # the recording piked's engine randomness (live_replay.py replays it)


def record_conversation(path: Path, config: Path) -> None:
    """Seeded engine randomness; every datagram and timer the engines get, kept with its
    time and written to ``path`` on SIGUSR2 (see the module's docstring)."""
    from pike.daemon.engines import Engines

    events: list[tuple[str, tuple[Any, ...]]] = []
    init = Engines.__init__

    def seeded(self: Engines, *args: Any, **kwargs: Any) -> None:
        kwargs["random"] = random.Random(RECORD_SEED).randbytes
        init(self, *args, **kwargs)

    def kept(kind: str, fn: Callable[..., None]) -> Callable[..., None]:
        def wrapper(self: Engines, *args: Any) -> None:
            events.append((kind, args))
            fn(self, *args)

        return wrapper

    Engines.__init__ = seeded  # type: ignore[method-assign]
    Engines.receive_datagram = kept("datagram", Engines.receive_datagram)  # type: ignore[method-assign]
    Engines.handle_timer = kept("timer", Engines.handle_timer)  # type: ignore[method-assign]

    def report(*_: object) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps((config.read_text(), events)))
        tmp.replace(path)

    signal.signal(signal.SIGUSR2, report)


class CollectorClock:
    """The collector's collections per generation and the thread CPU time they took
    (``gc.callbacks``: called at each collection's start and stop)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._t0
            self.collections[info["generation"]] += 1

    def text(self) -> str:
        return f"{self.seconds!r} {' '.join(map(str, self.collections))}"


if __name__ == "__main__":
    piked._kernel = FakeKernel
    if where := os.environ.get("PIKE_BENCH_ENGINE_CPU"):
        account_engine_cpu(Path(where))
    elif where := os.environ.get("PIKE_BENCH_RECORD"):
        record_conversation(Path(where), Path(sys.argv[sys.argv.index("--config") + 1]))
    sys.exit(pike.cli.piked_entry.main())
