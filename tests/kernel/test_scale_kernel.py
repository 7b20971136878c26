"""At scale against the real XFRM: 1000 IKE SAs on a hub, a few hundred rekeying their IKE
SA or CHILD_SA while others go and new ones come (the scenario of
tests/sa/test_scale_consistency.py); the hub's kernel actions go through the runtime's
``DataPlane`` into ``XfrmKernel`` in a private namespace, its CHILD_SA SPIs come from the
kernel (larval SAs, as piked allocates them). Afterwards every SA the hub lists is in the
kernel's SAD, the SAD holds nothing else (no leaked SA, no SPI allocated and left), and
the SPD holds exactly the policies of the CHILD_SAs up.

Kernel tier: runs in the UML guest (tests/guest/test_kernel_tier.py).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from kernel.kernel_netns import Namespaces, ip_batch
from pike.daemon.dataplane import DataPlane, KernelSpis
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import KernelCaps
from pike.sa.actions import Action
from sa.test_scale_consistency import churn, listed, policies_wanted

pytestmark = pytest.mark.kernel

_STATE = re.compile(r"^src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)", re.M)
_POLICY = re.compile(r"^src (\S+) dst (\S+)\s*\n\s+dir (\w+)", re.M)


class Refusals:
    """The engine side of the data plane: what the kernel refused (must stay empty)."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        self.failed.append(f"#{unique_id}: {reason}")

    def acquire(self, reqid: int, now: float) -> None:
        raise AssertionError("no trap policies here")

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        raise AssertionError("nothing expires in this test")


@pytest.fixture
def kernel(esp_kernel: KernelCaps, namespaces: Namespaces) -> Iterator[tuple[str, XfrmKernel]]:
    ns = namespaces.create(f"scale{os.getpid()}")
    with XfrmKernel(ns) as k:
        yield ns, k


def test_thousand_sas_in_the_kernel_as_listed(kernel: tuple[str, XfrmKernel]) -> None:
    ns, xfrm = kernel
    refusals = Refusals()
    plane = DataPlane(
        xfrm, lambda: refusals, lambda: 100.0, lambda: None, lambda: None, Counter(), os.urandom
    )

    def apply(a: Action) -> None:
        plane.do(a)

    hub = churn(apply, KernelSpis(xfrm, os.urandom, plane.stats))
    assert refusals.failed == []
    assert plane.stats["spi_fallback"] == 0  # every SPI came from the kernel
    sas, _ = listed(hub)
    dump = ip_batch(ns, "xfrm state")
    in_kernel = {(dst, int(spi, 16)) for _, dst, spi in _STATE.findall(dump)}
    assert len(_STATE.findall(dump)) == len(in_kernel)
    assert in_kernel == sas  # listed SAs are installed; nothing else (no larval SPI) is
    policy = ip_batch(ns, "xfrm policy")
    in_spd = {(d, src, dst) for src, dst, d in _POLICY.findall(policy)}
    assert in_spd == policies_wanted()
