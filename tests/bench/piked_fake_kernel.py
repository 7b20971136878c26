"""``piked`` with a kernel that accepts everything and installs nothing, for benchmarks
beside charon's load-tester ``fake_kernel`` (both then do the IKE work only, and both keep
their CHILD_SAs). Not a product mode: it lives with the benchmarks.

    python tests/bench/piked_fake_kernel.py --config pike.toml
"""

from __future__ import annotations

import itertools
import sys

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


if __name__ == "__main__":
    piked._kernel = FakeKernel
    sys.exit(pike.cli.piked_entry.main())
