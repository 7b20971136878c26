"""Pkcs11Signer against real tokens: SoftHSM2 and swtpm + tpm2-abrmd + tpm2-pkcs11.

Keys are made on the token by pike's provisioning; every signature is verified with the
public key; the private value cannot be read; a token that goes away makes the next
signature fail closed and signing resumes after it returns; a refused PIN is presented once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from pkcs11 import exceptions as p11e
from pkcs11.constants import Attribute, ObjectClass

from pike.hsm import pkcs11 as hsm
from pike.hsm import provision
from pike.hsm.filekey import rsa_padding
from pike.hsm.pkcs11 import Pkcs11Signer, TokenState, TokenUnavailable
from pike.hsm.signer import PublicKey, SignatureScheme, digest_hash

from .tokens import USER_PIN, SoftHsm, Tpm, reset_pike_tokens, uri

S = SignatureScheme
DIGEST = bytes(range(32))  # what IKEv1 signs: a prf output (SHA-256 here)
DIGEST_512 = bytes(range(64))  # ... with P-521 the HMAC-SHA-512 (RFC 4754 §8)
SCHEMES = {
    "ecdsa-p256": [S.ECDSA_SHA256, S.ECDSA_NULL],
    "ecdsa-p384": [S.ECDSA_SHA384, S.ECDSA_NULL],
    "ecdsa-p521": [S.ECDSA_SHA512, S.ECDSA_NULL],
    "rsa2048": [
        S.RSA_PKCS1_SHA256,
        S.RSA_PKCS1_SHA1,
        S.RSA_PSS_SHA256,
        S.RSA_PSS_SHA384,
        S.RSA_PKCS1_NULL,
    ],
    "ed25519": [S.ED25519],
}


def _verify(pub: PublicKey, sig: bytes, data: bytes, scheme: SignatureScheme) -> None:
    if scheme.prehashed:  # IKEv1: ``data`` is the digest, RSA without DigestInfo
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(Prehashed(digest_hash(data))))
        else:
            assert isinstance(pub, rsa.RSAPublicKey)
            assert pub.recover_data_from_signature(sig, PKCS1v15(), NoDigestInfo()) == data
        return
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, data)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(scheme.hash_algorithm()))
    else:
        pub.verify(sig, data, rsa_padding(scheme), scheme.hash_algorithm())


def _generate(module: str, token: str, kind: str, label: str) -> None:
    lib = hsm.module(module).load()
    with hsm.find_token(lib, hsm.parse(uri(module, token, label))).open(
        rw=True, user_pin=USER_PIN
    ) as s:
        provision.generate(s, kind, label, label.encode())


@pytest.fixture
def pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIKE_PIN", USER_PIN)


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_softhsm_keygen_and_sign(softhsm: SoftHsm, pin: None, kind: str) -> None:
    softhsm.init("gw")
    _generate(softhsm.module, "gw", kind, "ike")
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike"))
    assert signer.key_type == ("rsa" if kind.startswith("rsa") else kind)
    for scheme in SCHEMES[kind]:
        data = (DIGEST_512 if kind == "ecdsa-p521" else DIGEST) if scheme.prehashed else b"data"
        sig = signer.sign(data, scheme)
        _verify(signer.public_key(), sig, data, scheme)
    assert signer.state is TokenState.READY


def _sensitive(module: str, token: str) -> None:
    lib = hsm.module(module).load()
    with hsm.find_token(lib, hsm.parse(uri(module, token, "ike"))).open(user_pin=USER_PIN) as s:
        key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ike")
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
        # SoftHSM: AttributeSensitive; tpm2-pkcs11 has no private value attribute at all
        # (the key exists only wrapped by the TPM): AttributeTypeInvalid.
        with pytest.raises((p11e.AttributeSensitive, p11e.AttributeTypeInvalid)):
            key[
                Attribute.PRIVATE_EXPONENT
                if "rsa" in str(key.key_type).lower()
                else Attribute.VALUE
            ]


def test_softhsm_private_key_cannot_be_read(softhsm: SoftHsm) -> None:
    softhsm.init("gw")
    _generate(softhsm.module, "gw", "ecdsa-p256", "ike")
    _sensitive(softhsm.module, "gw")


@pytest.mark.parametrize("kind", ["ecdsa-p384", "ecdsa-p521"])
def test_softhsm_csr_and_self_signed(softhsm: SoftHsm, pin: None, kind: str) -> None:
    from cryptography import x509

    softhsm.init("gw")
    _generate(softhsm.module, "gw", kind, "ike")
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike"))
    name = x509.Name.from_rfc4514_string("CN=gw1,O=pike,C=CH")
    req = provision.csr(signer, name, [x509.DNSName("gw1.example.net")])
    assert req.is_signature_valid and req.subject == name
    san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw1.example.net"]
    cert = provision.self_signed(signer, name, [])
    cert.verify_directly_issued_by(cert)


def test_softhsm_pulled_fails_closed_then_recovers(
    softhsm: SoftHsm, pin: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hsm, "REPROBE_INTERVAL", 0.3)
    caplog.set_level(logging.INFO, "pike.hsm")
    softhsm.init("gw")
    _generate(softhsm.module, "gw", "ecdsa-p256", "ike")
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike"))
    signer.sign(b"x", S.ECDSA_SHA256)
    away = softhsm.pull()
    with pytest.raises(TokenUnavailable) as err:
        signer.sign(b"x", S.ECDSA_SHA256)
    assert err.value.state is TokenState.ABSENT and signer.state is TokenState.ABSENT
    # Within the back-off: fails at once, no token call.
    with pytest.raises(TokenUnavailable):
        signer.sign(b"x", S.ECDSA_SHA256)
    softhsm.plug(away)
    time.sleep(0.35)
    sig = signer.sign(b"x", S.ECDSA_SHA256)
    _verify(signer.public_key(), sig, b"x", S.ECDSA_SHA256)
    assert signer.state is TokenState.READY
    lines = [r.getMessage() for r in caplog.records]
    assert sum("absent" in m for m in lines) == 1, lines  # one line per state change
    assert any("ready (logged in again)" in m for m in lines), lines
    assert not any(USER_PIN in m for m in lines)


def test_softhsm_absent_at_start_and_module_missing(softhsm: SoftHsm, pin: None) -> None:
    signer = Pkcs11Signer(uri(softhsm.module, "nosuch", "ike"))
    assert signer.probe() is TokenState.ABSENT
    with pytest.raises(TokenUnavailable, match="absent"):
        signer.sign(b"x", S.ECDSA_SHA256)
    gone = Pkcs11Signer(uri("/nonexistent/libp11.so", "gw", "ike"))
    assert gone.probe() is TokenState.MODULE_MISSING


class CountingLogins:
    """Counts logins (Token.open with a user PIN) that pike's token sessions make."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real_find = hsm.find_token
        counter = self

        class Counted:
            def __init__(self, tok: Any) -> None:
                self.tok = tok

            def open(self, *a: Any, **kw: Any) -> Any:
                if kw.get("user_pin") is not None:
                    counter.count += 1
                return self.tok.open(*a, **kw)

        monkeypatch.setattr(hsm, "find_token", lambda lib, u: Counted(real_find(lib, u)))


