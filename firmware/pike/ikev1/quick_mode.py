"""Quick Mode (RFC 2409 §5.5): one pair of ESP SAs per exchange, with or without PFS.

    QM1  HDR*, HASH(1), SA, Ni [, KE] , IDci, IDcr       -->
                                     <--  QM2  HDR*, HASH(2), SA, Nr [, KE], IDci, IDcr
                                                          [, N(RESPONDER-LIFETIME)]
    QM3  HDR*, HASH(3)                                    -->

The proxy IDs are the child's first local/remote selectors (IKEv1 carries one pair). The
initiator installs after QM2 (it sends QM3 at once), the responder after QM3, as strongSwan
does. Without ESP in our kernel neither role agrees to a pair it cannot install
(``child_lifecycle.refuse_without_esp``, as IKEv2's responder): the responder answers QM1,
the initiator QM2, with NO_PROPOSAL_CHOSEN. The commit bit (RFC 2408 §3.1) is accepted
and not used: both install on QM3 anyway.
"""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from pike.crypto.errors import CryptoError
from pike.crypto.kdf import ChildKeys
from pike.crypto.ke import KeyExchange
from pike.crypto.proposal import format_proposal
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, log
from pike.ikev1.keys import derive_phase2, qm_hash1, qm_hash2, qm_hash3
from pike.ikev1.proposals import (
    mode_of,
    phase2_choices,
    phase2_proposals,
    seconds_life,
    select_phase2,
)
from pike.ikev1.proxy_id import from_id, to_id
from pike.ikev1.quick_state import QuickMode
from pike.policy.config import ChildConfig, ConnectionConfig
from pike.policy.ipsec import UdpEncap
from pike.policy.ts import TrafficSelector
from pike.sa import child_lifecycle
from pike.sa.child_sa import ChildSa
from pike.sa.chosen import Chosen
from pike.sa.context import NONCE_SIZE
from pike.sa.state import ChildState
from pike.wire.buffer import Reader
from pike.wire.isakmp import encode_chain
from pike.wire.isakmp_constants import (
    ExchangeV1,
    LifeType,
    NotifyV1,
    P2Attr,
    ProtocolV1,
    notify_v1_name,
)
from pike.wire.isakmp_payloads import (
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1Nonce,
    V1Notify,
    V1Payload,
    V1Proposal,
    V1Sa,
)
from pike.wire.isakmp_rules import check_v1
from pike.wire.isakmp_sa import decode_attributes, encode_attributes

QUICK = ExchangeV1.QUICK
ESP = ProtocolV1.ESP


def _hash_first(msg: V1Message, step: int) -> V1Hash:
    check_v1(QUICK, step, msg.payloads)
    first = msg.payloads[0] if msg.payloads else None
    if not isinstance(first, V1Hash):
        raise PeerError("invalid_syntax", "Quick Mode message must start with HASH")
    return first


def _seal(sa: IsakmpSa, mid: int, hash_of_rest: bytes, rest: list[V1Payload]) -> bytes:
    return sa.encode(QUICK, mid, [V1Hash(hash_of_rest), *rest])


# -- initiator ---------------------------------------------------------------------------------


def start(
    sa: IsakmpSa,
    cfg: ChildConfig,
    now: float,
    rekey_of: ChildSa | None = None,
    reqid: int | None = None,
) -> QuickMode:
    """QM1."""
    assert sa.prf is not None and sa.keys is not None
    local_ts = cfg.local_ts[0] if cfg.local_ts else TrafficSelector.host(ip_address(sa.local[0]))
    remote_ts = (
        cfg.remote_ts[0] if cfg.remote_ts else TrafficSelector.host(ip_address(sa.remote[0]))
    )
    qm = QuickMode(
        sa.message_id(),
        True,
        cfg,
        local_ts,
        remote_ts,
        sa.ctx.child_spi(sa.remote[0], sa.local[0]),
        rekey_of,
    )
    qm.reqid = reqid
    qm.choices = phase2_choices(cfg.esp_proposals, cfg.life_time)
    if not qm.choices:
        raise PeerError("no_proposal", f"{cfg.name}: no ESP proposal IKEv1 can offer")
    udp = sa.natt and sa.nat_any
    proposals = phase2_proposals(qm.choices, qm.spi_in_b, cfg.mode, udp, sa.natt_draft)
    qm.ni = sa.ctx.random(NONCE_SIZE)
    rest: list[V1Payload] = [V1Sa(proposals), V1Nonce(qm.ni)]
    group = qm.choices[0].group
    if group:
        qm.ke = KeyExchange(group, sa.ctx.random)
        rest.append(V1Ke(qm.ke.public_bytes()))
    rest += [to_id(local_ts), to_id(remote_ts)]
    _, rest_b = encode_chain(rest)
    h = qm_hash1(sa.prf, sa.keys.skeyid_a, qm.mid, rest_b)
    qm.step = 1
    log.info("%s: initiating Quick Mode %s (M-ID %08x)", sa.tag(), cfg.name, qm.mid)
    sa.transmit(qm.mid, _seal(sa, qm.mid, h, rest), now, wait=True)
    return qm


