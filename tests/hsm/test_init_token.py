"""``pikectl keys init-token`` on a fresh SoftHSM2 token directory and on a fresh TPM
simulator (no ``tpm2_ptool`` at all, an empty store): init, then generate + CSR signed
with the user PIN; an existing label is refused; PINs only ever come from files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from lib.prereq import Require

from .tokens import SOFTHSM_MODULE, TPM_MODULE, SoftHsm, Tpm, softhsm_available, tpm_available

SO_PIN = "so-0f1e2d3c4b5a6978"
USER_PIN = "user-a1b2c3d4e5f60718"


def _pikectl(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pike.cli.pikectl", "keys", *argv]
    assert not any(SO_PIN in a or USER_PIN in a for a in cmd)  # PINs come from files
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _pins(tmp: Path) -> tuple[Path, Path]:
    so, user = tmp / "so-pin", tmp / "pin"
    so.write_text(SO_PIN + "\n")
    user.write_text(USER_PIN + "\n")
    return so, user


def _init_generate_csr(env: dict[str, str], tmp: Path, query: str) -> None:
    so, user = _pins(tmp)
    token = f"pkcs11:token=pike?{query}&pin-source=file:{user}"
    key = f"pkcs11:token=pike;object=gateway?{query}&pin-source=file:{user}"
    t0 = time.monotonic()
    r = _pikectl(env, "init-token", "--uri", token, "--so-pin-file", str(so))
    t_init = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "initialized token pike" in r.stdout
    t0 = time.monotonic()
    r = _pikectl(env, "generate", "--uri", key)
    t_gen = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    r = _pikectl(env, "csr", "--uri", key, "--subject", "CN=gw1")
    assert r.returncode == 0, r.stderr
    req = x509.load_pem_x509_csr(r.stdout.encode())
    assert req.is_signature_valid  # signed on the token with the new user PIN
    print(f"init-token {t_init:.2f} s, generate {t_gen:.2f} s (pikectl processes)")

    # The label exists now: refused, one line, nothing changed.
    r = _pikectl(env, "init-token", "--uri", token, "--so-pin-file", str(so))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == "pikectl keys init-token: token pike already exists"
    r = _pikectl(env, "list", "--uri", token)
    assert r.returncode == 0, r.stderr
    assert any(ln.split()[:2] == ["private", "gateway"] for ln in r.stdout.splitlines())
    # The user PIN works, the SO PIN is not the user PIN.
    r = _pikectl(env, "list", "--uri", token.replace(str(user), str(so)))
    assert r.returncode == 1 and "refused the PIN" in r.stderr
    for out in (r.stdout, r.stderr):
        assert SO_PIN not in out and USER_PIN not in out


def test_init_token_softhsm(tmp_path: Path, require: Require) -> None:
    require(softhsm_available(), "softhsm2 not installed (apt-get install softhsm2)")
    hsm = SoftHsm(tmp_path)  # an empty token directory: one uninitialized slot
    env = dict(os.environ, **hsm.env())
    env.pop("PIKE_PIN", None)
    _init_generate_csr(env, tmp_path, f"module-path={SOFTHSM_MODULE}")


def test_init_token_fresh_tpm(tmp_path: Path, require: Require) -> None:
    require(tpm_available(), "swtpm / tpm2-abrmd / tpm2-pkcs11 not installed")
    tpm = Tpm(tmp_path)
    try:
        tpm.start(init_store=False)
        assert not any(tpm.store.iterdir())  # nothing but an empty directory
        env = {k: v for k, v in os.environ.items() if not k.startswith("TPM2")}
        env.pop("PIKE_PIN", None)
        env.update(tpm.env())
        tcti = env.pop("TPM2_PKCS11_TCTI")  # the URI's x-tpm2-tcti must carry it
        _init_generate_csr(env, tmp_path, f"module-path={TPM_MODULE}&x-tpm2-tcti={tcti}")
        assert (tpm.store / "tpm2_pkcs11.sqlite3").exists()
    finally:
        tpm.stop()


def test_init_token_needs_a_label_and_an_so_pin_file(tmp_path: Path, require: Require) -> None:
    require(softhsm_available(), "softhsm2 not installed (apt-get install softhsm2)")
    hsm = SoftHsm(tmp_path)
    env = dict(os.environ, **hsm.env(), PIKE_PIN=USER_PIN)
    r = _pikectl(env, "init-token", "--uri", f"pkcs11:?module-path={SOFTHSM_MODULE}",
                 "--so-pin-file", str(tmp_path / "so"))  # fmt: skip
    assert r.returncode == 1 and "token=LABEL" in r.stderr
    r = _pikectl(env, "init-token", "--uri", f"pkcs11:token=pike?module-path={SOFTHSM_MODULE}",
                 "--so-pin-file", str(tmp_path / "missing"))  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"pikectl keys init-token: cannot read PIN file {tmp_path / 'missing'}: "
        "No such file or directory"
    )
    assert not any(hsm.tokens.iterdir())  # nothing was initialized
