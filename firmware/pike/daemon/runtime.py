"""The asyncio runtime: sockets in -> engine, engine actions out, one re-armed timer.

Thin on purpose (docs/architecture.md): the engine decides everything; this module only
moves datagrams, installs what the engine asks into the kernel, serves the control socket
and handles signals and systemd. Every log line names the connection and SPIs it is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from pike.board.hotplug import HotplugEvent, HotplugWatcher, InterfaceEvent
from pike.board.watchdog import Health, LoopLag, feed_watchdog, unix_socket_present
from pike.daemon.clock import Clock, LoopClock, Timer
from pike.daemon.control import ControlError, ControlServer
from pike.daemon.interfaces import address_present, to_bring_up
from pike.daemon.notify import SystemdNotifier
from pike.daemon.ops import Ops
from pike.daemon.resolver import resolve
from pike.daemon.sa_view import list_sas_json
from pike.daemon.signing import Signing
from pike.daemon.sockets import IkeSockets
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.interface import KernelError, KernelIpsec
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps, SaCounters, SaSpec
from pike.policy.ts import IPAddress
from pike.sa.actions import (
    Action,
    Address,
    ChildSaEstablished,
    ChildSaFailed,
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaInfo,
    InstallChildSa,
    InstallInboundSa,
    InstallOutboundSa,
    InstallTrap,
    MessageDropped,
    RemoveInboundSa,
    ResolveRequest,
    SendDatagram,
    SendKeepalive,
    SignRequest,
)
from pike.sa.credentials import store_for
from pike.wire.constants import NATT_KEEPALIVE

log = logging.getLogger("pike.daemon")

SHUTDOWN_GRACE = 1.0  # seconds to wait for the peers' DELETE acks
SIGNING_GRACE = 2.0  # seconds to wait at shutdown for a token call in progress
SpiAlloc = Callable[[IPAddress, IPAddress], int]
EspActivity = Callable[[SaSpec], float | None]
Random = Callable[[int], bytes]  # os.urandom's shape: SPIs, nonces, rekey jitter
# strongSwan's range for allocated SPIs (as pike.kernel.xfrm allocates them), used for
# random SPIs when the kernel cannot allocate one.
FALLBACK_SPI_MIN = 0xC0000000
FALLBACK_SPI_MAX = 0xCFFFFFFF


class EngineContext(Protocol):
    # Set by the runtime: the last inbound ESP use of an SA on the engine's clock.
    esp_activity: EspActivity | None


class Engine(Protocol):
    """What the runtime needs of a protocol engine (``Ikev2Engine``)."""

    @property
    def ctx(self) -> EngineContext: ...

    def start(self, now: float) -> None: ...
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def initiate(self, conn: str, now: float, child: str | None = None) -> None: ...
    def terminate(self, conn: str, now: float, force: bool = False) -> None: ...
    def terminate_child(self, conn: str, child: str, now: float) -> None: ...
    def resolved(self, conn: str, addresses: tuple[str, ...], now: float) -> None: ...
    def rekey(self, conn: str, now: float, child: str | None = None) -> None: ...
    def acquire(self, reqid: int, now: float) -> None: ...
    def child_expired(self, spi: int, hard: bool, now: float) -> None: ...
    def child_install_failed(self, unique_id: int, reason: str, now: float) -> None: ...
    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None: ...
    def next_action(self) -> Action | None: ...
    def list_sas(self) -> list[IkeSaInfo]: ...


EngineFactory = Callable[[Config, KernelCaps, SpiAlloc | None, Random], Engine]


def _version() -> str:
    from pike.version import version

    return version()


def _spis(spi_i: bytes, spi_r: bytes) -> str:
    return f"SPIs {spi_i.hex()}_i {spi_r.hex()}_r"


class Daemon:
    def __init__(
        self,
        config: Config,
        kernel: KernelIpsec,
        engine_factory: EngineFactory,
        *,
        notifier: SystemdNotifier | None = None,
        ipv6: bool = True,
        clock: Clock | None = None,
        random: Random = os.urandom,
    ) -> None:
        """``clock`` defaults to the event loop's (``LoopClock``, made in ``run``);
        tests pass a ``VirtualClock`` and a seeded ``random`` to skip over lifetimes."""
        self.config = config
        self.kernel = kernel
        self._engine_factory = engine_factory
        self.notifier = notifier or SystemdNotifier()
        self._ipv6 = ipv6
        self.caps = KernelCaps(esp=False, missing=("not probed",))
        self.stats: Counter[str] = Counter()
        self._engine: Engine | None = None
        self._sockets: IkeSockets | None = None
        self._control: ControlServer | None = None
        self._signing: Signing | None = None
        self._lookups: set[asyncio.Task[None]] = set()  # DNS lookups under way
        self.stuck: list[str] = []  # token calls still running when shutdown gave up
        self._clock = clock
        self._random = random
        self._timer: Timer | None = None
        self._stop = asyncio.Event()
        self._started = 0.0
        self._started_wall = 0.0
        self._ike_spis: dict[int, tuple[bytes, bytes]] = {}  # unique id -> SPIs, for logs
        self._child_spis: dict[int, tuple[int, int]] = {}
        self._events_fd: int | None = None
        # inbound SA -> (packets at the last query, loop time the count last grew)
        self._esp_seen: dict[tuple[IPAddress, int], tuple[int, float | None]] = {}
        self._spi_fallback_logged = False
        self.ready = asyncio.Event()  # set once sockets and control socket are up
        # Metrics, reload, list-conns, key export (sees every action before _do acts).
        self.ops = Ops(self, self._now, self._pump, wall=lambda: self.clock.wall())
        # Checked before every WATCHDOG=1 (pike.board.watchdog); others may add checks.
        self.health = Health()
        self._board: dict[str, Any] | None = None

    # -- life cycle ------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "daemon not started"
        return self._engine

    @property
    def clock(self) -> Clock:
        assert self._clock is not None, "daemon not started"
        return self._clock

    def _probe(self) -> KernelCaps:
        try:
            caps = self.kernel.probe()
        except Exception as exc:  # whatever the backend raised, IKE must still come up
            caps = KernelCaps(esp=False, missing=(f"XFRM probe failed: {exc}",))
        if not caps.esp:
            log.error(
                "kernel cannot take ESP SAs (missing: %s): "
                "IKE will negotiate but CHILD_SAs cannot be installed",
                ", ".join(caps.missing) or "ESP",
            )
        return caps

    def _spi_alloc(self) -> SpiAlloc | None:
        if not self.caps.esp:
            return None  # the engine draws random SPIs; nothing will be installed

        def alloc(src: IPAddress, dst: IPAddress) -> int:
            try:
                return self.kernel.get_spi(src, dst, 0)
            except KernelError as exc:
                # Never raise into the engine: a random SPI from the same range still
                # works (add_sa then creates the SA instead of completing a larval one).
                if not self._spi_fallback_logged:
                    self._spi_fallback_logged = True
                    log.error(
                        "SPI allocation %s -> %s failed (%s): using random SPIs", src, dst, exc
                    )
                self.stats["spi_fallback"] += 1
                return random_spi(self._random)

        return alloc

    def _esp_activity(self, spec: SaSpec) -> float | None:
        """When ESP last arrived on ``spec``, on the loop's clock, for DPD; None when
        unknown or never used.

        The kernel's last use (wall clock, whole seconds) is converted; but Linux moves an
        SA's last-use time on output only (inbound SAs keep their first use), so a packet
        counter that grew since the previous query counts as use now."""
        if not self.caps.esp or self._clock is None:
            return None
        try:
            c = self.kernel.query_sa(spec.dst, spec.spi)
        except KernelError:
            return None
        now = self.clock.monotonic()
        seen = None if c.last_use is None else now - max(0.0, self.clock.wall() - c.last_use)
        key = (spec.dst, spec.spi)
        prev = self._esp_seen.get(key)
        grew = prev[1] if prev is not None else None
        if prev is not None and c.packets > prev[0]:
            grew = now
        self._esp_seen[key] = (c.packets, grew)
        if grew is not None and (seen is None or grew > seen):
            return grew
        return seen

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); the process exit status."""
        loop = asyncio.get_running_loop()
        if self._clock is None:
            self._clock = LoopClock(loop)
        self._started, self._started_wall = self.clock.monotonic(), self.clock.wall()
        self.caps = self._probe()
        self._engine = self._engine_factory(self.config, self.caps, self._spi_alloc(), self._random)
        self._engine.ctx.esp_activity = self._esp_activity
        self._signing = Signing(
            loop, lambda: store_for(self.engine.ctx), self._signed, self.ops.recorder
        )
        self.probe_tokens()  # in the signing threads, while the sockets open
        d = self.config.daemon
        self._sockets = IkeSockets(
            loop, self._on_datagram, ike_port=d.ike_port, natt_port=d.natt_port, ipv6=self._ipv6
        )
        self._control = ControlServer(d.control_socket, self._handlers(), self.ops.streams())
        try:
            self._sockets.open()
            await self._control.start()
        except OSError as exc:
            log.error("cannot start: %s", exc)
            self._sockets.close()
            await self._control.close()
            self.kernel.close()
            return 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.ops.sighup)
        await self.ops.start(_version())
        self._listen_kernel_events(loop)
        log.info(
            "piked %s started: IKE on UDP %d/%d, control socket %s, %d connection(s)",
            _version(),
            d.ike_port,
            d.natt_port,
            d.control_socket,
            len(self.config.connections),
        )
        self.notifier.ready()
        self.ready.set()
        watchdog = loop.create_task(self._watchdog())
        hotplug = self._start_hotplug(loop)
        self.engine.start(self._now())
        self._pump()
        await self._stop.wait()
        watchdog.cancel()
        if hotplug is not None:
            hotplug.close()
        await self._shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        return 0

    def probe_tokens(self) -> None:
        """Look at the token keys no one has looked at yet (start, reload), off the loop."""
        if self._signing is not None:
            self._signing.probe(store_for(self.engine.ctx), self.config)

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping: deleting IKE SAs")
        self._stop.set()

    def _start_hotplug(self, loop: asyncio.AbstractEventLoop) -> HotplugWatcher | None:
        """Kernel uevents for NICs and USB tokens (pike.board.hotplug); optional."""
        try:
            watcher = HotplugWatcher(self._on_hotplug)
        except Exception as exc:  # no libudev, or netlink refused: run without hot-plug
            log.warning("hot-plug disabled: %s", exc)
            return None
        watcher.attach(loop)
        return watcher

    def _on_hotplug(self, event: HotplugEvent) -> None:
        if isinstance(event, InterfaceEvent):
            log.info("interface %s %s", event.name, event.action)
            if event.action != "vanished":
                # Addresses follow the link (DHCP, networkd): look a moment later. A
                # vanished one needs nothing here: DPD and dpd_action decide.
                asyncio.get_running_loop().call_later(
                    self.INTERFACE_SETTLE, self._bring_up, event.name
                )
        else:
            log.info(
                "key token %s %s (%s:%s): re-probing the tokens",
                event.kind,
                event.action,
                event.vendor_id,
                event.product_id,
            )
            # At once rather than at the next signature (at most every 5 s): the state
            # (and pike_token_present) follows the token, and IKE_AUTH finds it ready.
            if self._signing is not None:
                self._signing.reprobe(store_for(self.engine.ctx))

    INTERFACE_SETTLE = 1.0  # seconds from a link appearing to looking at its addresses

    def _bring_up(self, ifname: str) -> None:
        now = self._now()
        for item in to_bring_up(self.config, self.engine.list_sas(), address_present):
            log.info("%s: interface %s appeared: %s", item.conn, ifname, item.how)
            try:
                if item.how == "restart":
                    self.engine.terminate(item.conn, now)
                self.engine.initiate(item.conn, now, item.child)
            except (KeyError, ValueError) as exc:  # not this engine's (IKEv1), no address
                log.info("%s: not brought up: %s", item.conn, exc)
        self._pump()

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while healthy: a wedged piked gets killed and restarted by
        systemd (WatchdogSec=), which itself feeds the hardware watchdog."""
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        lag = LoopLag(limit=interval)  # blocked for a whole ping interval: wedged
        lag.start()
        self.health.add("event loop", lag.check)
        self.health.add(
            "IKE sockets",
            lambda: None if self._sockets is not None and self._sockets.bound else "none open",
        )
        self.health.add("control socket", unix_socket_present(self.config.daemon.control_socket))
        try:
            await feed_watchdog(self.notifier.watchdog, self.health, interval)
        finally:
            lag.stop()

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        self.notifier.stopping()
        now = self._now()
        for name in sorted({sa.name for sa in self.engine.list_sas()}):
            with contextlib.suppress(KeyError):
                self.engine.terminate(name, now)
        self._pump()
        # real time: the grace is for the peers' answers, not for the engine's timers
        deadline = loop.time() + SHUTDOWN_GRACE
        while self.engine.list_sas() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
        if self._signing is not None:
            self._signing.close()
        if self._events_fd is not None:
            loop.remove_reader(self._events_fd)
            self._events_fd = None
        if self._control is not None:
            await self._control.close()
        await self.ops.close()
        if self._sockets is not None:
            self._sockets.close()
        try:
            self.kernel.flush_installed()
        except KernelError as exc:
            log.error("removing installed SAs/policies: %s", exc)
        self.kernel.close()
        if self._signing is not None:
            # A token call that never returns must not hold piked: bounded, then logged.
            self.stuck = await self._signing.stopped(SIGNING_GRACE)
        log.info("stopped")

    # -- engine I/O ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.monotonic()

    def _on_datagram(self, data: bytes, src: Address, dst: Address) -> None:
        self.stats["datagrams_in"] += 1
        try:
            self.engine.receive_datagram(data, src, dst, self._now())
        except Exception:
            # The engine must turn any input into a drop; a bug must not stop the daemon.
            log.exception("engine failed on a datagram from %s[%d]", src[0], src[1])
        finally:
            self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.engine.handle_timer(self._now())
        except Exception:
            log.exception("engine failed in its timer")
        finally:
            self._pump()  # always re-arm, or every SA would stall

    def _lookup(self, a: ResolveRequest) -> None:
        """A DNS name to look up for an initiation: off the loop, answered on it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not running: the attempt fails (and may retry)
            self.engine.resolved(a.conn, (), self._now())
            return
        task = loop.create_task(self._looked_up(a))
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _looked_up(self, a: ResolveRequest) -> None:
        addresses = await resolve(a.host, a.family)
        try:
            self.engine.resolved(a.conn, addresses, self._now())
        except Exception:
            log.exception("engine failed on the addresses of %s", a.host)
        finally:
            self._pump()

    def _signed(self, ref: int, result: bytes | Exception) -> None:
        """A signature (or its failure) is back from the signing threads."""
        try:
            self.engine.sign_done(ref, result, self._now())
        except Exception:
            log.exception("engine failed on signature %d", ref)
        finally:
            self._pump()

    def _listen_kernel_events(self, loop: asyncio.AbstractEventLoop) -> None:
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
                self.engine.acquire(ev.reqid, now)
            elif isinstance(ev, Expire):
                log.info(
                    "kernel %s EXPIRE of SA %08x -> %s (reqid %d)",
                    "hard" if ev.hard else "soft",
                    ev.spi,
                    ev.dst,
                    ev.reqid,
                )
                self.engine.child_expired(ev.spi, ev.hard, now)
        except Exception:
            log.exception("engine failed on kernel event %s", ev)

    def _pump(self) -> None:
        """Drain the engine's actions, then re-arm the single timer."""
        while (action := self.engine.next_action()) is not None:
            try:
                self._do(action)
            except Exception:
                log.exception("handling %s failed", type(action).__name__)
        deadline = self.engine.get_timer()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None and self._clock is not None:
            self._timer = self._clock.call_at(deadline, self._on_timer)

    def _do(self, a: Action) -> None:
        # The engine logs its own events (tagged with SPIs); these lines add what only the
        # runtime knows (kernel results) and repeat events at debug level.
        self.ops.observe(a)  # metrics and key export first: DeleteChildSa's final counts
        if isinstance(a, SendDatagram):
            if self._sockets is not None and self._sockets.send(a.data, a.src, a.dst):
                self.stats["datagrams_out"] += 1
        elif isinstance(a, SendKeepalive):
            # RFC 3948 §2.3: one 0xFF octet, without the non-ESP marker.
            if self._sockets is not None and self._sockets.send(
                NATT_KEEPALIVE, a.src, a.dst, marker=False
            ):
                self.stats["keepalives_out"] += 1
                log.debug("NAT-T keepalive %s[%d] -> %s[%d]", *a.src, *a.dst)
        elif isinstance(a, SignRequest):
            if self._signing is not None:
                self._signing.submit(a)
            else:  # not running: fail closed rather than leave the exchange waiting
                self.engine.sign_done(a.ref, RuntimeError("piked is not running"), self._now())
        elif isinstance(a, ResolveRequest):
            self._lookup(a)
        elif isinstance(a, InstallTrap):
            self._install_trap(a)
        elif isinstance(a, InstallChildSa):
            self._install(a)
        elif isinstance(a, InstallOutboundSa | InstallInboundSa):
            self._install_one(a)
        elif isinstance(a, RemoveInboundSa):
            with contextlib.suppress(KernelError):  # its short lifetime may have ended it
                self.kernel.del_sa(a.inbound.dst, a.inbound.spi)
            log.info(
                "%s.%s: inbound SA %08x_i installed ahead removed", a.conn, a.child, a.inbound.spi
            )
        elif isinstance(a, DeleteChildSa):
            self._delete(a)
        elif isinstance(a, IkeSaEstablished):
            self._ike_spis[a.unique_id] = (a.spi_i, a.spi_r)
            log.debug(
                "%s: IKE_SA #%d established, %s", a.conn, a.unique_id, _spis(a.spi_i, a.spi_r)
            )
        elif isinstance(a, IkeSaDeleted):
            spis = self._ike_spis.pop(a.unique_id, None)
            where = f", {_spis(*spis)}" if spis else ""
            log.debug("%s: IKE_SA #%d deleted (%s)%s", a.conn, a.unique_id, a.reason, where)
        elif isinstance(a, ChildSaEstablished):
            cs = self._child_spis.get(a.unique_id)
            where = f", SPIs {cs[0]:08x}_i {cs[1]:08x}_o" if cs else ""
            log.info("%s.%s: CHILD_SA #%d established%s", a.conn, a.child, a.unique_id, where)
        elif isinstance(a, ChildSaFailed):
            log.debug("%s.%s: CHILD_SA failed: %s", a.conn, a.child, a.reason)
        elif isinstance(a, MessageDropped):
            self.stats["dropped"] += 1
            log.debug("dropped datagram from %s[%d]: %s", a.src[0], a.src[1], a.reason)

    def _install(self, a: InstallChildSa) -> None:
        what = (
            f"{a.conn}.{a.child}: CHILD_SA #{a.unique_id}, "
            f"SPIs {a.inbound.spi:08x}_i {a.outbound.spi:08x}_o"
        )
        undo: list[Callable[[], None]] = []
        k = self.kernel
        try:
            k.add_sa(a.inbound)
            undo.append(lambda: k.del_sa(a.inbound.dst, a.inbound.spi))
            if not a.defer_outbound:
                k.add_sa(a.outbound)
                undo.append(lambda: k.del_sa(a.outbound.dst, a.outbound.spi))
            for p in a.policies:
                k.add_policy(p)
                undo.append(lambda p=p: k.del_policy(p))  # type: ignore[misc]
        except KernelError as exc:
            log.error("%s: kernel refused: %s", what, exc)
            for fn in reversed(undo):
                with contextlib.suppress(KernelError):
                    fn()
            self.engine.child_install_failed(a.unique_id, str(exc), self._now())
            return
        self._child_spis[a.unique_id] = (a.inbound.spi, a.outbound.spi)
        # DPD baseline: any inbound packet counted later is ESP activity.
        self._esp_seen[(a.inbound.dst, a.inbound.spi)] = (0, None)
        later = " (outbound SA once the old one is deleted)" if a.defer_outbound else ""
        log.info("%s: installed in the kernel (%s)%s", what, a.inbound.mode, later)

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
        self._child_spis.pop(a.unique_id, None)
        self._esp_seen.pop((a.inbound.dst, a.inbound.spi), None)
        what = (
            f"{a.conn}.{a.child}: CHILD_SA #{a.unique_id}, "
            f"SPIs {a.inbound.spi:08x}_i {a.outbound.spi:08x}_o"
        )
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

    # -- control socket --------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "status": self.cmd_status,
            "list-sas": self.cmd_list_sas,
            "initiate": self.cmd_initiate,
            "terminate": self.cmd_terminate,
            "rekey": self.cmd_rekey,
            **self.ops.handlers(),  # reload, list-conns
            "board": self.cmd_board,
        }

    def _counters(self, spec: SaSpec) -> SaCounters | None:
        if not self.caps.esp:
            return None
        try:
            return self.kernel.query_sa(spec.dst, spec.spi)
        except KernelError:
            return None

    def cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        sas = self.engine.list_sas()
        return {
            "version": _version(),
            "pid": os.getpid(),
            "uptime": int(self._now() - self._started),
            "started_at": round(self._started_wall, 3),
            "config": self.config.path,
            "kernel": {"esp": self.caps.esp, "missing": list(self.caps.missing)},
            "ike_sas": len(sas),
            "child_sas": sum(len(sa.children) for sa in sas),
            "connections": sorted(self.config.connections),
            "ike_ports": [self.config.daemon.ike_port, self.config.daemon.natt_port],
        }

    def cmd_board(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._board is None:  # the board does not change while we run
            from pike.board.detect import describe

            try:
                self._board = describe()
            except LookupError as exc:
                raise ControlError(str(exc)) from None
        return self._board

    def cmd_list_sas(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        conn = None if args.get("conn") is None else self._conn_arg(args)  # a typo: an error
        sas = [sa for sa in self.engine.list_sas() if conn is None or sa.name == conn]
        failed = self.ops.recorder.child_failed
        return list_sas_json(sas, self._counters, self._now(), self.clock.wall(), failed)

    def _conn_arg(self, args: dict[str, Any]) -> str:
        conn = args.get("conn")
        if not isinstance(conn, str) or not conn:
            raise ControlError('missing "conn"')
        if conn not in self.config.connections:
            raise ControlError(f"no connection named {conn!r}")
        return conn

    def _child_arg(self, conn: str, args: dict[str, Any]) -> str | None:
        child = args.get("child")
        if child is not None and (
            not isinstance(child, str) or self.config.connections[conn].child(child) is None
        ):
            raise ControlError(f"connection {conn!r} has no child {child!r}")
        return child

    def cmd_initiate(self, args: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        try:
            self.engine.initiate(conn, self._now(), child)
        except (KeyError, ValueError) as exc:
            # The engine's KeyError says why (IKEv1 connection, no remote address, ...).
            raise ControlError(
                str(exc.args[0]) if exc.args else f"cannot initiate {conn}"
            ) from None
        self._pump()
        log.info("%s: initiate requested%s", conn, f" (child {child})" if child else "")
        return {"conn": conn, "child": child}

    def cmd_rekey(self, args: dict[str, Any]) -> dict[str, Any]:
        """Rekey a connection's IKE SA, or one CHILD_SA (``child`` given), now."""
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        try:
            self.engine.rekey(conn, self._now(), child)
        except (KeyError, ValueError) as exc:
            raise ControlError(str(exc.args[0]) if exc.args else f"cannot rekey {conn}") from None
        self._pump()
        log.info("%s: rekey requested%s", conn, f" (child {child})" if child else " (IKE_SA)")
        return {"conn": conn, "child": child}

    def cmd_terminate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Delete a connection's IKE SAs (``force``: at once, without waiting for the
        peer), or one CHILD_SA (``child`` given) with the peer."""
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        force = args.get("force") is True
        try:
            if child is not None:
                self.engine.terminate_child(conn, child, self._now())
            else:
                self.engine.terminate(conn, self._now(), force)
        except KeyError as exc:
            raise ControlError(str(exc.args[0]) if exc.args else f"no {conn!r}") from None
        self._pump()
        what = f" (child {child})" if child else " (forced)" if force else ""
        log.info("%s: terminate requested%s", conn, what)
        return {"conn": conn, "child": child}


def random_spi(random: Random = os.urandom) -> int:
    """A random SPI from FALLBACK_SPI_MIN..FALLBACK_SPI_MAX."""
    span = FALLBACK_SPI_MAX - FALLBACK_SPI_MIN + 1
    return FALLBACK_SPI_MIN + int.from_bytes(random(4), "big") % span
