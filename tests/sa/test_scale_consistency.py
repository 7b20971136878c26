"""At scale, what the engine lists is what the kernel holds: 1000 IKE SAs on a hub, a few
hundred rekeying their IKE SA or CHILD_SA while others go and new ones come; afterwards
every CHILD_SA the hub lists has its two SAs and its policies in the kernel, and the
kernel holds nothing else (no leaked SA, policy or SPI).

In memory: the kernel is a model that applies the install/remove actions the way the
runtime does (``Daemon._do``), since the development host has no ESP; the XFRM side of
the same actions, at the same scale, is tests/kernel/test_scale_kernel.py (in the UML
kernel tier)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ikev2.pair import PSK, Node
from ikev2.pair import engine as v2engine
from lib.pikeconf import Child, Conn, PikeConf, Secret
from pike.sa.actions import (
    Action,
    DeleteChildSa,
    InstallChildSa,
    InstallInboundSa,
    InstallOutboundSa,
    RemoveInboundSa,
    SendDatagram,
)
from pike.sa.ports import SpiSource

HUB, BRANCH = "192.0.2.2", "192.0.2.1"
IKE = "aes128gcm16-prfsha256-x25519"
N, EXTRA = 1000, 150


class ModelKernel:
    """SAs by (dst, spi) and policies by (direction, src, dst), as XFRM keys them."""

    def __init__(self) -> None:
        self.sas: set[tuple[str, int]] = set()
        self.policies: set[tuple[str, str, str]] = set()

    def apply(self, a: Action) -> None:
        if isinstance(a, InstallChildSa):
            self._add(a.inbound.dst, a.inbound.spi)
            if not a.defer_outbound:
                self._add(a.outbound.dst, a.outbound.spi)
            self.policies |= {(p.direction, str(p.src_ts), str(p.dst_ts)) for p in a.policies}
        elif isinstance(a, InstallOutboundSa):
            self._add(a.outbound.dst, a.outbound.spi)
        elif isinstance(a, InstallInboundSa):
            self._add(a.inbound.dst, a.inbound.spi)
        elif isinstance(a, RemoveInboundSa):
            self.sas.discard((str(a.inbound.dst), a.inbound.spi))
        elif isinstance(a, DeleteChildSa):
            self.sas.discard((str(a.inbound.dst), a.inbound.spi))
            self.sas.discard((str(a.outbound.dst), a.outbound.spi))
            if not a.keep_policies:
                self.policies -= {(p.direction, str(p.src_ts), str(p.dst_ts)) for p in a.policies}

    def _add(self, dst: object, spi: int) -> None:
        key = (str(dst), spi)
        assert key not in self.sas, f"SPI {spi:#x} to {dst} installed twice"
        self.sas.add(key)


def lan(i: int) -> str:
    return f"10.{1 + i // 250}.{i % 250}.0/24"


def configs() -> tuple[str, str]:
    child = Child(["10.0.0.0/24"], ["10.0.0.0/8"], "net", ["aes128gcm16"])
    hub = PikeConf(
        # One branch address stands for 1 150 branches that start at once: no per-address
        # limit (pike.sa.admission; tests/ikev2/test_admission.py has those).
        daemon={"control_socket": "/tmp/unused.sock", "block_threshold": 100_000},
        connections=[
            Conn(
                name="hub",
                local_addrs=[HUB],
                remote_addrs=["%any"],
                proposals=[IKE],
                local={"auth": "psk", "id": "hub.example"},
                remote={"auth": "psk", "id": "*.branch.example"},
                children=[child],
            )
        ],
        secrets=[Secret("all", PSK)],
    )
    branches = PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=[
            Conn(
                name=f"c{i}",
                local_addrs=[BRANCH],
                remote_addrs=[HUB],
                proposals=[IKE],
                local={"auth": "psk", "id": f"c{i}.branch.example"},
                remote={"auth": "psk", "id": "hub.example"},
                children=[Child([lan(i)], ["10.0.0.0/24"], "net", ["aes128gcm16"])],
            )
            for i in range(N + EXTRA)
        ],
        secrets=[Secret("all", PSK)],
    )
    return hub.render(), branches.render()


Apply = Callable[[Action], None]


def pump(branch: Node, hub: Node, apply: Apply, now: float) -> None:
    """Deliver datagrams both ways until quiet; the hub's kernel actions go to ``apply``."""
    for _ in range(50):
        moved = False
        while (a := branch.engine.next_action()) is not None:
            if isinstance(a, SendDatagram):
                hub.engine.receive_datagram(a.data, a.src, a.dst, now)
                moved = True
        while (a := hub.engine.next_action()) is not None:
            apply(a)
            if isinstance(a, SendDatagram):
                branch.engine.receive_datagram(a.data, a.src, a.dst, now)
                moved = True
        if not moved:
            return
    raise AssertionError("still talking after 50 rounds")


