"""The validated-config cache: a hit gives what a fresh load gives; anything that could
change the result (bytes, secret files, certificate files, the entry's owner or mode,
a damaged entry) is a miss; the entry is private to its user."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pike.daemon.configfile import load_checked
from pike.policy import loader
from pike.policy.config import Config, ConnectionConfig
from pike.policy.config_cache import cache_dir, load_cached
from pike.policy.loader import (
    ConfigError,
    DefaultProposals,
    load_config_reusing,
    load_config_text,
    read_config_text,
    secret_of_file,
)

BOARD = DefaultProposals(("aes256gcm16-prfsha384-ecp384",), ("aes256gcm16",))

# Most of what the loader builds: inline and file secrets, pubkey files, IKEv1, board
# defaults, children with and without their own proposals, a wildcard hub connection.
TEXT = """\
[daemon]
control_socket = "/run/pike/test.sock"
ike_port = 1500
natt_port = 14500

[connections.hq]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"]
local = { auth = "psk", id = "branch1.example.net" }
remote = { auth = "psk", id = "hq.example.net" }
dpd_delay = "30s"

[connections.hq.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24[udp/53]", "10.3.0.0/16"]
esp_proposals = ["aes128gcm16"]
start_action = "start"
rekey_bytes = "1G"

[connections.v1]
version = 1
local_addrs = ["192.0.2.1"]
remote_addrs = ["198.51.100.7"]
local = { auth = "psk" }
remote = { auth = "psk" }

[connections.v1.children.net]
local_ts = ["dynamic"]
remote_ts = ["10.9.0.0/24"]

[connections.ca]
remote_addrs = ["%any"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "pubkey", id = "gw.example.net", certs = ["gw.pem"], key = "gw.key" }
remote = { auth = "pubkey", id = "*.branches.example.net", cacerts = ["ca.pem"] }

[connections.ca.children.net]
local_ts = ["10.1.0.0/24"]
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["aes128gcm16"]

[secrets.ike-hq]
id = ["branch1.example.net", "hq.example.net"]
secret = "cache-test-psk-1"

[secrets.v1]
id = ["192.0.2.1"]
secret_file = "v1.psk"
"""


class Loads:
    """The loader as the cache sees it, counting the fresh loads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fresh = 0
        self.reused: list[str] = []  # connections the last fresh load took from an entry

    def __call__(self, cache: Path) -> Config:
        text = read_config_text(str(self.path))

        def load(reuse: Mapping[bytes, ConnectionConfig]) -> tuple[Config, dict[str, bytes]]:
            self.fresh += 1
            config, digests = load_config_reusing(text, str(self.path), BOARD, reuse)
            self.reused = [n for n, d in digests.items() if d in reuse]
            return config, digests

        return load_cached(text, str(self.path), BOARD, load, secret_of_file, str(cache))


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    for name in ("gw.pem", "gw.key", "ca.pem"):
        (d / name).write_text("x")  # the loader checks they are readable files
    (d / "v1.psk").write_text("v1-secret-from-a-file\n")
    path = d / "pike.toml"
    path.write_text(TEXT)
    return path


def _entries(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if not p.name.startswith(".")]


def test_a_hit_equals_a_fresh_load(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    first = loads(cache)
    second = loads(cache)
    assert loads.fresh == 1  # the second came from the entry
    fresh = load_config_text(conf.read_text(), str(conf), BOARD)
    assert second == fresh == first
    # what == does not compare: lines, secret sources, the secret bytes themselves
    assert [c.source_line for c in second.connections.values()] == [
        c.source_line for c in fresh.connections.values()
    ]
    assert [(s.file, s.secret) for s in second.secrets] == [
        (s.file, s.secret) for s in fresh.secrets
    ]
    assert second.psk_for("branch1.example.net", "hq.example.net") == b"cache-test-psk-1"
    assert second.connections["hq"].children[0].esp_proposals == (
        fresh.connections["hq"].children[0].esp_proposals
    )


def test_the_entry_is_private(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    Loads(conf)(cache)
    (entry,) = _entries(cache)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert os.stat(entry).st_mode & 0o777 == 0o600


def test_other_bytes_are_a_miss(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    conf.write_text(TEXT.replace('dpd_delay = "30s"', 'dpd_delay = "31s"'))
    assert loads(cache).connections["hq"].dpd_delay == 31
    conf.write_text(TEXT.replace('dpd_delay = "30s"', 'dpd_delay = "31s"') + "# a comment\n")
    loads(cache)
    assert loads.fresh == 3
    assert len(_entries(cache)) == 1  # one entry per config path, replaced


def test_a_changed_secret_file_is_a_miss(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    (conf.parent / "v1.psk").write_text("a-new-v1-secret\n")
    got = loads(cache)
    assert loads.fresh == 2
    assert got.psk_for("192.0.2.1", "198.51.100.7") == b"a-new-v1-secret"


def test_a_removed_certificate_is_the_loaders_error(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    (conf.parent / "ca.pem").unlink()
    with pytest.raises(ConfigError, match="cacerts"):
        loads(cache)


@pytest.mark.parametrize("what", ["entry", "directory"])
def test_an_entry_others_may_write_is_not_used(conf: Path, tmp_path: Path, what: str) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    (entry,) = _entries(cache)
    os.chmod(entry if what == "entry" else cache, 0o666 if what == "entry" else 0o777)
    loads(cache)
    assert loads.fresh == 2


def test_a_damaged_entry_is_a_miss_and_rewritten(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    (entry,) = _entries(cache)
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 2])  # into the Config's pickle
    loads(cache)
    loads(cache)
    assert loads.fresh == 2


def test_another_configs_entry_is_not_used(conf: Path, tmp_path: Path) -> None:
    """An entry carries its key: copied under another config's name it is a miss."""
    cache = tmp_path / "cache"
    other = conf.parent / "other.toml"
    other.write_text(TEXT.replace("ike_port = 1500", "ike_port = 1600"))
    Loads(other)(cache)
    (entry,) = _entries(cache)
    loads = Loads(conf)
    loads(cache)
    (mine,) = (p for p in _entries(cache) if p != entry)
    mine.write_bytes(entry.read_bytes())
    assert loads(cache).daemon.ike_port == 1500
    assert loads.fresh == 2


def test_a_bad_config_stores_nothing(conf: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    conf.write_text(TEXT.replace("ike_port = 1500", "ike_port = 0"))
    with pytest.raises(ConfigError, match="ike_port"):
        Loads(conf)(cache)
    assert not cache.exists() or _entries(cache) == []


def test_the_entry_is_a_pickle_of_the_config_behind_its_key(conf: Path, tmp_path: Path) -> None:
    """The format the reader checks: magic line, key line, the Config."""
    cache = tmp_path / "cache"
    Loads(conf)(cache)
    (entry,) = _entries(cache)
    with entry.open("rb") as f:
        assert f.readline() == b"pike-config-cache 2\n"
        assert len(f.readline()) == 65  # path, defaults, code
        assert len(f.readline()) == 65  # and the text
        config = pickle.load(f)
        assert isinstance(config, Config)
        digests = pickle.load(f)  # read only after an edit
        assert set(digests) == set(config.connections)


def test_an_edit_validates_only_the_connections_it_touched(
    conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry for the file before the edit gives the unchanged connections; the result
    equals a fresh load, lines included (the edit moved them)."""
    cache = tmp_path / "cache"
    loads = Loads(conf)
    loads(cache)
    validated: list[str] = []
    real = loader._connection

    def counting(t: Any, *args: Any) -> ConnectionConfig:
        validated.append(str(t.path[-1]))
        return real(t, *args)

    monkeypatch.setattr(loader, "_connection", counting)
    edited = "# moved down\n\n" + TEXT.replace('dpd_delay = "30s"', 'dpd_delay = "31s"')
    conf.write_text(edited)
    got = loads(cache)
    assert validated == ["hq"] and loads.reused == ["v1", "ca"]
    fresh = load_config_text(edited, str(conf), BOARD)
    assert got == fresh and got.connections["hq"].dpd_delay == 31
    assert [c.source_line for c in got.connections.values()] == [
        c.source_line for c in fresh.connections.values()
    ]
    # a connection's file gone: validated again, so the error names it
    (conf.parent / "ca.pem").unlink()
    conf.write_text(edited + "# again\n")
    with pytest.raises(ConfigError, match="cacerts"):
        loads(cache)


def test_an_entry_for_other_defaults_gives_nothing(conf: Path, tmp_path: Path) -> None:
    """Connections are reused only from an entry of the same path, defaults and code."""
    cache = tmp_path / "cache"
    text = read_config_text(str(conf))
    calls: list[int] = []

    def load(reuse: Mapping[bytes, ConnectionConfig]) -> tuple[Config, dict[str, bytes]]:
        calls.append(len(reuse))
        return load_config_reusing(text, str(conf), BOARD, reuse)

    load_cached(text, str(conf), BOARD, load, secret_of_file, str(cache))
    other = DefaultProposals(("aes128gcm16-prfsha256-x25519",), ("aes128gcm16",))
    load_cached(text, str(conf), other, load, secret_of_file, str(cache))
    conf.write_text(TEXT + "# edited\n")
    load_cached(conf.read_text(), str(conf), other, load, secret_of_file, str(cache))
    assert calls == [0, 0, 3]


def test_piked_uses_its_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_checked`` (piked, reload, check-config) with systemd's STATE_DIRECTORY."""
    monkeypatch.delenv("PIKE_CONFIG_CACHE", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert cache_dir() == str(tmp_path / "state" / "config-cache")
    path = tmp_path / "pike.toml"
    path.write_text(
        TEXT.split("[connections.v1]")[0]
        + '[secrets.ike-hq]\nid = ["branch1.example.net"]\nsecret = "x-psk"\n'
    )
    first = load_checked(str(path), probe=False)
    assert len(_entries(tmp_path / "state" / "config-cache")) == 1
    assert load_checked(str(path), probe=False) == first
    monkeypatch.setenv("PIKE_CONFIG_CACHE", "")  # off
    assert cache_dir() is None
