"""Test certificates with strongSwan's ``pki``: a CA and end-entity certs (RSA or ECDSA).

ca = make_ca(tmp_path, "ecdsa")
gw = issue(ca, "hq.example.net")          # gw.cert, gw.key (PEM), SAN = the name
node.install_cert(ca.cert, ca=True); node.install_cert(gw.cert); node.install_key(gw.key)
Connection(..., local_auth="pubkey", local_certs=[gw.cert.name], local_id=gw.name, ...)
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PKI = "pki"


def pki_available() -> bool:
    return shutil.which(PKI) is not None


def _pki(*args: str, out: Path) -> None:
    proc = subprocess.run([PKI, *args], capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pki {' '.join(args)} exited {proc.returncode}: {proc.stderr!r}")
    out.write_bytes(proc.stdout)


def _gen(key: Path, key_type: str) -> None:
    size = "256" if key_type == "ecdsa" else "2048"
    _pki("--gen", "--type", key_type, "--size", size, "--outform", "pem", out=key)


@dataclass(frozen=True)
class Ca:
    dir: Path
    key_type: str
    cert: Path
    key: Path
    dn: str


@dataclass(frozen=True)
class Cert:
    name: str  # SAN (DNS name) and CN
    dn: str
    cert: Path
    key: Path


def make_ca(directory: Path, key_type: str = "ecdsa", cn: str = "pike test CA") -> Ca:
    """A self-signed CA (``key_type`` ``ecdsa`` P-256 or ``rsa`` 2048) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "ca.key"
    cert = directory / "ca.pem"
    dn = f"C=CH, O=pike test, CN={cn}"
    _gen(key, key_type)
    _pki(
        "--self", "--ca", "--lifetime", "3650", "--in", str(key), "--type", key_type,
        "--dn", dn, "--outform", "pem", out=cert,
    )  # fmt: skip
    return Ca(directory, key_type, cert, key, dn)


def issue(ca: Ca, name: str, key_type: str | None = None) -> Cert:
    """An end-entity cert for DNS ``name`` (CN and subjectAltName) signed by ``ca``."""
    key_type = key_type or ca.key_type
    key = ca.dir / f"{name}.key"
    cert = ca.dir / f"{name}.pem"
    dn = f"C=CH, O=pike test, CN={name}"
    _gen(key, key_type)
    _pki(
        "--issue", "--lifetime", "365", "--cacert", str(ca.cert), "--cakey", str(ca.key),
        "--in", str(key), "--type", "priv", "--dn", dn, "--san", name, "--outform", "pem",
        out=cert,
    )  # fmt: skip
    return Cert(name, dn, cert, key)
