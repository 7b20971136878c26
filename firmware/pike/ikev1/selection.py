"""Which configured IKEv1 connection a phase-1 request from a peer is for.

Main Mode with a PSK must choose before it can read the peer's ID (it is encrypted with a
key the PSK makes): by addresses and proposal only. Aggressive Mode sends the ID in the
clear, so it counts too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from pike.ikev1 import signature_auth
from pike.ikev1.isakmp_sa import PeerError, log
from pike.ikev1.proposals import Phase1Choice, phase1_choices, select_phase1
from pike.policy.config import Config, ConnectionConfig
from pike.sa.certs import ids_match, peer_identity
from pike.sa.conn_index import Candidates, index_of
from pike.sa.context import Context
from pike.wire.isakmp_payloads import V1Id, V1Sa


def connections_for(config: Config, local: str, remote: str) -> Candidates:
    """IKEv1 connections whose addresses fit a datagram from ``remote`` to ``local``."""
    return index_of(config).candidates(1, local, remote)


def _phase1_key(conn: ConnectionConfig) -> Hashable:
    # what decides whether a connection takes a phase-1 offer: proposals, lifetime, our auth
    local = conn.local
    return conn.proposals, conn.isakmp_lifetime, local.auth, local.certs, local.key


def choose(
    ctx: Context, candidates: Candidates | Iterable[ConnectionConfig], offer: V1Sa
) -> tuple[ConnectionConfig, Phase1Choice] | None:
    """The first connection (in config order) with a transform of the peer's offer we
    accept, and that transform; our auth method (PSK or our key's) is part of the match.
    Of connections alike in all that, only the first is asked."""
    if isinstance(candidates, Candidates):
        candidates = candidates.distinct(_phase1_key)
    for conn in candidates:
        try:
            method = signature_auth.auth_method(ctx, conn)
        except PeerError as e:
            log.error("%s: %s", conn.name, e)
            continue
        ours = phase1_choices(conn.proposals, method, conn.isakmp_lifetime)
        for prop in offer.proposals:
            chosen = select_phase1(prop, ours)
            if chosen is not None:
                return conn, chosen
    return None


def id_fits(conn: ConnectionConfig, peer: V1Id) -> bool:
    # DNs by meaning: charon encodes them as PrintableString, our config as UTF8String
    return ids_match(conn.remote.id, peer_identity(peer.id_type, peer.data))
