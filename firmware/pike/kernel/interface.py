"""The kernel boundary: what the daemon asks of an IPsec data plane (strongSwan's kernel_ipsec_t).

Implemented by ``pike.kernel.xfrm.XfrmKernel`` for Linux; tests may substitute a fake.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from pike.kernel.events import KernelEvent
from pike.policy.ipsec import KernelCaps, PolicySpec, SaCounters, SaSpec
from pike.policy.ts import IPAddress


class KernelError(Exception):
    """The kernel refused a request; ``code`` is the errno (0 if not from the kernel)."""

    def __init__(self, what: str, code: int = 0, detail: str | None = None) -> None:
        self.what = what
        self.code = code
        self.detail = detail
        text = what
        if code:
            text += f": {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
        if detail:
            text += f": {detail}"
        super().__init__(text)


class KernelIpsec(Protocol):
    def probe(self) -> KernelCaps:
        """Whether ESP with our algorithms works here; leaves nothing installed."""
        ...

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        """Reserve an inbound SPI (a larval SA that ``add_sa`` completes)."""
        ...

    def add_sa(self, sa: SaSpec) -> None: ...

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        """Remove an SA; a missing one is not an error."""
        ...

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters: ...

    def add_policy(self, p: PolicySpec) -> None:
        """Install a policy, replacing one with the same selector and direction."""
        ...

    def del_policy(self, p: PolicySpec) -> None:
        """Remove a policy; a missing one is not an error."""
        ...

    def migrate(
        self,
        old_policies: tuple[PolicySpec, ...],
        policies: tuple[PolicySpec, ...],
        old_sas: tuple[SaSpec, SaSpec],
        sas: tuple[SaSpec, SaSpec],
    ) -> None:
        """Move a CHILD_SA's (inbound, outbound) SAs and its policies' templates to new
        outer addresses in place: same SPIs, keys and sequence numbers (MOBIKE).
        KernelError when this kernel cannot; the caller then removes and adds them."""
        ...

    def events_fileno(self) -> int | None:
        """A descriptor that becomes readable when ``read_events`` has something (for
        the event loop's ``add_reader``); None when this kernel reports no events."""
        ...

    def read_events(self) -> list[KernelEvent]:
        """ACQUIREs for our trap policies and EXPIREs of SAs this instance installed;
        never blocks."""
        ...

    def flush_installed(self) -> None:
        """Remove every SA and policy this instance installed (shutdown)."""
        ...

    def remove_stale(self) -> tuple[int, int]:
        """At start: remove the SAs and policies a previous run left (killed before its
        shutdown), recognized by their reqid (``pike.policy.ipsec.is_pike_reqid``);
        (SAs, policies) removed. One piked per network namespace."""
        ...

    def close(self) -> None: ...
