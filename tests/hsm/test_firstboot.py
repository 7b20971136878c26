"""The image's first-boot script, image/rootfs/usr/local/sbin/pike-firstboot, run here as
it is in the image, its paths moved by its environment variables: against a fresh TPM
simulator (no tpm2_ptool, empty store), a SoftHSM2 token named by hsm.uri, and neither."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lib.prereq import Require

from .tokens import (
    SOFTHSM_MODULE,
    TPM_MODULE,
    USER_PIN,
    SoftHsm,
    Tpm,
    softhsm_available,
    tpm_available,
)

SCRIPT = Path(__file__).parents[2] / "image/rootfs/usr/local/sbin/pike-firstboot"


def _env(tmp: Path) -> dict[str, str]:
    """The script's environment: its paths under tmp, pikectl through a wrapper that
    records every argv (to show no PIN is ever on a command line)."""
    wrapper = tmp / "pikectl"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >>{tmp}/argv.log\n'
        f'exec {sys.executable} -m pike.cli.pikectl "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TPM2", "PIKE_"))}
    env.update(
        PIKECTL=str(wrapper),
        PIKE_ETC=str(tmp / "etc"),
        PIKE_STATE=str(tmp / "state"),
        PIKE_TPM_DEVICE=str(tmp / "no-tpm"),
        PIKE_UDEV_SETTLE="0",
        PIKE_HOSTNAME="gw1.example.net",
        PIKE_USER="pike-no-such-user",  # no chown to piked's user on the build host
    )
    return env


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    r = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
    print(f"pike-firstboot: {time.monotonic() - t0:.2f} s, rc {r.returncode}\n{r.stdout}")
    return r


def _snapshot(tmp: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p): (p.stat().st_mtime_ns, p.read_bytes())
        for d in ("etc", "state")
        for p in sorted((tmp / d).rglob("*"))
        if p.is_file()
    }


def _csr_matches_token(
    tmp: Path, env: dict[str, str], key_uri: str
) -> x509.CertificateSigningRequest:
    req = x509.load_pem_x509_csr((tmp / "etc/gateway.csr").read_bytes())
    assert req.is_signature_valid
    assert req.subject.rfc4514_string() == "CN=gw1.example.net"
    # The CSR's key is the token's: a certificate the token signs now has the same key.
    r = subprocess.run(
        [env["PIKECTL"], "keys", "self-signed", "--uri", key_uri, "--subject", "CN=x"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = x509.load_pem_x509_certificate(r.stdout.encode())
    assert cert.public_key().public_bytes(*fmt) == req.public_key().public_bytes(*fmt)
    return req


def test_firstboot_fresh_tpm(tmp_path: Path, require: Require) -> None:
    require(tpm_available(), "swtpm / tpm2-abrmd / tpm2-pkcs11 not installed")
    require(SCRIPT.exists(), f"{SCRIPT} missing")
    tpm = Tpm(tmp_path)
    try:
        tpm.start(init_store=False)
        env = _env(tmp_path)
        tenv = tpm.env()
        device = tmp_path / "tpmrm0"
        device.touch()  # stands for /dev/tpmrm0: the TCTI below reaches the simulator
        env.update(
            DBUS_SESSION_BUS_ADDRESS=tenv["DBUS_SESSION_BUS_ADDRESS"],
            TPM2_PKCS11_LOG_LEVEL="0",
            PIKE_TPM_DEVICE=str(device),
            PIKE_TPM_MODULE=TPM_MODULE,
            PIKE_TPM_TCTI=tenv["TPM2_PKCS11_TCTI"],
        )
        r = _run(env)
        assert r.returncode == 0, r.stdout + r.stderr
        etc, state = tmp_path / "etc", tmp_path / "state"
        assert (state / ".firstboot-done").exists()
        assert (state / "tpm2-pkcs11/tpm2_pkcs11.sqlite3").exists()
        pins = {}
        for name in ("token.pin", "token.so-pin"):
            p = etc / name
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, name
            pins[name] = p.read_text()
            assert len(pins[name]) == 32 and int(pins[name], 16) >= 0
        assert pins["token.pin"] != pins["token.so-pin"]
        argv = (tmp_path / "argv.log").read_text()
        assert "init-token" in argv and "generate" in argv and "csr" in argv
        for pin in pins.values():
            assert pin not in argv and pin not in r.stdout + r.stderr
        assert stat.S_IMODE((etc / "gateway.csr").stat().st_mode) == 0o644

        # What piked's config names (image/rootfs/etc/pike/pike.toml), with this host's paths.
        query = (
            f"module-path={TPM_MODULE}&x-tpm2-tcti={tenv['TPM2_PKCS11_TCTI']}"
            f"&pin-source=file:{etc}/token.pin"
        )
        env["TPM2_PKCS11_STORE"] = str(state / "tpm2-pkcs11")
        _csr_matches_token(tmp_path, env, f"pkcs11:token=pike;object=gateway?{query}")
        r2 = subprocess.run(
            [env["PIKECTL"], "keys", "list", "--uri", f"pkcs11:token=pike?{query}"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert r2.returncode == 0, r2.stderr
        keys = [ln.split()[:2] for ln in r2.stdout.splitlines()]
        assert keys.count(["private", "gateway"]) == 1

        # Again: the stamp makes it a no-op.
        before = _snapshot(tmp_path)
        r = _run(env)
        assert r.returncode == 0 and "already done" in r.stdout
        assert _snapshot(tmp_path) == before
        # Without the stamp (a boot cut short after the key): nothing is made twice.
        (state / ".firstboot-done").unlink()
        del before[str(state / ".firstboot-done")]
        r = _run(env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "token pike exists" in r.stdout and "key gateway exists" in r.stdout
        after = _snapshot(tmp_path)
        assert after.pop(str(state / ".firstboot-done"))
        changed = {p for p in before if before[p] != after.get(p)}
        # tpm2-pkcs11 may rewrite its database on a login; the PINs, CSR, key do not change
        assert changed <= {str(state / "tpm2-pkcs11/tpm2_pkcs11.sqlite3")}, changed
    finally:
        tpm.stop()


def test_firstboot_hsm_uri(tmp_path: Path, require: Require) -> None:
    require(softhsm_available(), "softhsm2 not installed (apt-get install softhsm2)")
    hsm = SoftHsm(tmp_path)
    hsm.init("branch")
    pin = tmp_path / "hsm.pin"
    pin.write_text(USER_PIN + "\n")
    env = dict(_env(tmp_path), **hsm.env())
    (tmp_path / "etc").mkdir()
    token = f"pkcs11:token=branch?module-path={SOFTHSM_MODULE}&pin-source=file:{pin}"
    (tmp_path / "etc/hsm.uri").write_text(token + "\n")
    r = _run(env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "generating ecdsa-p256 key gateway" in r.stdout
    assert not (tmp_path / "etc/token.pin").exists()  # the HSM's PIN is the operator's
    key = f"pkcs11:token=branch;object=gateway?module-path={SOFTHSM_MODULE}&pin-source=file:{pin}"
    _csr_matches_token(tmp_path, env, key)
    assert (tmp_path / "state/.firstboot-done").exists()


def test_firstboot_without_key_hardware(tmp_path: Path) -> None:
    r = _run(_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [
        f"pike-firstboot: no TPM ({tmp_path}/no-tpm) and no {tmp_path}/etc/hsm.uri: no key made"
    ]
    assert (tmp_path / "state/.firstboot-done").exists()
    assert not (tmp_path / "etc/token.pin").exists()
