"""Manual pages (issue 17): piked(8) and pikectl(8) from the parsers behind ``--help``,
pike.toml(5) from the README's configuration reference, whose key tables are held here
to the keys the loader reads (``PIKE_KEYS``, which tests/policy holds to the loader).
The committed pages (docs/man, installed by the image) equal a fresh generation, render
with groff without a warning, and name every option and command ``--help`` has; the
README's pikectl synopsis names every command too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lib.prereq import require
from pike.cli import manpages, pikectl, piked
from pike.policy.key_hints import PIKE_KEYS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAN = REPO / "docs" / "man"
PAGES = manpages.pages(README)


def test_committed_pages_are_the_generated_ones() -> None:
    assert sorted(PAGES) == sorted(p.name for p in MAN.iterdir())
    for name, text in PAGES.items():
        assert (MAN / name).read_text(encoding="utf-8") == text, (
            f"docs/man/{name} is stale: python -m pike.cli.manpages --out docs/man"
        )


def _groff(groff: str, *args: str) -> subprocess.CompletedProcess[str]:
    """groff ``-man ARGS`` in the C locale, output captured, not checked."""
    return subprocess.run(
        [groff, "-man", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("name", sorted(PAGES))
def test_pages_render_without_warnings(name: str) -> None:
    groff = shutil.which("groff")
    require(groff is not None, "groff missing (apt-get install groff-base)")
    assert groff is not None
    run = _groff(groff, "-ww", "-z", "-Tutf8", str(MAN / name))
    assert run.returncode == 0 and run.stderr == "", run.stderr
    rendered = _groff(groff, "-Tutf8", "-P", "-c", str(MAN / name))
    assert rendered.returncode == 0, rendered.stderr
    plain = re.sub(".\b", "", rendered.stdout)  # overstrike bold/underline -> the characters
    assert "SEE ALSO" in plain and "NAME" in plain


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text))


def test_man_pages_name_every_option_and_command_of_help() -> None:
    for prog, parser in (("piked.8", piked.parser()), ("pikectl.8", pikectl.parser())):
        page = PAGES[prog].replace("\\-", "-")
        assert _flags(parser.format_help()) <= _flags(page), prog
        for name, _help, sub in manpages._subparsers(parser):
            assert f"\\fB{prog[:-2]} {name}\\fR" in page
            assert _flags(sub.format_help()) <= _flags(page), name
    assert "IMPORT-SWANCTL" not in PAGES["pikectl.8"]  # commands are not sections
    assert "pikectl import\\-swanctl" in PAGES["pikectl.8"]


def test_readme_config_tables_are_the_loaders_keys() -> None:
    """The README is pike.toml(5)'s source: its key tables must be exactly what the
    loader reads (``auth`` and ``id`` of local/remote, and ``children``, are prose)."""
    tables: dict[str, list[set[str]]] = {}
    heading = ""
    for kind, block in manpages.markdown_blocks(manpages.config_section(README)):
        if kind == "h3":
            heading = block[0]
        elif kind == "table":
            keys = set()
            for row in manpages.table_rows(block):
                keys |= set(re.findall(r"`([^`]+)`", row[0]))
            tables.setdefault(heading, []).append(keys)
    conn, auth = tables["`[connections.NAME]`"]
    assert tables["`[daemon]`"] == [PIKE_KEYS["daemon"]]
    assert conn == PIKE_KEYS["connection"] - {"children"}
    assert auth == PIKE_KEYS["auth"] - {"auth", "id"}
    assert tables["`[connections.NAME.children.CHILD]`"] == [PIKE_KEYS["child"]]
    assert tables["`[secrets.NAME]`"] == [PIKE_KEYS["secret"]]
    page = PAGES["pike.toml.5"].replace("\\-", "-")
    for section in PIKE_KEYS.values():
        for key in section:
            assert f"\\fB{key}\\fR" in page or key in ("children",), key


def test_readme_cli_synopsis_names_every_command() -> None:
    start = README.index("\n## pikectl")
    block = README[start : README.index("```\n", README.index("```", start) + 3)]
    for name, _help, _sub in manpages._subparsers(pikectl.parser()):
        assert f"pikectl {name}" in block, name


def test_esc_defuses_roff() -> None:
    assert manpages.esc(".TH x\n'y a-b \\n") == "\\&.TH x\n\\&'y a\\-b \\en"
