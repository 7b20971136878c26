"""Host tier: piked signs IKEv1 Main Mode with a SoftHSM2 or TPM 2.0 (swtpm) key,
strongSwan 5.9 verifies.

The key pair is generated on the token by pike's provisioning and certified by a test CA
(``test_token_auth._token_cert``); piked's config names the key by its ``pkcs11:`` URI.
IKEv1 signs HASH_I itself: the token gets CKM_RSA_PKCS over the bare hash (no DigestInfo)
or CKM_ECDSA over it, and charon must accept it as RSA_EMSA_PKCS1_NULL / ECDSA_WITH_NULL.
piked's ``/metrics`` counts the signature under the IKEv1 mechanism. Host kernel without
ESP: the ISAKMP SA is what is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm.tokens import (
    USER_PIN,
    SoftHsm,
    Tpm,
    reset_pike_tokens,
    shared_tpm,
    softhsm_available,
    tpm_available,
    uri,
)
from ikev2.x509gen import issue, make_ca, write
from lib.prereq import require

from .conftest import Gateways, MakeCharon, MakePiked
from .strongswan_v1 import ikev1_connection
from .test_piked_certs import BRANCH, HQ
from .test_token_auth import (
    METRICS,
    TPM_KINDS,
    _metrics,
    _sample,
    _token_cert,
    wait_token_ready,
)

# token key kind -> (charon's key kind, charon's scheme name, our metrics mechanism)
KINDS = {
    "rsa2048": ("rsa", "RSA_EMSA_PKCS1_NULL", "rsa_pkcs1_null"),
    "ecdsa-p256": ("ecdsa-p256", "ECDSA_WITH_NULL", "ecdsa_null"),
    "ecdsa-p384": ("ecdsa-p384", "ECDSA_WITH_NULL", "ecdsa_null"),
    "ecdsa-p521": ("ecdsa-p521", "ECDSA_WITH_NULL", "ecdsa_null"),
}


@pytest.fixture(scope="module")
def tpm_token(tmp_path_factory: pytest.TempPathFactory) -> Tpm:
    require(tpm_available(), "swtpm / tpm2-abrmd / tpm2-pkcs11 not installed")
    return shared_tpm(tmp_path_factory.getbasetemp())


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_softhsm_key_signs_ikev1_main_mode(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    require(softhsm_available(), "softhsm2 not installed")
    soft = SoftHsm(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(soft.conf))
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    soft.init("gw")
    _run(gateways, make_piked, make_charon, tmp_path, kind, soft.module, "gw", "ike")


@pytest.mark.interop
@pytest.mark.parametrize("kind", TPM_KINDS)
def test_tpm_key_signs_ikev1_main_mode(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tpm_token: Tpm,
    kind: str,
) -> None:
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    label = f"ikev1-{kind}"
    _run(gateways, make_piked, make_charon, tmp_path, kind, tpm_token.module, tpm_token.label,
         label)  # fmt: skip


def _run(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    module: str,
    token: str,
    label: str,
) -> None:
    charon_kind, scheme, mechanism = KINDS[kind]
    ca = make_ca("ecdsa-p256", "pike token CA")
    theirs = issue(ca, charon_kind, HQ, [x509.DNSName(HQ)])
    mine = _token_cert(ca, module, token, label, kind)

    files = tmp_path / "charon-creds"
    cert, key = write(files, "hq", theirs)
    ca_cert, _ = write(files, "ca", ca)
    conn = ikev1_connection(
        "192.0.2.2", "192.0.2.1", local_ts="10.2.0.0/24", remote_ts="10.1.0.0/24",
        local_id=HQ, remote_id=BRANCH,
    )  # fmt: skip
    conn.local_auth = conn.remote_auth = "pubkey"
    conn.local_certs = [cert.name]
    charon = make_charon(gateways.right, "charon", conn, libipsec=gateways.libipsec, start=False)
    charon.write_config()
    charon.install_cert(ca_cert, ca=True)
    charon.install_cert(cert)
    charon.install_key(key)
    charon.start()

    piked = make_piked(
        gateways.left,
        "piked",
        ikev1_connection(
            "192.0.2.1", "192.0.2.2", local_ts="10.1.0.0/24", remote_ts="10.2.0.0/24",
            local_id=BRANCH, remote_id=HQ,
        ),
        start=False,
    )  # fmt: skip
    piked.dir.mkdir(parents=True, exist_ok=True)
    (piked.dir / "branch.pem").write_bytes(mine.public_bytes(serialization.Encoding.PEM))
    write(piked.dir, "ca", ca)
    piked.extra = {
        "hq": {
            "local": {
                "auth": "pubkey",
                "id": BRANCH,
                "certs": ["branch.pem"],
                "key": uri(module, token, label),
            },
            "remote": {"auth": "pubkey", "id": HQ, "cacerts": ["ca.pem"]},
        }
    }
    piked.daemon = {**piked.daemon, "metrics_listen": METRICS}
    piked.start()
    wait_token_ready(piked, token)

    piked.initiate("hq")
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert p.version == 1
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    clog = charon.log_text()
    assert f"authentication of '{BRANCH}' with {scheme} successful" in clog, clog[-3000:]
    text, m = _metrics(piked)
    sign = {"token": token, "key": label, "mechanism": mechanism}
    assert _sample(m, "pike_sign_duration_seconds_count", **sign) == 1.0, text[-2000:]
    assert USER_PIN not in piked.log_text()
