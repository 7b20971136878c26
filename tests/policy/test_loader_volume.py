"""Volume limits of a child (rekey_/life_/rand_ bytes and packets): strongSwan's defaults,
its size syntax, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.policy.config import ChildConfig
from pike.policy.loader import ConfigError, load_config

EXAMPLE = (Path(__file__).parents[1] / "fixtures" / "issue2-example.toml").read_text()
CHILD_LINE = 17  # start_action = "start": the keys below go after it, from line 18 on


def child(tmp_path: Path, keys: str) -> ChildConfig:
    p = tmp_path / "pike.toml"
    p.write_text(EXAMPLE.replace('start_action = "start"\n', f'start_action = "start"\n{keys}\n'))
    return load_config(str(p)).connections["hq"].children[0]


def error(tmp_path: Path, keys: str) -> str:
    with pytest.raises(ConfigError) as info:
        child(tmp_path, keys)
    return str(info.value).replace(str(tmp_path / "pike.toml"), "F")


def volume(c: ChildConfig) -> tuple[int, ...]:
    return (
        c.rekey_bytes,
        c.life_bytes,
        c.rand_bytes,
        c.rekey_packets,
        c.life_packets,
        c.rand_packets,
    )


def test_no_volume_limits_by_default(tmp_path: Path) -> None:
    assert volume(child(tmp_path, "")) == (0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # rekey only: life = rekey + 10 %, rand = life - rekey (strongSwan)
        ("rekey_packets = 50", (0, 0, 0, 50, 55, 5)),
        ('rekey_bytes = "1M"', (1 << 20, 1153433, 104857, 0, 0, 0)),
        # life only: rekey = life / 1.1
        ("life_packets = 1100", (0, 0, 0, 1000, 1100, 100)),
        ('life_bytes = "2g"', (1952257861, 2 << 30, 195225787, 0, 0, 0)),
        # both given; rand stays below rekey so the soft limit is never 0
        ("rekey_packets = 50\nlife_packets = 1000", (0, 0, 0, 50, 1000, 49)),
        ("rekey_packets = 50\nlife_packets = 50", (0, 0, 0, 50, 50, 0)),
        ('rekey_bytes = "500k"\nrand_bytes = 0', (512000, 563200, 0, 0, 0, 0)),
        ("rekey_packets = 100\nlife_packets = 0", (0, 0, 0, 100, 0, 0)),  # no hard limit
        ("rekey_packets = 100\nrand_packets = 7", (0, 0, 0, 100, 110, 7)),
    ],
)
def test_strongswan_defaults(tmp_path: Path, keys: str, expected: tuple[int, ...]) -> None:
    assert volume(child(tmp_path, keys)) == expected


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'rekey_bytes = "10 MB"',
            f"F:{CHILD_LINE + 1}: connections.hq.children.lan.rekey_bytes: '10 MB' is not a"
            " count like 1000, 500k, 10M or 2G",
        ),
        (
            "life_packets = -5",
            f"F:{CHILD_LINE + 1}: connections.hq.children.lan.life_packets: -5 is out of range"
            " 0..18446744073709551614",
        ),
        (
            "rekey_packets = true",
            f"F:{CHILD_LINE + 1}: connections.hq.children.lan.rekey_packets: True is not a"
            " count like 1000, 500k, 10M or 2G",
        ),
        (
            "life_bytes = 1000\nrekey_bytes = 2000",
            f"F:{CHILD_LINE + 2}: connections.hq.children.lan.rekey_bytes: 2000 is more than"
            " life_bytes (1000)",
        ),
        (
            "rekey_packets = 50\nrand_packets = 50",
            f"F:{CHILD_LINE + 2}: connections.hq.children.lan.rand_packets: 50 must be less"
            " than rekey_packets (50)",
        ),
        (
            "rekey_pakets = 50",
            f"F:{CHILD_LINE + 1}: connections.hq.children.lan.rekey_pakets: unknown key"
            " (misspelt?)",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, keys: str, expected: str) -> None:
    assert error(tmp_path, keys) == expected
