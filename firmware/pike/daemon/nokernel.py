"""A kernel that takes nothing: used when XFRM netlink cannot even be opened (a container
without CAP_NET_ADMIN, a kernel without CONFIG_XFRM_USER), so IKE still negotiates and
each CHILD_SA is refused the way it is on a kernel without ESP."""

from __future__ import annotations

from pike.kernel.events import KernelEvent
from pike.kernel.interface import KernelError
from pike.policy.ipsec import KernelCaps, PolicySpec, SaCounters, SaSpec
from pike.policy.ts import IPAddress


class NoKernel:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def probe(self) -> KernelCaps:
        return KernelCaps(esp=False, missing=(f"XFRM netlink ({self.reason})",))

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        raise KernelError("get_spi", detail=self.reason)

    def add_sa(self, sa: SaSpec) -> None:
        raise KernelError("add_sa", detail=self.reason)

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        pass

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters:
        raise KernelError("query_sa", detail=self.reason)

    def add_policy(self, p: PolicySpec) -> None:
        raise KernelError("add_policy", detail=self.reason)

    def del_policy(self, p: PolicySpec) -> None:
        pass

    def migrate(
        self,
        old_policies: tuple[PolicySpec, ...],
        policies: tuple[PolicySpec, ...],
        old_sas: tuple[SaSpec, SaSpec],
        sas: tuple[SaSpec, SaSpec],
    ) -> None:
        raise KernelError("migrate", detail=self.reason)

    def events_fileno(self) -> int | None:
        return None

    def read_events(self) -> list[KernelEvent]:
        return []

    def flush_installed(self) -> None:
        pass

    def remove_stale(self) -> tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        pass
