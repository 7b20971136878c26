"""IKE_AUTH with certificates between two engines in memory (RFC 7427, RFC 4754).

Each test makes a CA and two gateway certificates with ``cryptography``, writes them next
to the configs, and checks the exchange end to end: who signed with which method, what
the peer's log says, and that failures end in AUTHENTICATION_FAILED.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lib.pikeconf import Child, Conn, PikeConf, TomlValue
from pike.hsm.filekey import FileKeySigner
from pike.hsm.signer import SignatureScheme
from pike.ikev2.engine import Ikev2Engine
from pike.ikev2.ike_sa import IkeSa
from pike.ikev2.pubkey import (
    HashAlg,
    NoUsableScheme,
    SignatureError,
    choose_scheme,
    decode_hash_algorithms,
    encode_hash_algorithms,
    sign_auth,
    verify_auth,
)
from pike.ikev2.sigalg import decode_algorithm_id, encode_algorithm_id
from pike.ikev2.tasks import ike_init
from pike.ikev2.tasks.ike_hash_algs import announce_hashes
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished
from pike.sa.der import DerError
from pike.wire.codec import decode_message
from pike.wire.constants import NotifyType
from pike.wire.payloads import CertReqPayload, Message

from .pair import Node, transfer
from .x509gen import DAY, NOW, Issued, issue, make_ca, new_key, write

A_ID, B_ID = "branch.example.net", "hq.example.net"


def conf(
    local: str,
    remote: str,
    local_id: str | None,
    remote_id: str | None,
    *,
    rsa_pss: bool = False,
    local_ts: str = "10.1.0.0/24",
    remote_ts: str = "10.2.0.0/24",
) -> str:
    me: dict[str, TomlValue] = {"auth": "pubkey", "certs": ["me.pem"], "key": "me.key"}
    peer: dict[str, TomlValue] = {"auth": "pubkey", "cacerts": ["ca.pem"]}
    if local_id:
        me["id"] = local_id
    if remote_id:
        peer["id"] = remote_id
    if rsa_pss:
        me["rsa_pss"] = True
    return PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=[
            Conn(
                name="gw",
                local_addrs=[local],
                remote_addrs=[remote],
                proposals=["aes128gcm16-prfsha256-x25519"],
                local=me,
                remote=peer,
                children=[
                    Child(
                        name="net",
                        local_ts=[local_ts],
                        remote_ts=[remote_ts],
                        esp_proposals=["aes128gcm16"],
                    )
                ],
            )
        ],
    ).render()


def node(
    d: Path,
    me: Issued,
    ca: Issued,
    seed: int,
    *,
    chain: tuple[Issued, ...] = (),
    a_side: bool = True,
    local_id: str | None = "",
    remote_id: str | None = "",
    rsa_pss: bool = False,
) -> Node:
    write(d, "me", me, *chain)
    write(d, "ca", ca)
    local, remote = ("192.0.2.1", "192.0.2.2") if a_side else ("192.0.2.2", "192.0.2.1")
    lid = (A_ID if a_side else B_ID) if local_id == "" else local_id
    rid = (B_ID if a_side else A_ID) if remote_id == "" else remote_id
    nets = ("10.1.0.0/24", "10.2.0.0/24") if a_side else ("10.2.0.0/24", "10.1.0.0/24")
    text = conf(local, remote, lid, rid, rsa_pss=rsa_pss, local_ts=nets[0], remote_ts=nets[1])
    path = d / "pike.toml"
    path.write_text(text)
    return Node(engine_from(path, seed))


def engine_from(path: Path, seed: int) -> Ikev2Engine:
    rng = random.Random(seed)
    return Ikev2Engine(load_config(str(path)), random=rng.randbytes, kernel_caps=KernelCaps(True))


def gw(ca: Issued, kind: str, ident: str) -> Issued:
    return issue(ca, kind, ident, [x509.DNSName(ident)])


def pair(
    tmp_path: Path, a_kind: str, b_kind: str, ca_kind: str = "ecdsa-p256", **kw: bool
) -> tuple[Node, Node]:
    ca = make_ca(ca_kind)
    a = node(tmp_path / "a", gw(ca, a_kind, A_ID), ca, 1, **kw)  # type: ignore[arg-type]
    b = node(tmp_path / "b", gw(ca, b_kind, B_ID), ca, 2, a_side=False, **kw)  # type: ignore[arg-type]
    return a, b


def run(a: Node, b: Node) -> None:
    a.engine.initiate("gw", 0.0)
    transfer(a, b)


def established(n: Node) -> bool:
    return bool(n.of(IkeSaEstablished))


SCHEMES = {
    "rsa": "RSA_PKCS1_SHA256 (method 14)",
    "ecdsa-p256": "ECDSA_SHA256 (method 14)",
    "ecdsa-p384": "ECDSA_SHA384 (method 14)",
    "ecdsa-p521": "ECDSA_SHA512 (method 14)",
    "ed25519": "ED25519 (method 14)",
}


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_rfc7427_signatures(tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    caplog.set_level(logging.INFO, "pike")
    a, b = pair(tmp_path, kind, kind, ca_kind=kind)
    run(a, b)
    assert established(a) and established(b)
    text = caplog.text
    assert f"authenticated peer '{A_ID}' with {SCHEMES[kind]}" in text
    assert f"authenticated peer '{B_ID}' with {SCHEMES[kind]}" in text
    assert a.sa().remote_id == B_ID and b.sa().remote_id == A_ID


def test_rsa_pss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pike")
    a, b = pair(tmp_path, "rsa", "rsa", rsa_pss=True)
    run(a, b)
    assert established(a) and established(b)
    assert "with RSA_PSS_SHA256 (method 14)" in caplog.text


def test_mixed_key_types(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pike")
    a, b = pair(tmp_path, "ed25519", "rsa", ca_kind="rsa")
    run(a, b)
    assert established(a) and established(b)
    assert f"authenticated peer '{A_ID}' with ED25519" in caplog.text
    assert f"authenticated peer '{B_ID}' with RSA_PKCS1_SHA256" in caplog.text


def test_hash_algorithms_and_certreq_in_ike_sa_init(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    a.engine.initiate("gw", 0.0)
    req = decode_message(a.drain()[0].data)
    notify = req.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS)
    assert notify is not None and notify.data == bytes.fromhex("0002000300040005")
    b.engine.receive_datagram(a.outbox[0].data, a.outbox[0].src, a.outbox[0].dst, 0.0)
    resp = decode_message(b.drain()[0].data)
    assert resp.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS) is not None
    certreq = resp.first(CertReqPayload)
    assert certreq is not None and certreq.encoding == 4 and len(certreq.data) == 20


def test_psk_connections_send_no_hash_algorithms() -> None:
    from .pair import make_pair

    a, _ = make_pair()
    a.engine.initiate("gw", 0.0)
    req: Message = decode_message(a.drain()[0].data)
    assert req.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS) is None


def _quiet_initiator(sa: IkeSa, msg: Message, initiator: bool) -> None:
    """The initiator announces no hash algorithms (an older peer's IKE_SA_INIT)."""
    if not initiator:
        announce_hashes(sa, msg, initiator)


@pytest.mark.parametrize(
    ("kind", "method"),
    [("rsa", "RSA_PKCS1_SHA1 (method 1)"), ("ecdsa-p256", "ECDSA_SHA256 (method 9)"),
     ("ecdsa-p384", "ECDSA_SHA384 (method 10)"), ("ecdsa-p521", "ECDSA_SHA512 (method 11)")],
)  # fmt: skip
def test_classic_methods_when_the_peer_announces_no_hashes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    kind: str, method: str,
) -> None:  # fmt: skip
    """The initiator stays silent about hashes: the responder signs the classic way."""
    caplog.set_level(logging.INFO, "pike")
    monkeypatch.setattr(ike_init, "announce_hashes", _quiet_initiator)
    a, b = pair(tmp_path, kind, kind, ca_kind=kind)
    run(a, b)
    assert established(a) and established(b)
    assert f"authenticated peer '{B_ID}' with {method}" in caplog.text
    # the initiator heard the responder's list, so it used RFC 7427
    assert f"authenticated peer '{A_ID}' with {SCHEMES[kind]}" in caplog.text


