"""The CredentialStore with token keys: piked starts when the token is absent (the state
is shown, IKE_AUTH fails closed), and uses the key once it is there."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pike.hsm import provision
from pike.hsm.pkcs11 import Pkcs11Signer, TokenState, TokenUnavailable
from pike.hsm.signer import SignatureScheme
from pike.policy.loader import ConfigError, load_config_text
from pike.sa.credentials import CredentialError, CredentialStore

from .test_pkcs11_tokens import _generate
from .tokens import USER_PIN, SoftHsm, uri


def _config(key: str, cert: Path) -> str:
    return f"""
[connections.gw]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {{ auth = "pubkey", id = "gw.example.net", certs = ["{cert}"], key = "{key}" }}
remote = {{ auth = "pubkey", id = "hq.example.net", cacerts = ["{cert}"] }}
"""


def test_absent_token_does_not_stop_start_but_fails_closed(
    softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography import x509

    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    softhsm.init("gw")
    _generate(softhsm.module, "gw", "ecdsa-p256", "ike")
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike"))
    cert = provision.self_signed(signer, x509.Name.from_rfc4514_string("CN=gw.example.net"), [])
    pem = tmp_path / "gw.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    missing = uri(softhsm.module, "elsewhere", "ike")
    store = CredentialStore()
    cfg = load_config_text(_config(missing, pem), str(tmp_path / "pike.toml"))
    assert store.preload(cfg) == []  # piked starts; the token's state says why it cannot sign
    assert store.token_states() == {missing: TokenState.ABSENT}
    # The engine reads the certificate only; the signature (off the event loop) fails closed.
    creds = store.local(cfg.connections["gw"])
    assert creds.key == missing and creds.key_type == "ecdsa-p256"
    with pytest.raises(TokenUnavailable, match="token elsewhere absent"):
        store.sign(creds.key, creds.spki, b"octets", SignatureScheme.ECDSA_SHA256)

    good = uri(softhsm.module, "gw", "ike")
    store2 = CredentialStore()
    cfg2 = load_config_text(_config(good, pem), str(tmp_path / "pike.toml"))
    assert store2.preload(cfg2) == []
    creds2 = store2.local(cfg2.connections["gw"])
    sig = store2.sign(creds2.key, creds2.spki, b"octets", SignatureScheme.ECDSA_SHA256)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
    assert store2.token_states() == {good: TokenState.READY}
    # A key that is not the certificate's is never used.
    with pytest.raises(CredentialError, match="does not belong to our certificate"):
        store2.sign(creds2.key, b"other spki", b"octets", SignatureScheme.ECDSA_SHA256)


def test_bad_uri_stops_start(tmp_path: Path) -> None:
    """Refused by the config loader already (file, line, key), never echoing the PIN."""
    pem = tmp_path / "x.pem"
    pem.write_text("")
    bad = "pkcs11:token=gw;object=k?module-path=/x.so&pin-value=1234"
    with pytest.raises(ConfigError) as e:
        load_config_text(_config(bad, pem), str(tmp_path / "pike.toml"))
    text = str(e.value)
    assert "pike.toml:6: connections.gw.local.key: bad PKCS#11 URI: pin-value is refused" in text
    assert "1234" not in text


def test_each_signer_is_checked_against_the_certificate(tmp_path: Path) -> None:
    """The public key of a signer is encoded once (not per signature), and a signer made
    anew under the same key name (the signers forgotten, as on a reload) is checked again:
    the check against the certificate never rests on an older signer's key."""
    from pike.hsm.filekey import FileKeySigner

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    paths = []
    for i, k in enumerate(keys):
        paths.append(tmp_path / f"k{i}.pem")
        paths[-1].write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    made: list[FileKeySigner] = []

    def factory(_key: str) -> FileKeySigner:
        made.append(FileKeySigner(str(paths[len(made)])))
        return made[-1]

    store = CredentialStore(signer_factory=factory)
    spki = (
        keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for _ in range(3):
        sig = store.sign("k", spki, b"octets", SignatureScheme.ECDSA_SHA256)
        keys[0].public_key().verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
    assert len(made) == 1
    with pytest.raises(CredentialError, match="does not belong"):
        store.sign("k", b"other spki", b"octets", SignatureScheme.ECDSA_SHA256)
    store._signers.clear()  # the next signer for "k" holds the other key
    with pytest.raises(CredentialError, match="does not belong"):
        store.sign("k", spki, b"octets", SignatureScheme.ECDSA_SHA256)
    assert len(made) == 2