def _responder_lifetime(msg: V1Message) -> int:
    n = msg.notify(NotifyV1.RESPONDER_LIFETIME)
    if n is None:
        return 0
    try:
        attrs = decode_attributes(Reader(n.data), frozenset({P2Attr.LIFE_DURATION}))
    except Exception:
        return 0
    return seconds_life(attrs, P2Attr.LIFE_TYPE, P2Attr.LIFE_DURATION)


def initiator_qm2(sa: IsakmpSa, qm: QuickMode, msg: V1Message, now: float) -> ChildSa | None:
    """QM2 -> QM3, then install."""
    assert sa.prf is not None and sa.keys is not None
    got = _hash_first(msg, 2)
    want = qm_hash2(sa.prf, sa.keys.skeyid_a, qm.mid, qm.ni, msg.after(0))
    if not hmac.compare_digest(got.data, want):
        raise PeerError("invalid_hash", "Quick Mode HASH(2) mismatch")
    sa.accept()
    sa_p, nonce = msg.first(V1Sa), msg.first(V1Nonce)
    assert sa_p is not None and nonce is not None
    if len(sa_p.proposals) != 1 or len(sa_p.proposals[0].transforms) != 1:
        raise PeerError("invalid_proposal", "QM2 must carry one proposal with one transform")
    picked = select_phase2(sa_p.proposals, qm.choices)
    if picked is None:
        raise PeerError("invalid_proposal", "the responder chose a transform we did not offer")
    prop, _, chosen, encap = picked
    qm.chosen, qm.encap = chosen, encap
    qm.spi_out = int.from_bytes(prop.spi, "big")
    qm.nr = nonce.data
    _pfs(sa, qm, msg)
    ids = msg.all(V1Id)
    if len(ids) == 2 and (from_id(ids[0]), from_id(ids[1])) != (qm.local_ts, qm.remote_ts):
        raise PeerError("invalid_id", "the responder changed the proxy IDs")
    qm.lifetime = _responder_lifetime(msg)
    if child_lifecycle.refuse_without_esp(sa.ctx, sa.tag(), sa.name, qm.cfg.name):
        # As strongSwan does: NO_PROPOSAL_CHOSEN instead of QM3. The responder installs
        # only on QM3, so it never holds a half we cannot match (a Delete after QM3 could
        # overtake QM3 at a peer that handles messages in parallel, as charon does).
        _tell(sa, NotifyV1.NO_PROPOSAL_CHOSEN, qm.spi_out.to_bytes(4, "big"))
        sa.flight(qm.mid).complete()
        if sa.cipher is not None:
            sa.cipher.forget(qm.mid)
        if qm.rekey_of is not None and qm.rekey_of.state == ChildState.REKEYING:
            qm.rekey_of.set_state(ChildState.INSTALLED, sa.name)  # keep using it
        return None
    h3 = qm_hash3(sa.prf, sa.keys.skeyid_a, qm.mid, qm.ni, qm.nr)
    qm.step = 3
    sa.transmit(qm.mid, sa.encode(QUICK, qm.mid, [V1Hash(h3)]), now, wait=False)
    sa.flight(qm.mid).complete()
    return install(sa, qm, now)


def _pfs(sa: IsakmpSa, qm: QuickMode, msg: V1Message) -> None:
    assert qm.chosen is not None
    ke = msg.first(V1Ke)
    if bool(qm.chosen.group) != (ke is not None):
        raise PeerError("invalid_ke", "KE payload and PFS group disagree")
    if ke is None:
        return
    if qm.ke is None or qm.ke.group != qm.chosen.group:
        qm.ke = KeyExchange(qm.chosen.group, sa.ctx.random)
    try:
        qm.shared = qm.ke.shared_secret(ke.data)
    except CryptoError as e:
        raise PeerError("invalid_ke", str(e)) from e


# -- responder ---------------------------------------------------------------------------------