def test_ed25519_needs_rfc7427(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ike_init, "announce_hashes", _quiet_initiator)
    a, b = pair(tmp_path, "ed25519", "ed25519", ca_kind="ed25519")
    run(a, b)
    assert not established(a) and not established(b)
    assert "Ed25519 key needs RFC 7427 signatures" in caplog.text
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["auth_failed"]


def _auth_failed(a: Node, b: Node, log: str) -> None:
    """The responder refused: AUTHENTICATION_FAILED went back and nothing is up."""
    assert not established(a) and not established(b)
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["auth_failed"]
    assert len(b.outbox) == 2, "IKE_SA_INIT and IKE_AUTH responses only"
    assert "the peer refused our authentication (AUTHENTICATION_FAILED)" in log


def test_wrong_ca(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca, other = make_ca(cn="pike CA"), make_ca(cn="stranger CA")
    a = node(tmp_path / "a", gw(other, "ecdsa-p256", A_ID), ca, 1)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, a_side=False)
    run(a, b)
    _auth_failed(a, b, caplog.text)
    assert (
        f"authentication of '{A_ID}' failed: certificate of {A_ID} not accepted: "
        f"no trusted path for 'CN={A_ID},O=pike test,C=CH' (issuer 'CN=stranger CA"
    ) in caplog.text


