"""IKEv1 phase 1 with certificates, the peer's chain checked off the event loop (piked's
``ctx.offload_chains``): the engine parks MM5/MM6/AM2/AM3 until the runtime answers the
``CheckChain`` and then takes the same datagram again. The test plays the runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ikev2.pair import Node, deliver, transfer
from ikev2.x509gen import make_ca
from pike.ikev1.engine import Ikev1Engine
from pike.sa.actions import CheckChain, IkeSaEstablished, InstallChildSa
from pike.sa.certs import CertError, check_chain

from .test_signatures import A_ID, B_ID, gw, node, pair


def _answer(n: Node, result: object = None) -> list[CheckChain]:
    """Answer every CheckChain ``n`` asked for (with the real check unless ``result``)."""
    asked = [e for e in n.events if isinstance(e, CheckChain)]
    n.events = [e for e in n.events if not isinstance(e, CheckChain)]
    for req in asked:
        got = result
        if got is None:
            try:
                got = check_chain(req.certs, req.anchors, req.when)
            except CertError as exc:
                got = exc
        n.engine.chain_checked(req.ref, got, n.now)  # type: ignore[arg-type]
    return asked


def _v1(n: Node) -> Ikev1Engine:
    engine = n.engine
    assert isinstance(engine, Ikev1Engine)
    return engine


def _run(a: Node, b: Node) -> int:
    """Until quiet, answering the chain checks as piked's runtime does; how many."""
    checks = 0
    transfer(a, b)
    while (asked := len(_answer(a)) + len(_answer(b))) > 0:
        checks += asked
        transfer(a, b)
    return checks


@pytest.mark.parametrize("aggr", [False, True])
def test_phase1_with_chains_checked_off_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, aggr: bool
) -> None:
    caplog.set_level(logging.INFO, "pike.ikev1")
    a, b = pair(tmp_path, "ecdsa-p256", aggr=aggr)
    a.engine.ctx.offload_chains = b.engine.ctx.offload_chains = True
    a.engine.initiate("gw", 0.0, "net")
    assert _run(a, b) == 2  # each side checks the other's chain once
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    assert f"authenticated peer '{B_ID}'" in caplog.text
    assert f"authenticated peer '{A_ID}'" in caplog.text
    assert all(sa.chain is None for sa in _v1(b).table.all())


def test_mm5_waits_for_its_check_and_copies_are_dropped(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256")
    b.engine.ctx.offload_chains = True
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)  # MM1-MM5: b holds MM5
    [req] = [e for e in b.events if isinstance(e, CheckChain)]
    mm5 = a.outbox[-1]
    assert deliver([mm5], b, 1.0) == []  # a copy: neither checked again nor answered
    assert [e for e in b.events if isinstance(e, CheckChain)] == [req]
    assert not b.signed and not b.of(IkeSaEstablished)
    assert b.engine.ctx.counters.dropped == {}
    _answer(b)
    transfer(a, b, 1.0)
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1


def test_a_refused_chain_fails_mm5_without_our_signature(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256")
    b.engine.ctx.offload_chains = True
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    _answer(b, CertError("certificate 'CN=x' expired at 2020-01-01"))
    transfer(a, b)
    assert b.engine.ctx.counters.dropped.get("auth_failed") == 1
    assert not b.of(IkeSaEstablished) and not b.signed
    [sa] = _v1(b).table.all()  # reported if it then times out half-open, as for IKEv1
    assert "not accepted: certificate 'CN=x' expired at 2020-01-01" in sa.auth_suspect


def test_an_untrusted_ca_is_refused_by_the_check(tmp_path: Path) -> None:
    ca, other = make_ca("ecdsa-p256"), make_ca("ecdsa-p256", "another CA")
    a = node(tmp_path / "a", gw(other, "ecdsa-p256", A_ID), ca, 1, True)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, False)
    b.engine.ctx.offload_chains = True
    a.engine.initiate("gw", 0.0, "net")
    assert _run(a, b) == 1
    assert b.engine.ctx.counters.dropped.get("auth_failed") == 1
    assert not b.of(IkeSaEstablished) and not b.signed
