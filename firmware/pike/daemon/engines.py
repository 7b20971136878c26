"""Both protocol engines behind the one ``Engine`` the runtime drives.

The same sockets carry IKEv1 and IKEv2 (UDP 500, and 4500 after the non-ESP marker): each
datagram goes to the engine its header's major version names (RFC 2408 §3.1 / RFC 7296
§3.1: the same byte). API calls go by the connection's ``version``. The engines share one
context (config, action queue, counters, unique ids, reqids, SPIs, credentials), so actions,
``pikectl list-sas`` and the metrics see one set of SAs.

The IKEv1 engine (21 modules, ~1.2 MiB) is made when a config has an IKEv1 connection or
the first IKEv1 datagram arrives: most gateways never need it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pike.ikev2.engine import Ikev2Engine
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps, SaSpec
from pike.sa.actions import Action, Address, IkeSaInfo
from pike.sa.context import Context
from pike.sa.credentials import CredentialStore
from pike.sa.ports import SpiSource
from pike.sa.revocation import RevokedCheck

if TYPE_CHECKING:
    from cryptography import x509

    from pike.ikev1.engine import Ikev1Engine

VERSION_OFFSET = 17  # the header's version byte: major version in the high nibble
HEADER_LEN = 28
_VERSION_BYTE = slice(VERSION_OFFSET, VERSION_OFFSET + 1)
_V1_VERSIONS = frozenset(bytes([0x10 | minor]) for minor in range(16))  # major version 1


class Engines:
    def __init__(
        self,
        config: Config,
        *,
        random: Callable[[int], bytes],
        kernel_caps: KernelCaps,
        spis: SpiSource | None = None,
        credentials: CredentialStore | None = None,
    ) -> None:
        self.v2 = Ikev2Engine(
            config, random=random, kernel_caps=kernel_caps, spis=spis, credentials=credentials
        )
        # shared by both engines, for the engines' life: the runtime drains it directly
        self.actions = self.v2.ctx.actions
        self._v1_args = (random, kernel_caps, spis)
        self._v1: Ikev1Engine | None = None
        if _has_v1(config):
            self._v1 = self.v1
        # INITIAL_CONTACT looks at the IKE SAs of both versions (strongSwan's one manager)
        self.ctx.has_contact = lambda mine, peer: (
            self.v2.has_contact(mine, peer)
            or (self._v1 is not None and self._v1.has_contact(mine, peer))
        )

    @property
    def ctx(self) -> Context:
        return self.v2.ctx

    @property
    def v1(self) -> Ikev1Engine:
        """The IKEv1 engine, made on first use."""
        if self._v1 is None:
            from pike.ikev1.engine import Ikev1Engine

            random, caps, spis = self._v1_args
            self._v1 = Ikev1Engine(
                self.ctx.config, random=random, kernel_caps=caps, spis=spis, ctx=self.ctx
            )
        return self._v1

    def _v1s(self) -> list[Ikev1Engine]:
        """The IKEv1 engine if made: what the calls to both engines go to."""
        return [] if self._v1 is None else [self._v1]

    def _by_conn(self, conn: str) -> Ikev1Engine | Ikev2Engine:
        version = self.ctx.config.connections[conn].version
        return self.v1 if version == 1 else self.v2

    def mobike_peers(self) -> set[str]:
        return self.v2.mobike_peers()  # MOBIKE is IKEv2's

    def paths_changed(
        self, addresses: tuple[str, ...], sources: Mapping[str, str | None], now: float
    ) -> None:
        self.v2.paths_changed(addresses, sources, now)

    def start(self, now: float) -> None:
        self.v2.start(now)
        for v1 in self._v1s():
            v1.start(now)

    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        # the version byte first (a slice: no IndexError on a runt), the length only for
        # IKEv1's: every datagram asks
        if data[_VERSION_BYTE] in _V1_VERSIONS and len(data) >= HEADER_LEN:
            self.v1.receive_datagram(data, src, dst, now)
        else:
            self.v2.receive_datagram(data, src, dst, now)  # IKEv2 judges anything else

    def handle_timer(self, now: float) -> None:
        self.v2.handle_timer(now)
        for v1 in self._v1s():
            v1.handle_timer(now)

    def get_timer(self) -> float | None:
        if self._v1 is None:  # after every datagram: the usual gateway has IKEv2 only
            return self.v2.get_timer()
        times = [t for v1 in self._v1s() if (t := v1.get_timer()) is not None]
        if (t := self.v2.get_timer()) is not None:
            times.append(t)
        return min(times) if times else None

    def initiate(
        self, conn: str, now: float, child: str | None = None, peer: str | None = None
    ) -> None:
        """``peer``: one of the connection's ``remote_addrs`` (a hub) to go to."""
        if peer is not None:
            self.ctx.hubs.pick(self.ctx.config.connections[conn], peer)  # ValueError: not one
        self._by_conn(conn).initiate(conn, now, child)

    def active_hub(self, conn: str) -> tuple[str | None, int, int]:
        """(the hub initiations of ``conn`` go to, its index, how many) for list-sas and
        the metrics."""
        cfg = self.ctx.config.connections.get(conn)
        if cfg is None:
            return None, 0, 0
        index, count = self.ctx.hubs.position(cfg)
        return self.ctx.hubs.active(cfg), index, count

    def terminate(self, conn: str, now: float, force: bool = False) -> None:
        self._by_conn(conn).terminate(conn, now, force)

    def resolved(self, conn: str, addresses: tuple[str, ...], now: float) -> None:
        if conn in self.ctx.config.connections:
            self._by_conn(conn).resolved(conn, addresses, now)

    def terminate_child(self, conn: str, child: str, now: float) -> None:
        self._by_conn(conn).terminate_child(conn, child, now)

    def rekey(self, conn: str, now: float, child: str | None = None) -> None:
        self._by_conn(conn).rekey(conn, now, child)

    def acquire(self, reqid: int, now: float) -> None:
        # reqids come from the shared context: only one engine knows a given one
        self.v2.acquire(reqid, now)
        for v1 in self._v1s():
            v1.acquire(reqid, now)

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        self.v2.child_expired(spi, hard, now)
        for v1 in self._v1s():
            v1.child_expired(spi, hard, now)

    def esp_wanted(self, now: float) -> list[SaSpec]:
        return self.v2.esp_wanted(now) + [s for v1 in self._v1s() for s in v1.esp_wanted(now)]

    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None:
        # our inbound SPIs are unique across both engines: only one finds it
        self.v2.esp_seen(spi, packets, last_use, now)
        for v1 in self._v1s():
            v1.esp_seen(spi, packets, last_use, now)

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        self.v2.child_install_failed(unique_id, reason, now, spi)
        for v1 in self._v1s():
            v1.child_install_failed(unique_id, reason, now, spi)

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None:
        # references come from the shared context: only the engine that asked answers
        self.v2.sign_done(ref, result, now)
        for v1 in self._v1s():
            v1.sign_done(ref, result, now)

    def peer_paths(self) -> list[tuple[str, tuple[x509.Certificate, ...]]]:
        return self.v2.peer_paths() + [p for v1 in self._v1s() for p in v1.peer_paths()]

    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]:
        return self.v2.drop_revoked(revoked, now) + [
            name for v1 in self._v1s() for name in v1.drop_revoked(revoked, now)
        ]

    def chain_checked(self, ref: int, result: tuple[int, ...] | Exception, now: float) -> None:
        # references come from the shared context: only the engine that asked answers
        self.v2.chain_checked(ref, result, now)
        for v1 in self._v1s():
            v1.chain_checked(ref, result, now)

    def next_action(self) -> Action | None:
        return self.actions.popleft() if self.actions else None

    def list_sas(self) -> list[IkeSaInfo]:
        return self.v2.list_sas() + [sa for v1 in self._v1s() for sa in v1.list_sas()]

    def reload(self, config: Config, now: float) -> dict[str, list[str]]:
        v1 = {n for n, c in self.ctx.config.connections.items() if c.version == 1}
        result = self.v2.reload(config, now)  # sorts every connection, swaps the config
        for name in result.get("changed", []) + result.get("removed", []):
            if name in v1:
                self.v1.terminate(name, now)
        if self._v1 is not None or _has_v1(config):
            self.v1.rebind(config, result.get("unchanged", []), now)
        return result


def _has_v1(config: Config) -> bool:
    return any(c.version == 1 for c in config.connections.values())
