"""Aggressive Mode with pre-shared keys (RFC 2409 §5.4) or signatures (§5.1, with
``signature_auth``), both roles; NAT-D per RFC 3947 §4.

    AM1  HDR, SA, KE, Ni, IDii [, CERTREQ] [, VID...]          -->
        <--  AM2  HDR, SA, KE, Nr, IDir, [CERT,] HASH_R | SIG_R, NAT-D, NAT-D [, VID...]
    AM3  HDR*, [CERT,] HASH_I | SIG_I, NAT-D, NAT-D             -->

Only for connections with ``aggressive = true``: the responder sends a hash keyed with the
PSK before the initiator proved anything, so anyone can collect it and guess the PSK offline
(strongSwan refuses it for PSK unless told otherwise). The identities travel in the clear,
which is what lets the responder pick the PSK by the initiator's ID rather than its address.
All our transforms carry the group of AM1's KE payload: the group cannot be negotiated.
With signatures, AM2 (responder) and AM3 (initiator) go once our signature is in
(``signature_auth.request``: the shared wait of ``pike.sa.signing``).
"""

from __future__ import annotations

import hmac

from pike.crypto.ke import KeyExchange
from pike.ikev1 import signature_auth
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError
from pike.ikev1.main_mode import (
    established,
    float_if_nat,
    index_of,
    natd_hashes,
    natd_payloads,
    psk_of,
)
from pike.ikev1.proposals import Phase1Choice, parse_phase1, phase1_choices, phase1_proposal
from pike.sa.actions import Address
from pike.sa.certs import ids_match, peer_identity
from pike.sa.context import NONCE_SIZE
from pike.wire.isakmp import encode_body
from pike.wire.isakmp_constants import ExchangeV1
from pike.wire.isakmp_payloads import (
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1Nonce,
    V1Payload,
    V1Proposal,
    V1Sa,
)
from pike.wire.isakmp_rules import check_v1

AGGRESSIVE = ExchangeV1.AGGRESSIVE


def _verify(sa: IsakmpSa, got: V1Hash | None, peer_is_initiator: bool, id_b: bytes) -> None:
    want = sa.auth_hash(peer_is_initiator, id_b)
    if got is None or not hmac.compare_digest(got.data, want):
        raise PeerError("auth_failed", "HASH mismatch: wrong pre-shared key?")


# -- initiator ---------------------------------------------------------------------------------


def start(sa: IsakmpSa, now: float) -> None:
    """AM1: HDR, SA, KE, Ni, IDii, VID."""
    assert sa.conn is not None
    method = signature_auth.auth_method(sa.ctx, sa.conn)
    offers = phase1_choices(sa.conn.proposals, method, sa.conn.isakmp_lifetime)
    if not offers:
        raise PeerError("no_proposal", "no proposal IKEv1 can offer (AES-CBC, SHA-2)")
    group = offers[0].group
    sa.p1.offers = [c for c in offers if c.group == group]
    sa_payload = V1Sa((phase1_proposal(sa.p1.offers),))
    sa.p1.sai_b = encode_body(sa_payload)
    p1 = sa.p1
    p1.ke = KeyExchange(group, sa.ctx.random)
    p1.g_xi, p1.ni = p1.ke.public_bytes(), sa.ctx.random(NONCE_SIZE)
    sa.my_id = sa.own_id() if sa.conn.local.auth == "psk" else signature_auth.own_id(sa)
    payloads: list[V1Payload] = [sa_payload, V1Ke(p1.g_xi), V1Nonce(p1.ni), sa.my_id]
    payloads += signature_auth.certreqs(sa)
    p1.step = 1
    sa.transmit(0, sa.encode(AGGRESSIVE, 0, [*payloads, *sa.vendor_ids()]), now, wait=True)


def initiator_am2(sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float) -> None:
    """AM2 -> AM3 (encrypted); the ISAKMP SA is up."""
    check_v1(AGGRESSIVE, 2, msg.payloads)
    sa_p, ke, nonce = msg.first(V1Sa), msg.first(V1Ke), msg.first(V1Nonce)
    assert sa_p is not None and ke is not None and nonce is not None
    if len(sa_p.proposals) != 1 or len(sa_p.proposals[0].transforms) != 1:
        raise PeerError("invalid_proposal", "AM2 must carry one proposal with one transform")
    chosen = parse_phase1(sa_p.proposals[0].transforms[0])
    ours = {(c.key_bits, c.hash_alg, c.group, c.auth) for c in sa.p1.offers}
    if chosen is None or (chosen.key_bits, chosen.hash_alg, chosen.group, chosen.auth) not in ours:
        raise PeerError("invalid_proposal", "the responder chose a transform we did not offer")
    sa.choose(chosen)
    sa.spi_r = msg.spi_r
    sa.note_vendor_ids(msg)
    sa.p1.g_xr, sa.p1.nr = ke.data, nonce.data
    if sa.natt:
        sa.check_natd(natd_hashes(msg), src, dst)
    signatures = signature_auth.uses_signatures(sa)
    sa.derive(ke.data, None if signatures else psk_of(sa))
    i_id = index_of(msg, V1Id)
    peer_id = msg.payloads[i_id]
    assert isinstance(peer_id, V1Id)
    if signatures:
        hash_r = sa.auth_hash(False, msg.body_of(i_id))
        ident = signature_auth.verify_peer(sa, msg, peer_id, hash_r, now)
        peer_id = V1Id(ident.id_type, 0, 0, ident.data)
    else:
        _check_peer_id(sa, peer_id)
        _verify(sa, msg.first(V1Hash), False, msg.body_of(i_id))
    sa.peer_id = V1Id(peer_id.id_type, 0, 0, peer_id.data)
    float_if_nat(sa)
    assert sa.my_id is not None
    hash_i = sa.auth_hash(True, encode_body(sa.my_id))
    sa.p1.step = 3
    if signatures:
        signature_auth.request(sa, hash_i, _send_am3, now)  # AM3 once it is signed
        return
    _send_am3(sa, [V1Hash(hash_i)], now)