def test_expired_certificate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = make_ca()
    old = issue(ca, "ecdsa-p256", A_ID, [x509.DNSName(A_ID)], not_before=NOW - 30 * DAY,
                not_after=NOW - DAY)  # fmt: skip
    a = node(tmp_path / "a", old, ca, 1)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, a_side=False)
    run(a, b)
    _auth_failed(a, b, caplog.text)
    assert f"certificate 'CN={A_ID},O=pike test,C=CH' expired at" in caplog.text


def test_certificates_are_checked_at_the_engines_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine's store turns its ``now`` into the wall-clock time of the check (piked:
    the daemon's clock), so validity follows the engine's clock, not the host's."""
    a, b = pair(tmp_path, "ecdsa-p256", "ecdsa-p256")
    asked: list[float] = []

    def in_two_years(now: float) -> dt.datetime:
        asked.append(now)
        return NOW + 730 * DAY  # past the gateways' year, within the CA's ten

    b.engine.ctx.credentials.clock = in_two_years
    a.engine.initiate("gw", 7.0)
    transfer(a, b, 7.0)
    _auth_failed(a, b, caplog.text)
    assert asked == [7.0]
    assert f"certificate 'CN={A_ID},O=pike test,C=CH' expired at" in caplog.text


def test_id_not_in_certificate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """IDi names a host the certificate does not: refused even though the chain is good."""
    ca = make_ca()
    a = node(tmp_path / "a", gw(ca, "ecdsa-p256", "other.example.net"), ca, 1)
    b = node(tmp_path / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, a_side=False)
    run(a, b)
    _auth_failed(a, b, caplog.text)
    assert (
        f"identity '{A_ID}' is not in certificate 'CN=other.example.net,O=pike test,C=CH'"
        in caplog.text
    )


def test_responder_certificate_checked_by_initiator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca, other = make_ca(cn="pike CA"), make_ca(cn="stranger CA")
    a = node(tmp_path / "a", gw(ca, "ecdsa-p256", A_ID), ca, 1)
    b = node(tmp_path / "b", gw(other, "ecdsa-p256", B_ID), ca, 2, a_side=False)
    run(a, b)
    assert not established(a)
    assert [e.reason for e in a.of(IkeSaDeleted)] == ["auth_failed"]
    assert "authentication failed: certificate of hq.example.net not accepted" in caplog.text


def test_dn_identities_and_intermediate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No id configured: ours is the certificate subject; the peer's chain has an intermediate."""
    caplog.set_level(logging.INFO, "pike")
    root = make_ca("rsa", "pike root", path_length=1)
    sub = make_ca("ecdsa-p384", "pike sub", issuer=root, path_length=0)
    a_cert, b_cert = gw(sub, "ecdsa-p256", A_ID), gw(root, "rsa", B_ID)
    a = node(tmp_path / "a", a_cert, root, 1, chain=(sub,), local_id=None, remote_id=None)
    b = node(tmp_path / "b", b_cert, root, 2, a_side=False, local_id=None, remote_id=a_cert.dn)
    run(a, b)
    assert established(a) and established(b)
    assert b.sa().remote_id == a_cert.dn and a.sa().remote_id == b_cert.dn
    assert "issued via 'CN=pike root,O=pike test,C=CH'" in caplog.text


