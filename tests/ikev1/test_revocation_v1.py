"""Revocation in IKEv1 Main Mode (in memory): MM5 is not taken while the initiator's CRL
is fetched (its retransmission is), MM6 likewise on the initiator's side, a revoked peer
is refused, and a CRL that revokes the peer of a live ISAKMP SA ends it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ikev2.pair import Node, revocation_cache, transfer
from ikev2.revgen import CRL_URI, crl_der, crl_gateway, make_crl
from ikev2.test_pubkey import established
from ikev2.x509gen import NOW, make_ca
from pike.ikev1.engine import Ikev1Engine
from pike.sa.actions import IkeSaDeleted
from pike.sa.crl import parse_crl
from pike.sa.revocation import revoked_check

from .test_signatures import A_ID, B_ID, node


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
    mine = crl_gateway(ca, A_ID, CRL_URI)
    a = node(tmp_path / "a", mine, ca, 1, True)
    b = node(tmp_path / "b", crl_gateway(ca, B_ID, None), ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert [f.uri for f in revocation_cache(b).wanted] == [CRL_URI]
    assert "is being fetched" in caplog.text and not established(a) and not established(b)
    revocation_cache(b).add_crl(
        parse_crl(crl_der(make_crl(ca, [mine.cert.serial_number])), CRL_URI), NOW
    )
    for t in (5.0, 10.0, 20.0):
        retransmit(a, b, t)
    assert not established(a) and not established(b)
    assert "refused by revocation check" in caplog.text and f"crl {CRL_URI}" in caplog.text


def test_mm6_set_aside_then_established_and_ended_by_a_new_crl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    ca = make_ca()
    hq = crl_gateway(ca, B_ID, CRL_URI)
    a = node(tmp_path / "a", crl_gateway(ca, A_ID, None), ca, 1, True)
    b = node(tmp_path / "b", hq, ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert established(b) and not established(
        a
    )  # the responder is done; MM6 waits on the initiator
    revocation_cache(a).wanted.clear()
    revocation_cache(a).add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    retransmit(a, b, 5.0)
    assert established(a)
    engine: Ikev1Engine = a.engine  # type: ignore[assignment]
    revocation_cache(a).add_crl(
        parse_crl(crl_der(make_crl(ca, [hq.cert.serial_number], number=2)), CRL_URI), NOW
    )
    lines = engine.drop_revoked(revoked_check(revocation_cache(a), NOW), 6.0)
    assert len(lines) == 1 and "revoked (crl" in lines[0]
    a.drain()
    assert "revoked" in [e.reason for e in a.of(IkeSaDeleted)]