def test_softhsm_wrong_pin_is_presented_once(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hsm, "REPROBE_INTERVAL", 0.0)
    softhsm.init("gw")
    _generate(softhsm.module, "gw", "ecdsa-p256", "ike")
    pin_file = tmp_path / "pin"
    pin_file.write_text("0000\n")
    logins = CountingLogins(monkeypatch)
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike", pin_file))
    for _ in range(3):
        with pytest.raises(TokenUnavailable) as err:
            signer.sign(b"x", S.ECDSA_SHA256)
        assert err.value.state is TokenState.PIN_INCORRECT and "0000" not in str(err.value)
    assert logins.count == 1
    pin_file.write_text(USER_PIN)  # the operator fixes the PIN file: tried once more
    signer.sign(b"x", S.ECDSA_SHA256)
    assert logins.count == 2 and signer.state is TokenState.READY


# -- TPM 2.0 ------------------------------------------------------------------------------


@pytest.fixture
def tpm_pin(tpm: Tpm, monkeypatch: pytest.MonkeyPatch) -> Tpm:
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    return tpm


@pytest.mark.parametrize(("kind", "label"), [("ecdsa-p256", "ec256"), ("rsa2048", "rsa")])
def test_tpm_keygen_and_sign(tpm_pin: Tpm, kind: str, label: str) -> None:
    _generate(tpm_pin.module, tpm_pin.label, kind, label)
    signer = Pkcs11Signer(uri(tpm_pin.module, tpm_pin.label, label))
    for scheme in SCHEMES[kind]:
        if scheme is S.RSA_PSS_SHA384:
            continue
        data = DIGEST if scheme.prehashed else b"signed octets"
        sig = signer.sign(data, scheme)
        _verify(signer.public_key(), sig, data, scheme)


