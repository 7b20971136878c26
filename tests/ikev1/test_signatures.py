"""IKEv1 Main Mode with signatures in memory (RFC 2409 §5.1, RFC 4754 §8): RSA and ECDSA
certificates, both roles, the signature made through SignRequest, chain and ID checks."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.pair import Node, deliver, transfer
from ikev2.x509gen import Issued, issue, make_ca, write
from lib.pikeconf import Child, Conn, PikeConf
from pike.hsm.signer import SignatureScheme
from pike.ikev1.engine import Ikev1Engine
from pike.ikev1.isakmp_sa import IsakmpSa
from pike.ikev1.keys import phase1_prf
from pike.ikev1.signature_auth import verify
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished, InstallChildSa, SignRequest
from pike.sa.context import SIGN_TIMEOUT
from pike.wire.isakmp import decode_v1
from pike.wire.isakmp_constants import AuthV1, ExchangeV1, P1Attr
from pike.wire.isakmp_payloads import V1Cert, V1CertReq, V1Hash, V1Sa, V1Sig

A, B = "192.0.2.1", "192.0.2.2"
A_ID, B_ID = "branch.example.net", "hq.example.net"
METHOD = {
    "rsa": AuthV1.RSA_SIG,
    "ecdsa-p256": AuthV1.ECDSA_SHA256,
    "ecdsa-p384": AuthV1.ECDSA_SHA384,
    "ecdsa-p521": AuthV1.ECDSA_SHA512,
}
SCHEME = {"rsa": "RSA_PKCS1_NULL"} | dict.fromkeys(
    ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521"), "ECDSA_NULL"
)
# HASH_I/HASH_R size: the SHA-256 prf's, or with ECDSA the HMAC of the curve's hash
HASH_SIZE = {"rsa": 32, "ecdsa-p256": 32, "ecdsa-p384": 48, "ecdsa-p521": 64}

CHILD_ESP = ["aes256-sha256"]


def conf(
    local: str, remote: str, local_id: str, remote_id: str, lts: str, rts: str, aggr: bool
) -> str:
    return PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=[
            Conn(
                name="gw",
                version=1,
                local_addrs=[local],
                remote_addrs=[remote],
                proposals=["aes256-sha256-modp3072"],
                local={"auth": "pubkey", "id": local_id, "certs": ["me.pem"], "key": "me.key"},
                remote={"auth": "pubkey", "id": remote_id, "cacerts": ["ca.pem"]},
                extra={"aggressive": aggr},
                children=[
                    Child(name="net", local_ts=[lts], remote_ts=[rts], esp_proposals=CHILD_ESP)
                ],
            )
        ],
    ).render()


def node(d: Path, me: Issued, ca: Issued, seed: int, a_side: bool, aggr: bool = False) -> Node:
    write(d, "me", me)
    write(d, "ca", ca)
    if a_side:
        text = conf(A, B, A_ID, B_ID, "10.1.0.0/24", "10.2.0.0/24", aggr)
    else:
        text = conf(B, A, B_ID, A_ID, "10.2.0.0/24", "10.1.0.0/24", aggr)
    (d / "pike.toml").write_text(text)
    rng = random.Random(seed)
    cfg = load_config(str(d / "pike.toml"))
    return Node(Ikev1Engine(cfg, random=rng.randbytes, kernel_caps=KernelCaps(True)))  # type: ignore[arg-type]


def gw(ca: Issued, kind: str, ident: str) -> Issued:
    return issue(ca, kind, ident, [x509.DNSName(ident)])


def pair(
    tmp_path: Path, a_kind: str, b_kind: str | None = None, aggr: bool = False
) -> tuple[Node, Node]:
    ca = make_ca("ecdsa-p256")
    a = node(tmp_path / "a", gw(ca, a_kind, A_ID), ca, 1, True, aggr)
    b = node(tmp_path / "b", gw(ca, b_kind or a_kind, B_ID), ca, 2, False, aggr)
    return a, b


@pytest.mark.parametrize("kind", list(METHOD))
@pytest.mark.parametrize("b_initiates", [False, True])
def test_main_mode_with_certificates_both_roles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, b_initiates: bool
) -> None:
    caplog.set_level(logging.INFO, "pike.ikev1")
    a, b = pair(tmp_path, kind)
    i, r = (b, a) if b_initiates else (a, b)
    i.engine.initiate("gw", 0.0, "net")
    mm1 = i.drain()
    offer = decode_v1(mm1[0].data).first(V1Sa)
    assert offer is not None
    assert {t.attr(P1Attr.AUTH_METHOD) for t in offer.proposals[0].transforms} == {METHOD[kind]}
    assert transfer(i, r, 0.0, in_flight=mm1) == 9  # MM1-MM6, QM1-QM3
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    # one signature each, never twice, over HASH_I/HASH_R: the SHA-256 prf's, or with
    # ECDSA the HMAC of the curve's hash (RFC 4754 §8: P-384 -> 48 bytes, P-521 -> 64)
    for n in (a, b):
        assert [s.scheme.name for s in n.signed] == [SCHEME[kind]]
        assert len(n.signed[0].data) == HASH_SIZE[kind]
    sa_a, sa_b = a.sa(), b.sa()
    assert (sa_a.local_id, sa_a.remote_id) == (A_ID, B_ID)
    assert (sa_b.local_id, sa_b.remote_id) == (B_ID, A_ID)
    scheme = SCHEME[kind]
    assert f"authenticated peer '{B_ID}' with {scheme} (method {METHOD[kind]})" in caplog.text
    assert f"authenticated peer '{A_ID}' with {scheme} (method {METHOD[kind]})" in caplog.text


def test_certreq_names_our_ca_and_mm3_mm4_carry_it(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256")
    a.engine.initiate("gw", 0.0, "net")
    mm1 = a.drain()
    b.engine.receive_datagram(mm1[0].data, mm1[0].src, mm1[0].dst, 0.0)
    mm2 = b.drain()
    a.engine.receive_datagram(mm2[0].data, mm2[0].src, mm2[0].dst, 0.0)
    mm3 = a.drain()
    reqs = decode_v1(mm3[0].data).all(V1CertReq)
    ca = x509.load_pem_x509_certificate((tmp_path / "a" / "ca.pem").read_bytes())
    assert [(r.encoding, r.data) for r in reqs] == [(4, ca.subject.public_bytes())]


def test_key_types_must_agree(tmp_path: Path) -> None:
    """The method is one attribute for both ends: RSA against ECDSA finds no proposal."""
    a, b = pair(tmp_path, "rsa", "ecdsa-p256")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert b.engine.ctx.counters.dropped == {"no_proposal_chosen": 1}
    assert not a.of(IkeSaEstablished) and not b.of(IkeSaEstablished)


def test_untrusted_ca_fails_at_mm5(tmp_path: Path) -> None:
    ca, other = make_ca("ecdsa-p256"), make_ca("ecdsa-p256", "another CA")
    a = node(tmp_path / "a", gw(other, "ecdsa-p256", A_ID), ca, 1, True)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert b.engine.ctx.counters.dropped.get("auth_failed") == 1
    assert not b.of(IkeSaEstablished) and not b.of(InstallChildSa)
    assert not b.signed  # we never sign for a peer we did not authenticate


def test_identity_not_in_certificate_fails(tmp_path: Path) -> None:
    ca = make_ca("ecdsa-p256")
    a = node(tmp_path / "a", gw(ca, "ecdsa-p256", "someone.else.net"), ca, 1, True)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert b.engine.ctx.counters.dropped.get("auth_failed") == 1
    assert not b.of(IkeSaEstablished)


def test_signature_waits_and_a_retransmit_is_not_signed_twice(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "rsa")
    a.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)  # MM1-MM4; MM5 waits for our signature
    assert len(a.sign_requests) == 1 and not a.of(IkeSaEstablished)
    timer = a.engine.get_timer()
    assert timer is not None and timer <= 20.0  # bounded by SIGN_TIMEOUT
    mm4 = b.outbox[-1]
    a.engine.receive_datagram(mm4.data, mm4.src, mm4.dst, 1.0)  # a retransmitted MM4
    assert not a.drain() and len(a.sign_requests) == 1
    assert a.engine.ctx.counters.dropped == {"duplicate": 1}
    a.sign(a.sign_requests[0], 2.0)
    transfer(a, b, 2.0)
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1


def test_signing_failure_fails_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = pair(tmp_path, "ecdsa-p256")
    b.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    req = b.sign_requests[0]
    assert isinstance(req, SignRequest) and req.scheme is SignatureScheme.ECDSA_NULL
    b.sign(req, 1.0, RuntimeError("token removed"))
    assert "cannot authenticate ourselves" in caplog.text
    assert not b.of(IkeSaEstablished) and b.engine.list_sas() == []


def test_signature_timeout(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256")
    a.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    a.engine.handle_timer(25.0)
    a.drain()
    deleted = a.of(IkeSaDeleted)
    assert [d.reason for d in deleted] == ["no_credentials"]
    a.engine.sign_done(a.sign_requests[0].ref, b"late", 26.0)  # a late answer: ignored
    assert a.engine.list_sas() == []


def test_verify_refuses_bad_signatures(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from pike.ikev1.isakmp_sa import PeerError

    key = ec.generate_private_key(ec.SECP256R1())
    h = phase1_prf(4).prf(b"k", b"data")
    with pytest.raises(PeerError, match="64"):
        verify(AuthV1.ECDSA_SHA256, b"\x01" * 63, key.public_key(), h)
    with pytest.raises(PeerError, match="does not verify"):
        verify(AuthV1.ECDSA_SHA256, b"\x01" * 64, key.public_key(), h)
    with pytest.raises(PeerError, match="secp384r1"):
        verify(AuthV1.ECDSA_SHA384, b"\x01" * 96, key.public_key(), h)
    with pytest.raises(PeerError, match="secp521r1"):
        verify(AuthV1.ECDSA_SHA512, b"\x01" * 132, key.public_key(), h)
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    with pytest.raises(PeerError, match="not 132"):
        verify(AuthV1.ECDSA_SHA512, b"\x01" * 128, p521, h)
    with pytest.raises(PeerError, match="not RSA"):
        verify(AuthV1.RSA_SIG, b"\x01" * 256, key.public_key(), h)


# -- Aggressive Mode -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(METHOD))
@pytest.mark.parametrize("b_initiates", [False, True])
def test_aggressive_mode_with_certificates_both_roles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, b_initiates: bool
) -> None:
    caplog.set_level(logging.INFO, "pike.ikev1")
    a, b = pair(tmp_path, kind, aggr=True)
    i, r = (b, a) if b_initiates else (a, b)
    i.engine.initiate("gw", 0.0, "net")
    am1 = i.drain()
    msg = decode_v1(am1[0].data)
    assert msg.exchange == ExchangeV1.AGGRESSIVE and msg.all(V1CertReq)
    assert transfer(i, r, 0.0, in_flight=am1) == 6  # AM1-AM3, QM1-QM3
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    for n in (a, b):
        assert [s.scheme.name for s in n.signed] == [SCHEME[kind]]
    # AM2 in the clear: the responder's CERT and SIG, no HASH
    am2 = decode_v1(r.outbox[0].data)
    assert not am2.encrypted and am2.all(V1Cert) and am2.first(V1Sig) is not None
    assert am2.first(V1Hash) is None
    scheme = SCHEME[kind]
    assert f"authenticated peer '{B_ID}' with {scheme} (method {METHOD[kind]})" in caplog.text
    assert f"authenticated peer '{A_ID}' with {scheme} (method {METHOD[kind]})" in caplog.text


def test_aggressive_responder_answers_only_once_signed(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", aggr=True)
    b.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    am1 = a.drain()
    assert deliver(am1, b, 0.0) == [] and len(b.sign_requests) == 1
    assert deliver(am1, b, 0.5) == []  # AM1 again: still signing, not signed twice
    assert len(b.sign_requests) == 1
    b.sign(b.sign_requests[0], 1.0)
    transfer(a, b, 1.0)
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1


def test_aggressive_mode_with_certificates_needs_aggressive_true(tmp_path: Path) -> None:
    ca = make_ca("ecdsa-p256")
    a = node(tmp_path / "a", gw(ca, "rsa", A_ID), ca, 1, True, aggr=True)
    b = node(tmp_path / "b", gw(ca, "rsa", B_ID), ca, 2, False, aggr=False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert b.engine.ctx.counters.dropped == {"aggressive_refused": 1}
    assert not b.signed and not a.of(IkeSaEstablished)


def test_aggressive_mode_untrusted_responder_cert(tmp_path: Path) -> None:
    ca, other = make_ca("ecdsa-p256"), make_ca("ecdsa-p256", "another CA")
    a = node(tmp_path / "a", gw(ca, "ecdsa-p256", A_ID), ca, 1, True, aggr=True)
    b = node(tmp_path / "b", gw(other, "ecdsa-p256", B_ID), ca, 2, False, aggr=True)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert a.engine.ctx.counters.dropped.get("auth_failed") == 1
    assert not a.signed and not a.of(IkeSaEstablished)


def test_responder_picks_the_connection_by_the_peers_identity(tmp_path: Path) -> None:
    """A hub with two branch connections from any address: MM1 can only pick by address
    and proposal (the first), the ID in MM5 moves the SA to the branch's own connection."""
    ca = make_ca("ecdsa-p256")
    branch = tmp_path / "branch2"
    write(branch, "me", gw(ca, "ecdsa-p256", "branch2.example.net"))
    write(branch, "ca", ca)
    text = conf(A, B, "branch2.example.net", B_ID, "10.1.0.0/24", "10.2.0.0/24", False)
    (branch / "pike.toml").write_text(text)
    a = Node(
        Ikev1Engine(
            load_config(str(branch / "pike.toml")),
            random=random.Random(1).randbytes,
            kernel_caps=KernelCaps(True),
        )  # type: ignore[arg-type]
    )
    hub = tmp_path / "hub"
    write(hub, "me", gw(ca, "ecdsa-p256", B_ID))
    write(hub, "ca", ca)
    hub_conf = PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=[
            Conn(
                name=name,
                version=1,
                local_addrs=[B],
                remote_addrs=["%any"],
                proposals=["aes256-sha256-modp3072"],
                local={"auth": "pubkey", "id": B_ID, "certs": ["me.pem"], "key": "me.key"},
                remote={"auth": "pubkey", "id": f"{name}.example.net", "cacerts": ["ca.pem"]},
                children=[
                    Child(
                        name="net",
                        local_ts=["10.2.0.0/24"],
                        remote_ts=[nets],
                        esp_proposals=CHILD_ESP,
                    )
                ],
            )
            for name, nets in (("branch1", "10.9.0.0/24"), ("branch2", "10.1.0.0/24"))
        ],
    )
    text = hub_conf.render()
    (hub / "pike.toml").write_text(text)
    cfg = load_config(str(hub / "pike.toml"))
    rng = random.Random(2)
    b = Node(Ikev1Engine(cfg, random=rng.randbytes, kernel_caps=KernelCaps(True)))  # type: ignore[arg-type]
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert b.sa().name == "branch2" and b.sa().remote_id == "branch2.example.net"
    assert len(b.of(InstallChildSa)) == 1  # branch2's child: its proxy IDs fit


