"""pike.sa.signing: the signature an exchange waits for is held, timed out, refused and,
when late, ignored by one shared implementation; the same steps and asserts for IKEv1's
phase 1 (Main Mode) and IKEv2's IKE_AUTH, both roles."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ikev1 import test_signatures as v1
from ikev2 import test_pubkey as v2
from ikev2.pair import Node, deliver
from pike.hsm.signer import SignatureScheme, SignerError
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished, SignRequest
from pike.sa.context import SIGN_TIMEOUT
from pike.sa.signing import LATE_MEMORY, PendingSignature, Signatures, Wanted
from pike.sa.state import IkeState

VERSIONS = [1, 2]
# what each version signs, by role: the name in the shared log lines
WHAT = {(1, True): "HASH_I", (1, False): "HASH_R", (2, True): "AUTH", (2, False): "AUTH"}


def _pair(tmp_path: Path, version: int) -> tuple[Node, Node]:
    if version == 1:
        return v1.pair(tmp_path, "ecdsa-p256")
    return v2.pair(tmp_path, "ecdsa-p256", "ecdsa-p256")


def _until_signing(tmp_path: Path, version: int, initiator: bool) -> Node:
    """a initiates; the side under test (a as initiator, b as responder) signs only
    when the test answers. Returns the waiting side once it waits."""
    a, b = _pair(tmp_path, version)
    waiter = a if initiator else b
    waiter.auto_sign = False
    if version == 1:
        a.engine.initiate("gw", 0.0, "net")
    else:
        a.engine.initiate("gw", 0.0)
    flight = a.drain()
    for _ in range(8):  # until the waiter holds a SignRequest
        if waiter.sign_requests or not flight:
            break
        flight = deliver(deliver(flight, b, 0.0), a, 0.0)
    assert len(waiter.sign_requests) == 1
    return waiter


def _pending(n: Node) -> PendingSignature[Any]:
    """The waiting side's holder: the shared one, whichever version."""
    [sa] = n.engine.sas.values()
    held = sa.signing if hasattr(sa, "signing") else sa.tasks.pending
    assert isinstance(held, PendingSignature)
    return held


