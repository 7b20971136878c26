"""pike.daemon.certs_view: our own certificate's revocation status, from the CRL of its
CA that piked holds for the peers of the same CA (pikectl certs, the metric)."""

from __future__ import annotations

from pathlib import Path

from ikev2.revgen import crl_der, make_crl
from ikev2.x509gen import NOW, Issued, issue, make_ca, write
from pike.cli.cert_text import format_certs
from pike.daemon import certs_view
from pike.policy.loader import load_config_text
from pike.sa.credentials import CredentialStore

CONFIG = """\
[connections.hq]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {{ auth = "pubkey", certs = ["me.pem"], key = "me.key" }}
remote = {{ auth = "pubkey", id = "hq.example.net", cacerts = ["ca.pem"]{crls} }}
"""


def _view(tmp_path: Path, ca: Issued, revoked: list[int] | None) -> dict[str, object]:
    crls = ""
    if revoked is not None:
        (tmp_path / "ca.crl").write_bytes(crl_der(make_crl(ca, revoked)))
        crls = ', crls = ["ca.crl"]'
    config = load_config_text(CONFIG.format(crls=crls), str(tmp_path / "pike.toml"))
    store = CredentialStore()
    assert store.preload(config) == []
    certs = certs_view.certificates(config, store, [], NOW.timestamp())
    (local,) = [c for c in certs if c["role"] == "local"]
    return local


def test_own_certificate_revocation_from_the_ca_crl_held(tmp_path: Path) -> None:
    ca = make_ca()
    me = issue(ca, "ecdsa-p256", "branch1.example.net")
    write(tmp_path, "me", me)  # our certificate alone: the issuer is found among the CAs
    write(tmp_path, "ca", ca)
    local = _view(tmp_path, ca, None)
    assert local["revocation"] == "unknown"
    assert local["revocation_source"] == "no fresh CRL or OCSP answer of its CA held"
    local = _view(tmp_path, ca, [me.cert.serial_number + 1])
    assert local["revocation"] == "good"
    assert local["revocation_source"] == f"crl {tmp_path / 'ca.crl'}"
    local = _view(tmp_path, ca, [me.cert.serial_number])
    assert local["revocation"] == "revoked"
    text = format_certs({"certs": [local]}, NOW.timestamp())
    assert f"  revocation: revoked (crl {tmp_path / 'ca.crl'})" in text.splitlines()


def test_own_certificate_of_a_ca_not_loaded(tmp_path: Path) -> None:
    ca, other = make_ca(), make_ca(cn="other CA")
    write(tmp_path, "me", issue(other, "ecdsa-p256", "branch1.example.net"))
    write(tmp_path, "ca", ca)
    local = _view(tmp_path, ca, [])
    assert local["revocation"] == "unknown"
    assert local["revocation_source"] == "its CA certificate is not loaded"
