"""``pikectl keys ...`` on a SoftHSM2 token, as a subprocess (PIN from a file or PIKE_PIN)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from .tokens import USER_PIN, SoftHsm, uri


def _pikectl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pike.cli.pikectl", "keys", *argv],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["ecdsa-p384", "ecdsa-p521"])
def test_generate_csr_selfsigned_import_list(softhsm: SoftHsm, tmp_path: Path, kind: str) -> None:
    softhsm.init("gw")
    pin = tmp_path / "pin"
    pin.write_text(USER_PIN + "\n")
    env = dict(os.environ, **softhsm.env())
    env.pop("PIKE_PIN", None)
    key = uri(softhsm.module, "gw", "ike")
    r = _pikectl(env, "generate", "--uri", key, "--type", kind, "--pin-file", str(pin))
    assert r.returncode == 0, r.stderr
    assert "BEGIN PUBLIC KEY" in r.stdout
    subject = ["--subject", "C=CH, O=pike, CN=gw1"]
    sans = ["--san", "gw1.example.net", "--san", "192.0.2.1"]
    r = _pikectl(env, "csr", "--uri", key, "--pin-file", str(pin), *subject, *sans)
    assert r.returncode == 0, r.stderr
    req = x509.load_pem_x509_csr(r.stdout.encode())
    assert req.is_signature_valid
    assert req.subject.rfc4514_string() == "CN=gw1,O=pike,C=CH"
    env["PIKE_PIN"] = USER_PIN  # the environment works as well
    out = tmp_path / "gw.pem"
    r = _pikectl(env, "self-signed", "--uri", key, "--subject", "CN=gw1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = _pikectl(env, "import-cert", "--uri", key, str(out))
    assert r.returncode == 0, r.stderr
    r = _pikectl(env, "list", "--uri", f"pkcs11:token=gw?module-path={softhsm.module}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(
        ln.startswith("private") and "sensitive=True extractable=False" in ln for ln in lines
    )
    assert any(ln.startswith("cert") and "CN=gw1" in ln for ln in lines)


def test_wrong_pin_is_one_line_and_not_shown(softhsm: SoftHsm, tmp_path: Path) -> None:
    softhsm.init("gw")
    env = dict(os.environ, **softhsm.env(), PIKE_PIN="99999")
    r = _pikectl(env, "list", "--uri", f"pkcs11:token=gw?module-path={softhsm.module}")
    assert r.returncode == 1
    assert r.stderr.strip() == "pikectl keys list: the token refused the PIN (not retried)"
    env.pop("PIKE_PIN")
    r = _pikectl(env, "list", "--uri", f"pkcs11:token=gw?module-path={softhsm.module}")
    assert r.returncode == 1 and "PIKE_PIN" in r.stderr
