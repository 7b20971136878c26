"""The connections of a config, parsed once and indexed, so that finding the ones for a
datagram or a peer identity costs the same with 1 or 10 000 configured.

Built lazily once per ``Config`` (``index_of``; a reload brings a new ``Config`` and so a
new index). Connections with the same version and outer addresses form a group; a group
whose remote addresses are single hosts is found by a dict lookup, the others (``%any``,
subnets) by a scan of the few such groups. Within the connections an address lookup
returns (``Candidates``), identities are indexed too: exact ones by a dict, wildcards
(``pike.sa.id_match``) in a short list, and the most specific match comes first.
Both IKE versions use this.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field

from pike.crypto.proposal import ProposalSpec
from pike.policy.addrs import parse_ip
from pike.policy.config import Config, ConnectionConfig, Identity
from pike.sa.id_match import NONE, exact_key, is_wildcard, match_score

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Proposals = tuple[ProposalSpec, ...]


def _nets(addrs: tuple[str, ...]) -> tuple[IpNetwork, ...] | None:
    """Parsed addresses; None means any (nothing or ``%any`` configured)."""
    if not addrs or "%any" in addrs:
        return None
    out = []
    for a in addrs:
        try:
            out.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            continue  # a name the loader let through: it never matches, as before
    return tuple(out)


def _fits(ip: IpAddress, nets: tuple[IpNetwork, ...] | None) -> bool:
    return nets is None or any(ip in n for n in nets)


@dataclass(slots=True)
class Candidates:
    """Connections whose outer addresses fit one datagram, in config order."""

    conns: tuple[ConnectionConfig, ...]
    _proposal_sets: tuple[tuple[Proposals, ConnectionConfig], ...] | None = None
    _pubkey: tuple[ConnectionConfig, ...] | None = None
    _exact: dict[tuple[int, object], list[ConnectionConfig]] | None = field(default=None)
    _wild: tuple[ConnectionConfig, ...] = ()
    _distinct: dict[object, tuple[ConnectionConfig, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.conns)

    def __iter__(self) -> Iterator[ConnectionConfig]:
        return iter(self.conns)

    def __len__(self) -> int:
        return len(self.conns)

    def proposal_sets(self) -> tuple[tuple[Proposals, ConnectionConfig], ...]:
        """Each distinct IKE proposal list once, with its first connection (config order):
        the responder tries them in turn (strongSwan's "trying alternative config")."""
        if self._proposal_sets is None:
            seen: dict[Proposals, ConnectionConfig] = {}
            for c in self.conns:
                seen.setdefault(c.proposals, c)
            self._proposal_sets = tuple(seen.items())
        return self._proposal_sets

    def distinct(self, key: Callable[[ConnectionConfig], Hashable]) -> tuple[ConnectionConfig, ...]:
        """The first connection of each distinct ``key`` value, in config order: where
        connections that agree on ``key`` would answer alike, one of them is asked."""
        got = self._distinct.get(key)
        if got is None:
            seen: dict[Hashable, ConnectionConfig] = {}
            for c in self.conns:
                seen.setdefault(key(c), c)
            got = self._distinct[key] = tuple(seen.values())
        return got

    def pubkey(self) -> tuple[ConnectionConfig, ...]:
        """The connections that authenticate either side with a key (RFC 7427, CERTREQ)."""
        if self._pubkey is None:
            self._pubkey = tuple(c for c in self.conns if "pubkey" in (c.local.auth, c.remote.auth))
        return self._pubkey

    def for_peer(self, peer: Identity) -> list[ConnectionConfig]:
        """The connections whose remote identity admits ``peer``: the most specific
        first (an exact ID before ``*.example.net`` before ``%any``), then config order."""
        if self._exact is None:
            self._index_ids()
        assert self._exact is not None
        exact = self._exact.get(exact_key(peer), []) if self._exact else []
        if len(self._wild) == 1:  # one wildcard (a hub's ``*.branch.example``): no sort
            c = self._wild[0]
            return [*exact, c] if match_score(c.remote.id, peer) != NONE else exact[:]
        scored = [(s, c) for c in self._wild if (s := match_score(c.remote.id, peer)) != NONE]
        if len(scored) > 1:
            scored.sort(key=_by_score)
        return exact + [c for _, c in scored]

    def _index_ids(self) -> None:
        exact: dict[tuple[int, object], list[ConnectionConfig]] = {}
        wild = []
        for c in self.conns:
            if is_wildcard(c.remote.id):
                wild.append(c)
            else:
                assert c.remote.id is not None
                exact.setdefault(exact_key(c.remote.id), []).append(c)
        self._exact, self._wild = exact, tuple(wild)


def _by_score(item: tuple[int, ConnectionConfig]) -> int:
    return -item[0]  # sorted() is stable: config order among equals


@dataclass(slots=True)
class _Group:
    """Connections of one version with the same outer addresses."""

    first: int  # position of its first connection in the config
    local: tuple[IpNetwork, ...] | None
    remote: tuple[IpNetwork, ...] | None
    conns: list[ConnectionConfig]
    candidates: Candidates | None = None
    # its single-host local addresses as text (``str`` of the address, as the runtime
    # names a datagram's): found by a string's hash; ``ipaddress`` hashes and tests
    # membership in Python
    local_hosts: frozenset[str] = frozenset()

    def fits_local(self, text: str, ip: IpAddress) -> bool:
        return text in self.local_hosts or _fits(ip, self.local)


class ConnIndex:
    """Address and identity lookups over one config's connections."""

    def __init__(self, connections: Sequence[ConnectionConfig]) -> None:
        groups: dict[tuple[int, tuple[str, ...], tuple[str, ...]], _Group] = {}
        for pos, c in enumerate(connections):
            key = (c.version, c.local_addrs, c.remote_addrs)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group(pos, _nets(c.local_addrs), _nets(c.remote_addrs), [])
            g.conns.append(c)
        # by version: remote host address -> groups, and the groups to scan
        self._hosts: dict[int, dict[IpAddress, list[_Group]]] = {1: {}, 2: {}}
        self._scan: dict[int, list[_Group]] = {1: [], 2: []}
        for (version, _, _), g in groups.items():
            g.candidates = Candidates(tuple(g.conns))
            if g.local is not None:
                hosts = (str(n.network_address) for n in g.local if n.num_addresses == 1)
                g.local_hosts = frozenset(hosts)
            if g.remote is not None and all(n.num_addresses == 1 for n in g.remote):
                for n in g.remote:
                    self._hosts[version].setdefault(n.network_address, []).append(g)
            else:
                self._scan[version].append(g)
        self._merged: dict[tuple[int, ...], Candidates] = {}
        self._order = {id(c): pos for pos, c in enumerate(connections)}

    def is_configured_host(self, version: int, remote: str) -> bool:
        """``remote`` is a single-host remote address of a ``version`` connection (not
        ``%any``, not inside a subnet): a peer the config names."""
        try:
            return parse_ip(remote) in self._hosts[version]
        except ValueError:
            return False

    def candidates(self, version: int, local: str, remote: str) -> Candidates:
        """The connections of ``version`` whose addresses admit ``remote`` -> ``local``."""
        rip, lip = parse_ip(remote), parse_ip(local)
        by_host = self._hosts[version]
        hosts = by_host.get(rip) if by_host else None
        scan = self._scan[version]
        if hosts is None and len(scan) == 1:  # one group for any peer (a hub's %any)
            g = scan[0]
            if (g.local is None or g.fits_local(local, lip)) and (
                g.remote is None or _fits(rip, g.remote)
            ):
                assert g.candidates is not None
                return g.candidates
            found = []
        else:
            found = [
                g
                for g in (hosts + scan if hosts else scan)
                if g.fits_local(local, lip) and _fits(rip, g.remote)
            ]
        if len(found) == 1:
            assert found[0].candidates is not None
            return found[0].candidates
        found.sort(key=lambda g: g.first)
        key = tuple(g.first for g in found)
        merged = self._merged.get(key)
        if merged is None:
            conns = sorted((c for g in found for c in g.conns), key=lambda c: self._order[id(c)])
            merged = Candidates(tuple(conns))
            if len(self._merged) < 1024:  # bounded: the peer chooses the addresses
                self._merged[key] = merged
        return merged


def index_of(config: Config) -> ConnIndex:
    """The index of ``config``, built on first use and kept on it."""
    idx = config.index
    if idx is None:
        idx = ConnIndex(list(config.connections.values()))
        object.__setattr__(config, "index", idx)  # a cache on a frozen value
    assert isinstance(idx, ConnIndex)
    return idx