def _send_am3(sa: IsakmpSa, auth: list[V1Payload], now: float) -> None:
    """HDR*, [CERT+,] HASH_I | SIG_I, NAT-D, NAT-D; the ISAKMP SA is up."""
    sa.p1.step = 3
    sa.transmit(0, sa.encode(AGGRESSIVE, 0, [*auth, *natd_payloads(sa)]), now, wait=False)
    sa.flight(0).complete()
    established(sa, now)


def _check_peer_id(sa: IsakmpSa, peer_id: V1Id) -> None:
    conn = sa.conn
    assert conn is not None
    # DNs compare by meaning (string types differ between implementations)
    if not ids_match(conn.remote.id, peer_identity(peer_id.id_type, peer_id.data)):
        raise PeerError("auth_failed", "peer ID is not the configured remote id")


# -- responder ---------------------------------------------------------------------------------


def responder_am1(sa: IsakmpSa, msg: V1Message, chosen: Phase1Choice, now: float) -> None:
    """AM1 -> AM2 (in the clear, with HASH_R). The engine picked the connection and
    ``chosen``; the KE payload must be of the chosen group."""
    sa_p, ke, nonce, peer_id = msg.first(V1Sa), msg.first(V1Ke), msg.first(V1Nonce), None
    assert sa_p is not None and ke is not None and nonce is not None
    i_id = index_of(msg, V1Id)
    peer_id = msg.payloads[i_id]
    assert isinstance(peer_id, V1Id)
    _check_peer_id(sa, peer_id)
    sa.peer_id = V1Id(peer_id.id_type, 0, 0, peer_id.data)
    sa.p1.peer_id_b = msg.body_of(i_id)
    sa.choose(chosen)
    sa.note_vendor_ids(msg)
    p1 = sa.p1
    p1.sai_b = msg.body_of(index_of(msg, V1Sa))
    p1.g_xi, p1.ni = ke.data, nonce.data
    p1.ke = KeyExchange(chosen.group, sa.ctx.random)
    p1.g_xr, p1.nr = p1.ke.public_bytes(), sa.ctx.random(NONCE_SIZE)
    signatures = signature_auth.uses_signatures(sa)
    sa.derive(ke.data, None if signatures else psk_of(sa))
    sa.my_id = signature_auth.own_id(sa) if signatures else sa.own_id()
    hash_r = sa.auth_hash(False, encode_body(sa.my_id))
    prop = sa_p.proposals[0]
    transform = next(t for t in prop.transforms if t.number == chosen.number)
    answer = V1Sa((V1Proposal(prop.number, prop.protocol, prop.spi, (transform,)),))
    head: list[V1Payload] = [answer, V1Ke(p1.g_xr), V1Nonce(p1.nr), sa.my_id]

    def send_am2(sa: IsakmpSa, auth: list[V1Payload], now: float) -> None:
        payloads = [*head, *auth, *signature_auth.certreqs(sa), *natd_payloads(sa)]
        sa.p1.step = 2
        # AM2 goes in the clear although the keys exist already (RFC 2409 §5.4)
        msg = sa.encode(AGGRESSIVE, 0, [*payloads, *sa.vendor_ids()], clear=True)
        sa.transmit(0, msg, now, wait=True)

    p1.step = 2
    if signatures:
        signature_auth.request(sa, hash_r, send_am2, now)  # AM2 once it is signed
        return
    send_am2(sa, [V1Hash(hash_r)], now)


def responder_am3(sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float) -> None:
    check_v1(AGGRESSIVE, 3, msg.payloads)
    if signature_auth.uses_signatures(sa):
        assert sa.peer_id is not None
        hash_i = sa.auth_hash(True, sa.p1.peer_id_b)
        signature_auth.verify_peer(sa, msg, sa.peer_id, hash_i, now)
    else:
        _verify(sa, msg.first(V1Hash), True, sa.p1.peer_id_b)
    sa.accept()
    if sa.natt:
        sa.check_natd(natd_hashes(msg), src, dst)
    sa.flight(0).complete()
    sa.p1.step = 3
    established(sa, now)
