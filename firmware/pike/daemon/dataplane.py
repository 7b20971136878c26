"""The runtime's kernel side: what the engine asks to install or remove goes into the
kernel here, and what the kernel reports (ACQUIRE, EXPIRE) goes back to the engine.

Every call into ``KernelIpsec`` the daemon makes is in this module (docs/architecture.md,
"The kernel boundary"); a refusal is logged with the connection and SPIs it is about and,
for a CHILD_SA, reported to the engine, which deletes it with the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from pike.daemon import recovery
from pike.daemon.clock import Clock
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.interface import KernelError, KernelIpsec
from pike.policy.ipsec import KernelCaps, SaCounters, SaSpec
from pike.policy.ts import IPAddress
from pike.sa.actions import (
    Action,
    DeleteChildSa,
    InstallChildSa,
    InstallInboundSa,
    InstallOutboundSa,
    InstallTrap,
    MigrateChildSa,
    RemoveInboundSa,
)
from pike.sa.ports import RandomSpis, SpiSource, random_spi

log = logging.getLogger("pike.daemon")

Random = Callable[[int], bytes]  # os.urandom's shape: SPIs, nonces, rekey jitter


class KernelInputs(Protocol):
    """The engine calls the data plane makes (a subset of the runtime's ``Engine``)."""

    def acquire(self, reqid: int, now: float) -> None: ...
    def child_expired(self, spi: int, hard: bool, now: float) -> None: ...
    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None: ...


class EspInputs(Protocol):
    """What the engine takes about inbound ESP (``pike.sa.liveness``)."""

    def esp_wanted(self, now: float) -> list[SaSpec]: ...
    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None: ...


class DataPlane:
    def __init__(
        self,
        kernel: KernelIpsec,
        engine: Callable[[], KernelInputs],
        now: Callable[[], float],
        pump: Callable[[], None],
        clock: Callable[[], Clock | None],
        stats: Counter[str],
        random: Random,
    ) -> None:
        self.kernel = kernel
        self._engine = engine
        self._now = now
        self._pump = pump  # after kernel events: act on what the engine asked, re-arm
        self._clock = clock
        self.stats = stats
        self._random = random
        self.caps = KernelCaps(esp=False, missing=("not probed",))
        self._events_fd: int | None = None
        self._acts = self.routes()

    # -- start and stop --------------------------------------------------------------------

    def probe(self) -> KernelCaps:
        try:
            caps = self.kernel.probe()
        except Exception as exc:  # whatever the backend raised, IKE must still come up
            caps = KernelCaps(esp=False, missing=(f"XFRM probe failed: {exc}",))
        recovery.remove_stale(self.kernel)  # what a killed run left (pike.daemon.recovery)
        if not caps.esp:
            log.error(
                "kernel cannot take ESP SAs (missing: %s): "
                "IKE will negotiate but CHILD_SAs cannot be installed",
                ", ".join(caps.missing) or "ESP",
            )
        self.caps = caps
        return caps

    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            fd = self.kernel.events_fileno()
        except Exception as exc:
            log.error("kernel events unavailable: %s", exc)
            fd = None
        if fd is None:
            if self.caps.esp:
                log.warning("no kernel ACQUIRE/EXPIRE events: trap policies cannot trigger")
            return
        self._events_fd = fd
        loop.add_reader(fd, self._on_kernel_events)

    def stop_listening(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._events_fd is not None:
            loop.remove_reader(self._events_fd)
            self._events_fd = None

    def close(self) -> None:
        """Remove everything this instance installed, then close the kernel."""
        try:
            self.kernel.flush_installed()
        except KernelError as exc:
            log.error("removing installed SAs/policies: %s", exc)
        self.kernel.close()

    # -- SPIs and counters -----------------------------------------------------------------

    def spi_source(self) -> SpiSource:
        """The engine's SPIs: the kernel's, or random ones when nothing will be installed."""
        if not self.caps.esp:
            return RandomSpis(self._random)
        return KernelSpis(self.kernel, self._random, self.stats)

    def report_esp(self, engine: EspInputs, now: float) -> None:
        """Before the engine's timer: the kernel's counters of the inbound SAs its DPD
        decisions need, the last use moved from the wall clock (whole seconds) onto the
        engine's. The engine judges them (``pike.sa.liveness``)."""
        clock = self._clock()
        if not self.caps.esp or clock is None:
            return
        for spec in engine.esp_wanted(now):
            try:
                c = self.kernel.query_sa(spec.dst, spec.spi)
            except KernelError:
                continue
            last_use = None if c.last_use is None else now - max(0.0, clock.wall() - c.last_use)
            engine.esp_seen(spec.spi, c.packets, last_use, now)

    def counters(self, spec: SaSpec) -> SaCounters | None:
        if not self.caps.esp:
            return None
        try:
            return self.kernel.query_sa(spec.dst, spec.spi)
        except KernelError:
            return None

    # -- engine actions --------------------------------------------------------------------

    def routes(self) -> dict[type, Callable[[Any], None]]:
        """The actions that are the kernel's business, each with what acts on it."""
        return {
            InstallTrap: self._install_trap,
            InstallChildSa: self._install,
            InstallOutboundSa: self._install_one,
            InstallInboundSa: self._install_one,
            RemoveInboundSa: self._remove_inbound,
            DeleteChildSa: self._delete,
            MigrateChildSa: self._migrate,
        }

    def do(self, a: Action) -> bool:
        """Act on ``a`` if it is the kernel's business; False if it is not."""
        act = self._acts.get(type(a))
        if act is None:
            return False
        act(a)
        return True

    def _remove_inbound(self, a: RemoveInboundSa) -> None:
        with contextlib.suppress(KernelError):  # its short lifetime may have ended it
            self.kernel.del_sa(a.inbound.dst, a.inbound.spi)
        log.info("%s.%s: inbound SA %08x_i installed ahead removed", a.conn, a.child, a.inbound.spi)

    def _install(self, a: InstallChildSa) -> None:
        k = self.kernel
        done = 0  # SAs and policies in, for the undo
        try:
            k.add_sa(a.inbound)
            done += 1
            if not a.defer_outbound:
                k.add_sa(a.outbound)
                done += 1
            for p in a.policies:
                k.add_policy(p)
                done += 1
        except KernelError as exc:
            log.error("%s: kernel refused: %s", _child_sa(a), exc)
            self._undo(a, done)
            self._engine().child_install_failed(
                a.unique_id, str(exc), self._now(), spi=a.inbound.spi
            )
            return
        if log.isEnabledFor(logging.INFO):  # most gateways log at warning: no formatting
            later = " (outbound SA once the old one is deleted)" if a.defer_outbound else ""
            log.info("%s: installed in the kernel (%s)%s", _child_sa(a), a.inbound.mode, later)

    def _undo(self, a: InstallChildSa, done: int) -> None:
        """Remove, newest first, the first ``done`` of what ``_install`` added."""
        undo: list[Callable[[], None]] = [lambda: self.kernel.del_sa(a.inbound.dst, a.inbound.spi)]
        if not a.defer_outbound:
            undo.append(lambda: self.kernel.del_sa(a.outbound.dst, a.outbound.spi))
        undo += [lambda p=p: self.kernel.del_policy(p) for p in a.policies]  # type: ignore[misc]
        for fn in reversed(undo[:done]):
            with contextlib.suppress(KernelError):
                fn()

    def _install_one(self, a: InstallInboundSa | InstallOutboundSa) -> None:
        """One SA of a CHILD_SA on its own: the inbound one ahead of its exchange's answer,
        or the outbound one deferred until the old SA goes."""
        ahead = isinstance(a, InstallInboundSa)
        spec = a.inbound if isinstance(a, InstallInboundSa) else a.outbound
        which = "inbound SA (ahead of the answer)" if ahead else "outbound SA"
        what = f"{a.conn}.{a.child}: CHILD_SA #{a.unique_id}, SPI {spec.spi:08x}_{which[0]}"
        try:
            self.kernel.add_sa(spec)
        except KernelError as exc:
            # Ahead: not fatal, the CHILD_SA's own install once the answer is in tries again.
            level = logging.WARNING if ahead else logging.ERROR
            log.log(level, "%s: kernel refused the %s: %s", what, which, exc)
            return
        log.info("%s: %s installed in the kernel", what, which)

    def _install_trap(self, a: InstallTrap) -> None:
        what = f"{a.conn}.{a.child}: trap policies (reqid {a.reqid})"
        if not self.caps.esp:
            # The policies still go in (they need no ESP), so traffic brings IKE up on
            # demand; the CHILD_SA is then refused like any other on this kernel.
            log.warning("%s: this kernel has no ESP; the CHILD_SA will be refused", what)
        done: list[Any] = []
        try:
            for p in a.policies:
                self.kernel.add_policy(p)
                done.append(p)
        except KernelError as exc:
            log.error("%s: kernel refused: %s", what, exc)
            for p in reversed(done):
                with contextlib.suppress(KernelError):
                    self.kernel.del_policy(p)
            return
        log.info("%s installed in the kernel", what)

    def _delete(self, a: DeleteChildSa) -> None:
        what = _child_sa(a)
        steps: list[Callable[[], None]] = [
            lambda: self.kernel.del_sa(a.inbound.dst, a.inbound.spi),
            lambda: self.kernel.del_sa(a.outbound.dst, a.outbound.spi),
        ]
        if not a.keep_policies:
            steps += [lambda p=p: self.kernel.del_policy(p) for p in a.policies]  # type: ignore[misc]
        for step in steps:
            try:
                step()
            except KernelError as exc:
                log.warning("%s: kernel delete: %s", what, exc)
        kept = " (policies kept)" if a.keep_policies else ""
        log.info("%s: removed from the kernel%s", what, kept)

    def _migrate(self, a: MigrateChildSa) -> None:
        """MOBIKE: the CHILD_SA follows its IKE SA to new addresses, in place where the
        kernel can (XFRM_MSG_MIGRATE keeps the sequence numbers the peer's replay window
        expects), else removed and added again (the outbound sequence restarts)."""
        what = _child_sa(a)
        try:
            self.kernel.migrate(
                a.old_policies,
                a.policies,
                (a.old_inbound, a.old_outbound),
                (a.inbound, a.outbound),
            )
        except KernelError as exc:
            log.warning("%s: kernel cannot migrate (%s): removing and adding it again", what, exc)
            self._readd(a)
            return
        log.info("%s: migrated in the kernel to %s <-> %s", what, a.outbound.src, a.outbound.dst)

    def _readd(self, a: MigrateChildSa) -> None:
        """The fallback without XFRM migrate: the SAs go and come back at the new
        addresses, same SPIs and keys. The outbound one goes on from its sequence number
        (the peer's replay window would drop a restarted one until it caught up)."""
        try:
            oseq = self.kernel.query_sa(a.old_outbound.dst, a.old_outbound.spi).oseq
        except KernelError as exc:
            log.warning("%s.%s: outbound sequence number unknown (%s)", a.conn, a.child, exc)
            oseq = 0
        old = DeleteChildSa(
            a.conn, a.child, a.unique_id, a.old_inbound, a.old_outbound, a.old_policies
        )
        self._delete(old)
        outbound = replace(a.outbound, oseq=oseq)
        self._install(InstallChildSa(a.conn, a.child, a.unique_id, a.inbound, outbound, a.policies))

    # -- kernel events ---------------------------------------------------------------------

    def _on_kernel_events(self) -> None:
        try:
            events = self.kernel.read_events()
        except Exception:
            log.exception("reading kernel events failed")
            return
        for ev in events:
            self._on_kernel_event(ev)
        if events:
            self._pump()

    def _on_kernel_event(self, ev: KernelEvent) -> None:
        self.stats["kernel_events"] += 1
        now = self._now()
        try:
            if isinstance(ev, Acquire):
                sel = ev.selector
                log.info(
                    "kernel ACQUIRE reqid %d (%s -> %s, packet %s -> %s)",
                    ev.reqid,
                    ev.src,
                    ev.dst,
                    sel.src,
                    sel.dst,
                )
                self._engine().acquire(ev.reqid, now)
            elif isinstance(ev, Expire):
                log.info(
                    "kernel %s EXPIRE of SA %08x -> %s (reqid %d)",
                    "hard" if ev.hard else "soft",
                    ev.spi,
                    ev.dst,
                    ev.reqid,
                )
                self._engine().child_expired(ev.spi, ev.hard, now)
        except Exception:
            log.exception("engine failed on kernel event %s", ev)


def _child_sa(a: InstallChildSa | DeleteChildSa | MigrateChildSa) -> str:
    """How the log names a CHILD_SA: connection, child, unique id and SPIs."""
    return (
        f"{a.conn}.{a.child}: CHILD_SA #{a.unique_id}, "
        f"SPIs {a.inbound.spi:08x}_i {a.outbound.spi:08x}_o"
    )


class KernelSpis:
    """SPIs the kernel allocates (``KernelIpsec.get_spi``), random ones if it cannot."""

    def __init__(self, kernel: KernelIpsec, random: Random, stats: Counter[str]) -> None:
        self._kernel = kernel
        self._random = random
        self._stats = stats
        self._fallback_logged = False

    def child_spi(self, src: IPAddress, dst: IPAddress) -> int:
        try:
            return self._kernel.get_spi(src, dst, 0)
        except KernelError as exc:
            # Never raise into the engine: a random SPI from the same range still
            # works (add_sa then creates the SA instead of completing a larval one).
            if not self._fallback_logged:
                self._fallback_logged = True
                log.error("SPI allocation %s -> %s failed (%s): using random SPIs", src, dst, exc)
            self._stats["spi_fallback"] += 1
            return random_spi(self._random)
