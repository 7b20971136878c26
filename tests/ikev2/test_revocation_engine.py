"""Revocation in the IKEv2 engine (in memory): the check after the peer's AUTH, the
exchange left unanswered while a status is fetched (the retransmission finds it), the
refusal with AUTHENTICATION_FAILED and its log line, and the teardown of a live SA."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pike.ikev2.engine import Ikev2Engine
from pike.sa.actions import IkeSaDeleted
from pike.sa.crl import parse_crl
from pike.sa.revocation import revoked_check
from pike.sa.revocation_status import serial_text

from .pair import Node, revocation_cache, transfer
from .revgen import CRL_URI, crl_der, crl_gateway, make_crl
from .test_pubkey import A_ID, B_ID, conf, engine_from, established
from .x509gen import NOW, Issued, make_ca, write


def side(d: Path, me: Issued, ca: Issued, seed: int, a_side: bool, remote_extra: str = "") -> Node:
    write(d, "me", me)
    write(d, "ca", ca)
    local, remote = ("192.0.2.1", "192.0.2.2") if a_side else ("192.0.2.2", "192.0.2.1")
    lid, rid = (A_ID, B_ID) if a_side else (B_ID, A_ID)
    nets = ("10.1.0.0/24", "10.2.0.0/24") if a_side else ("10.2.0.0/24", "10.1.0.0/24")
    text = conf(local, remote, lid, rid, local_ts=nets[0], remote_ts=nets[1])
    text = text.replace('cacerts = ["ca.pem"]', f'cacerts = ["ca.pem"]{remote_extra}')
    path = d / "pike.toml"
    path.write_text(text)
    return Node(engine_from(path, seed))


def retransmit(a: Node, b: Node, now: float) -> None:
    """``a``'s retransmission timer fires: its request goes again and both talk on."""
    a.now = b.now = now
    a.engine.handle_timer(now)
    transfer(a, b, now)


@pytest.fixture
def ca() -> Issued:
    return make_ca()


def test_responder_waits_for_the_crl_then_refuses_a_revoked_peer(
    tmp_path: Path, ca: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    mine = crl_gateway(ca, A_ID)
    a = side(tmp_path / "a", mine, ca, 1, True)
    b = side(tmp_path / "b", crl_gateway(ca, B_ID, None), ca, 2, False)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    # IKE_AUTH arrived; b asked for the CRL and did not answer
    assert [(f.kind, f.uri) for f in revocation_cache(b).wanted] == [("crl", CRL_URI)]
    assert len(b.outbox) == 1, "only the IKE_SA_INIT response"
    assert "is being fetched; request 1 left unanswered" in caplog.text
    # the runtime brings the CRL in; the initiator's retransmission is answered
    crl = make_crl(ca, [mine.cert.serial_number])
    revocation_cache(b).add_crl(parse_crl(crl_der(crl), CRL_URI), NOW)
    retransmit(a, b, 4.5)
    assert not established(a) and not established(b)
    assert "sending IKE_AUTH response 1 [ N(AUTHENTICATION_FAILED) ]" in caplog.text
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["auth_failed"]
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        serial_text(mine.cert.serial_number) in r.getMessage() and CRL_URI in r.getMessage()
        for r in warn
    ), caplog.text


def test_responder_accepts_once_a_clean_crl_is_in(tmp_path: Path, ca: Issued) -> None:
    a = side(tmp_path / "a", crl_gateway(ca, A_ID), ca, 1, True)
    b = side(tmp_path / "b", crl_gateway(ca, B_ID, None), ca, 2, False, ', revocation = "strict"')
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert not established(b)
    revocation_cache(b).wanted.clear()
    revocation_cache(b).add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    retransmit(a, b, 4.5)
    assert established(a) and established(b)


@pytest.mark.parametrize(
    ("policy", "accepted"), [("strict", False), ("ifuri", False), ("relaxed", True)]
)
def test_unreachable_crl_under_each_policy(
    tmp_path: Path, ca: Issued, policy: str, accepted: bool
) -> None:
    a = side(tmp_path / "a", crl_gateway(ca, A_ID), ca, 1, True)
    b = side(
        tmp_path / "b", crl_gateway(ca, B_ID, None), ca, 2, False, f', revocation = "{policy}"'
    )
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (fetch,) = revocation_cache(b).wanted
    revocation_cache(b).failed(fetch, "no answer within 3 s", b.engine.ctx.credentials.wall(0.0))
    retransmit(a, b, 4.5)
    assert established(b) is accepted and established(a) is accepted


def test_no_uri_fails_only_strict(tmp_path: Path, ca: Issued) -> None:
    for policy, accepted in (("strict", False), ("ifuri", True)):
        a = side(tmp_path / policy / "a", crl_gateway(ca, A_ID, None), ca, 1, True)
        extra = f', revocation = "{policy}"'
        b = side(tmp_path / policy / "b", crl_gateway(ca, B_ID, None), ca, 2, False, extra)
        a.engine.initiate("gw", 0.0)
        transfer(a, b)
        assert not revocation_cache(b).wanted
        assert established(b) is accepted, policy


def test_initiator_sets_the_response_aside_until_the_status_is_in(
    tmp_path: Path, ca: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    hq = crl_gateway(ca, B_ID)
    a = side(tmp_path / "a", crl_gateway(ca, A_ID, None), ca, 1, True, ', revocation = "strict"')
    b = side(tmp_path / "b", hq, ca, 2, False)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert established(b) and not established(a)
    assert "response 1 set aside" in caplog.text
    revocation_cache(a).wanted.clear()
    revocation_cache(a).add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    retransmit(a, b, 4.5)  # b answers with its cached response
    assert established(a)


def test_a_refreshed_crl_ends_the_live_sa(tmp_path: Path, ca: Issued) -> None:
    mine = crl_gateway(ca, A_ID)
    a = side(tmp_path / "a", mine, ca, 1, True)
    b = side(tmp_path / "b", crl_gateway(ca, B_ID, None), ca, 2, False)
    revocation_cache(b).add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert established(a) and established(b)
    engine: Ikev2Engine = b.engine
    check = revoked_check(revocation_cache(b), NOW)
    assert engine.drop_revoked(check, 10.0) == []  # nothing revoked yet
    fresh = revocation_cache(b).add_crl(
        parse_crl(crl_der(make_crl(ca, [mine.cert.serial_number], number=2)), CRL_URI), NOW
    )
    assert fresh == [mine.cert.serial_number]
    lines = engine.drop_revoked(revoked_check(revocation_cache(b), NOW), 10.0)
    assert len(lines) == 1 and serial_text(mine.cert.serial_number) in lines[0]
    transfer(b, a, 10.0)
    assert [e.reason for e in b.of(IkeSaDeleted)] == ["revoked"]
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["peer_deleted"]