def _child_for(
    conn: ConnectionConfig, tsi: TrafficSelector, tsr: TrafficSelector
) -> ChildConfig | None:
    """The child whose remote selectors contain the initiator's IDci and local ones IDcr."""
    for c in conn.children:
        if any(r.contains(tsi) for r in c.remote_ts) and any(lo.contains(tsr) for lo in c.local_ts):
            return c
    return None


def responder_qm1(sa: IsakmpSa, msg: V1Message, now: float) -> QuickMode:
    """QM1 -> QM2."""
    assert sa.prf is not None and sa.keys is not None and sa.conn is not None
    got = _hash_first(msg, 1)
    want = qm_hash1(sa.prf, sa.keys.skeyid_a, msg.message_id, msg.after(0))
    if not hmac.compare_digest(got.data, want):
        raise PeerError("invalid_hash", "Quick Mode HASH(1) mismatch")
    sa.accept()
    sa_p, nonce = msg.first(V1Sa), msg.first(V1Nonce)
    assert sa_p is not None and nonce is not None
    ids = msg.all(V1Id)
    if len(ids) == 2:
        tsi, tsr = from_id(ids[0]), from_id(ids[1])
    elif not ids:
        tsi = TrafficSelector.host(ip_address(sa.remote[0]))
        tsr = TrafficSelector.host(ip_address(sa.local[0]))
    else:
        raise PeerError("invalid_id", "Quick Mode with one proxy ID")
    if tsi is None or tsr is None:
        raise _refuse(sa, msg.message_id, NotifyV1.INVALID_ID_INFORMATION, "unusable proxy IDs")
    cfg = _child_for(sa.conn, tsi, tsr)
    if cfg is None:
        have = "; ".join(
            f"{c.name}: {' '.join(map(str, c.remote_ts))} === {' '.join(map(str, c.local_ts))}"
            for c in (sa.conn.children if sa.conn else ())
        )
        why = f"no child config matches the peer's {tsi} === {tsr}; we have {have or 'none'}"
        raise _refuse(sa, msg.message_id, NotifyV1.INVALID_ID_INFORMATION, why)
    qm = QuickMode(
        msg.message_id,
        False,
        cfg,
        tsr,
        tsi,
        sa.ctx.child_spi(sa.remote[0], sa.local[0]),
    )
    qm.choices = phase2_choices(cfg.esp_proposals, cfg.life_time)
    picked = select_phase2(sa_p.proposals, qm.choices)
    if picked is None:
        have = ", ".join(format_proposal(p) for p in cfg.esp_proposals)
        why = f"no acceptable ESP proposal for {cfg.name}; we have {have}"
        raise _refuse(sa, msg.message_id, NotifyV1.NO_PROPOSAL_CHOSEN, why)
    prop, transform, chosen, encap = picked
    mode = mode_of(encap)
    assert mode is not None
    if mode[0] != cfg.mode:
        why = f"the peer asks for {mode[0]} mode; {cfg.name} has mode = {cfg.mode}"
        raise _refuse(sa, msg.message_id, NotifyV1.NO_PROPOSAL_CHOSEN, why)
    if child_lifecycle.refuse_without_esp(sa.ctx, sa.tag(), sa.name, cfg.name):
        no_esp = "kernel_no_esp"
        raise _refuse(sa, msg.message_id, NotifyV1.NO_PROPOSAL_CHOSEN, no_esp, said=True)
    qm.chosen, qm.encap = chosen, encap
    qm.spi_out = int.from_bytes(prop.spi, "big")
    qm.ni = nonce.data
    qm.nr = sa.ctx.random(NONCE_SIZE)
    _pfs(sa, qm, msg)
    answer = V1Proposal(prop.number, ESP, qm.spi_in_b, (transform,))
    rest: list[V1Payload] = [V1Sa((answer,)), V1Nonce(qm.nr)]
    if qm.ke is not None:
        rest.append(V1Ke(qm.ke.public_bytes()))
    rest += ids
    qm.lifetime = chosen.lifetime
    if cfg.life_time and (not chosen.lifetime or cfg.life_time < chosen.lifetime):
        # RFC 2407 §4.6.3.1: tell the initiator we keep it for less than it proposed
        qm.lifetime = cfg.life_time
        attrs = ((P2Attr.LIFE_TYPE, LifeType.SECONDS), (P2Attr.LIFE_DURATION, cfg.life_time))
        data = encode_attributes(attrs, frozenset({P2Attr.LIFE_DURATION}))
        rest.append(V1Notify(NotifyV1.RESPONDER_LIFETIME, data, ESP, qm.spi_in_b))
    _, rest_b = encode_chain(rest)
    h = qm_hash2(sa.prf, sa.keys.skeyid_a, qm.mid, qm.ni, rest_b)
    qm.step = 2
    sa.transmit(qm.mid, _seal(sa, qm.mid, h, rest), now, wait=True)
    return qm


