"""Our AUTH signature goes out as a SignRequest action and the exchange waits for it.

The runtime signs off its event loop (a token takes tens to hundreds of ms); here the test
plays the runtime and answers each SignRequest when it chooses (``Node.auto_sign=False``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pike.hsm.signer import SignatureScheme, SignerError
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished, SendDatagram, SignRequest
from pike.sa.context import SIGN_TIMEOUT
from pike.wire.codec import decode_header
from pike.wire.constants import ExchangeType

from .pair import Node, deliver, transfer
from .test_pubkey import established, pair


def _init(a: Node, b: Node) -> list[SendDatagram]:
    """IKE_SA_INIT from a to b and back; a's IKE_AUTH step starts (a signs first).
    Returns a's IKE_AUTH request when a signed at once (auto_sign)."""
    a.engine.initiate("gw", 0.0)
    got = deliver(a.drain(), b, 0.0)
    return deliver(got, a, 0.0)


def _exchange(d: bytes) -> int:
    return decode_header(d).exchange


def test_initiator_waits_for_its_signature(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    a.auto_sign = False
    _init(a, b)
    [req] = a.sign_requests
    assert (req.conn, req.scheme) == ("gw", SignatureScheme.ECDSA_SHA256)
    assert req.key == str(tmp_path / "a" / "me.key")
    # Nothing leaves before the signature is in; the wait is bounded.
    assert [_exchange(d.data) for d in a.outbox] == [ExchangeType.IKE_SA_INIT]
    assert a.engine.get_timer() == SIGN_TIMEOUT
    cert_key = serialization.load_der_public_key(req.spki)
    assert isinstance(cert_key, ec.EllipticCurvePublicKey)
    # InitiatorSignedOctets start with our IKE_SA_INIT request as sent (RFC 7296 §2.15).
    assert req.data.startswith(a.outbox[0].data)
    a.sign(req, 0.5)
    out = a.drain()
    assert [_exchange(d.data) for d in out] == [ExchangeType.IKE_AUTH]
    transfer(a, b, 0.5, in_flight=out)
    assert established(a) and established(b)
    assert len(a.signed) == 1 and len(b.signed) == 1


def test_responder_holds_its_answer_and_ignores_retransmits(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "rsa", "rsa", ca_kind="rsa")
    b.auto_sign = False
    auth = _init(a, b)
    assert auth and {_exchange(d.data) for d in auth} == {ExchangeType.IKE_AUTH}
    assert deliver(auth, b, 0.1) == []
    [req] = b.sign_requests
    assert req.scheme is SignatureScheme.RSA_PKCS1_SHA256
    # a retransmits its IKE_AUTH request (4 s): b neither answers nor signs again.
    a.engine.handle_timer(4.0)
    again = a.drain()
    assert again and [d.data for d in again] == [d.data for d in auth]
    assert deliver(again, b, 4.0) == []
    assert b.sign_requests == [req] and not b.signed
    b.sign(req, 4.2)
    answer = b.drain()  # RSA certificates: fragmented (RFC 7383)
    assert answer and {_exchange(d.data) for d in answer} == {ExchangeType.IKE_AUTH}
    assert deliver(answer, a, 4.2) == []
    assert established(a) and established(b)
    # a late copy of the request gets the cached answer, and still no new signature
    assert [d.data for d in deliver(auth, b, 5.0)] == [d.data for d in answer]
    assert not b.sign_requests and len(b.signed) == 1


def test_signing_error_fails_the_initiator_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    a.auto_sign = False
    _init(a, b)
    [req] = a.sign_requests
    a.sign(req, 1.0, SignerError("token gw absent: sign failed: GeneralError, token gone"))
    a.drain()
    assert [_exchange(d.data) for d in a.outbox] == [ExchangeType.IKE_SA_INIT]
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["no_credentials"]
    assert not a.engine.sas and a.engine.get_timer() is None
    assert (  # pike.sa.signing's wording, both versions and roles
        "cannot authenticate ourselves: cannot sign our AUTH: token gw absent: sign failed: "
        "GeneralError, token gone"
    ) in caplog.text


def test_signing_error_makes_the_responder_refuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    b.auto_sign = False
    deliver(_init(a, b), b, 0.1)
    [req] = b.sign_requests
    b.sign(req, 0.2, SignerError("token gw pin_incorrect: login refused"))
    deliver(b.drain(), a, 0.2)
    assert not established(a) and not established(b)
    assert "cannot authenticate ourselves: cannot sign our AUTH: token gw pin_incorrect" in (
        caplog.text
    )
    assert "the peer refused our authentication (AUTHENTICATION_FAILED)" in caplog.text
    assert not a.engine.sas and not b.engine.sas


def test_terminate_while_signing_leaves_nothing(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    a.auto_sign = False
    _init(a, b)
    [req] = a.sign_requests
    a.engine.terminate("gw", 1.0)
    a.drain()
    assert not a.engine.sas and a.engine.get_timer() is None
    # the signature arrives after all: dropped, nothing is sent or kept
    a.sign(req, 1.5)
    assert a.drain() == [] and not a.engine.sas
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["terminated"]


def test_signature_timeout_initiator(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    a.auto_sign = False
    _init(a, b)
    [req] = a.sign_requests
    a.engine.handle_timer(SIGN_TIMEOUT - 0.1)
    assert a.engine.sas
    a.engine.handle_timer(SIGN_TIMEOUT)
    a.drain()
    assert not a.engine.sas and a.engine.get_timer() is None
    assert "cannot sign our AUTH: no signature after 20s" in caplog.text
    a.sign(req, SIGN_TIMEOUT + 1)  # too late: ignored
    assert a.drain() == [] and not a.engine.sas


def test_signature_timeout_responder_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pike")
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    b.auto_sign = False
    deliver(_init(a, b), b, 0.0)
    [req] = b.sign_requests
    assert b.engine.get_timer() == SIGN_TIMEOUT
    b.engine.handle_timer(SIGN_TIMEOUT)
    refusal = b.drain()
    assert [_exchange(d.data) for d in refusal] == [ExchangeType.IKE_AUTH]
    assert not b.engine.sas
    deliver(refusal, a, SIGN_TIMEOUT)
    assert "the peer refused our authentication (AUTHENTICATION_FAILED)" in caplog.text
    b.sign(req, SIGN_TIMEOUT + 1)
    assert b.drain() == [] and not b.engine.sas


def test_psk_needs_no_signature() -> None:
    from .pair import make_pair

    a, b = make_pair()
    a.auto_sign = b.auto_sign = False
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.of(IkeSaEstablished) and b.of(IkeSaEstablished)
    assert not a.sign_requests and not b.sign_requests


def test_sign_request_hides_the_signed_data() -> None:
    req = SignRequest(1, "gw", "pkcs11:token=gw;object=ike", SignatureScheme.ED25519, b"x", b"y")
    assert "data" not in repr(req) and "spki" not in repr(req)


def test_copy_of_a_held_request_from_elsewhere_does_not_move_the_sa(tmp_path: Path) -> None:
    """While our signature holds the answer, the request's mid is still the next one
    expected: a copy from another address is a replay, not a NAT float (RFC 7296 §2.23)."""
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    b.auto_sign = False
    auth = _init(a, b)
    deliver(auth, b, 0.1)
    [req] = b.sign_requests
    for d in auth:
        b.engine.receive_datagram(d.data, ("198.51.100.7", 4500), d.dst, 0.2)
    assert b.drain() == []
    b.sign(req, 0.3)
    answer = b.drain()
    assert answer and {d.dst for d in answer} == {auth[0].src}
