"""Informational exchanges of an ISAKMP SA (RFC 2408 §4.8): one-shot messages under
HASH(1) that carry notifies (errors, DPD's R-U-THERE) and deletes, both ways.

Before phase 1 is done a peer may only refuse us in the clear; once it is, an
Informational counts only with a valid HASH.
"""

from __future__ import annotations

import hmac

from pike.crypto.proposal import format_proposal
from pike.ikev1.host import Host
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, id_text, log
from pike.ikev1.keys import informational_hash
from pike.sa.actions import ChildSaFailed
from pike.sa.state import IkeState
from pike.wire.isakmp_constants import (
    NOTIFY_ERROR_MAX,
    ExchangeV1,
    NotifyV1,
    ProtocolV1,
    notify_v1_name,
)
from pike.wire.isakmp_payloads import V1Delete, V1Hash, V1Message, V1Notify, V1Payload
from pike.wire.isakmp_rules import check_v1

INFO = ExchangeV1.INFORMATIONAL


def send(sa: IsakmpSa, payloads: list[V1Payload]) -> None:
    mid = sa.message_id()
    sa.send(sa.hashed(INFO, mid, payloads))
    assert sa.cipher is not None
    sa.cipher.forget(mid)


def notify(sa: IsakmpSa, notify_type: int, data: bytes) -> None:
    cookies = sa.spi_i + sa.spi_r
    send(sa, [V1Notify(notify_type, data, ProtocolV1.ISAKMP, cookies)])


def receive(engine: Host, sa: IsakmpSa, msg: V1Message, now: float) -> None:
    check_v1(INFO, 1, msg.payloads)
    first = msg.payloads[0] if msg.payloads else None
    if not isinstance(first, V1Hash) or sa.prf is None or sa.keys is None:
        raise PeerError("invalid_syntax", "Informational without HASH")
    want = informational_hash(sa.prf, sa.keys.skeyid_a, msg.message_id, msg.after(0))
    if not hmac.compare_digest(first.data, want):
        raise PeerError("invalid_hash", "Informational HASH mismatch")
    sa.accept()
    if sa.cipher is not None:
        sa.cipher.forget(msg.message_id)
    sa.forget_flight(msg.message_id)  # one-shot: nothing to retransmit
    for p in msg.payloads[1:]:
        if isinstance(p, V1Notify):
            _on_notify(engine, sa, p)
        elif isinstance(p, V1Delete):
            _on_delete(engine, sa, p, now)


def cleartext(engine: Host, sa: IsakmpSa, msg: V1Message, now: float) -> None:
    """An unprotected Informational: only believable before phase 1 is done (e.g. the
    responder's NO-PROPOSAL-CHOSEN), and then it ends our attempt."""
    if msg.exchange == INFO and sa.state == IkeState.CONNECTING:
        n = msg.first(V1Notify)
        if n is not None and n.notify_type <= NOTIFY_ERROR_MAX:
            log.warning(
                "%s: peer refused: notify %s; we offered %s", sa.tag(),
                notify_v1_name(n.notify_type), _phase1_offer(sa),
            )  # fmt: skip
            sa.fail("peer_refused", now, engine.remove_child)
            return
    raise PeerError("unprotected", f"exchange {msg.exchange} in the clear")


def _on_notify(engine: Host, sa: IsakmpSa, n: V1Notify) -> None:
    if n.notify_type == NotifyV1.R_U_THERE:
        notify(sa, NotifyV1.R_U_THERE_ACK, n.data)
    elif n.notify_type == NotifyV1.R_U_THERE_ACK:
        if sa.dpd_outstanding and n.data == sa.dpd_seq.to_bytes(4, "big"):
            sa.dpd_outstanding = False
            sa.dpd_deadline = None
    elif n.notify_type <= NOTIFY_ERROR_MAX:
        ours = [qm for qm in sa.quick if qm.initiator]
        # what we asked for, as IKEv2's line says it: the selectors and ESP proposals
        asked = "; ".join(
            f"{qm.cfg.name}: local_ts {qm.local_ts}, remote_ts {qm.remote_ts},"
            f" ESP {', '.join(format_proposal(p) for p in qm.cfg.esp_proposals) or 'none'}"
            for qm in ours
        )
        log.warning(
            "%s: peer sent error notify %s%s", sa.tag(), notify_v1_name(n.notify_type),
            f"; we asked for {asked}" if asked else "",
        )  # fmt: skip
        # it refuses what we asked, or what we answered (strongSwan's initiator sends
        # NO_PROPOSAL_CHOSEN instead of QM3 when its kernel cannot install the pair)
        for qm in sa.quick_refused(n.spi):
            engine.ctx.emit(ChildSaFailed(sa.name, qm.cfg.name, "peer_refused"))


def _phase1_offer(sa: IsakmpSa) -> str:
    """Our phase-1 proposals and mode, for the line that says the peer refused them."""
    if sa.conn is None:
        return "nothing (no connection)"
    mode = "Aggressive" if sa.conn.aggressive else "Main"
    have = ", ".join(format_proposal(p) for p in sa.conn.proposals) or "none"
    who = f" as {id_text(sa.my_id)}" if sa.my_id is not None else ""
    return f"{have} in {mode} Mode{who} (auth {sa.conn.local.auth})"


def _on_delete(engine: Host, sa: IsakmpSa, d: V1Delete, now: float) -> None:
    if d.protocol == ProtocolV1.ISAKMP:
        if sa.spi_i + sa.spi_r in d.spis:
            log.info("%s: peer deleted the ISAKMP_SA", sa.tag())
            engine.closed_by_peer(sa, list(sa.children), True)
            sa.fail("peer_deleted", now, engine.remove_child)
        return
    if d.protocol != ProtocolV1.ESP:
        return
    spis = {int.from_bytes(s, "big") for s in d.spis}
    gone = [c for c in sa.children if c.spi_out in spis]
    engine.closed_by_peer(sa, gone, False)
    for child in gone:
        engine.remove_child(child, "peer_deleted", sa)
