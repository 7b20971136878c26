"""Keys the loader does not read: strongSwan's that pike lacks say so, pike's own in the
wrong section say where they belong, the rest are typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.policy import toml_table
from pike.policy.key_hints import PIKE_KEYS, section_of
from pike.policy.loader import load_config

from .test_loader import EXAMPLE, error_of, write

CHILD = 'start_action = "start"'
CONN = "[connections.hq]\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            CONN,
            CONN + 'unique = "replace"\n',
            "F:5: connections.hq.unique: not supported by pike yet",
        ),
        (CONN, CONN + "dscp = 1\n", "F:5: connections.hq.dscp: not supported by pike yet"),
        (
            CHILD,
            CHILD + "\nhostaccess = true",
            "F:18: connections.hq.children.lan.hostaccess: not supported by pike yet",
        ),
        (
            CHILD,
            CHILD + '\ndpd_action = "restart"',
            "F:18: connections.hq.children.lan.dpd_action: belongs in [connections.hq], not here",
        ),
        (
            CONN,
            CONN + 'start_action = "start"\n',
            "F:5: connections.hq.start_action: belongs in [connections.hq.children.CHILD],"
            " not here",
        ),
        (
            "[daemon]\n",
            "[daemon]\nkeyingtries = 0\n",
            "F:2: daemon.keyingtries: belongs in [connections.NAME], not here",
        ),
        (CONN, CONN + "mobkie = false\n", "F:5: connections.hq.mobkie: unknown key (misspelt?)"),
    ],
)
def test_unknown_key_messages(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in EXAMPLE
    assert error_of(tmp_path, EXAMPLE.replace(old, new, 1)) == expected


def test_pike_keys_lists_every_key_the_loader_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: dict[str, set[str]] = {}
    finish = toml_table.Table.finish

    def record(self: toml_table.Table) -> None:
        section = section_of(self.path)
        if section is not None:
            read.setdefault(section, set()).update(self._seen)
        finish(self)

    monkeypatch.setattr(toml_table.Table, "finish", record)
    load_config(write(tmp_path, EXAMPLE))
    assert set(read) == {"daemon", "connection", "child", "auth", "secret"}
    for section, keys in read.items():
        assert keys <= PIKE_KEYS[section], (section, keys - PIKE_KEYS[section])
