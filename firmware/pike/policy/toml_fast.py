"""A fast TOML reader for the subset a hub's ``pike.toml`` is written in, else ``tomllib``.

``tomllib`` takes 1-2.5 s for 10 000 connections (3.6 MB); most of it is its general
character-by-character machinery. Generated and hand-written pike configs use a small
subset of TOML, which this module reads a line at a time with a few regular expressions:

- blank lines and ``# comments``; ``\\n`` line ends (no ``\\r``);
- ``[a.b.c]`` headers of bare keys that name a table not seen before;
- ``key = value`` with a bare key not yet in its table, where a value is a basic string
  without escapes, a literal string, a decimal integer, ``true``/``false``, a one-line
  array of those, or a one-line inline table of ``key = scalar or array`` pairs.

Anything else (dotted keys, quoted keys, escapes, floats, dates, multi-line strings or
arrays, arrays of tables, a header that repeats or extends a path already present, a
duplicate key, an invalid line) makes the whole text go to ``tomllib``, so results,
syntax errors and their line numbers are ``tomllib``'s own whenever the subset does not
provably give the same answer. tests/policy/test_toml_fast.py compares both on generated
and mutated configs.

``tomllib`` (with ``datetime``, 0.4 MiB of piked's idle RSS) is imported only for text
outside the subset; its ``TOMLDecodeError`` is a ``ValueError``, which callers catch.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["loads"]

_BARE = r"[A-Za-z0-9_-]+"
# No control characters other than tab in strings and comments (TOML 1.0), no escapes.
_BASIC = r'"[^"\\\x00-\x08\x0a-\x1f\x7f]*"'
_LITERAL = r"'[^'\x00-\x08\x0a-\x1f\x7f]*'"
_COMMENT = r"(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?"
_HEADER = re.compile(rf"[ \t]*\[[ \t]*({_BARE}(?:\.{_BARE})*)[ \t]*\][ \t]*{_COMMENT}")
_PAIR = re.compile(rf"[ \t]*({_BARE})[ \t]*=[ \t]*")
_BLANK = re.compile(rf"[ \t]*{_COMMENT}")
_END = re.compile(rf"[ \t]*{_COMMENT}$")
# One scalar; an integer or boolean must end at a delimiter (``1.5``, ``1979-05-27``,
# ``0x1f``, ``true1`` are not this subset and fail on what follows them).
_SCALAR = re.compile(rf"({_BASIC})|({_LITERAL})|(-?(?:0|[1-9][0-9]*)|true|false)(?=[ \t,\]}}#]|$)")
_SEP = re.compile(r"[ \t]*(,?)[ \t]*")
_WS = re.compile(r"[ \t]*")


class _Unsupported(Exception):
    """The text is outside the subset: tomllib reads it."""


def loads(text: str) -> dict[str, Any]:
    """``tomllib.loads(text)``: the same result and the same errors, faster for the subset."""
    if "\r" not in text:
        try:
            return _Reader().read(text)
        except _Unsupported:
            pass
    import tomllib

    return tomllib.loads(text)


def _scalar(line: str, i: int) -> tuple[object, int]:
    m = _SCALAR.match(line, i)
    if m is None:
        raise _Unsupported
    basic, literal, word = m.groups()
    if word is None:
        return (basic or literal)[1:-1], m.end()
    if word in ("true", "false"):
        return word == "true", m.end()
    return int(word), m.end()


def _array(line: str, i: int) -> tuple[list[object], int]:
    """``[ a, b, ]`` of scalars starting at ``line[i] == "["``."""
    out: list[object] = []
    i = _WS.match(line, i + 1).end()  # type: ignore[union-attr]
    while line[i : i + 1] != "]":
        value, i = _scalar(line, i)
        out.append(value)
        sep = _SEP.match(line, i)
        assert sep is not None  # matches the empty string
        i = sep.end()
        if not sep.group(1) and line[i : i + 1] != "]":
            raise _Unsupported
    return out, i + 1


def _inline(line: str, i: int) -> tuple[dict[str, object], int]:
    """``{ k = v, k2 = v2 }`` (no trailing comma in TOML 1.0) at ``line[i] == "{"``."""
    out: dict[str, object] = {}
    i = _WS.match(line, i + 1).end()  # type: ignore[union-attr]
    if line[i : i + 1] == "}":
        return out, i + 1
    while True:
        m = _PAIR.match(line, i)
        if m is None or m.group(1) in out:
            raise _Unsupported
        out[m.group(1)], i = _plain(line, m.end())
        sep = _SEP.match(line, i)
        assert sep is not None
        i = sep.end()
        if not sep.group(1):
            if line[i : i + 1] != "}":
                raise _Unsupported
            return out, i + 1


def _plain(line: str, i: int) -> tuple[object, int]:
    """A scalar or an array of scalars."""
    return _array(line, i) if line[i : i + 1] == "[" else _scalar(line, i)


def _value(rest: str) -> object:
    """The value at the start of ``rest`` (the line after ``key =``), which must end it."""
    value: object
    if rest[:1] == "{":
        value, i = _inline(rest, 0)
    else:
        value, i = _plain(rest, 0)
    if _END.match(rest, i) is None:
        raise _Unsupported
    return value


def _copy(value: object) -> object:
    """A fresh copy of a remembered value (tomllib gives every line its own objects)."""
    if isinstance(value, list):
        return value.copy()  # of scalars
    if isinstance(value, dict):
        return {k: v.copy() if isinstance(v, list) else v for k, v in value.items()}
    return value


class _Reader:
    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.tables = {id(self.root)}  # the tables made by headers (these may get more)
        # A hub's config repeats the same values thousands of times: read each text once.
        self.values: dict[str, object] = {}

    def _table(self, path: list[str]) -> dict[str, Any]:
        """A new table at ``path``; parents are made (implicitly) or must be tables."""
        d = self.root
        for part in path[:-1]:
            parent = d.get(part)
            if parent is None:
                parent = d[part] = {}
                self.tables.add(id(parent))
            elif id(parent) not in self.tables:  # a value, or an inline table (immutable)
                raise _Unsupported
            d = parent
        if path[-1] in d:  # defined before (or implicitly): tomllib knows the rules
            raise _Unsupported
        new: dict[str, Any] = {}
        d[path[-1]] = new
        self.tables.add(id(new))
        return new

    def read(self, text: str) -> dict[str, Any]:
        current = self.root
        for line in text.split("\n"):
            m = _PAIR.match(line)
            if m is not None:
                key = m.group(1)
                if key in current:
                    raise _Unsupported
                rest = line[m.end() :]
                if (value := self.values.get(rest)) is None:
                    value = self.values[rest] = _value(rest)
                current[key] = _copy(value)
            elif (h := _HEADER.fullmatch(line)) is not None:
                current = self._table(h.group(1).split("."))
            elif _BLANK.fullmatch(line) is None:
                raise _Unsupported
        return self.root
