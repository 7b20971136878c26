"""Phase-1 requests as responder: new ISAKMP SAs from MM1 or AM1.

A first message finds its connections by address (and, in Aggressive Mode, by the
identity sent in the clear) and proposal; a refusal is answered in the clear. The SA it
makes is half-open until the peer authenticates, each bounded by HALF_OPEN_TIMEOUT (see
timers.py); how many one address and all may hold is ``pike.sa.admission``'s to say.
"""

from __future__ import annotations

from pike.crypto.proposal import format_proposal
from pike.ikev1 import aggressive_mode, main_mode
from pike.ikev1.host import Host
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, log
from pike.ikev1.proposals import Phase1Choice, describe_phase1
from pike.ikev1.selection import choose, connections_for
from pike.policy.config import ConnectionConfig
from pike.sa.actions import Address, SendDatagram
from pike.sa.admission import Verdict
from pike.sa.certs import peer_identity
from pike.sa.conn_index import Candidates, index_of
from pike.sa.context import Context
from pike.sa.state import IkeState
from pike.wire.isakmp import encode_v1
from pike.wire.isakmp_constants import ExchangeV1, NotifyV1, ProtocolV1
from pike.wire.isakmp_payloads import V1Id, V1Message, V1Notify, V1Sa
from pike.wire.isakmp_rules import check_v1


def phase1_request(
    engine: Host, msg: V1Message, data: bytes, src: Address, dst: Address, now: float
) -> None:
    """MM1 or AM1 that no half-open SA of ours answers yet."""
    table = engine.table
    configured = index_of(engine.config).is_configured_host(1, src[0])
    verdict = table.admission.admit(
        engine.config.daemon, src[0], now, cookie=None, ike_sas=len(table.sas),
        configured=configured,
    )  # fmt: skip
    if verdict is Verdict.REPLACE:
        # IKEv1 has no COOKIE round trip: an address at block_threshold loses its oldest
        # SA that never answered, so first messages spoofed with a real peer's address
        # cannot lock that peer out (its own SA answers, and is kept).
        uid = table.admission.oldest_unproven(src[0])
        old = table.half_open_by_id(uid) if uid is not None else None
        if old is not None:
            log.info("%s: replaced by a newer first message from %s", old.tag(), src[0])
            engine.ctx.counters.drop("half_open_replaced")
            old.fail("replaced", now, engine.remove_child, quiet=True)
            table.authenticated(old)  # no longer counted as half-open
            table.touch(old)  # the sweep after this step forgets it
    if msg.exchange == ExchangeV1.AGGRESSIVE:
        _aggressive_mode(engine, msg, data, src, dst, now)
    else:
        _main_mode(engine, msg, data, src, dst, now)


def _main_mode(
    engine: Host, msg: V1Message, data: bytes, src: Address, dst: Address, now: float
) -> None:
    check_v1(ExchangeV1.MAIN, 1, msg.payloads)
    offer = msg.first(V1Sa)
    assert offer is not None
    candidates = connections_for(engine.config, dst[0], src[0])
    conn, chosen = _choose(engine.ctx, candidates, msg, offer, src, dst)
    sa = _new_sa(engine.ctx, msg, conn, src, dst, now)
    sa.choose(chosen)
    sa.candidates = candidates
    sa.set_state(IkeState.CONNECTING)
    engine.table.add_half_open(sa)
    engine.count_in(sa, msg)
    sa.flight(0).received(data)
    log.info("%s: Main Mode from %s[%d]", sa.tag(), src[0], src[1])
    main_mode.responder_mm1(sa, msg, chosen.number, now)


def _aggressive_mode(
    engine: Host, msg: V1Message, data: bytes, src: Address, dst: Address, now: float
) -> None:
    """AM1: only connections with ``aggressive = true`` take it; the identity in the
    clear must be the configured remote id (if one is configured)."""
    check_v1(ExchangeV1.AGGRESSIVE, 1, msg.payloads)
    offer, peer_id = msg.first(V1Sa), msg.first(V1Id)
    assert offer is not None and peer_id is not None
    ctx = engine.ctx
    peer = peer_identity(peer_id.id_type, peer_id.data)
    candidates = connections_for(engine.config, dst[0], src[0]).for_peer(peer)
    allowed = [c for c in candidates if c.aggressive]
    if candidates and not allowed:
        # It would expose the PSK's hash to offline guessing (strongSwan refuses too).
        # strongSwan answers AUTHENTICATION-FAILED (no Aggressive Mode config for it)
        log.warning(
            "refusing Aggressive Mode from %s (id %s, sending AUTHENTICATION_FAILED): %s %s"
            " aggressive = false; the peer should use Main Mode (or set aggressive = true,"
            " which exposes a PSK-keyed hash to offline guessing)",
            src[0],
            peer.text,
            ", ".join(c.name for c in candidates),
            "has" if len(candidates) == 1 else "have",
        )
        refuse(ctx, msg, src, dst, NotifyV1.AUTHENTICATION_FAILED)
        raise PeerError("aggressive_refused", f"Aggressive Mode from {src[0]} not allowed")
    conn, chosen = _choose(ctx, allowed, msg, offer, src, dst)
    sa = _new_sa(ctx, msg, conn, src, dst, now)
    sa.set_state(IkeState.CONNECTING)
    engine.count_in(sa, msg)
    sa.flight(0).received(data)
    log.info("%s: Aggressive Mode from %s[%d]", sa.tag(), src[0], src[1])
    try:
        aggressive_mode.responder_am1(sa, msg, chosen, now)
    except PeerError:
        sa.fail("refused", now, engine.remove_child, quiet=True)
        raise
    engine.table.add_half_open(sa)


def _choose(
    ctx: Context,
    candidates: Candidates | list[ConnectionConfig],
    msg: V1Message,
    offer: V1Sa,
    src: Address,
    dst: Address,
) -> tuple[ConnectionConfig, Phase1Choice]:
    """The connection and transform we take, or a refusal in the clear."""
    picked = choose(ctx, candidates, offer)
    if picked is None:
        if candidates:
            log.warning(
                "no acceptable IKEv1 proposal from %s: the peer offered %s; %s",
                src[0],
                ", ".join(describe_phase1(t) for p in offer.proposals for t in p.transforms),
                "; ".join(
                    f"{c.name} has {', '.join(format_proposal(s) for s in c.proposals)}"
                    for c in candidates
                ),
            )
        else:
            log.warning(
                "no IKEv1 connection for %s...%s, sending NO_PROPOSAL_CHOSEN", dst[0], src[0]
            )
        refuse(ctx, msg, src, dst)
        raise PeerError("no_proposal_chosen", f"no IKEv1 connection for {src[0]}")
    return picked


def _new_sa(
    ctx: Context, msg: V1Message, conn: ConnectionConfig, src: Address, dst: Address, now: float
) -> IsakmpSa:
    sa = IsakmpSa(ctx, ctx.unique_id(), False, msg.spi_i, dst, src, conn, now)
    sa.spi_r = ctx.ike_spi()
    return sa


def refuse(
    ctx: Context,
    msg: V1Message,
    src: Address,
    dst: Address,
    notify: int = NotifyV1.NO_PROPOSAL_CHOSEN,
) -> None:
    """NO-PROPOSAL-CHOSEN (or ``notify``) in the clear (RFC 2408 §5.2), as strongSwan
    answers."""
    n = V1Notify(notify, b"", ProtocolV1.ISAKMP, b"")
    out = V1Message(msg.spi_i, bytes(8), ExchangeV1.INFORMATIONAL, 0, 0, [n])
    ctx.emit(SendDatagram(encode_v1(out), dst, src))
