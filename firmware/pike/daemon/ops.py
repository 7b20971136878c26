"""Operations beside the protocol: metrics endpoint, config reload, list-conns, key export.

The runtime (``pike.daemon.runtime.Daemon``) owns one ``Ops``; it hands every engine action
to ``observe`` before acting on it, starts and closes it with the sockets, and merges its
control commands (``reload``, ``list-conns``, the ``log`` stream) into the control socket's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from pike.board.watchdog import LoopLag
from pike.crypto.proposal import format_proposal
from pike.daemon.configfile import ConfigRefused, load_checked
from pike.daemon.control import ControlError, StreamSource
from pike.daemon.initiations import Initiations
from pike.daemon.keyexport import KeyExport
from pike.daemon.logstream import LogHub
from pike.daemon.revocation import Fetcher
from pike.metrics.recorder import RECORDED, Recorder
from pike.policy.config import Config, DaemonConfig
from pike.policy.ipsec import KernelCaps, SaCounters, SaSpec
from pike.sa.actions import IkeSaEstablished, IkeSaInfo, InstallChildSa
from pike.sa.context import Counters
from pike.sa.credentials import CredentialStore
from pike.sa.hubs import Hubs

if TYPE_CHECKING:
    from cryptography import x509

    # prometheus_client (and the HTTP server modules it loads, ~2 MiB) only when the
    # metrics endpoint is on (metrics_listen)
    from prometheus_client.registry import CollectorRegistry

    from pike.metrics.server import MetricsServer

log = logging.getLogger("pike.daemon")

# [daemon] keys a reload cannot apply to a running daemon (sockets are open).
RELOAD_KEYS = ("unchanged", "changed", "removed", "added")
RESTART_KEYS = ("control_socket", "ike_port", "natt_port", "metrics_listen", "log_level")


class _Ctx(Protocol):
    counters: Counters
    hubs: Hubs


class _Engine(Protocol):
    """What Ops needs of the engine beyond the runtime's ``Engine`` protocol."""

    @property
    def ctx(self) -> _Ctx: ...

    def list_sas(self) -> list[IkeSaInfo]: ...
    def reload(self, config: Config, now: float) -> dict[str, list[str]]: ...
    def active_hub(self, conn: str) -> tuple[str | None, int, int]: ...
    def peer_paths(self) -> list[tuple[str, tuple[x509.Certificate, ...]]]: ...


class _Commands(Protocol):
    def cmd_initiate(self, args: dict[str, Any]) -> dict[str, Any]: ...


class _Daemon(Protocol):
    config: Config
    credentials: CredentialStore
    commands: _Commands  # pike.daemon.commands.Commands
    loop_lag: LoopLag

    @property
    def caps(self) -> KernelCaps: ...

    @property
    def engine(self) -> Any: ...

    def probe_tokens(self) -> None: ...
    def follow_hotplug(self) -> None: ...
    def reroute(self) -> None: ...

    @property
    def revocation(self) -> Fetcher: ...
    def counters(self, spec: SaSpec) -> SaCounters | None: ...


