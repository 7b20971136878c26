"""Run a blocking ``KernelIpsec`` on its own thread, called synchronously from the loop.

pyroute2's netlink sockets drive a private asyncio loop with ``run_until_complete``,
which refuses to run inside the daemon's running loop. Each call is therefore handed to
one dedicated worker thread and waited for: netlink answers in microseconds, so the event
loop blocks no longer than a direct call would, and the runtime stays simple (sync).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pike.kernel.interface import KernelIpsec
from pike.policy.ipsec import KernelCaps, PolicySpec, SaCounters, SaSpec
from pike.policy.ts import IPAddress

T = TypeVar("T")


class ThreadedKernel:
    """A ``KernelIpsec`` whose every call runs on one worker thread (created there too)."""

    def __init__(self, factory: Callable[[], KernelIpsec]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pike-kernel")
        try:
            self._kernel = self._pool.submit(factory).result()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise

    def _call(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    def probe(self) -> KernelCaps:
        return self._call(self._kernel.probe)

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        return self._call(lambda: self._kernel.get_spi(src, dst, reqid))

    def add_sa(self, sa: SaSpec) -> None:
        self._call(lambda: self._kernel.add_sa(sa))

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        self._call(lambda: self._kernel.del_sa(dst, spi))

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters:
        return self._call(lambda: self._kernel.query_sa(dst, spi))

    def add_policy(self, p: PolicySpec) -> None:
        self._call(lambda: self._kernel.add_policy(p))

    def del_policy(self, p: PolicySpec) -> None:
        self._call(lambda: self._kernel.del_policy(p))

    def flush_installed(self) -> None:
        self._call(self._kernel.flush_installed)

    def close(self) -> None:
        try:
            self._call(self._kernel.close)
        finally:
            self._pool.shutdown(wait=True)
