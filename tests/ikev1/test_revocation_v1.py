"""Revocation in IKEv1 Main Mode (in memory): MM5 is not taken while the initiator's CRL
is fetched (its retransmission is), MM6 likewise on the initiator's side, a revoked peer
is refused, and a CRL that revokes the peer of a live ISAKMP SA ends it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.pair import Node, transfer
from ikev2.revgen import cdp, crl_der, make_crl
from ikev2.x509gen import NOW, Issued, issue, make_ca
from pike.ikev1.engine import Ikev1Engine
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished
from pike.sa.crl import parse_crl
from pike.sa.revocation import RevocationCache, revoked_check

from .test_signatures import A_ID, B_ID, node

CRL_URI = "http://192.0.2.9/ca.crl"


def gw(ca: Issued, ident: str, uri: str | None) -> Issued:
    return issue(ca, "ecdsa-p256", ident, [x509.DNSName(ident)], extra=[cdp(uri)] if uri else [])


def cache(n: Node) -> RevocationCache:
    return n.engine.ctx.credentials.revocation


def up(n: Node) -> bool:
    return bool(n.of(IkeSaEstablished))


def retransmit(a: Node, b: Node, now: float) -> None:
    a.now = b.now = now
    a.engine.handle_timer(now)
    b.engine.handle_timer(now)
    transfer(a, b, now)


def test_mm5_waits_for_the_crl_then_a_revoked_initiator_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    ca = make_ca()
    mine = gw(ca, A_ID, CRL_URI)
    a = node(tmp_path / "a", mine, ca, 1, True)
    b = node(tmp_path / "b", gw(ca, B_ID, None), ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert [f.uri for f in cache(b).wanted] == [CRL_URI]
    assert "is being fetched" in caplog.text and not up(a) and not up(b)
    cache(b).add_crl(parse_crl(crl_der(make_crl(ca, [mine.cert.serial_number])), CRL_URI), NOW)
    for t in (5.0, 10.0, 20.0):
        retransmit(a, b, t)
    assert not up(a) and not up(b)
    assert "refused by revocation check" in caplog.text and f"crl {CRL_URI}" in caplog.text


def test_mm6_set_aside_then_established_and_ended_by_a_new_crl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    ca = make_ca()
    hq = gw(ca, B_ID, CRL_URI)
    a = node(tmp_path / "a", gw(ca, A_ID, None), ca, 1, True)
    b = node(tmp_path / "b", hq, ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert up(b) and not up(a)  # the responder is done; MM6 waits on the initiator
    cache(a).wanted.clear()
    cache(a).add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    retransmit(a, b, 5.0)
    assert up(a)
    engine: Ikev1Engine = a.engine  # type: ignore[assignment]
    cache(a).add_crl(
        parse_crl(crl_der(make_crl(ca, [hq.cert.serial_number], number=2)), CRL_URI), NOW
    )
    lines = engine.drop_revoked(revoked_check(cache(a), NOW), 6.0)
    assert len(lines) == 1 and "revoked (crl" in lines[0]
    a.drain()
    assert "revoked" in [e.reason for e in a.of(IkeSaDeleted)]
