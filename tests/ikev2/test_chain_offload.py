"""A peer's CERT chain is checked off the event loop in piked (``ctx.offload_chains``):
the IKE_AUTH message waits for the runtime's answer to a ``CheckChain``.

The test plays the runtime (pike-keyd or the chain worker): it answers each CheckChain
with ``pike.sa.certs.check_chain`` or an error, when it chooses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pike.sa.actions import CheckChain, IkeSaDeleted
from pike.sa.certs import CertError, check_chain
from pike.wire.codec import decode_header
from pike.wire.constants import ExchangeType

from .pair import Node, deliver, transfer
from .test_pubkey import established, pair

_DER = serialization.Encoding.DER


def _checks(n: Node) -> list[CheckChain]:
    found = n.of(CheckChain)
    n.events = [e for e in n.events if not isinstance(e, CheckChain)]
    return found


def _answer(n: Node, req: CheckChain, now: float, result: object = None) -> None:
    if result is None:
        try:
            result = check_chain(req.certs, req.anchors, req.when)
        except CertError as exc:
            result = exc
    n.engine.chain_checked(req.ref, result, now)  # type: ignore[arg-type]


def _auth_request(a: Node, b: Node) -> list:
    a.engine.initiate("gw", 0.0)
    init = deliver(a.drain(), b, 0.0)
    return deliver(init, a, 0.0)


def _checking_responder(tmp_path: Path) -> tuple[Node, Node, CheckChain]:
    """a's IKE_AUTH request at b, which checks chains off the loop: the check it asks for."""
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    b.engine.ctx.offload_chains = True
    deliver(_auth_request(a, b), b, 0.1)
    [req] = _checks(b)
    return a, b, req


def _refused(a: Node, b: Node, req: CheckChain, result: object) -> None:
    """The checker answers ``result`` (an error): neither side gets an IKE SA."""
    _answer(b, req, 0.2, result)
    deliver(b.drain(), a, 0.2)
    assert not established(a) and not established(b)


def test_responder_waits_for_the_check_and_drops_copies(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    b.engine.ctx.offload_chains = True
    auth = _auth_request(a, b)
    assert deliver(auth, b, 0.1) == []  # nothing answered before the check
    [req] = _checks(b)
    chain = b.engine.ctx.credentials.local(a.engine.config.connections["gw"]).chain
    assert req.certs == tuple(c.public_bytes(_DER) for c in chain)
    cas = b.engine.ctx.credentials.cas(b.engine.config.connections["gw"])
    assert req.anchors == tuple(c.public_bytes(_DER) for c in cas)
    assert not b.sign_requests  # our signature only after the peer's chain is good
    # a retransmits (4 s): b neither checks again nor answers
    a.engine.handle_timer(4.0)
    again = a.drain()
    assert deliver(again, b, 4.0) == [] and _checks(b) == []
    _answer(b, req, 4.1)
    answer = b.drain()
    assert {decode_header(d.data).exchange for d in answer} == {ExchangeType.IKE_AUTH}
    deliver(answer, a, 4.1)
    assert established(a) and established(b)
    # the checked chain is not kept on the SA
    assert all(sa.chain is None for sa in b.engine.sas.values())


def test_initiator_checks_the_responders_chain_off_the_loop(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p384", "ecdsa-p384", ca_kind="ecdsa-p384")
    a.engine.ctx.offload_chains = True
    auth = _auth_request(a, b)
    response = deliver(auth, b, 0.1)
    assert deliver(response, a, 0.1) == [] and not established(a)
    [req] = _checks(a)
    _answer(a, req, 0.2)
    transfer(a, b, 0.2, in_flight=a.drain())
    assert established(a) and established(b)


def test_a_refused_chain_answers_authentication_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, req = _checking_responder(tmp_path)
    _refused(a, b, req, CertError("certificate 'CN=a' expired at 2020-01-01"))
    assert "not accepted: certificate 'CN=a' expired at 2020-01-01" in caplog.text
    assert "the peer refused our authentication (AUTHENTICATION_FAILED)" in caplog.text
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["auth_failed"]


def test_helper_gone_fails_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pike.keyd.client import HelperGone

    a, b, req = _checking_responder(tmp_path)
    _refused(a, b, req, HelperGone("key helper gone (exit status 1)"))
    assert "certificate check failed: key helper gone (exit status 1)" in caplog.text


def test_an_answer_for_a_gone_sa_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "pike")
    _, b, req = _checking_responder(tmp_path)
    b.engine.handle_timer(31.0)  # the half-open timeout ends b's SA
    assert not b.engine.sas
    _answer(b, req, 31.5)
    assert b.drain() == []
    assert f"certificate check {req.ref} answered for an IKE_SA that is gone" in caplog.text


def test_a_wrong_path_from_the_checker_is_refused(tmp_path: Path) -> None:
    a, b, req = _checking_responder(tmp_path)
    _refused(a, b, req, (0, 99))  # no such certificate: fails, never crashes
