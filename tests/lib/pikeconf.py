"""The one pike.toml builder of the tests, for IKEv1 and IKEv2 alike.

A :class:`PikeConf` holds the ``[daemon]`` keys (``metrics_listen`` among them),
:class:`Conn` connections with their :class:`Child` children, and :class:`Secret` entries;
:meth:`PikeConf.render` writes the TOML. ``version`` is a field of each connection (and
:meth:`PikeConf.render` can force one for all), so the same scenario renders for either
IKE version without editing text. :func:`psk_tunnel` builds the shape most tests use: one
PSK connection ``hq`` with one child ``lan`` and its secret.

Keys without a field go into ``extra`` (a mapping) or, for TOML a test states verbatim,
``raw`` (appended to that table; ``PikeConf.tail`` after everything).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ParamSpec

P = ParamSpec("P")

# A TOML value as the tests use them (no dates); mappings render as inline tables.
TomlValue = str | int | float | bool | Sequence["TomlValue"] | Mapping[str, "TomlValue"]


def toml_value(v: TomlValue) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # ASCII-escaped: a valid TOML basic string
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, quoted otherwise."""
    bare = name.replace("-", "").replace("_", "").isalnum() and name.isascii()
    return name if bare else json.dumps(name)


def table(header: str, items: Mapping[str, TomlValue | None], raw: str = "") -> str:
    """``[header]`` with ``items`` (None values left out) and ``raw`` lines after them."""
    lines = [f"[{header}]"]
    lines += [f"{key(k)} = {toml_value(v)}" for k, v in items.items() if v is not None]
    if raw.strip():
        lines.append(raw.strip("\n"))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Child:
    local_ts: Sequence[str]
    remote_ts: Sequence[str]
    name: str = "lan"
    esp_proposals: Sequence[str] | None = None
    mode: str | None = None
    start_action: str | None = None
    extra: Mapping[str, TomlValue] = field(default_factory=dict)
    raw: str = ""

    def render(self, conn: str) -> str:
        items: dict[str, TomlValue | None] = {
            "local_ts": list(self.local_ts),
            "remote_ts": list(self.remote_ts),
            "esp_proposals": None if self.esp_proposals is None else list(self.esp_proposals),
            "mode": self.mode,
            "start_action": self.start_action,
            **self.extra,
        }
        return table(f"connections.{key(conn)}.children.{key(self.name)}", items, self.raw)


@dataclass(frozen=True)
class Conn:
    local: Mapping[str, TomlValue]  # e.g. {"auth": "psk", "id": "gw.example.net"}
    remote: Mapping[str, TomlValue]
    name: str = "hq"
    version: int | None = None  # None: not written (pike's default, 2)
    local_addrs: Sequence[str] | None = None
    remote_addrs: Sequence[str] | None = None
    remote_port: int | None = None
    proposals: Sequence[str] | None = None
    children: Sequence[Child] = ()
    extra: Mapping[str, TomlValue] = field(default_factory=dict)
    raw: str = ""

    def render(self) -> str:
        items: dict[str, TomlValue | None] = {
            "version": self.version,
            "local_addrs": None if self.local_addrs is None else list(self.local_addrs),
            "remote_addrs": None if self.remote_addrs is None else list(self.remote_addrs),
            "remote_port": self.remote_port,
            "proposals": None if self.proposals is None else list(self.proposals),
            "local": self.local,
            "remote": self.remote,
            **self.extra,
        }
        out = [table(f"connections.{key(self.name)}", items, self.raw)]
        out += [ch.render(self.name) for ch in self.children]
        return "\n".join(out)


@dataclass(frozen=True)
class Secret:
    name: str  # the table's name: [secrets.NAME]
    secret: str
    ids: Sequence[str] = ()

    def render(self) -> str:
        items: dict[str, TomlValue | None] = {"id": list(self.ids) or None}
        items["secret"] = self.secret
        return table(f"secrets.{key(self.name)}", items)


@dataclass(frozen=True)
class PikeConf:
    daemon: Mapping[str, TomlValue | None] = field(default_factory=dict)
    connections: Sequence[Conn] = ()
    secrets: Sequence[Secret] = ()
    daemon_raw: str = ""
    tail: str = ""  # verbatim TOML after everything (more tables)

    def render(self, version: int | None = None) -> str:
        """The TOML text; ``version`` (1 or 2), when given, is set on every connection."""
        conns = [c if version is None else replace(c, version=version) for c in self.connections]
        out: list[str] = []
        if any(v is not None for v in self.daemon.values()) or self.daemon_raw.strip():
            out.append(table("daemon", self.daemon, self.daemon_raw))
        out += [c.render() for c in conns]
        out += [s.render() for s in self.secrets]
        if self.tail.strip():
            out.append(self.tail.strip("\n") + "\n")
        return "\n".join(out)


def psk_tunnel(
    *,
    local: str,
    remote: str,
    local_id: str,
    remote_id: str,
    psk: str,
    local_ts: Sequence[str] = ("10.1.0.0/24",),
    remote_ts: Sequence[str] = ("10.2.0.0/24",),
    proposals: Sequence[str] | None = ("aes128gcm16-prfsha256-x25519",),
    esp_proposals: Sequence[str] | None = ("aes128gcm16",),
    start_action: str | None = "none",
    mode: str | None = None,
    version: int | None = None,
    daemon: Mapping[str, TomlValue | None] | None = None,
    conn: Mapping[str, TomlValue] | None = None,
    child: Mapping[str, TomlValue] | None = None,
    name: str = "hq",
    child_name: str = "lan",
    secret_name: str | None = None,
    remote_port: int | None = None,
    daemon_raw: str = "",
    conn_raw: str = "",
    child_raw: str = "",
    tail: str = "",
) -> PikeConf:
    """One PSK connection ``name`` (one child ``child_name``) between ``local`` and
    ``remote`` with its secret ``[secrets.ike-NAME]`` (or ``secret_name``) for both ids."""
    return PikeConf(
        daemon=dict(daemon or {}),
        connections=[
            Conn(
                name=name,
                version=version,
                local_addrs=[local],
                remote_addrs=[remote],
                remote_port=remote_port,
                proposals=proposals,
                local={"auth": "psk", "id": local_id},
                remote={"auth": "psk", "id": remote_id},
                extra=dict(conn or {}),
                raw=conn_raw,
                children=[
                    Child(
                        name=child_name,
                        local_ts=local_ts,
                        remote_ts=remote_ts,
                        esp_proposals=esp_proposals,
                        mode=mode,
                        start_action=start_action,
                        extra=dict(child or {}),
                        raw=child_raw,
                    )
                ],
            )
        ],
        secrets=[Secret(secret_name or f"ike-{name}", psk, [local_id, remote_id])],
        daemon_raw=daemon_raw,
        tail=tail,
    )


def rendered(build: Callable[P, PikeConf]) -> Callable[P, str]:
    """``build`` returning the TOML text instead (same, type-checked, arguments)."""

    def text(*args: P.args, **kwargs: P.kwargs) -> str:
        return build(*args, **kwargs).render()

    return text