def _refuse(sa: IsakmpSa, mid: int, notify: int, detail: str, *, said: bool = False) -> PeerError:
    """Tell the peer why (an Informational with the notify), then drop the exchange
    (``said``: the caller logged why already)."""
    if not said:
        log.warning(
            "%s: refusing Quick Mode %08x (%s): %s", sa.tag(), mid, notify_v1_name(notify), detail
        )
    _tell(sa, notify, b"")
    return PeerError("quick_mode_refused", detail)


def _tell(sa: IsakmpSa, notify: int, spi: bytes) -> None:
    """An Informational with ``notify`` about the ESP SA ``spi`` (the peer's inbound)."""
    info_mid = sa.message_id()
    n = V1Notify(notify, b"", ESP, spi)
    sa.send(sa.hashed(ExchangeV1.INFORMATIONAL, info_mid, [n]))
    if sa.cipher is not None:
        sa.cipher.forget(info_mid)


def responder_qm3(sa: IsakmpSa, qm: QuickMode, msg: V1Message, now: float) -> ChildSa | None:
    assert sa.prf is not None and sa.keys is not None
    got = _hash_first(msg, 3)
    want = qm_hash3(sa.prf, sa.keys.skeyid_a, qm.mid, qm.ni, qm.nr)
    if not hmac.compare_digest(got.data, want):
        raise PeerError("invalid_hash", "Quick Mode HASH(3) mismatch")
    sa.accept()
    sa.flight(qm.mid).complete()
    qm.step = 3
    return install(sa, qm, now)


# -- both --------------------------------------------------------------------------------------


def install(sa: IsakmpSa, qm: QuickMode, now: float) -> ChildSa | None:
    """KEYMAT for both SAs (RFC 2409 §5.5) and the InstallChildSa action."""
    chosen = qm.chosen
    assert sa.prf is not None and sa.keys is not None and chosen is not None
    if sa.cipher is not None:
        sa.cipher.forget(qm.mid)
    ctx = sa.ctx
    encr_size, integ_size = chosen.key_sizes()
    spi_i, spi_r = (qm.spi_in, qm.spi_out) if qm.initiator else (qm.spi_out, qm.spi_in)
    ni, nr = qm.ni, qm.nr
    k = derive_phase2(
        sa.prf,
        sa.keys.skeyid_d,
        ESP,
        spi_i.to_bytes(4, "big"),
        spi_r.to_bytes(4, "big"),
        ni,
        nr,
        encr_size,
        integ_size,
        qm.shared,
    )
    mode = mode_of(qm.encap)
    assert mode is not None
    child = ChildSa(
        qm.cfg,
        ctx.unique_id(),
        qm.rekey_of.reqid if qm.rekey_of is not None else qm.reqid or ctx.reqid(),
        qm.initiator,
        qm.spi_in,
        qm.spi_out,
        mode[0],
        Chosen(
            1,
            qm.spi_out.to_bytes(4, "big"),
            chosen.encr_id,
            chosen.key_bits,
            None,
            chosen.integ_id,
            chosen.group,
            False,
        ),
        (qm.local_ts,),
        (qm.remote_ts,),
        ChildKeys(k.i2r.encr, k.i2r.integ, k.r2i.encr, k.r2i.integ),
    )
    udp = mode[1]
    encap = UdpEncap(sa.remote[1], sa.local[1]) if udp else None
    out_encap = UdpEncap(sa.local[1], sa.remote[1]) if udp else None
    child.build_kernel_specs(sa.local[0], sa.remote[0], encap, out_encap, ctx.random)
    sa.children.append(child)
    rekey = qm.rekey_of is not None
    child_lifecycle.install(ctx, sa.tag(), sa.name, child, now, rekey=rekey, ike=sa.ref())
    if qm.lifetime and (child.expire_at is None or now + qm.lifetime < child.expire_at):
        # the peer's proposed lifetime is shorter than ours
        child.expire_at = now + qm.lifetime
        if child.rekey_at is not None and child.rekey_at >= child.expire_at:
            child.rekey_at = now + max(qm.lifetime * 9 // 10, 1)
    return child