def test_tpm_refuses_p521_keys_it_cannot_sign_with(tpm_pin: Tpm) -> None:
    """tpm2-pkcs11 1.9 makes a P-521 key but C_Sign fails (HostMemory) and it cannot
    destroy the private object (FunctionFailed): generate refuses the type and says what
    is left; the token keeps working for other keys."""
    with pytest.raises(
        ValueError,
        match=r"made the ecdsa-p521 key but cannot sign with it \(HostMemory\): "
        r"private key object left on the token; choose another --type",
    ):
        _generate(tpm_pin.module, tpm_pin.label, "ecdsa-p521", "p521")
    _generate(tpm_pin.module, tpm_pin.label, "ecdsa-p384", "p384")
    signer = Pkcs11Signer(uri(tpm_pin.module, tpm_pin.label, "p384"))
    _verify(signer.public_key(), signer.sign(b"x", S.ECDSA_SHA384), b"x", S.ECDSA_SHA384)


def test_tpm_private_key_cannot_be_read(tpm_pin: Tpm) -> None:
    _generate(tpm_pin.module, tpm_pin.label, "ecdsa-p256", "ike")
    _sensitive(tpm_pin.module, tpm_pin.label)


def test_tpm_wrong_pin_never_locks(
    tpm_pin: Tpm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hsm, "REPROBE_INTERVAL", 0.0)
    _generate(tpm_pin.module, tpm_pin.label, "ecdsa-p256", "pin-test")
    reset_pike_tokens()
    before = tpm_pin.lockout_counter()
    bad = tmp_path / "bad"
    bad.write_text("9999")
    signer = Pkcs11Signer(uri(tpm_pin.module, tpm_pin.label, "pin-test", bad))
    for _ in range(5):
        with pytest.raises(TokenUnavailable) as err:
            signer.sign(b"x", S.ECDSA_SHA256)
        assert err.value.state is TokenState.PIN_INCORRECT
    assert tpm_pin.lockout_counter() == before + 1  # one attempt, however often we sign
    reset_pike_tokens()
    good = Pkcs11Signer(uri(tpm_pin.module, tpm_pin.label, "pin-test"))
    good.sign(b"x", S.ECDSA_SHA256)  # not locked: the right PIN still logs in
    assert good.state is TokenState.READY


def test_tpm_abrmd_gone_fails_closed_then_recovers(
    tpm_pin: Tpm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hsm, "REPROBE_INTERVAL", 0.0)
    _generate(tpm_pin.module, tpm_pin.label, "ecdsa-p256", "pull")
    signer = Pkcs11Signer(uri(tpm_pin.module, tpm_pin.label, "pull"))
    signer.sign(b"x", S.ECDSA_SHA256)
    tpm_pin.stop_abrmd()
    with pytest.raises(TokenUnavailable):
        signer.sign(b"x", S.ECDSA_SHA256)
    assert signer.state in (TokenState.ABSENT, TokenState.FAILED)
    tpm_pin.start_abrmd()
    sig = signer.sign(b"x", S.ECDSA_SHA256)
    _verify(signer.public_key(), sig, b"x", S.ECDSA_SHA256)
    assert signer.state is TokenState.READY
