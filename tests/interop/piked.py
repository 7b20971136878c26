"""piked as a test node inside a :class:`~.netns.Namespace`, beside strongSwan nodes.

The same :class:`~.strongswan.Connection` / :class:`~.strongswan.Child` /
:class:`~.strongswan.Secret` objects that configure a charon are rendered here as piked's
TOML (strongSwan vocabulary, see issue 2), so a test states one tunnel once and mirrors it.
piked runs in the foreground (``piked --config FILE``), started and stopped by PID, its
stderr in ``piked.log``; ``pikectl --socket S list-sas --json`` is mapped onto the same
:class:`~.strongswan.IkeSaInfo` shape that ``swanctl --list-sas --raw`` gives, so tests can
compare both sides directly (``raw`` keeps the JSON).

PSK encodings: strongSwan decodes ``0s...`` secrets as base64 leniently ('-' as 62, a
partial last group dropped); piked reads them the same way (test_psk_bytes_match_strongswan
compares piked's bytes with the ones charon logs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib import pikeconf
from lib.pikeconf import TomlValue

from .netns import Namespace, kill_pid
from .strongswan import (
    ChildSaInfo,
    Connection,
    IkeSaInfo,
    PeerNode,
    RawValue,
    Secret,
    Timing,
)


def venv_bin(tool: str) -> Path | None:
    """``tool`` from the running interpreter's venv, else from PATH."""
    cand = Path(sys.prefix) / "bin" / tool
    if cand.exists():
        return cand
    found = shutil.which(tool)
    return Path(found) if found else None


def piked_available() -> bool:
    """piked and pikectl exist and their modules import (the scripts exist before them)."""
    if venv_bin("piked") is None or venv_bin("pikectl") is None:
        return False
    import importlib.util

    try:
        return all(
            importlib.util.find_spec(m) is not None for m in ("pike.cli.piked", "pike.cli.pikectl")
        )
    except ModuleNotFoundError:
        return False


# -- TOML --------------------------------------------------------------------------------


def render_piked_toml(
    control_socket: Path,
    connections: Sequence[Connection],
    secrets: Sequence[Secret],
    daemon: dict[str, TomlValue] | None = None,
    extra: dict[str, dict[str, TomlValue]] | None = None,
) -> str:
    """piked's TOML for the given strongSwan-shaped connections and secrets.

    ``extra`` maps a connection name (or ``name.child``) to additional keys, for piked
    options that have no field in :class:`Connection` / :class:`Child`.
    """
    extra = extra or {}
    conns: list[pikeconf.Conn] = []
    for c in connections:
        local: dict[str, TomlValue] = {"auth": c.local_auth}
        if c.local_id is not None:
            local["id"] = c.local_id
        if c.local_certs:
            local["certs"] = list(c.local_certs)
        remote: dict[str, TomlValue] = {"auth": c.remote_auth}
        if c.remote_id is not None:
            remote["id"] = c.remote_id
        keys: dict[str, TomlValue] = {
            k: v for k in ("dpd_delay", "rekey_time") if (v := getattr(c, k)) is not None
        }
        # strongSwan sets dpd_action per child; piked per connection
        dpd_actions = {ch.dpd_action for ch in c.children if ch.dpd_action is not None}
        if dpd_actions:
            keys["dpd_action"] = sorted(dpd_actions)[0]
        if c.aggressive:
            keys["aggressive"] = True
        if c.encap:
            keys["encap"] = True
        children = [
            pikeconf.Child(
                name=ch.name,
                local_ts=ch.local_ts,
                remote_ts=ch.remote_ts,
                esp_proposals=None if list(ch.esp_proposals) == ["default"] else ch.esp_proposals,
                mode=ch.mode,
                start_action=ch.start_action,
                extra={
                    **({} if ch.rekey_time is None else {"rekey_time": ch.rekey_time}),
                    **({} if ch.close_action is None else {"close_action": ch.close_action}),
                    **extra.get(f"{c.name}.{ch.name}", {}),
                },
            )
            for ch in c.children
        ]
        conns.append(
            pikeconf.Conn(
                name=c.name,
                version=c.version,
                local_addrs=list(c.local_addrs) or None,
                remote_addrs=list(c.remote_addrs) or None,
                proposals=None if list(c.proposals) == ["default"] else c.proposals,
                local=local,
                remote=remote,
                extra={**keys, **extra.get(c.name, {})},
                children=children,
            )
        )
    return pikeconf.PikeConf(
        daemon={"control_socket": str(control_socket), **(daemon or {})},
        connections=conns,
        secrets=[pikeconf.Secret(f"{s.kind}-{s.name}", s.secret, s.ids) for s in secrets],
    ).render()


