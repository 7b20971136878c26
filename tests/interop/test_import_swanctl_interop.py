"""``pikectl import-swanctl`` against strongSwan 5.9 (issue 17): the branch's side of a
tunnel is written as a swanctl.conf by the same renderer that writes charon's own
(tests/interop/strongswan.py ``render_swanctl``), secrets in a second file; piked runs
the pike.toml the import wrote (checked by the import as ``check-config`` does) and brings
the IKE SA up with charon, IKEv2 and IKEv1 with a PSK, and IKEv2 with certificates
(swanctl's x509/, x509ca/ and private/ beside swanctl.conf: the import finds the key by
the certificate and trusts x509ca/ as charon does). Host tier: IKE only (the host kernel
has no ESP, so the CHILD_SA is refused by piked, as in the other host interop tests).
"""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.x509gen import issue, make_ca, write

from .conftest import Gateways, MakeCharon, Require
from .piked import PikedNode, piked_available, venv_bin
from .strongswan import Connection, IkeSaInfo, Secret, StrongswanNode, render_swanctl
from .test_lifecycle_interop import BRANCH, HQ
from .test_piked_certs import _conn
from .test_self_healing import psk_tunnel

pytestmark = pytest.mark.interop


@dataclass
class ImportedPiked(PikedNode):
    """piked running the pike.toml ``pikectl import-swanctl`` wrote (plus a [daemon]
    table naming this node's socket)."""

    imported: str = ""

    def config_text(self) -> str:
        return (
            f'[daemon]\ncontrol_socket = "{self.socket_path}"\nlog_level = "debug"\n\n'
            + self.imported
        )


def _import(tmp_path: Path, connection: Connection, secret: Secret | None) -> tuple[str, str]:
    """(pike.toml, the import's stderr) for ``connection`` written as swanctl.conf
    (in ``tmp_path/swanctl``, where x509/ and friends may already be)."""
    etc = tmp_path / "swanctl"
    etc.mkdir(exist_ok=True)
    (etc / "swanctl.conf").write_text(
        "# the branch, as its swanctl.conf would say it\n"
        + render_swanctl([connection])
        + "include conf.d/*.conf\n"
    )
    (etc / "conf.d").mkdir()
    (etc / "secrets.conf").write_text(render_swanctl([], [secret] if secret else []))
    out = tmp_path / "pike.toml"
    tool = venv_bin("pikectl")
    assert tool is not None
    argv = [str(tool), "import-swanctl", str(etc / "swanctl.conf"), str(etc / "secrets.conf")]
    proc = subprocess.run([*argv, "-o", str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "check-config OK" in proc.stderr
    assert secret is None or secret.secret not in proc.stderr  # a PSK is never shown
    assert out.stat().st_mode & 0o077 == 0
    return out.read_text(), proc.stderr


def _imported_up(
    gateways: Gateways, tmp_path: Path, text: str, charon: StrongswanNode
) -> tuple[IkeSaInfo, IkeSaInfo]:
    """piked on the imported config initiates to ``charon``: the IKE SA as each side lists
    it, the same SPIs."""
    piked = ImportedPiked(gateways.left, tmp_path, "piked", imported=text)
    piked.poll_via_socket = True
    piked.start()
    try:
        piked.initiate("hq")
        ours = piked.wait_established("hq", timeout=20)
        theirs = charon.wait_established("hq", timeout=10)
        assert (ours.initiator_spi, ours.responder_spi) == (
            theirs.initiator_spi,
            theirs.responder_spi,
        )
        return ours, theirs
    finally:
        status = piked.stop()
        print(f"--- piked log tail, exit {status} ---\n{piked.log_tail(40)}")


@pytest.mark.parametrize("version", [2, 1])
def test_imported_config_brings_the_tunnel_up(
    gateways: Gateways, make_charon: MakeCharon, tmp_path: Path, require: Require, version: int
) -> None:
    require(piked_available(), "piked/pikectl not installed in the venv")
    make, secret = psk_tunnel(version)
    text, said = _import(tmp_path, make("left"), secret)
    parsed = tomllib.loads(text)
    hq = parsed["connections"]["hq"]
    assert hq.get("version", 2) == version
    assert hq["remote_addrs"] == ["192.0.2.2"]
    assert hq["children"]["lan"]["local_ts"] == ["10.1.0.0/24"]
    assert "imported 1 connection(s): hq" in said
    print(f"\n{said}")
    charon = make_charon(
        gateways.right, "charon", make("right"), secret, libipsec=gateways.libipsec
    )
    ours, theirs = _imported_up(gateways, tmp_path, text, charon)
    assert ours.remote_host == "192.0.2.2" and theirs.remote_host == "192.0.2.1"


def test_imported_certificate_config_brings_the_tunnel_up(
    gateways: Gateways, make_charon: MakeCharon, tmp_path: Path, require: Require
) -> None:
    require(piked_available(), "piked/pikectl not installed in the venv")
    ca = make_ca("ecdsa-p256", "pike import CA")
    mine = issue(ca, "ecdsa-p256", BRANCH, [x509.DNSName(BRANCH)])
    theirs = issue(ca, "ecdsa-p256", HQ, [x509.DNSName(HQ)])
    etc = tmp_path / "swanctl"
    cert, key = write(tmp_path / "made", "branch", mine)
    ca_cert, _ = write(tmp_path / "made", "ca", ca)
    for sub, made in (("x509", cert), ("private", key), ("x509ca", ca_cert)):
        (etc / sub).mkdir(parents=True, exist_ok=True)  # where swanctl keeps them
        made.rename(etc / sub / made.name)
    left = _conn(
        "192.0.2.1", "192.0.2.2", BRANCH, HQ, "10.1.0.0/24", "10.2.0.0/24",
        local_certs=["branch.pem"],
    )  # fmt: skip
    text, said = _import(tmp_path, left, None)
    hq = tomllib.loads(text)["connections"]["hq"]
    assert hq["local"]["key"] == str(etc / "private" / "branch.key")
    assert hq["remote"]["cacerts"] == [str(etc / "x509ca" / "ca.pem")]
    print(f"\n{said}")
    creds = tmp_path / "charon-creds"
    cert, key = write(creds, "hq", theirs)
    ca_cert, _ = write(creds, "ca", ca)
    right = _conn(
        "192.0.2.2", "192.0.2.1", HQ, BRANCH, "10.2.0.0/24", "10.1.0.0/24",
        local_certs=[cert.name],
    )  # fmt: skip
    charon: StrongswanNode = make_charon(
        gateways.right, "charon", right, libipsec=gateways.libipsec, start=False
    )
    charon.start_with(cert, key, ca_cert)
    _, theirs_sa = _imported_up(gateways, tmp_path, text, charon)
    assert theirs_sa.remote_id == BRANCH