def listed(hub: Node) -> tuple[set[tuple[str, int]], int]:
    sas: set[tuple[str, int]] = set()
    children = 0
    for ike in hub.engine.list_sas():
        assert ike.state == "ESTABLISHED", ike
        for c in ike.children:
            assert c.state == "INSTALLED", c
            assert c.inbound is not None and c.outbound is not None
            sas |= {(str(c.inbound.dst), c.inbound.spi), (str(c.outbound.dst), c.outbound.spi)}
            children += 1
    return sas, children


def churn(apply: Apply, spis: SpiSource | None = None) -> Node:
    """N branches come up; then 200 rekey their IKE SA, 250 their CHILD_SA, 150 go and
    EXTRA new ones come, all at once. The hub's kernel actions go to ``apply`` and its
    CHILD_SA SPIs come from ``spis`` (the engine's own without). Returns the hub, after
    checking what its engine lists."""
    hub_text, branch_text = configs()
    hub, branch = Node(v2engine(hub_text, 2, spis=spis)), Node(v2engine(branch_text, 1))
    for i in range(N):
        branch.engine.initiate(f"c{i}", 0.0)
        pump(branch, hub, apply, 0.0)
    assert len(hub.engine.list_sas()) == N
    now = 100.0
    for i in range(0, 200):  # IKE rekeys (the branch's side starts them)
        branch.engine.rekey(f"c{i}", now)
    for i in range(200, 450):  # CHILD_SA rekeys
        branch.engine.rekey(f"c{i}", now, child="net")
    for i in range(450, 600):  # gone
        branch.engine.terminate(f"c{i}", now)
    for i in range(N, N + EXTRA):  # new branches
        branch.engine.initiate(f"c{i}", now)
    pump(branch, hub, apply, now)
    # the log limit's summaries of the new branches' INFO lines are due a second later;
    # with INFO off (pytest's default) no line opens a window and nothing is due
    info = logging.getLogger("pike.ikev2").isEnabledFor(logging.INFO)
    assert hub.engine.ctx.log_limit.deadline() == (now + 1.0 if info else None)
    hub.engine.handle_timer(now + 1.0)
    # timers past the rekeys' aftermath (nothing else is due for hours)
    t = hub.engine.get_timer()
    assert t is None or t > now + 600, t
    _, children = listed(hub)
    assert children == N - 150 + EXTRA
    assert len(hub.engine.list_sas()) == N - 150 + EXTRA
    return hub


def policies_wanted() -> set[tuple[str, str, str]]:
    """The hub's policies (direction, src, dst) for the branches up after ``churn``."""
    up = [*range(450), *range(600, N + EXTRA)]
    want = {("out", "10.0.0.0/24", lan(i)) for i in up}
    want |= {(d, lan(i), "10.0.0.0/24") for i in up for d in ("in", "fwd")}
    return want


def test_thousand_sas_rekeying_and_churning_leave_nothing_behind() -> None:
    kernel = ModelKernel()
    hub = churn(kernel.apply)
    sas, _ = listed(hub)
    assert sas == kernel.sas  # every listed SA is in the kernel, and nothing else is
    assert kernel.policies == policies_wanted()