# -- pike.ikev2.pubkey / sigalg units --------------------------------------------------------


OCTETS = b"signed octets of RFC 7296 section 2.15"
ALL = frozenset(HashAlg)


def KeySigner(kind: str) -> FileKeySigner:
    """A FileKeySigner over a fresh key of ``kind`` (the file is gone once loaded)."""
    key = new_key(kind)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "k.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return FileKeySigner(str(path))


# RFC 7427 Appendix A encodings
@pytest.mark.parametrize(
    ("scheme", "der"),
    [
        (SignatureScheme.RSA_PKCS1_SHA256, "300d06092a864886f70d01010b0500"),
        (SignatureScheme.RSA_PKCS1_SHA384, "300d06092a864886f70d01010c0500"),
        (SignatureScheme.RSA_PKCS1_SHA512, "300d06092a864886f70d01010d0500"),
        (SignatureScheme.ECDSA_SHA256, "300a06082a8648ce3d040302"),
        (SignatureScheme.ECDSA_SHA384, "300a06082a8648ce3d040303"),
        (SignatureScheme.ECDSA_SHA512, "300a06082a8648ce3d040304"),
        (SignatureScheme.ED25519, "300506032b6570"),
    ],
)
def test_algorithm_identifiers(scheme: SignatureScheme, der: str) -> None:
    assert encode_algorithm_id(scheme).hex() == der
    assert decode_algorithm_id(bytes.fromhex(der)).scheme is scheme


def test_pss_parameters_roundtrip_and_defaults() -> None:
    alg = decode_algorithm_id(encode_algorithm_id(SignatureScheme.RSA_PSS_SHA384))
    assert (alg.scheme, alg.mgf_hash, alg.salt_length) == (
        SignatureScheme.RSA_PSS_SHA384,
        "sha384",
        48,
    )
    # RSASSA-PSS with absent parameters means SHA-1 everywhere: refused
    with pytest.raises(DerError, match=r"SHA-1"):
        decode_algorithm_id(bytes.fromhex("300b06092a864886f70d01010a"))
    with pytest.raises(DerError, match=r"SHA-1"):
        decode_algorithm_id(bytes.fromhex("300d06092a864886f70d01010a3000"))


@pytest.mark.parametrize(
    "der",
    ["", "30", "300a06082a8648ce3d0403", "300d06092a864886f70d01010b050000",
     "300a06082a8648ce3d04030200", "3005060355040300", "300c06082a8648ce3d0403020500"],
)  # fmt: skip
def test_bad_algorithm_identifiers(der: str) -> None:
    with pytest.raises(DerError):
        decode_algorithm_id(bytes.fromhex(der))


def test_hash_algorithms_notify() -> None:
    assert encode_hash_algorithms() == bytes.fromhex("0002000300040005")
    assert decode_hash_algorithms(bytes.fromhex("000100020009ff")) == {1, 2, 9}


@pytest.mark.parametrize(
    ("kind", "hashes_", "pss", "expected"),
    [
        ("rsa", None, False, (1, SignatureScheme.RSA_PKCS1_SHA1)),
        ("ecdsa-p256", None, False, (9, SignatureScheme.ECDSA_SHA256)),
        ("ecdsa-p384", None, False, (10, SignatureScheme.ECDSA_SHA384)),
        ("ecdsa-p521", None, False, (11, SignatureScheme.ECDSA_SHA512)),
        ("rsa", ALL, False, (14, SignatureScheme.RSA_PKCS1_SHA256)),
        ("rsa", ALL, True, (14, SignatureScheme.RSA_PSS_SHA256)),
        ("rsa", frozenset({4}), False, (14, SignatureScheme.RSA_PKCS1_SHA512)),
        ("ecdsa-p384", ALL, False, (14, SignatureScheme.ECDSA_SHA384)),
        ("ecdsa-p521", ALL, False, (14, SignatureScheme.ECDSA_SHA512)),
        ("ecdsa-p521", frozenset({2}), False, (14, SignatureScheme.ECDSA_SHA256)),
        ("ecdsa-p256", frozenset({3}), False, (14, SignatureScheme.ECDSA_SHA384)),
        ("ed25519", ALL, False, (14, SignatureScheme.ED25519)),
    ],
)
def test_choose_scheme(kind: str, hashes_, pss: bool, expected) -> None:
    assert choose_scheme(KeySigner(kind).key_type, hashes_, pss) == expected


