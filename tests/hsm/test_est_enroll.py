"""``pikectl keys enroll`` against the EST test server (tests/lib/est_server.py: no EST
server is packaged in Debian): first enrolment with HTTP basic auth, renewal with TLS
client authentication by the current certificate, refusals, and a SoftHSM2 token key
whose certificate goes to the token and the config's file."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ikev2.x509gen import Issued, issue, make_ca, new_key, write
from lib.est_server import EstServer
from pike.cli import pikectl

from .tokens import USER_PIN, SoftHsm, uri

SUBJECT = "C=CH, O=pike test, CN=gw1.example.net"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca("ecdsa-p256", "pike EST CA")


@pytest.fixture
def est(ca: Issued) -> EstServer:
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    tls = issue(ca, "ecdsa-p256", "est.example.net", sans)
    return EstServer(ca, tls, users={"gw1": "s3cret-enrol"})


def _spki(cert_or_key: object) -> bytes:
    pub = cert_or_key.public_key()  # type: ignore[attr-defined]
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _files(tmp_path: Path, ca: Issued) -> tuple[Path, Path, Path]:
    key = tmp_path / "gw1.key"
    key.write_bytes(
        new_key("ecdsa-p256").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    trust, _ = write(tmp_path / "trust", "ca", ca)
    password = tmp_path / "est-password"
    password.write_text("s3cret-enrol\n")
    return key, trust, password


def test_enroll_then_renew_with_the_current_certificate(
    est: EstServer, ca: Issued, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, trust, password = _files(tmp_path, ca)
    out, cas = tmp_path / "gw1.pem", tmp_path / "cacerts.pem"
    with est:
        code = pikectl.main([
            "keys", "enroll", "--key", str(key), "--est", est.url, "--est-ca", str(trust),
            "--est-user", "gw1", "--est-password-file", str(password),
            "--subject", SUBJECT, "--san", "gw1.example.net",
            "--out", str(out), "--cacerts-out", str(cas),
        ])  # fmt: skip
        first_out = capsys.readouterr()
        assert code == 0, first_out.err
        first = x509.load_pem_x509_certificate(out.read_bytes())
        assert first.issuer == ca.cert.subject
        assert first.subject.rfc4514_string() == "CN=gw1.example.net,O=pike test,C=CH"
        from pike.hsm.filekey import FileKeySigner

        assert _spki(first) == _spki(FileKeySigner(str(key)))
        san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["gw1.example.net"]
        assert x509.load_pem_x509_certificates(cas.read_bytes()) == [ca.cert]
        assert "enrolled CN=gw1.example.net" in first_out.out
        assert "s3cret" not in first_out.out + first_out.err

        # a timer's call: not due yet (90 days left, renew within 30)
        renew = ["keys", "enroll", "--key", str(key), "--est", est.url, "--est-ca", str(trust),
                 "--renew", "--cert", str(out), "--out", str(out)]  # fmt: skip
        assert pikectl.main([*renew, "--within", "30"]) == 0
        assert "not renewed" in capsys.readouterr().out and len(est.issued) == 1
        # renewal: no password, the TLS connection shows the current certificate; the
        # subject and subjectAltName come from it
        code = pikectl.main([
            "keys", "enroll", "--key", str(key), "--est", est.url, "--est-ca", str(trust),
            "--renew", "--cert", str(out), "--out", str(out),
        ])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    second = x509.load_pem_x509_certificate(out.read_bytes())
    assert second.serial_number != first.serial_number
    assert second.subject == first.subject
    assert [op for op, _ in est.issued] == ["simpleenroll", "simplereenroll"]
    assert est.client_subjects == ["CN=gw1.example.net,O=pike test,C=CH"]
    assert second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == san


def test_refusals_are_one_line(
    est: EstServer, ca: Issued, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, trust, password = _files(tmp_path, ca)
    password.write_text("wrong\n")
    out = tmp_path / "gw1.pem"
    base = ["keys", "enroll", "--key", str(key), "--est", est.url, "--out", str(out)]
    with est:
        auth = ["--est-user", "gw1", "--est-password-file", str(password)]
        code = pikectl.main([*base, "--est-ca", str(trust), *auth, "--subject", SUBJECT])
        err = capsys.readouterr().err
        assert code == 1 and "simpleenroll: the server wants authentication (401)" in err
        assert "wrong" not in err
        # a server whose TLS certificate is not from the trust anchor given
        other, _ = write(tmp_path / "other", "ca", make_ca(cn="stranger CA"))
        code = pikectl.main([*base, "--est-ca", str(other), "--subject", SUBJECT])
        err = capsys.readouterr().err
        assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in err
        # renewal without a client certificate the server trusts
        stranger = issue(make_ca(cn="stranger CA"), "ecdsa-p256", "gw1.example.net")
        cert_file, _ = write(tmp_path / "stranger", "gw1", stranger)
        code = pikectl.main([*base, "--est-ca", str(trust), "--renew", "--cert", str(cert_file)])
        err = capsys.readouterr().err
        assert code == 1, err
    assert not out.exists() and est.issued == []


def test_token_key_enrolled_into_the_token(
    softhsm: SoftHsm, est: EstServer, ca: Issued, tmp_path: Path
) -> None:
    softhsm.init("gw")
    env = dict(os.environ, **softhsm.env(), PIKE_PIN=USER_PIN, PIKE_EST_PASSWORD="s3cret-enrol")
    key = uri(softhsm.module, "gw", "ike")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pike.cli.pikectl", "keys", *argv],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    r = run("generate", "--uri", key)
    assert r.returncode == 0, r.stderr
    _, trust, _ = _files(tmp_path, ca)
    out = tmp_path / "gw1.pem"
    est.__enter__()
    try:
        _token_enrol_and_renew(est, run, env, key, trust, out, tmp_path, softhsm)
    finally:
        est.__exit__()


def _token_enrol_and_renew(
    est: EstServer,
    run: Callable[..., subprocess.CompletedProcess[str]],
    env: dict[str, str],
    key: str,
    trust: Path,
    out: Path,
    tmp_path: Path,
    softhsm: SoftHsm,
) -> None:
    where = ["--est", est.url, "--est-ca", str(trust), "--est-user", "gw1"]
    r = run("enroll", "--uri", key, *where, "--subject", SUBJECT, "--out", str(out), "--import")
    assert r.returncode == 0, r.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.issuer == est.ca.cert.subject
    r = run("list", "--uri", f"pkcs11:token=gw?module-path={softhsm.module}")
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith("cert") and "gw1.example.net" in ln for ln in r.stdout.splitlines())
    assert "s3cret" not in r.stdout + r.stderr

    # Renewal of the token key as pike-renew.service runs it: [enroll] of pike.toml, HTTP
    # basic auth (TLS cannot sign with the token key), the request signed by the token key
    # proves possession of the certified key; the new certificate replaces file and token's.
    config = tmp_path / "pike.toml"
    config.write_text(
        f'[enroll]\nurl = "{est.url}"\nca = "{trust}"\nkey = "{key}"\ncert = "{out}"\n'
        'user = "gw1"\nimport = true\nwithin_days = 100\n'
    )
    renew = [sys.executable, "-m", "pike.cli.pikectl", "--config", str(config), "--socket",
             str(tmp_path / "none.sock"), "keys", "renew"]  # fmt: skip
    assert subprocess.run([*renew, "--configured"], env=env, timeout=60).returncode == 0
    r = subprocess.run(renew, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "piked not reached; it uses the new certificate when it starts" in r.stdout
    second = x509.load_pem_x509_certificate(out.read_bytes())
    assert second.serial_number != cert.serial_number and second.subject == cert.subject
    assert _spki(second) == _spki(cert)  # the same token key
    assert [op for op, _ in est.issued] == ["simpleenroll", "simplereenroll"]
    assert est.client_subjects == []  # no TLS client certificate: basic auth
    r = run("list", "--uri", f"pkcs11:token=gw?module-path={softhsm.module}")
    assert r.returncode == 0, r.stderr
    certs = [ln for ln in r.stdout.splitlines() if ln.startswith("cert")]
    assert len(certs) == 1 and "gw1.example.net" in certs[0]  # the old one is gone
    # without basic auth a token key cannot be renewed: said plainly, nothing asked
    config.write_text(config.read_text().replace('user = "gw1"\n', ""))
    r = subprocess.run(renew, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "renewing a token key needs --est-user" in r.stderr
    assert len(est.issued) == 2 and "s3cret" not in r.stdout + r.stderr


def test_renew_without_enroll_section_does_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pike.toml"
    config.write_text('[daemon]\nlog_level = "info"\n')
    assert pikectl.main(["--config", str(config), "keys", "renew", "--configured"]) == 1
    assert pikectl.main(["keys", "renew", "--config", str(config)]) == 0
    assert "has no [enroll] section; nothing to renew" in capsys.readouterr().out
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "gw.key").write_text("x")
    enroll = '[enroll]\nurl = "https://est.example.net"\nca = "ca.pem"\nkey = "gw.key"\n'
    config.write_text(enroll + 'cert = "gw.pem"\n')
    assert pikectl.main(["--config", str(config), "keys", "renew", "--configured"]) == 0
    assert pikectl.main(["--config", str(config), "keys", "renew"]) == 1
    assert "no certificate " + str(tmp_path / "gw.pem") in capsys.readouterr().err
    config.write_text('[enroll]\nurl = "http://est.example.net"\n')
    assert pikectl.main(["--config", str(config), "keys", "renew"]) == 1
    err = capsys.readouterr().err
    assert f"{config}:2: enroll.url: 'http://est.example.net': EST runs over TLS" in err
