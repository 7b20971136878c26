"""The asyncio runtime: the composition root that wires the engine to the world.

Thin on purpose (docs/architecture.md): the engine decides everything. ``Daemon`` owns
the one timer and the action pump and hands each job to the module that holds it:
datagrams (``Datagrams``), the kernel (``DataPlane``), signatures (``Signing``), control
commands (``Commands``, ``Ops``), systemd's watchdog (``health``) and hot-plug
(``Hotplug``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pike.board.watchdog import Health, LoopLag
from pike.daemon import privileges
from pike.daemon.chain_checks import ChainChecks
from pike.daemon.clock import Clock, LoopClock, Timer
from pike.daemon.commands import Commands
from pike.daemon.control import ControlServer
from pike.daemon.datagrams import Datagrams
from pike.daemon.dataplane import DataPlane, Random
from pike.daemon.health import watchdog
from pike.daemon.hotplug import Hotplug
from pike.daemon.notify import SystemdNotifier
from pike.daemon.ops import Ops
from pike.daemon.paths import PathWatcher
from pike.daemon.resolver import resolve
from pike.daemon.revocation import Fetcher
from pike.daemon.signing import Signing
from pike.daemon.tunnels import Tunnels
from pike.kernel.interface import KernelIpsec
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps, SaCounters, SaSpec
from pike.sa.actions import (
    Action,
    Address,
    CheckChain,
    ChildSaEstablished,
    ChildSaFailed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaInfo,
    MessageDropped,
    ResolveRequest,
    SendDatagram,
    SendKeepalive,
    SignRequest,
)
from pike.sa.credentials import CredentialStore
from pike.sa.log_limit import LogLimit
from pike.sa.ports import SpiSource
from pike.sa.revocation import RevokedCheck

if TYPE_CHECKING:
    from datetime import datetime  # imported where a time is made (idle RSS)

    from pike.keyd.client import KeyHelper

__all__ = ["Daemon", "Engine", "EngineFactory", "Random"]

log = logging.getLogger("pike.daemon")

SHUTDOWN_GRACE = 1.0  # seconds to wait for the peers' DELETE acks
SIGNING_GRACE = 2.0  # seconds to wait at shutdown for a token call in progress


class EngineContext(Protocol):
    """The engines' shared ``pike.sa.context.Context``: the runtime hands it to the parts
    that read it (``Ops``: counters) and sets only ``offload_chains`` (it answers
    ``CheckChain``)."""

    offload_chains: bool
    log_limit: LogLimit  # its pending summaries are written at shutdown


class Engine(Protocol):
    """What the runtime needs of a protocol engine (``Engines``)."""

    actions: deque[Action]  # the queue ``next_action`` pops: the runtime drains it itself

    @property
    def ctx(self) -> EngineContext: ...

    def start(self, now: float) -> None: ...
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def initiate(
        self, conn: str, now: float, child: str | None = None, peer: str | None = None
    ) -> None: ...
    def active_hub(self, conn: str) -> tuple[str | None, int, int]: ...
    def terminate(self, conn: str, now: float, force: bool = False) -> None: ...
    def terminate_child(self, conn: str, child: str, now: float) -> None: ...
    def resolved(self, conn: str, addresses: tuple[str, ...], now: float) -> None: ...
    def rekey(self, conn: str, now: float, child: str | None = None) -> None: ...
    def acquire(self, reqid: int, now: float) -> None: ...
    def child_expired(self, spi: int, hard: bool, now: float) -> None: ...
    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None: ...
    def esp_wanted(self, now: float) -> list[SaSpec]: ...
    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None: ...
    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]: ...

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None: ...
    def chain_checked(self, ref: int, result: tuple[int, ...] | Exception, now: float) -> None: ...
    def next_action(self) -> Action | None: ...
    def list_sas(self) -> list[IkeSaInfo]: ...
    def mobike_peers(self) -> set[str]: ...
    def paths_changed(
        self, addresses: tuple[str, ...], sources: Mapping[str, str | None], now: float
    ) -> None: ...


# The engine is given its ports (pike.sa.ports), the daemon's randomness and credentials.
EngineFactory = Callable[[Config, KernelCaps, SpiSource, Random, CredentialStore], Engine]


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
        credentials: CredentialStore | None = None,
        key_helper: KeyHelper | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """``clock`` defaults to the event loop's (``LoopClock``, made in ``run``);
        tests pass a ``VirtualClock`` and a seeded ``random`` to skip over lifetimes.
        ``credentials``: the store the config was loaded into (``load_checked``); the
        engines and the signing threads use it, and reloads load into it. ``key_helper``:
        pike-keyd (piked started or reached it; its signers are in ``credentials``), where
        peers' certificate chains are checked; without it, in a worker thread.
        ``on_ready``: called once, right after READY=1 (every socket bound, nothing
        negotiated yet)."""
        self.config = config
        self.kernel = kernel
        self._engine_factory = engine_factory
        self.notifier = notifier or SystemdNotifier()
        self._ipv6 = ipv6
        self.stats: Counter[str] = Counter()
        self._engine: Engine | None = None
        self._control: ControlServer | None = None
        self._signing: Signing | None = None
        self._chains: ChainChecks | None = None
        self.key_helper = key_helper
        self._lookups: set[asyncio.Task[None]] = set()  # DNS lookups under way
        self.stuck: list[str] = []  # token calls still running when shutdown gave up
        self._clock = clock
        self._random = random
        self._on_ready = on_ready
        self.credentials = credentials or CredentialStore()
        self._timer: Timer | None = None
        self._stop = asyncio.Event()
        self.started = 0.0
        self.started_wall = 0.0
        self.ready = asyncio.Event()  # set once sockets and control socket are up
        self.dataplane = DataPlane(
            kernel,
            lambda: self.engine,
            self._now,
            self._pump,
            lambda: self._clock,
            self.stats,
            random,
        )
        self.datagrams = Datagrams(self._drain, self._rearm, self.stats)
        # Route-based children: the interfaces piked creates and the updown scripts.
        self.tunnels = Tunnels(lambda: self.config, getattr(kernel, "netns", None))
        # Metrics, reload, list-conns, key export (sees the actions it observes first).
        self.ops = Ops(self, self._now, self._pump, wall=lambda: self.clock.wall())
        self.commands = Commands(self, self._now, self._pump)
        self.hotplug = Hotplug(
            lambda: self.config, lambda: self.engine, self._now, self._pump, self._reprobe
        )
        self.paths = PathWatcher(lambda: self.engine, self._now, self._pump)
        # Checked before every WATCHDOG=1 (pike.board.watchdog); others may add checks.
        self.health = Health()
        # CRL and OCSP fetches the revocation checks ask for (pike.daemon.revocation).
        self.revocation = Fetcher(
            lambda: self.credentials,
            lambda: self._engine,
            self._now,
            self._pump,
            wall=lambda: self.clock.wall(),
        )
        # How late the loop wakes a sleeper: the watchdog's health check, a metric and
        # pikectl status (work done on the loop, e.g. a flood, shows up here).
        self.loop_lag = LoopLag(limit=float("inf"), period=0.5)
        # The engines' shared action queue (``_drain``), theirs once the daemon runs.
        self._actions: deque[Action] = deque()
        self._route = self._routes()

    # -- life cycle ------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "daemon not started"
        return self._engine

    @property
    def clock(self) -> Clock:
        assert self._clock is not None, "daemon not started"
        return self._clock

    @property
    def caps(self) -> KernelCaps:
        return self.dataplane.caps

    def counters(self, spec: SaSpec) -> SaCounters | None:
        return self.dataplane.counters(spec)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); the process exit status."""
        loop = asyncio.get_running_loop()
        if self._clock is None:
            self._clock = LoopClock(loop)
        self.started, self.started_wall = self.clock.monotonic(), self.clock.wall()
        # the metrics' wall clock, read at every CHILD_SA install on a hub: the clock's
        # own method now that there is one (not the lambda that waited for it)
        self.ops.recorder.wall = self.clock.wall
        caps = self.dataplane.probe()
        # Certificates are checked at the wall-clock time of the engine's now.
        self.credentials.clock = self._wall_at
        self._engine = self._engine_factory(
            self.config, caps, self.dataplane.spi_source(), self._random, self.credentials
        )
        self._signing = Signing(loop, lambda: self.credentials, self._signed, self.ops.recorder)
        self._chains = ChainChecks(loop, self._chain_checked, self.key_helper)
        self.engine.ctx.offload_chains = True  # answered by self._chains
        self._actions = self.engine.actions
        self.probe_tokens()  # in the signing threads, while the sockets open
        d = self.config.daemon
        self._control = ControlServer(
            d.control_socket, self.commands.handlers(), self.ops.streams()
        )
        try:
            self.datagrams.open(loop, d, self._ipv6, self.engine, self.clock.monotonic)
            await self._control.start()
        except OSError as exc:
            log.error("cannot start: %s", exc)
            self.datagrams.close()
            await self._control.close()
            self.kernel.close()
            return 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.ops.sighup)
        await self.ops.start(_version())
        self.reroute()  # key export as configured, the open sockets' send_datagram
        privileges.drop_after_binding()  # every socket is bound (IKE, control, metrics)
        self.dataplane.listen(loop)
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
        if self._on_ready is not None:
            self._on_ready()
        self.loop_lag.start()
        fed = loop.create_task(
            watchdog(
                self.notifier,
                self.health,
                lambda: self.datagrams.bound,
                self.config.daemon.control_socket,
                self.loop_lag,
            )
        )
        self.hotplug.start(loop)
        self.paths.start(loop)  # our addresses first: IKE_AUTH announces them (MOBIKE)
        self.revocation.start(self.config)
        self.engine.start(self._now())
        self._pump()
        await self._stop.wait()
        fed.cancel()
        self.loop_lag.stop()
        self.hotplug.close()
        self.paths.close()
        await self.revocation.stop()
        await self._shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        return 0

    def probe_tokens(self) -> None:
        """Look at the token keys no one has looked at yet (start, reload), off the loop."""
        if self._signing is not None:
            self._signing.probe(self.credentials, self.config)

    def follow_hotplug(self) -> None:
        """Start hot-plug if a reload gave it something to act on (``hotplug.wanted``)."""
        self.hotplug.follow()

    def _reprobe(self) -> None:
        if self._signing is not None:
            self._signing.reprobe(self.credentials)

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping: deleting IKE SAs")
        self._stop.set()

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
        await self.tunnels.close()  # the down scripts of what the deletes took down
        if self._signing is not None:
            self._signing.close()
        if self._chains is not None:
            self._chains.close()
        self.dataplane.stop_listening(loop)
        if self._control is not None:
            await self._control.close()
        await self.ops.close()
        self.datagrams.close()
        self.dataplane.close()
        if self._signing is not None:
            # A token call that never returns must not hold piked: bounded, then logged.
            self.stuck = await self._signing.stopped(SIGNING_GRACE)
        # a flood's last "suppressed K similar lines" (e.g. of the half-open SAs the
        # terminate above ended): no timer is left to write it
        self.engine.ctx.log_limit.flush_all()
        log.info("stopped")

    # -- engine I/O ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.monotonic()

    def _wall_at(self, now: float) -> datetime:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.clock.wall() - self.clock.monotonic() + now, UTC)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            now = self._now()
            self.dataplane.report_esp(self.engine, now)  # inbound ESP, for DPD
            self.engine.handle_timer(now)
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

    def _chain_checked(self, ref: int, result: tuple[int, ...] | Exception) -> None:
        """A peer's certificate chain is checked (pike-keyd or the chain worker)."""
        try:
            self.engine.chain_checked(ref, result, self._now())
        except Exception:
            log.exception("engine failed on certificate check %d", ref)
        finally:
            self._pump()

    def _pump(self) -> None:
        """Drain the engine's actions, then re-arm the single timer."""
        self._drain()
        self._rearm()

    def _drain(self) -> None:
        """Act on the engine's actions, in order (after every input to the engine): each
        goes to the handlers its kind has (``_routes``), each handler's failure logged and
        contained. Read from the engines' shared queue itself: a call per action to
        ``next_action`` cost more than the rest of the dispatch."""
        actions, handlers = self._actions, self._route.get
        popleft = actions.popleft
        while actions:
            action = popleft()
            for act in handlers(action.__class__, ()):
                try:
                    act(action)
                except Exception:
                    log.exception("handling %s failed in %s", type(action).__name__, _name(act))
        if self.credentials.revocation.wanted:
            self.revocation.drain()

    def _rearm(self) -> None:
        """Arm the loop timer at the engine's next deadline. A batch of datagrams asks
        once, after its last one (``Datagrams.batch_done``): no timer can run before."""
        deadline = self.engine.get_timer()
        timer = self._timer
        if timer is not None:
            if deadline == timer.when():
                return  # armed for it already: the usual case after a datagram
            timer.cancel()
            self._timer = None
        if deadline is not None and self._clock is not None:
            self._timer = self._clock.call_at(deadline, self._on_timer)

    def reroute(self) -> None:
        """Work out again which handlers each kind of action goes to: after start (key
        export, tunnels) and after every reload (``Ops.cmd_reload``)."""
        self._route = self._routes()

    def _routes(self) -> dict[type, tuple[Callable[[Any], None], ...]]:
        """The handlers of each kind of action, in order, looked up by its type (one dict
        lookup per action): first the observers that care about the kind (metrics, the
        initiations' watches, key export: ``Ops.observers``; DeleteChildSa's final counts
        are read before the SAs go), then a route-based child's interface and updown
        (``Tunnels.observers``: only when the config has such children), then the one
        that acts (the socket, the kernel, a log line). A kind nothing cares about is
        absent: the two datagrams of a handshake go straight to the socket."""
        acts: dict[type, Callable[[Any], None]] = {
            SendDatagram: self.datagrams.send_datagram,
            SendKeepalive: self.datagrams.send_keepalive,
            SignRequest: self._sign,
            CheckChain: self._check_chain,
            ResolveRequest: self._lookup,
            IkeSaEstablished: _log_ike_up,
            IkeSaDeleted: _log_ike_down,
            ChildSaEstablished: _log_child_up,
            ChildSaFailed: _log_child_failed,
            MessageDropped: self._dropped,
            **self.dataplane.routes(),
        }
        routes: dict[type, tuple[Callable[[Any], None], ...]] = {}
        for kind in {*acts, *self.ops.OBSERVED, *self.tunnels.OBSERVED}:
            act = acts.get(kind)
            handlers = (
                *self.ops.observers(kind),
                *self.tunnels.observers(kind),
                *(() if act is None else (act,)),
            )
            if handlers:
                routes[kind] = handlers
        return routes

    def _sign(self, a: SignRequest) -> None:
        if self._signing is not None:
            self._signing.submit(a)
        else:  # not running: fail closed rather than leave the exchange waiting
            self.engine.sign_done(a.ref, RuntimeError("piked is not running"), self._now())

    def _check_chain(self, a: CheckChain) -> None:
        if self._chains is not None:
            self._chains.submit(a)
        else:
            self.engine.chain_checked(a.ref, RuntimeError("piked is not running"), self._now())

    def _dropped(self, a: MessageDropped) -> None:
        self.stats["dropped"] += 1
        log.debug("dropped datagram from %s[%d]: %s", a.src[0], a.src[1], a.reason)


def _name(act: Callable[[Any], None]) -> str:
    """A handler as a log line names it."""
    return getattr(act, "__qualname__", None) or repr(act)


def _log_ike_up(a: IkeSaEstablished) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: IKE_SA #%d established, %s", a.conn, a.unique_id, _spis(a.spi_i, a.spi_r))


def _log_ike_down(a: IkeSaDeleted) -> None:
    if log.isEnabledFor(logging.DEBUG):
        where = f", {_spis(*a.spis)}" if a.spis else ""
        log.debug("%s: IKE_SA #%d deleted (%s)%s", a.conn, a.unique_id, a.reason, where)


def _log_child_up(a: ChildSaEstablished) -> None:
    if log.isEnabledFor(logging.INFO):
        cs = a.spis
        where = f", SPIs {cs[0]:08x}_i {cs[1]:08x}_o" if cs else ""
        log.info("%s.%s: CHILD_SA #%d established%s", a.conn, a.child, a.unique_id, where)


def _log_child_failed(a: ChildSaFailed) -> None:
    log.debug("%s.%s: CHILD_SA failed: %s", a.conn, a.child, a.reason)