# -- list-sas --json -> IkeSaInfo ----------------------------------------------------------


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    return "" if v is None else str(v)


def _int(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _alg(d: dict[str, Any], key: str) -> str:
    algs = d.get("algorithms")
    if isinstance(algs, dict):
        return _str(algs, key)
    return ""


def child_from_json(d: dict[str, Any]) -> ChildSaInfo:
    return ChildSaInfo(
        name=_str(d, "name"),
        state=_str(d, "state"),
        mode=_str(d, "mode").upper(),
        protocol=_str(d, "protocol").upper(),
        spi_in=_str(d, "spi_in"),
        spi_out=_str(d, "spi_out"),
        local_ts=[str(t) for t in d.get("local_ts", [])],
        remote_ts=[str(t) for t in d.get("remote_ts", [])],
        encr_alg=_alg(d, "encr"),
        integ_alg=_alg(d, "integ"),
        bytes_in=_int(d, "bytes_in"),
        bytes_out=_int(d, "bytes_out"),
        packets_in=_int(d, "packets_in"),
        packets_out=_int(d, "packets_out"),
        raw=_raw(d),
    )


def ike_from_json(d: dict[str, Any]) -> IkeSaInfo:
    return IkeSaInfo(
        name=_str(d, "name"),
        uniqueid=_str(d, "unique_id"),
        version=_int(d, "version"),
        state=_str(d, "state"),
        local_host=_str(d, "local_addr"),
        local_port=_int(d, "local_port"),
        remote_host=_str(d, "remote_addr"),
        remote_port=_int(d, "remote_port"),
        local_id=_str(d, "local_id"),
        remote_id=_str(d, "remote_id"),
        initiator=bool(d.get("initiator")),
        initiator_spi=_str(d, "spi_i"),
        responder_spi=_str(d, "spi_r"),
        encr_alg=_alg(d, "encr"),
        encr_keysize=0,
        integ_alg=_alg(d, "integ"),
        prf_alg=_alg(d, "prf"),
        dh_group=_alg(d, "dh"),
        nat_any=bool(d.get("nat_local") or d.get("nat_remote")),
        children=[child_from_json(c) for c in d.get("children", []) if isinstance(c, dict)],
        raw=_raw(d),
    )


def _raw(d: dict[str, Any]) -> dict[str, RawValue]:
    """The JSON, stringified into the RawValue shape (the original is in ``json``)."""
    out: dict[str, RawValue] = {"json": json.dumps(d)}
    for k, v in d.items():
        if isinstance(v, str):
            out[k] = v
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            out[k] = list(v)
        elif not isinstance(v, dict | list):
            out[k] = json.dumps(v)
    return out


# -- the node ----------------------------------------------------------------------------


class PikedError(RuntimeError):
    pass


@dataclass
class PikedNode(PeerNode):
    """``piked --config DIR/pike.toml`` in ``ns``; control socket ``DIR/pike.sock``."""

    ns: Namespace
    workdir: Path
    name: str = "piked"
    connections: list[Connection] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    daemon: dict[str, TomlValue] = field(default_factory=lambda: {"log_level": "debug"})
    extra: dict[str, dict[str, TomlValue]] = field(default_factory=dict)
    timings: list[Timing] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # beside os.environ (NOTIFY_SOCKET...)
    proc: subprocess.Popen[bytes] | None = None
    # list_sas() (and so the waits) over the control socket directly instead of running
    # pikectl (~0.35 s of Python start-up per call); pikectl stays the default so the CLI
    # is what tests exercise.
    poll_via_socket: bool = False

    @property
    def dir(self) -> Path:
        return self.workdir / self.name

    @property
    def config_path(self) -> Path:
        return self.dir / "pike.toml"

    @property
    def socket_path(self) -> Path:
        return self.dir / "pike.sock"

    @property
    def log_path(self) -> Path:
        return self.dir / "piked.log"

    def config_text(self) -> str:
        return render_piked_toml(
            self.socket_path, self.connections, self.secrets, self.daemon, self.extra
        )

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())

    def start(self, timeout: float = 60.0) -> None:
        """Write the config, start piked, wait until ``pikectl status`` answers."""
        piked = venv_bin("piked")
        if piked is None:
            raise PikedError("piked not found (pip install -e . in the venv)")
        self.write_config()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = self.ns.popen(
                [str(piked), "--config", str(self.config_path)], stdout=log, env=env
            )
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise PikedError(
                    f"piked {self.name} exited {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if (
                    self.socket_path.exists()
                    and self.pikectl("status", check=False, timeout=5).returncode == 0
                ):
                    break
            except subprocess.TimeoutExpired:
                pass  # pikectl's own start-up can exceed 5 s on a busy UML guest: retry
            if time.monotonic() > deadline:
                raise PikedError(f"piked {self.name}: no control socket\n{self.log_tail()}")
            time.sleep(0.05)
        self.timings.append(Timing("start", time.monotonic() - t0))

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM piked by PID (SIGKILL after ``grace``); returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            kill_pid(self.proc.pid, grace=grace)
        return self.proc.wait(timeout=5)

    def __enter__(self) -> PikedNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # pikectl
    def pikectl(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        tool = venv_bin("pikectl")
        if tool is None:
            raise PikedError("pikectl not found")
        argv = [str(tool), "--socket", str(self.socket_path), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise PikedError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def list_sas_json(self) -> list[dict[str, Any]]:
        data = json.loads(self.pikectl("list-sas", "--json").stdout or "[]")
        if isinstance(data, dict):  # tolerate {"sas": [...]} / {"ike_sas": [...]}
            data = data.get("sas", data.get("ike_sas", []))
        if not isinstance(data, list):
            raise PikedError(f"list-sas --json: unexpected JSON {data!r}")
        return [d for d in data if isinstance(d, dict)]

    def control(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
        """One request on the control socket (JSON lines: ``{"cmd", "args"}`` ->
        ``{"ok", "result"|"error"}``), bypassing pikectl."""
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf or b"{}")
        if not reply.get("ok"):
            raise PikedError(f"control {cmd}: {reply.get('error', reply)!r}")
        return reply.get("result")

    def list_sas(self) -> list[IkeSaInfo]:
        if self.poll_via_socket:
            data = self.control("list-sas")
            return [ike_from_json(d) for d in data or [] if isinstance(d, dict)]
        return [ike_from_json(d) for d in self.list_sas_json()]

    def initiate(
        self, conn: str, *, check: bool = True, wait: float = 0.0
    ) -> subprocess.CompletedProcess[str]:
        """``pikectl initiate``; ``wait`` > 0 waits for the outcome (``--timeout``), 0 only
        asks (the tests wait with ``wait_established``: the host kernel has no ESP)."""
        t0 = time.monotonic()
        proc = self.pikectl("initiate", "--timeout", f"{wait:g}", conn, check=check)
        self.timings.append(Timing(f"initiate {conn}", time.monotonic() - t0))
        return proc

    def terminate(self, conn: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.pikectl("terminate", conn, check=check)


__all__ = [
    "PikedError",
    "PikedNode",
    "child_from_json",
    "ike_from_json",
    "piked_available",
    "render_piked_toml",
]
