"""The line scanner behind ConfigError's FILE:LINE (tomllib has no positions)."""

from __future__ import annotations

import tomllib

from pike.policy.toml_lines import format_path, key_lines, line_of

TRICKY = '''\
# a comment with "quotes" and [brackets] = x
title = """
[not.a.table]
fake = "no"
"""
lit = \'\'\'it's = [not] {a} key\'\'\'
"quoted.key" = 1
a.b.c = 2.5e3  # dotted key
date = 1979-05-27 07:32:00Z
[server]
ports = [
  8000,
  [1, 2],
  { x = 1 },  # inline table in an array
]
inline = { a = 1, b = { c = "}" } }

[[fruit]]
name = "apple"
[[fruit]]
name = "banana"
[fruit.extra]
k = 'v#not-a-comment'
'''


def test_tricky_toml() -> None:
    tomllib.loads(TRICKY)  # the scanner only ever sees valid TOML
    lines = key_lines(TRICKY)
    assert lines[("title",)] == 2
    assert ("not", "a", "table") not in lines and ("fake",) not in lines
    assert lines[("lit",)] == 6
    assert lines[("quoted.key",)] == 7
    assert lines[("a", "b", "c")] == 8
    assert lines[("date",)] == 9
    assert lines[("server",)] == 10
    assert lines[("server", "ports", 0)] == 12
    assert lines[("server", "ports", 1, 1)] == 13
    assert lines[("server", "ports", 2, "x")] == 14
    assert lines[("server", "inline", "b", "c")] == 16
    assert lines[("fruit", 0, "name")] == 19
    assert lines[("fruit", 1, "name")] == 21
    assert lines[("fruit", 1, "extra", "k")] == 23


def test_line_of_falls_back_to_the_enclosing_key() -> None:
    lines = key_lines("[a]\nb = { c = 1 }\n")
    assert line_of(lines, ("a", "b", "c", "d")) == 2
    assert line_of(lines, ("a", "zz")) == 1
    assert line_of(lines, ("nothing",)) == 1


def test_format_path() -> None:
    assert format_path(("connections", "hq", "proposals", 1)) == "connections.hq.proposals[1]"
    assert format_path(("secrets", "a b")) == 'secrets."a b"'
