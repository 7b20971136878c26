"""Route-based children on the runtime side: the tunnel interface piked creates
(``interface``) and the ``updown`` script, run when a child comes up and when it goes.

A child is "up" from the first of its CHILD_SAs installed towards one peer until the last
of them is deleted, so a rekey (new SA installed, then the old one deleted) runs nothing,
as strongSwan's updown. Scripts run off the event loop, one at a time in order, with a
timeout; their environment is built from nothing but strongSwan's PLUTO_* names (no
secrets, no inherited variables), their argv is the path alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pike.policy.config import ChildConfig, Config, ConnectionConfig
from pike.policy.ipsec import NO_MARK, Mark
from pike.policy.ts import TrafficSelector
from pike.sa.actions import Action, DeleteChildSa, InstallChildSa

log = logging.getLogger("pike.daemon")

UPDOWN_TIMEOUT = 30.0  # seconds before a hanging script is killed
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Key = tuple[str, str, str, str]  # connection, child, local address, peer address


class Tunnels:
    OBSERVED = frozenset({InstallChildSa, DeleteChildSa})  # what the runtime shows ``observe``

    def __init__(self, config: Callable[[], Config], netns: str | None = None) -> None:
        self._config = config
        self._netns = netns
        self._live: dict[Key, set[int]] = {}  # CHILD_SA unique ids installed, per key
        self._made: set[str] = set()  # interfaces piked created (removed at stop)
        self._lock = asyncio.Lock()  # scripts in order, one at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self.updown_failures = 0
        # (the config it was asked of, whether it has such children): ``observers``
        self._wanted: tuple[Config | None, bool] = (None, False)

    def observers(self, kind: type) -> tuple[Callable[[Action], None], ...]:
        """``observe`` for the kinds it sees when the config has a child with an
        ``interface`` or ``updown`` (the runtime asks again after a reload); else nothing:
        a hub without them looks nothing up per install."""
        if kind not in self.OBSERVED:
            return ()
        config = self._config()
        if self._wanted[0] is not config:  # a reload: look at the children again
            children = (ch for c in config.connections.values() for ch in c.children)
            self._wanted = (config, any(ch.interface or ch.updown for ch in children))
        return (self.observe,) if self._wanted[1] else ()

    def observe(self, a: Action) -> None:
        """Before the data plane acts: an install may bring a child up, a delete down."""
        if not isinstance(a, InstallChildSa | DeleteChildSa):
            return
        conn = self._config().connections.get(a.conn)
        cfg = conn.child(a.child) if conn is not None else None
        if conn is None or cfg is None or not (cfg.interface or cfg.updown):
            return
        key = (a.conn, a.child, str(a.outbound.src), str(a.outbound.dst))
        ids = self._live.setdefault(key, set())
        if isinstance(a, InstallChildSa):
            first = not ids
            ids.add(a.unique_id)
            if first:
                self._link_up(cfg, a)
                self._updown("up", conn, cfg, a)
        elif a.unique_id in ids:
            ids.discard(a.unique_id)
            if not ids:
                del self._live[key]
                self._updown("down", conn, cfg, a)

    def _link_up(self, cfg: ChildConfig, a: InstallChildSa) -> None:
        if not cfg.interface:
            return
        # deferred: route-based children only (pike.board.netns, the link messages)
        from pike.kernel import tunnel_links
        from pike.kernel.tunnel_links import LinkError, TunnelLink

        if cfg.if_id_out:
            link = TunnelLink(cfg.interface, if_id=cfg.if_id_out)
        else:
            link = TunnelLink(
                cfg.interface,
                local=str(a.outbound.src),
                remote=str(a.outbound.dst),
                ikey=cfg.mark_in[0],
                okey=cfg.mark_out[0],
            )
        try:
            if tunnel_links.ensure(link, self._netns):
                log.info("%s.%s: created %s", a.conn, a.child, link.describe())
            self._made.add(cfg.interface)
        except LinkError as exc:
            log.error("%s.%s: tunnel interface: %s", a.conn, a.child, exc)

    def _updown(
        self,
        verb: str,
        conn: ConnectionConfig,
        cfg: ChildConfig,
        a: InstallChildSa | DeleteChildSa,
    ) -> None:
        if not cfg.updown:
            return
        envs = [updown_env(verb, conn, cfg, a, lts, rts) for lts, rts in _pairs(a)]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.error("%s.%s: updown %s not run: no event loop", a.conn, a.child, verb)
            return
        task = loop.create_task(self._run_all(cfg.updown, f"{a.conn}.{a.child}", envs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_all(self, path: str, what: str, envs: list[dict[str, str]]) -> None:
        async with self._lock:
            for env in envs:
                await self._run(path, what, env)

    async def _run(self, path: str, what: str, env: dict[str, str]) -> None:
        verb = env["PLUTO_VERB"]
        try:
            proc = await asyncio.create_subprocess_exec(
                path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            self.updown_failures += 1
            log.error("%s: updown %s %s: cannot run: %s", what, path, verb, exc)
            return
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), UPDOWN_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self.updown_failures += 1
            log.error("%s: updown %s %s: killed after %.0fs", what, path, verb, UPDOWN_TIMEOUT)
            return
        text = out.decode(errors="replace").strip()
        if proc.returncode != 0:
            self.updown_failures += 1
            last = text.splitlines()[-1] if text else "no output"
            log.error("%s: updown %s %s exited %s: %s", what, path, verb, proc.returncode, last)
        else:
            log.info("%s: updown %s %s done", what, path, verb)
            if text:
                log.debug("%s: updown output: %s", what, text)

    async def close(self, grace: float = UPDOWN_TIMEOUT) -> None:
        """Let the scripts still running finish (bounded), then remove the interfaces
        piked created."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if not self._made:
            return
        from pike.kernel import tunnel_links  # loaded when they were made
        from pike.kernel.tunnel_links import LinkError

        for name in sorted(self._made):
            try:
                tunnel_links.remove(name, self._netns)
                log.info("removed tunnel interface %s", name)
            except LinkError as exc:
                log.warning("%s", exc)
        self._made.clear()


