"""piked reads its usual command lines without argparse (idle RSS, docs/performance.md)
and gives what argparse gives; anything else is argparse's: help, errors, abbreviations."""

from __future__ import annotations

import pytest

from pike.cli import piked


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--config", "/etc/pike/pike.toml"],
        ["--config=/tmp/a b.toml"],
        ["--config="],
        ["--config", "a", "--config", "b"],
        ["--log-level", "debug", "--config", "x.toml"],
        ["--log-level=critical"],
        ["--version"],
        ["--version", "--config", "x"],
        ["--conf", "x.toml"],  # an abbreviation: argparse's
        ["--config", "-"],
    ],
)
def test_what_piked_accepts_reads_as_argparse_does(argv: list[str]) -> None:
    want = piked.parser().parse_args(argv)
    got = piked.parse_args(argv)
    assert (got.config, got.log_level, got.version) == (
        want.config,
        want.log_level,
        want.version,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "loud"],
        ["--log-level=loud"],
        ["--log-level"],
        ["--config"],
        ["--config", "--version"],
        ["--version=1"],
        ["--verbose"],
        ["x.toml"],
        ["--"],
    ],
)
def test_what_piked_refuses_is_argparses_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        piked.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: piked ") and "piked: error: " in err


def test_help_is_argparses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        piked.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: piked [-h] [--config CONFIG] [--log-level LEVEL] [--version]")
    assert "Signals: SIGHUP re-reads the config" in out