@pytest.mark.parametrize(
    ("kind", "hashes_"),
    [("ed25519", None), ("ed25519", frozenset({2, 3})), ("rsa", frozenset({1}))],
)
def test_no_usable_scheme(kind: str, hashes_) -> None:
    with pytest.raises(NoUsableScheme):
        choose_scheme(KeySigner(kind).key_type, hashes_)


@pytest.mark.parametrize(
    ("kind", "hashes_", "pss"),
    [(k, h, p) for k in ("rsa", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521")
     for h in (None, ALL)
     for p in (False, True)] + [("ed25519", ALL, False)],
)  # fmt: skip
def test_sign_then_verify(kind: str, hashes_, pss: bool) -> None:
    signer = KeySigner(kind)
    method, data = sign_auth(signer, OCTETS, hashes_, pss)
    verified = verify_auth(method, data, signer.public_key(), OCTETS)
    assert verified.method == method
    with pytest.raises(SignatureError, match=r"does not verify|malformed"):
        verify_auth(method, data, signer.public_key(), OCTETS + b"x")
    other = KeySigner(kind)
    with pytest.raises(SignatureError):
        verify_auth(method, data, other.public_key(), OCTETS)


def test_classic_p521_method_11() -> None:
    key = new_key("ecdsa-p521")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    from pike.hsm.signer import ecdsa_der_to_raw

    raw = ecdsa_der_to_raw(key.sign(OCTETS, ec.ECDSA(hashes.SHA512())), 66)
    assert verify_auth(11, raw, key.public_key(), OCTETS).scheme is SignatureScheme.ECDSA_SHA512
    # and we make them: r||s of 66-byte halves (RFC 4754 §7), or RFC 7427 with a DER
    # ECDSA-Sig-Value under ecdsa-with-SHA512 (1.2.840.10045.4.3.4)
    signer = KeySigner("ecdsa-p521")
    assert signer.key_type == "ecdsa-p521"
    method, data = sign_auth(signer, OCTETS, None)
    assert method == 11 and len(data) == 132
    method, data = sign_auth(signer, OCTETS, ALL)
    alg = bytes.fromhex("300a06082a8648ce3d040304")
    assert method == 14 and data[: 1 + len(alg)] == bytes((len(alg),)) + alg
    signer.public_key().verify(data[1 + len(alg) :], OCTETS, ec.ECDSA(hashes.SHA512()))  # type: ignore[call-arg,arg-type]
    with pytest.raises(SignatureError, match=r"132"):
        verify_auth(11, raw[:-1], key.public_key(), OCTETS)


def test_method_and_key_must_agree() -> None:
    rsa_signer, ec_signer = KeySigner("rsa"), KeySigner("ecdsa-p256")
    method, data = sign_auth(rsa_signer, OCTETS, None)
    with pytest.raises(SignatureError, match=r"not RSA"):
        verify_auth(method, data, ec_signer.public_key(), OCTETS)
    method, data = sign_auth(ec_signer, OCTETS, None)
    with pytest.raises(SignatureError, match=r"needs an ECDSA"):
        verify_auth(10, data, ec_signer.public_key(), OCTETS)
    with pytest.raises(SignatureError, match=r"not a signature method"):
        verify_auth(2, data, ec_signer.public_key(), OCTETS)


def test_rfc7427_sha1_refused() -> None:
    signer = KeySigner("rsa")
    alg = encode_algorithm_id(SignatureScheme.RSA_PKCS1_SHA1)
    sig = signer.sign(OCTETS, SignatureScheme.RSA_PKCS1_SHA1)
    with pytest.raises(SignatureError, match=r"SHA-1 is not accepted"):
        verify_auth(14, bytes((len(alg),)) + alg + sig, signer.public_key(), OCTETS)
    with pytest.raises(SignatureError, match=r"shorter than its AlgorithmIdentifier"):
        verify_auth(14, b"\x20\x30", signer.public_key(), OCTETS)