def _pairs(a: InstallChildSa | DeleteChildSa) -> list[tuple[TrafficSelector, TrafficSelector]]:
    """The child's selector pairs (one script run each, as strongSwan), from its out
    policies; one pair of the outer addresses when it has none."""
    pairs = [(p.src_ts, p.dst_ts) for p in a.policies if p.direction == "out"]
    if pairs:
        return pairs
    return [(TrafficSelector.host(a.outbound.src), TrafficSelector.host(a.outbound.dst))]


def _net(ts: TrafficSelector) -> tuple[str, str, str]:
    """CIDR, network and mask of a selector's first covering network."""
    net = ts.networks()[0]
    return str(net), str(net.network_address), str(net.netmask)


def _mark(mark: Mark) -> str:
    return f"{mark[0]}/0x{mark[1]:08x}"


def updown_env(
    verb: str,
    conn: ConnectionConfig,
    cfg: ChildConfig,
    a: InstallChildSa | DeleteChildSa,
    lts: TrafficSelector,
    rts: TrafficSelector,
) -> dict[str, str]:
    """strongSwan's updown environment for what pike knows of the child (no keys)."""
    v6 = "-v6" if lts.start.version == 6 else ""
    my, peer = _net(lts), _net(rts)
    env = {
        "PATH": PATH,
        "PLUTO_VERSION": "1.1",
        "PLUTO_VERB": f"{verb}-client{v6}",
        "PLUTO_CONNECTION": a.child,  # strongSwan's: the CHILD_SA's name
        "PLUTO_REQID": str(a.outbound.reqid),
        "PLUTO_PROTO": "esp",
        # strongSwan's: the IKE SA's unique id (the CHILD_SA's when the IKE SA is unknown)
        "PLUTO_UNIQUEID": str(a.ike.unique_id if a.ike else a.unique_id),
        "PLUTO_ME": str(a.outbound.src),
        "PLUTO_MY_CLIENT": my[0],
        "PLUTO_MY_CLIENT_NET": my[1],
        "PLUTO_MY_CLIENT_MASK": my[2],
        "PLUTO_MY_PORT": str(lts.start_port if lts.start_port == lts.end_port else 0),
        "PLUTO_MY_PROTOCOL": str(lts.protocol),
        "PLUTO_PEER": str(a.outbound.dst),
        "PLUTO_PEER_CLIENT": peer[0],
        "PLUTO_PEER_CLIENT_NET": peer[1],
        "PLUTO_PEER_CLIENT_MASK": peer[2],
        "PLUTO_PEER_PORT": str(rts.start_port if rts.start_port == rts.end_port else 0),
        "PLUTO_PEER_PROTOCOL": str(rts.protocol),
    }
    # The authenticated identities, as strongSwan (with a wildcard remote id the peer's
    # differs from the configured one); else the configured ones, else the address.
    my_id = a.ike.local_id if a.ike else ""
    peer_id = a.ike.remote_id if a.ike else ""
    env["PLUTO_MY_ID"] = my_id or (conn.local.id.text if conn.local.id else env["PLUTO_ME"])
    env["PLUTO_PEER_ID"] = peer_id or (conn.remote.id.text if conn.remote.id else env["PLUTO_PEER"])
    if cfg.interface:
        env["PLUTO_INTERFACE"] = cfg.interface
    if cfg.if_id_in:
        env["PLUTO_IF_ID_IN"] = str(cfg.if_id_in)
    if cfg.if_id_out:
        env["PLUTO_IF_ID_OUT"] = str(cfg.if_id_out)
    if cfg.mark_in != NO_MARK:
        env["PLUTO_MARK_IN"] = _mark(cfg.mark_in)
    if cfg.mark_out != NO_MARK:
        env["PLUTO_MARK_OUT"] = _mark(cfg.mark_out)
    if a.outbound.encap is not None:
        env["PLUTO_UDP_ENC"] = str(a.outbound.encap.dport)
    return env


__all__ = ["Tunnels", "updown_env"]