def _shared(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pike.sa" and r.levelno == level]


@pytest.mark.parametrize("initiator", [True, False], ids=["initiator", "responder"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_signature_that_never_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int, initiator: bool
) -> None:
    caplog.set_level(logging.INFO, "pike")
    n = _until_signing(tmp_path, version, initiator)
    what = WHAT[(version, initiator)]
    pending = _pending(n)
    [req] = n.sign_requests
    assert (pending.ref, pending.what, pending.deadline) == (req.ref, what, SIGN_TIMEOUT)
    # the responder's holder names the request whose answer waits; the initiator's none
    assert (pending.answering is None) == initiator
    assert n.engine.ctx.signatures.waiting() == 1
    assert n.engine.get_timer() == SIGN_TIMEOUT
    n.engine.handle_timer(SIGN_TIMEOUT - 0.1)
    assert n.engine.sas and not n.drain()
    n.engine.handle_timer(SIGN_TIMEOUT)
    out = n.drain()
    # the policy: the initiator sends nothing; the responder answers AUTHENTICATION_FAILED
    # where its protocol has an answer for it (IKEv2), an IKEv1 responder has none
    assert len(out) == (1 if version == 2 and not initiator else 0)
    assert not n.engine.sas and n.engine.get_timer() is None
    assert n.engine.ctx.signatures.waiting() == 0
    assert not n.of(IkeSaEstablished)
    if initiator:  # a responder's half-open SA ends quietly
        assert [e.reason for e in n.of(IkeSaDeleted)] == ["no_credentials"]
    tag = pending.sa.tag()
    assert _shared(caplog, logging.ERROR) == [
        f"{tag}: cannot authenticate ourselves: cannot sign our {what}: no signature after 20s"
    ]
    # the signature after all: ignored, logged and counted, the same in both versions
    n.sign(req, SIGN_TIMEOUT + 1)
    assert n.drain() == [] and not n.engine.sas
    assert _shared(caplog, logging.INFO) == [
        f"{tag}: signature {req.ref} of our {what} came after the exchange gave up "
        "(no signature after 20s): ignored"
    ]
    assert n.engine.ctx.counters.conn("gw").late_signatures == 1
    n.engine.sign_done(req.ref, b"again", SIGN_TIMEOUT + 2)  # counted once, not per copy
    assert n.engine.ctx.counters.conn("gw").late_signatures == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_a_signing_error_fails_closed_with_one_wording(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    n = _until_signing(tmp_path, version, True)
    tag = _pending(n).sa.tag()
    [req] = n.sign_requests
    n.sign(req, 1.0, SignerError("token gw absent: sign failed: GeneralError, token gone"))
    assert n.drain() == [] and not n.engine.sas
    assert [e.reason for e in n.of(IkeSaDeleted)] == ["no_credentials"]
    what = WHAT[(version, True)]
    assert _shared(caplog, logging.ERROR) == [
        f"{tag}: cannot authenticate ourselves: cannot sign our {what}: "
        "token gw absent: sign failed: GeneralError, token gone"
    ]
    assert n.engine.ctx.counters.conn("gw").late_signatures == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_a_signature_for_an_sa_that_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    caplog.set_level(logging.INFO, "pike")
    n = _until_signing(tmp_path, version, True)
    tag = _pending(n).sa.tag()
    [req] = n.sign_requests
    n.engine.terminate("gw", 1.0)
    n.drain()
    assert not n.engine.sas
    n.sign(req, 1.5)
    assert n.drain() == [] and not n.engine.sas
    assert _shared(caplog, logging.INFO) == [
        f"{tag}: signature {req.ref} of our {WHAT[(version, True)]} came after its SA ended: "
        "ignored"
    ]
    assert n.engine.ctx.counters.conn("gw").late_signatures == 1
    assert n.engine.ctx.signatures.waiting() == 0


class _Sa:
    """An SA as ``pike.sa.signing`` sees one."""

    def __init__(self) -> None:
        self.state = IkeState.CONNECTING
        self.name = "gw"

    def tag(self) -> str:
        return "gw[1]"


def _request(ref: int) -> SignRequest:
    return SignRequest(ref, "gw", "k.pem", SignatureScheme.ECDSA_SHA256, b"d", b"s")


def test_only_the_asking_engine_takes_the_answer_and_memory_stays_bounded() -> None:
    """One registry for the daemon's two engines: an answer goes to the version that
    asked; what was given up is forgotten after LATE_MEMORY (a later answer is then a
    stray one: silent, not counted)."""
    sent: list[SignRequest] = []
    late: list[str] = []
    sigs = Signatures(sent.append, late.append)
    done: list[bytes] = []
    sa = _Sa()
    p1 = sigs.wait(1, sa, Wanted(_request(1), "HASH_I"), 0.0, lambda s, n: done.append(s), _no)
    assert sent == [_request(1)] and sigs.waiting() == 1
    assert sigs.take(1, 2) is None and sigs.waiting() == 1  # the IKEv2 engine leaves it
    assert sigs.take(1, 1) is p1
    sigs.settle(p1, b"sig", 1.0)
    assert done == [b"sig"] and sigs.waiting() == 0 and not late
    p2 = sigs.wait(2, sa, Wanted(_request(2), "AUTH"), 0.0, lambda s, n: None, lambda w, n: None)
    sigs.expire(p2, SIGN_TIMEOUT)
    p3 = sigs.wait(2, sa, Wanted(_request(3), "AUTH"), 30.0, lambda s, n: None, lambda w, n: None)
    sigs.expire(p3, 30.0 + SIGN_TIMEOUT)
    sigs.take(3, 1)  # late: whichever engine is asked first logs and counts it, once
    assert late == ["gw"] and sigs.take(3, 2) is None and late == ["gw"]
    # ref 2 given up at 20 s; a wait after LATE_MEMORY forgets it
    sigs.wait(2, sa, Wanted(_request(4), "AUTH"), SIGN_TIMEOUT + LATE_MEMORY + 1, _no, _no)
    assert sigs.take(2, 2) is None and late == ["gw"]


def _no(*args: object) -> None:
    raise AssertionError("not called")