class Ops:
    # What ``observers`` may name handlers for: the metrics', initiate-wait's and key
    # export's kinds.
    OBSERVED = RECORDED | Initiations.OBSERVED | {IkeSaEstablished, InstallChildSa}

    def __init__(
        self,
        daemon: _Daemon,
        now: Callable[[], float],
        pump: Callable[[], None],
        *,
        wall: Callable[[], float] = time.time,
    ):
        self.daemon = daemon
        self._now = now
        self._wall = wall
        self._pump = pump
        self.recorder = Recorder(self.query, wall)
        self.metrics: MetricsServer | None = None
        self._keys: KeyExport | None = None
        self._started_wall = 0.0  # set by start()
        self.logs = LogHub()  # pikectl log
        self.initiations = Initiations(  # pikectl initiate, waiting for the outcome
            lambda args: self.daemon.commands.cmd_initiate(args),
            lambda: self.engine.list_sas(),
            lambda: self.daemon.config,
            self.logs,
            on_watching=lambda: self.daemon.reroute(),
        )

    @property
    def engine(self) -> _Engine:
        return cast(_Engine, self.daemon.engine)

    def query(self, spec: SaSpec) -> SaCounters | None:
        return self.daemon.counters(spec)  # the data plane's (None: no ESP, or gone)

    # -- life cycle ------------------------------------------------------------------------

    def registry(self, version: str) -> CollectorRegistry:
        from prometheus_client.process_collector import ProcessCollector
        from prometheus_client.registry import CollectorRegistry

        from pike.metrics.collector import PikeCollector, Sources
        from pike.metrics.firmware import read_firmware

        reg = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=reg)  # process_* (CPU, memory, open fds) as every exporter
        reg.register(
            PikeCollector(
                Sources(
                    config=lambda: self.daemon.config,
                    sas=lambda: self.engine.list_sas(),
                    counters=lambda: getattr(self.engine.ctx, "counters", None),
                    now=self._now,
                    wall=self._wall,
                    esp=lambda: self.daemon.caps.esp,
                    recorder=self.recorder,
                    version=version,
                    started_wall=self._started_wall,
                    tokens=self._tokens,
                    hubs=self._hub,
                    pki=self.pki,
                    loop_lag=self._loop_lag,
                    firmware=read_firmware(),
                )
            )
        )
        return reg

    def pki(self) -> dict[str, Any]:
        """Certificates and revocation sources (pikectl certs, metrics)."""
        from pike.daemon import certs_view  # deferred: cryptography.x509 (idle RSS)

        d = self.daemon
        store = d.credentials
        peers = self.engine.peer_paths()
        return {
            "certs": certs_view.certificates(d.config, store, peers, self._wall()),
            "crls": certs_view.crls(store),
            "sources": certs_view.sources(store),
            "fetches": dict(d.revocation.counts),
        }

    def cmd_certs(self, args: dict[str, Any]) -> dict[str, Any]:
        pki = self.pki()
        pki["fetches"] = [
            {"kind": k, "result": r, "count": n} for (k, r), n in sorted(pki["fetches"].items())
        ]
        return pki

    def _loop_lag(self) -> tuple[float, float]:
        lag = self.daemon.loop_lag
        return lag.recent, lag.worst

    def _tokens(self) -> dict[str, str]:
        return self.daemon.credentials.tokens()

    def _hub(self, conn: str) -> tuple[str | None, int]:
        hub, _index, count = self.engine.active_hub(conn)
        return (hub if count else None), self.engine.ctx.hubs.changes.get(conn, 0)

    async def start(self, version: str) -> None:
        """Start the metrics endpoint (a bind error is logged; IKE comes up anyway)."""
        self._started_wall = self._wall()
        logging.getLogger().addHandler(self.logs)
        self._configure_keys(self.daemon.config.daemon)
        listen = self.daemon.config.daemon.metrics_listen
        if not listen:
            return
        from pike.metrics.server import MetricsServer

        server = MetricsServer(self.registry(version), listen)
        try:
            await server.start()
        except OSError as exc:
            log.error("metrics endpoint %s: %s (metrics disabled)", listen, exc)
            return
        self.metrics = server

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.logs)
        if self.metrics is not None:
            await self.metrics.close()
            self.metrics = None

    def _configure_keys(self, d: DaemonConfig) -> None:
        self._keys = KeyExport(d.save_keys_dir) if d.save_keys_dir else None

    # -- engine actions --------------------------------------------------------------------

    def observers(self, kind: type) -> tuple[Callable[[Any], None], ...]:
        """What sees an engine action of ``kind`` before the runtime acts on it, in order:
        the metrics' record of it, the initiations' watches (while one waits), key
        export (when ``save_keys_dir`` is set). The runtime asks again after a reload and
        when the first watch starts or the last ends. The runtime
        contains each one's failure: observability must never break the data path."""
        out: list[Callable[[Any], None]] = []
        record = self.recorder.records().get(kind)
        if record is not None:
            out.append(record)
        if kind in Initiations.OBSERVED and self.initiations.watching:
            out.append(self.initiations.observe)
        if self._keys is not None:  # key export (save_keys_dir): a debugging aid
            if kind is IkeSaEstablished:
                out.append(self._export_ike)
            elif kind is InstallChildSa:
                out.append(self._export_child)
        return tuple(out)

    def _export_child(self, a: InstallChildSa) -> None:
        assert self._keys is not None
        tag = f"{a.conn}.{a.child}: CHILD_SA #{a.unique_id}"
        self._keys.child_sa(tag, a.inbound, a.outbound)

    def _export_ike(self, a: IkeSaEstablished) -> None:
        assert self._keys is not None
        engine = self.daemon.engine
        sas = getattr(engine, "sas", None)
        if sas is None:  # IKEv2's SAs behind pike.daemon.engines.Engines
            sas = getattr(getattr(engine, "v2", None), "sas", {})
        for sa in list(sas.values()):
            if sa.spi_i == a.spi_i and sa.spi_r == a.spi_r:
                if sa.keys is None or sa.chosen is None:
                    return
                ch = sa.chosen
                tag = f"{a.conn}[{a.unique_id}] {a.spi_i.hex()}_i {a.spi_r.hex()}_r"
                self._keys.ike_sa(
                    tag, a.spi_i, a.spi_r, sa.keys, ch.encr_id, ch.encr_key_length, ch.integ_id
                )
                return

    # -- control commands ------------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "reload": self.cmd_reload,
            "list-conns": self.cmd_list_conns,
            "certs": self.cmd_certs,
        }

    def streams(self) -> dict[str, StreamSource]:
        return {"log": self.logs, "initiate-wait": self.initiations}

    def cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        """Read the config file again; on any error nothing changes and the error is the
        answer. Unchanged connections keep their SAs."""
        path = self.daemon.config.path
        try:
            # as at start, into the daemon's store; no token I/O on the loop
            new = load_checked(path, probe=False, store=self.daemon.credentials)
        except ConfigRefused as exc:
            self.recorder.reloaded(False)
            msg = "; ".join(exc.lines)
            log.error("reload refused: %s", msg)
            raise ControlError(msg) from None
        old = self.daemon.config.daemon
        restart = [k for k in RESTART_KEYS if getattr(old, k) != getattr(new.daemon, k)]
        result = self.engine.reload(new, self._now())
        self.daemon.config = new
        self._configure_keys(new.daemon)
        self.daemon.reroute()  # key export and tunnels as the new config says
        self.recorder.reloaded(True)
        self.daemon.probe_tokens()  # a key added by the reload, in its signing thread
        self.daemon.follow_hotplug()  # a token key or self-starting connection added
        self.daemon.revocation.reloaded(new)
        self._pump()
        if restart:
            log.warning("reload: [daemon] %s change(s) need a restart", ", ".join(restart))
        log.info(
            "reload of %s: unchanged %s, changed %s, removed %s, added %s",
            path,
            *(
                ",".join(result.get(k, [])) or "-"
                for k in ("unchanged", "changed", "removed", "added")
            ),
        )
        return {**result, "restart_needed": restart, "config": path}

    def sighup(self) -> None:
        log.info("SIGHUP: reloading %s", self.daemon.config.path)
        with contextlib.suppress(ControlError):  # already logged
            self.cmd_reload({})

    def cmd_list_conns(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        sas = self.engine.list_sas()
        out = []
        for name, c in sorted(self.daemon.config.connections.items()):
            mine = [sa for sa in sas if sa.name == name]
            out.append(
                {
                    "name": name,
                    "version": c.version,
                    "local_addrs": list(c.local_addrs) or ["%any"],
                    "remote_addrs": list(c.remote_addrs),
                    "local_id": str(c.local.id) if c.local.id else "",
                    "remote_id": str(c.remote.id) if c.remote.id else "",
                    "local_auth": c.local.auth,
                    "remote_auth": c.remote.auth,
                    "proposals": [format_proposal(p) for p in c.proposals],
                    "dpd_delay": c.dpd_delay,
                    "dpd_action": c.dpd_action,
                    "rekey_time": c.rekey_time,
                    "encap": c.encap,
                    "ike_sas": {sa.state: sum(s.state == sa.state for s in mine) for sa in mine},
                    "children": [
                        {
                            "name": ch.name,
                            "mode": ch.mode,
                            "start_action": ch.start_action,
                            "local_ts": [str(t) for t in ch.local_ts],
                            "remote_ts": [str(t) for t in ch.remote_ts],
                            "esp_proposals": [format_proposal(p) for p in ch.esp_proposals],
                            "rekey_time": ch.rekey_time,
                            "installed": sum(
                                1
                                for sa in mine
                                for x in sa.children
                                if x.name == ch.name and x.state == "INSTALLED"
                            ),
                        }
                        for ch in c.children
                    ],
                }
            )
        return out
