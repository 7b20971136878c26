"""Main Mode with pre-shared keys (RFC 2409 §5.4) or signatures (§5.1, with
``signature_auth``), both roles, one message per call.

Each function takes the decoded (and, for MM5/MM6, decrypted) message, checks it against
the payload rules and the SA's progress, and sends the next message. A message that does
not fit raises ``PeerError`` (counted and dropped by the engine).
"""

from __future__ import annotations

import hmac

from pike.crypto.ke import KeyExchange
from pike.ikev1 import signature_auth
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, log
from pike.ikev1.proposals import parse_phase1, phase1_choices, phase1_proposal
from pike.sa.actions import Address, IkeSaEstablished
from pike.sa.context import NONCE_SIZE
from pike.sa.state import IkeState
from pike.wire.isakmp import encode_body
from pike.wire.isakmp_constants import ExchangeV1, NotifyV1, ProtocolV1
from pike.wire.isakmp_payloads import (
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1NatD,
    V1NatDDraft,
    V1Nonce,
    V1Notify,
    V1Payload,
    V1Proposal,
    V1Sa,
)
from pike.wire.isakmp_rules import check_v1

MAIN = ExchangeV1.MAIN


def psk_of(sa: IsakmpSa) -> bytes:
    conn = sa.conn
    assert conn is not None
    local = conn.local.id.text if conn.local.id else sa.local[0]
    remote = conn.remote.id.text if conn.remote.id else sa.remote[0]
    psk = sa.ctx.config.psk_for(local, remote)
    if psk is None:
        raise PeerError("no_psk", f"no secret for {local} - {remote}")
    return psk


def natd_payloads(sa: IsakmpSa) -> list[V1Payload]:
    if not sa.natt:
        return []
    cls = V1NatDDraft if sa.natt_draft else V1NatD
    ours = sa.natd(sa.local)
    if sa.conn is not None and sa.conn.encap:
        # encap = true: a hash of no address makes the peer see us behind a NAT, so ESP
        # goes in UDP (strongSwan's encap option does the same)
        ours = sa.ctx.random(len(ours))
    # RFC 3947 §3.2: the peer's address first, then ours
    return [cls(sa.natd(sa.remote)), cls(ours)]


def natd_hashes(msg: V1Message) -> list[bytes]:
    return [p.data for p in msg.payloads if isinstance(p, V1NatD)]


def index_of(msg: V1Message, cls: type) -> int:
    for i, p in enumerate(msg.payloads):
        if isinstance(p, cls):
            return i
    raise PeerError("invalid_syntax", f"no {cls.__name__}")


# -- initiator ---------------------------------------------------------------------------------


def start(sa: IsakmpSa, now: float) -> None:
    """MM1: HDR, SA, VID."""
    assert sa.conn is not None
    method = signature_auth.auth_method(sa.ctx, sa.conn)
    sa.p1.offers = phase1_choices(sa.conn.proposals, method, sa.conn.isakmp_lifetime)
    if not sa.p1.offers:
        raise PeerError("no_proposal", "no proposal IKEv1 can offer (AES-CBC, SHA-2)")
    sa_payload = V1Sa((phase1_proposal(sa.p1.offers),))
    sa.p1.sai_b = encode_body(sa_payload)
    sa.p1.step = 1
    sa.transmit(0, sa.encode(MAIN, 0, [sa_payload, *sa.vendor_ids()]), now, wait=True)


def initiator_mm2(sa: IsakmpSa, msg: V1Message, now: float) -> None:
    """MM2 -> MM3: HDR, KE, Ni, NAT-D, NAT-D."""
    check_v1(MAIN, 2, msg.payloads)
    sa_p = msg.first(V1Sa)
    assert sa_p is not None
    if len(sa_p.proposals) != 1 or len(sa_p.proposals[0].transforms) != 1:
        raise PeerError("invalid_proposal", "MM2 must carry one proposal with one transform")
    chosen = parse_phase1(sa_p.proposals[0].transforms[0])
    ours = {(c.key_bits, c.hash_alg, c.group, c.auth) for c in sa.p1.offers}
    if chosen is None or (chosen.key_bits, chosen.hash_alg, chosen.group, chosen.auth) not in ours:
        raise PeerError("invalid_proposal", "the responder chose a transform we did not offer")
    sa.choose(chosen)
    sa.spi_r = msg.spi_r
    sa.note_vendor_ids(msg)
    _send_ke(sa, 3, now, initiator=True)