def test_bad_certificate_or_signature_payloads_fail_authentication(tmp_path: Path) -> None:
    """What a peer may put in MM5 instead of a good chain and SIG: each one is an
    auth_failed PeerError naming the problem, never another exception."""
    from cryptography.hazmat.primitives import serialization

    from pike.ikev1.isakmp_sa import PeerError
    from pike.ikev1.signature_auth import verify_peer
    from pike.wire.isakmp_constants import IdV1
    from pike.wire.isakmp_payloads import V1Id, V1Message

    a, b = pair(tmp_path, "ecdsa-p256")
    a.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)  # MM1-MM4: B has its keys and the agreed method
    sa = next(iter(b.engine.sas.values()))
    assert isinstance(sa, IsakmpSa)  # Node is typed for IKEv2; b runs IKEv1
    good = x509.load_pem_x509_certificate((tmp_path / "a" / "me.pem").read_bytes())
    der = good.public_bytes(serialization.Encoding.DER)
    pid = V1Id(IdV1.FQDN, 0, 0, A_ID.encode())
    h = bytes(32)
    cases = [
        ([V1Cert(4, b"\x30\x03junk"), V1Sig(bytes(64))], "not a DER X.509"),
        ([V1Cert(1, der), V1Sig(bytes(64))], "encoding 1"),
        ([V1Sig(bytes(64))], "sent no certificate"),
        ([V1Cert(4, der)], "no SIG"),
        ([V1Cert(4, der), V1Sig(bytes(64))], "does not verify"),
        ([V1Cert(4, der), V1Sig(bytes(7))], "7 bytes"),
    ]
    for payloads, why in cases:
        msg = V1Message(sa.spi_i, sa.spi_r, 2, 0, 1, [pid, *payloads])
        with pytest.raises(PeerError, match=why) as err:
            verify_peer(sa, msg, pid, h, 0.0)
        assert err.value.reason == "auth_failed"
    other = V1Id(IdV1.FQDN, 0, 0, b"mallory.example.net")
    with pytest.raises(PeerError, match="is not"):
        verify_peer(sa, V1Message(sa.spi_i, sa.spi_r, 2, 0, 1, [other]), other, h, 0.0)


def test_signature_timeout_ends_the_sa_as_in_ikev2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pike.sa.signing: the same deadline and the same words as IKEv2's
    (tests/ikev2/test_sign_request.py); a late signature is ignored."""
    a, b = pair(tmp_path, "rsa")
    a.auto_sign = False
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)  # MM1-MM4; MM5 waits for our signature
    [req] = a.sign_requests
    a.engine.handle_timer(SIGN_TIMEOUT - 0.1)
    assert a.engine.sas
    a.engine.handle_timer(SIGN_TIMEOUT)
    a.drain()
    assert not a.engine.sas and a.engine.get_timer() is None
    assert "no signature after 20s" in caplog.text
    a.sign(req, SIGN_TIMEOUT + 1)  # too late: ignored
    assert a.drain() == [] and not a.engine.sas
