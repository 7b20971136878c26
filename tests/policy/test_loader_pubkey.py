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


ENROLL = """\
[enroll]
url = "https://est.example.net/gateways"
ca = "ca/ca.pem"
key = "{key}"
cert = "gw-new.pem"
user = "gw1"
password_file = "gw.key"
"""


def test_enroll_section(tmp_path: Path) -> None:
    _files(tmp_path)
    path = tmp_path / "pike.toml"
    path.write_text(ENROLL.format(key=URI) + "within_days = 30\nimport = true\n")
    e = load_config(str(path)).enroll
    assert e is not None and e.key == URI and e.import_cert and e.within_days == 30.0
    assert e.cert == str(tmp_path / "gw-new.pem")  # need not exist before the enrolment
    assert e.ca == str(tmp_path / "ca" / "ca.pem") and e.user == "gw1"
    path.write_text(ENROLL.format(key="gw.key"))
    e = load_config(str(path)).enroll
    assert e is not None and e.within_days == 45.0 and not e.import_cert


@pytest.mark.parametrize(
    ("extra", "old", "new", "message"),
    [
        ("", "https://est", "http://est", "F:2: enroll.url: 'http://est.example.net/gateways'"),
        ("within_days = 0\n", "", "", "F:8: enroll.within_days: 0.0 is not a number of days"),
        ("import = true\n", "", "", "F:8: enroll.import: only a pkcs11: key has a token"),
        ("", 'user = "gw1"\n', "", "F:6: enroll.password_file: needs user"),
        ("renew = true\n", "", "", "F:8: enroll.renew: unknown key (misspelt?)"),
    ],
)
def test_enroll_errors_name_file_line_key(
    tmp_path: Path, extra: str, old: str, new: str, message: str
) -> None:
    _files(tmp_path)
    path = tmp_path / "pike.toml"
    path.write_text((ENROLL.format(key="gw.key") + extra).replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value).replace(str(path), "F").startswith(message), str(err.value)


def test_authorities(tmp_path: Path) -> None:
    _files(tmp_path)
    path = tmp_path / "pike.toml"
    path.write_text(
        '[authorities.corp]\ncacert = "ca/ca.pem"\ncrl_uris = ["http://pki.example.net/c.crl"]\n'
        'ocsp_uris = "http://ocsp.example.net/"\n'
    )
    (a,) = load_config(str(path)).authorities
    assert a.name == "corp" and a.cacert == str(tmp_path / "ca" / "ca.pem")
    assert a.crl_uris == ("http://pki.example.net/c.crl",)
    assert a.ocsp_uris == ("http://ocsp.example.net/",)
    path.write_text('[authorities.corp]\ncacert = "ca/ca.pem"\n')
    with pytest.raises(ConfigError, match=r":1: authorities.corp: needs crl_uris or ocsp_uris"):
        load_config(str(path))
    path.write_text('[authorities.corp]\ncacert = "ca/ca.pem"\ncrl_uris = ["ldap://x/"]\n')
    with pytest.raises(ConfigError, match=r":3: authorities.corp.crl_uris\[0\]: 'ldap://x/'"):
        load_config(str(path))