def _send_ke(sa: IsakmpSa, step: int, now: float, *, initiator: bool) -> None:
    assert sa.choice is not None
    p1 = sa.p1
    p1.ke = KeyExchange(sa.choice.group, sa.ctx.random)
    nonce = sa.ctx.random(NONCE_SIZE)
    if initiator:
        p1.g_xi, p1.ni = p1.ke.public_bytes(), nonce
    else:
        p1.g_xr, p1.nr = p1.ke.public_bytes(), nonce
    payloads: list[V1Payload] = [V1Ke(p1.ke.public_bytes()), V1Nonce(nonce)]
    payloads += [*signature_auth.certreqs(sa), *natd_payloads(sa)]
    p1.step = step
    sa.transmit(0, sa.encode(MAIN, 0, payloads), now, wait=initiator)


def _take_ke(sa: IsakmpSa, msg: V1Message, step: int, src: Address, dst: Address) -> bytes:
    check_v1(MAIN, step, msg.payloads)
    ke, nonce = msg.first(V1Ke), msg.first(V1Nonce)
    assert ke is not None and nonce is not None
    if step == 3:
        sa.p1.g_xi, sa.p1.ni = ke.data, nonce.data
    else:
        sa.p1.g_xr, sa.p1.nr = ke.data, nonce.data
    if sa.natt:
        sa.check_natd(natd_hashes(msg), src, dst)
    return ke.data


def initiator_mm4(sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float) -> None:
    """MM4 -> MM5: HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]."""
    peer_public = _take_ke(sa, msg, 4, src, dst)
    signatures = signature_auth.uses_signatures(sa)
    sa.derive(peer_public, None if signatures else psk_of(sa))
    float_if_nat(sa)
    if signatures:
        sa.my_id = signature_auth.own_id(sa)
        hash_i = sa.auth_hash(True, encode_body(sa.my_id))
        sa.p1.step = 5  # MM5 goes once our signature is made
        signature_auth.request(sa, hash_i, _send_mm5, now)
        return
    sa.my_id = sa.own_id()
    id_b = encode_body(sa.my_id)
    _send_mm5(sa, [V1Hash(sa.auth_hash(True, id_b))], now)


def _send_mm5(sa: IsakmpSa, auth: list[V1Payload], now: float) -> None:
    """HDR*, IDii, [CERT+,] HASH_I | SIG_I [, N(INITIAL-CONTACT)]."""
    assert sa.my_id is not None
    contact: list[V1Payload] = []
    peer = sa.expected_peer()
    up = sa.ctx.has_contact((sa.my_id.id_type, sa.my_id.data), (peer.id_type, peer.data))
    if sa.replaces is None and not up:
        # the peer may drop what it still holds of us; not while we reauthenticate (the
        # old SA carries the traffic until the new one has its children), nor beside
        # another ISAKMP SA with the same identities (strongSwan's rule)
        cookies = sa.spi_i + sa.spi_r
        contact.append(V1Notify(NotifyV1.INITIAL_CONTACT, b"", ProtocolV1.ISAKMP, cookies))
    sa.p1.step = 5
    sa.transmit(0, sa.encode(MAIN, 0, [sa.my_id, *auth, *contact]), now, wait=True)


def float_if_nat(sa: IsakmpSa) -> None:
    """RFC 3947 §4: the initiator moves to 4500 once a NAT is seen (the non-ESP marker
    comes with it)."""
    if sa.natt and sa.nat_any:
        natt_port = sa.ctx.config.daemon.natt_port
        sa.local = (sa.local[0], natt_port)
        sa.remote = (sa.remote[0], 4500 if sa.remote[1] == 500 else sa.remote[1])


