"""Findings of issue 13: authenticated-looking or crafted input that used to raise out of
the engine (caught only by the runtime's catch-all), now a counted drop or a notify."""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import ip_address

from pike.sa.actions import ChildSaFailed, IkeSaEstablished, MessageDropped
from pike.sa.der import OID, SEQUENCE, SET, tlv
from pike.wire.constants import IdType
from pike.wire.header import HEADER
from pike.wire.payloads import IdiPayload, Payload, TsiPayload

from .pair import deliver, make_pair
from .reseal import AuthRequest, auth_request

_ATV = tlv(SEQUENCE, tlv(OID, b"\x2b" + b"\xff" * 2200 + b"\x01") + tlv(0x0C, b"x"))
HUGE_ARC = tlv(SEQUENCE, tlv(SET, _ATV))  # an arc of 4 636 digits: str() raises past 4 300


def _with_idi(id_type: int, data: bytes) -> tuple[list[Payload], AuthRequest]:
    req = auth_request()
    payloads = [
        IdiPayload(id_type, data) if isinstance(p, IdiPayload) else p for p in req.message.payloads
    ]
    return payloads, req


def test_dn_identity_with_a_huge_oid_arc_is_refused_not_raised() -> None:
    payloads, req = _with_idi(IdType.ID_DER_ASN1_DN, HUGE_ARC)
    (answer,) = req.send(req.seal(payloads))  # AUTHENTICATION_FAILED, nothing raised
    assert req.responder.engine.list_sas() == []
    assert answer.data


def test_identity_text_has_no_control_characters_and_is_bounded(caplog) -> None:
    payloads, req = _with_idi(IdType.ID_FQDN, b"evil\n2026-12-07 forged: line\x1b[31m" + b"x" * 900)
    caplog.set_level("INFO", logger="pike")
    req.send(req.seal(payloads))
    text = caplog.text
    assert "forged" in text
    assert "evil\n" not in text and "\x1b" not in text
    assert "evil?2026-12-07 forged: line?[31m" in text
    assert "x" * 300 not in text


def test_inverted_traffic_selector_gets_ts_unacceptable() -> None:
    """TSi start above its end used to raise while logging, leaving the request unanswered
    while the initiator installed its CHILD_SA."""
    req = auth_request()
    payloads: list[Payload] = []
    for p in req.message.payloads:
        if isinstance(p, TsiPayload):
            w = p.selectors[0]
            inverted = replace(
                w, start_addr=ip_address("10.1.0.255"), end_addr=ip_address("10.1.0.0")
            )
            p = TsiPayload((inverted,))
        payloads.append(p)
    answer = req.send(req.seal(payloads))
    assert len(answer) == 1
    deliver(answer, req.initiator, 0.0)
    assert req.initiator.of(IkeSaEstablished)
    (failed,) = req.initiator.of(ChildSaFailed)
    assert "TS_UNACCEPTABLE" in failed.reason


def test_ike_sa_init_response_carrying_sk_is_dropped() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (resp,) = deliver([init], b, 0.0)
    # The response's header with one SK payload instead of the real payloads.
    spi_i, spi_r, _, version, exchange, flags, mid, _ = HEADER.unpack_from(resp.data)
    sk = struct.pack("!BBH", 0, 0, 4 + 32) + bytes(32)
    data = HEADER.pack(spi_i, spi_r, 46, version, exchange, flags, mid, 28 + len(sk)) + sk
    a.engine.receive_datagram(data, resp.src, resp.dst, 0.0)
    a.drain()
    (dropped,) = a.of(MessageDropped)
    assert dropped.reason == "unexpected_payload"
    # The real response still completes the exchange.
    deliver([resp], a, 0.0)
    assert a.engine.list_sas()[0].state == "CONNECTING"


def test_malformed_certificate_payload_is_an_authentication_failure() -> None:
    from cryptography.hazmat.primitives import serialization

    from pike.sa.certs import CertError, parse_cert_payloads
    from pike.wire.payloads import CertPayload

    from .x509gen import issue, make_ca

    ca = make_ca("ecdsa-p256")
    der = issue(ca, "ecdsa-p256", "gw.example.net").cert.public_bytes(serialization.Encoding.DER)
    i = der.index(bytes.fromhex("a003020102"))
    bad_version = der[:i] + bytes.fromhex("a003020105") + der[i + 5 :]
    j = der.index(bytes.fromhex("0603551d0e"))  # subjectKeyIdentifier -> a malformed AKI
    bad_extension = der[:j] + bytes.fromhex("0603551d23") + der[j + 5 :]
    for data in (bad_version, bad_extension, der[:-7], der[:40]):
        try:
            parse_cert_payloads([CertPayload(4, data)])
        except CertError as e:
            assert "CERT payload 1" in str(e)
        else:
            raise AssertionError("accepted")


def test_cert_payloads_are_capped_before_authentication() -> None:
    from pike.sa.certs import MAX_CERT_PAYLOADS, CertError, parse_cert_payloads
    from pike.wire.payloads import CertPayload

    try:
        parse_cert_payloads([CertPayload(4, b"\x30\x00")] * (MAX_CERT_PAYLOADS + 1))
    except CertError as e:
        assert "at most" in str(e)
    else:
        raise AssertionError("accepted")


def test_huge_oid_arc_in_a_dn_never_raises_for_either_version() -> None:
    """IKEv1 Aggressive Mode reads the same identity in the clear (pike.sa.certs)."""
    from pike.policy.identity import parse_identity
    from pike.sa.certs import ids_match, peer_identity

    peer = peer_identity(IdType.ID_DER_ASN1_DN, HUGE_ARC)
    assert len(peer.text) <= 256
    assert not ids_match(parse_identity("C=CH, O=pike, CN=gw"), peer)
