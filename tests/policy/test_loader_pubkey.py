"""Config loader, pubkey auth: files resolved against the config's directory, and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.policy.loader import ConfigError, load_config

CONN = """\
[connections.hq]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {local}
remote = {remote}
"""
LOCAL = '{ auth = "pubkey", id = "branch1.example.net", certs = ["gw.pem"], key = "gw.key" }'
REMOTE = '{ auth = "pubkey", id = "hq.example.net", cacerts = ["ca/ca.pem"] }'


def _files(d: Path) -> None:
    (d / "ca").mkdir(parents=True)
    for name in ("gw.pem", "gw.key", "ca/ca.pem"):
        (d / name).write_text("x")


def _load(d: Path, local: str = LOCAL, remote: str = REMOTE) -> object:
    path = d / "pike.toml"
    path.write_text(CONN.format(local=local, remote=remote))
    return load_config(str(path))


def test_relative_paths_resolve_against_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    _files(conf_dir)
    monkeypatch.chdir(tmp_path)  # not the config's directory
    cfg = _load(conf_dir)
    conn = cfg.connections["hq"]  # type: ignore[attr-defined]
    assert conn.local.certs == (str(conf_dir / "gw.pem"),)
    assert conn.local.key == str(conf_dir / "gw.key")
    assert conn.remote.cacerts == (str(conf_dir / "ca" / "ca.pem"),)
    assert conn.local.rsa_pss is False


def test_absolute_paths_and_pkcs11_uris_kept(tmp_path: Path) -> None:
    _files(tmp_path / "x")
    local = f'{{ auth = "pubkey", certs = ["{tmp_path}/x/gw.pem"], key = "{URI}", rsa_pss = true }}'
    _files(tmp_path)
    conn = _load(tmp_path, local=local).connections["hq"]  # type: ignore[attr-defined]
    assert conn.local.certs == (f"{tmp_path}/x/gw.pem",)
    assert conn.local.key == URI
    assert conn.local.rsa_pss is True
    assert conn.local.id is None  # pubkey: our certificate's subject is used


URI = "pkcs11:token=gw;object=ike-key?module-path=/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("pkcs11:token=gw;objekt=ike?module-path=/m.so", "unknown attribute objekt"),
        ("pkcs11:token=gw;object=ike", "needs module-path=... (or module-name=...)"),
        ("pkcs11:token=gw?module-path=/m.so", "names no key: give object=... and/or id=..."),
        ("pkcs11:token=gw;object=ike?module-path=/m.so&pin-value=4711",
         "pin-value is refused: give the PIN by pin-source or PIKE_PIN"),
        ("pkcs11:token=gw;object=ike?module-path=/m.so&pin-value4711",
         "an attribute is not name=value"),
        ("PKCS11:token=gw;object=ike;object=x?module-path=/m.so", "object given twice"),
    ],
)  # fmt: skip
def test_bad_pkcs11_uri_names_file_line_and_key(tmp_path: Path, key: str, message: str) -> None:
    _files(tmp_path)
    local = f'{{ auth = "pubkey", certs = ["gw.pem"], key = "{key}" }}'
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, local=local)
    assert str(e.value) == (
        f"{tmp_path}/pike.toml:4: connections.hq.local.key: bad PKCS#11 URI: {message}"
    )
    assert "4711" not in str(e.value)


def test_missing_file_named_with_line(tmp_path: Path) -> None:
    tmp_path.joinpath("ca").mkdir()
    with pytest.raises(ConfigError) as e:
        _load(tmp_path)
    assert str(e.value) == (
        f"{tmp_path}/pike.toml:4: connections.hq.local.certs[0]: cannot read {tmp_path}/gw.pem"
    )


@pytest.mark.parametrize(
    ("local", "remote", "message"),
    [
        ('{ auth = "pubkey", certs = ["gw.pem"] }', REMOTE, 'pubkey needs certs = ["..."] and key'),
        (LOCAL, '{ auth = "pubkey" }', 'pubkey needs cacerts = ["..."]'),
    ],
)
def test_pubkey_needs_its_files(tmp_path: Path, local: str, remote: str, message: str) -> None:
    _files(tmp_path)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _load(tmp_path, local, remote)