def _check_auth(
    sa: IsakmpSa, msg: V1Message, step: int, peer_is_initiator: bool, now: float
) -> None:
    check_v1(MAIN, step, msg.payloads)
    i_id = index_of(msg, V1Id)
    peer_id = msg.payloads[i_id]
    assert isinstance(peer_id, V1Id)
    want = sa.auth_hash(peer_is_initiator, msg.body_of(i_id))
    if signature_auth.uses_signatures(sa):
        ident = signature_auth.verify_peer(sa, msg, peer_id, want, now)
        sa.peer_id = V1Id(ident.id_type, 0, 0, ident.data)
        sa.accept()
        return
    got = msg.payloads[index_of(msg, V1Hash)]
    assert isinstance(got, V1Hash)
    if not hmac.compare_digest(got.data, want):
        raise PeerError("auth_failed", "HASH mismatch: wrong pre-shared key?")
    expected = sa.expected_peer()
    if (
        sa.conn is not None
        and sa.conn.remote.id is not None
        and ((peer_id.id_type, peer_id.data) != (expected.id_type, expected.data))
    ):
        raise PeerError("auth_failed", "peer ID is not the configured remote id")
    sa.peer_id = V1Id(peer_id.id_type, 0, 0, peer_id.data)
    sa.accept()


def initiator_mm6(sa: IsakmpSa, msg: V1Message, now: float) -> None:
    _check_auth(sa, msg, 6, False, now)
    sa.p1.step = 6
    sa.flight(0).complete()
    established(sa, now)


# -- responder ---------------------------------------------------------------------------------


def responder_mm1(sa: IsakmpSa, msg: V1Message, chosen_number: int, now: float) -> None:
    """MM1 -> MM2: HDR, SA (the transform we chose), VID. ``sa.choice`` is set."""
    sa_p = msg.first(V1Sa)
    assert sa_p is not None and sa.choice is not None
    sa.p1.sai_b = msg.body_of(index_of(msg, V1Sa))
    prop = sa_p.proposals[0]
    transform = next(t for t in prop.transforms if t.number == chosen_number)
    answer = V1Sa((V1Proposal(prop.number, prop.protocol, prop.spi, (transform,)),))
    sa.note_vendor_ids(msg)
    sa.p1.step = 2
    sa.transmit(0, sa.encode(MAIN, 0, [answer, *sa.vendor_ids()]), now, wait=False)


def responder_mm3(sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float) -> None:
    peer_public = _take_ke(sa, msg, 3, src, dst)
    psk = None if signature_auth.uses_signatures(sa) else psk_of(sa)
    _send_ke(sa, 4, now, initiator=False)
    sa.derive(peer_public, psk)


def responder_mm5(sa: IsakmpSa, msg: V1Message, now: float) -> None:
    _check_auth(sa, msg, 5, True, now)
    if signature_auth.uses_signatures(sa):
        sa.my_id = signature_auth.own_id(sa)
        hash_r = sa.auth_hash(False, encode_body(sa.my_id))
        sa.p1.step = 6  # MM6 goes (and we are established) once our signature is made
        signature_auth.request(sa, hash_r, _send_mm6, now)
        return
    sa.my_id = sa.own_id()
    _send_mm6(sa, [V1Hash(sa.auth_hash(False, encode_body(sa.my_id)))], now)


def _send_mm6(sa: IsakmpSa, auth: list[V1Payload], now: float) -> None:
    """HDR*, IDir, [CERT+,] HASH_R | SIG_R; the ISAKMP SA is up."""
    assert sa.my_id is not None
    sa.p1.step = 6
    sa.transmit(0, sa.encode(MAIN, 0, [sa.my_id, *auth]), now, wait=False)
    sa.flight(0).complete()
    established(sa, now)


def established(sa: IsakmpSa, now: float) -> None:
    sa.set_state(IkeState.ESTABLISHED)
    sa.established_at = now
    sa.last_inbound = now
    conn = sa.conn
    assert conn is not None and sa.choice is not None
    if sa.nat_local and sa.natt:
        sa.keepalive_at = now + sa.ctx.config.daemon.keepalive
    life = conn.isakmp_lifetime
    if sa.initiator and life:
        sa.reauth_at = now + life
    log.info(
        "%s: ISAKMP_SA established between %s[%s]...%s[%s] (%s)",
        sa.tag(),
        sa.local[0],
        _id(sa.my_id),
        sa.remote[0],
        _id(sa.peer_id),
        sa.choice.name(),
    )
    sa.ctx.emit(IkeSaEstablished(sa.name, sa.unique_id, sa.spi_i, sa.spi_r, now - sa.created_at))


def _id(p: V1Id | None) -> str:
    from pike.ikev1.isakmp_sa import id_text

    return id_text(p)
