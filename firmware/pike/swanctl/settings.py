"""strongSwan's settings syntax (swanctl.conf, strongswan.conf) read into a tree that
remembers where each entry came from (``FILE:LINE``), for ``pikectl import-swanctl``.

The syntax, as strongswan.conf(5) describes it: ``name { ... }`` sections, ``key = value``
lines (a value runs to the end of the line, or is a ``"quoted string"`` with backslash
escapes), ``#`` comments, and ``include PATTERN`` (a glob, relative to the including
file). A section name may name templates to copy from (``name : base {``): kept as
``refs``, for the caller to say what it does with them. Later entries of the same name
replace earlier ones and sections of the same name merge, as strongSwan reads them.

Reading files goes through ``read`` and ``expand`` (the caller's I/O), so the parser
itself only sees text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_INCLUDE_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Value:
    text: str
    where: Where


@dataclass(slots=True)
class Section:
    name: str
    where: Where
    refs: tuple[str, ...] = ()
    values: dict[str, Value] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)

    def section(self, name: str) -> Section | None:
        return self.sections.get(name)

    def get(self, key: str) -> Value | None:
        return self.values.get(key)


class SettingsError(Exception):
    """``FILE:LINE: what is wrong``."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


Read = Callable[[str], str]
Expand = Callable[[str], list[str]]


def parse_file(path: str, read: Read, expand: Expand, root: Section | None = None) -> Section:
    """Parse ``path`` (and what it includes) into ``root`` (a new one by default)."""
    root = root if root is not None else Section("", Where(path, 0))
    _Parser(read, expand).file(path, root, 0)
    return root


class _Parser:
    def __init__(self, read: Read, expand: Expand) -> None:
        self.read, self.expand = read, expand

    def file(self, path: str, into: Section, depth: int) -> None:
        try:
            text = self.read(path)
        except OSError as exc:
            raise SettingsError(Where(path, 0), f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SettingsError(Where(path, 0), "not UTF-8 text") from None
        tokens = _tokens(text, path)
        stack = [into]
        i = 0
        while i < len(tokens):
            tok, where = tokens[i]
            if tok == "}":
                if len(stack) == 1:
                    raise SettingsError(where, "'}' without a section to close")
                stack.pop()
                i += 1
                continue
            if tok in ("{", "=", ":") or tok.startswith(VALUE):
                raise SettingsError(where, f"expected a name, found {tok.lstrip(VALUE)[:20]!r}")
            nxt = tokens[i + 1][0] if i + 1 < len(tokens) else "\n"
            if tok == "\n":
                i += 1
            elif tok == "include" and nxt.startswith(VALUE):
                self._include(nxt[1:], where, stack[-1], depth)
                i += 2
            elif nxt == "=":
                stack[-1].values[tok] = Value(tokens[i + 2][0][1:], where)
                i += 3
            elif nxt in ("{", ":"):
                refs: tuple[str, ...] = ()
                i += 1
                if nxt == ":":
                    names: list[str] = []
                    i += 1
                    while i < len(tokens) and tokens[i][0] not in ("{", "\n", "="):
                        names += [n.strip() for n in tokens[i][0].split(",") if n.strip()]
                        i += 1
                    if i >= len(tokens) or tokens[i][0] != "{":
                        raise SettingsError(where, f"section {tok}: expected '{{'")
                    refs = tuple(names)
                i += 1  # the "{"
                sec = stack[-1].sections.get(tok)
                if sec is None:
                    sec = Section(tok, where, refs)
                    stack[-1].sections[tok] = sec
                elif refs:
                    sec.refs = refs
                stack.append(sec)
            else:
                raise SettingsError(where, f"{tok}: expected '=' or '{{' after the name")
        if len(stack) > 1:
            raise SettingsError(stack[-1].where, f"section {stack[-1].name}: '}}' missing")

    def _include(self, pattern: str, where: Where, into: Section, depth: int) -> None:
        if depth >= MAX_INCLUDE_DEPTH:
            raise SettingsError(where, f"include {pattern}: nested more than 10 deep")
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(where.file), pattern)
        for path in self.expand(pattern):  # no match is fine, as in strongSwan
            self.file(path, into, depth + 1)


Token = tuple[str, Where]
_SPECIAL = "{}=:\n"
VALUE = "\x01"  # marks a value token: the raw text after ``=`` (or ``include``)


def _tokens(text: str, path: str) -> list[Token]:
    """Names, ``{ } = :``, newlines, and values. A value is everything after ``=`` up
    to the end of the line or a ``#`` (DNs, IPv6 addresses and ``[tcp/http]`` keep their
    ``= : [``), or one quoted string."""
    out: list[Token] = []
    line, i, n = 1, 0, len(text)
    at_start = True  # at the start of a statement: ``include`` may follow
    while i < n:
        c = text[i]
        if c == "\n":
            out.append(("\n", Where(path, line)))
            line += 1
            i += 1
            at_start = True
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "=":
            out.append(("=", Where(path, line)))
            value, i, lines = _value(text, i + 1, path, line)
            closes = 0
            if text[i - 1 : i] != '"':  # ``key = value }`` closes on the same line
                while value.endswith("}") and (value == "}" or value[-2] in " \t"):
                    value, closes = value[:-1].rstrip(), closes + 1
            out.append((VALUE + value, Where(path, line)))
            out += [("}", Where(path, line))] * closes
            line += lines
        elif c in _SPECIAL:
            out.append((c, Where(path, line)))
            i += 1
            at_start = c in "{}"
        else:
            j = i
            while j < n and text[j] not in _SPECIAL and text[j] not in ' \t\r#"':
                j += 1
            word = text[i:j]
            if word == "include" and at_start and _next_is_value(text, j):
                out.append((word, Where(path, line)))
                value, i, lines = _value(text, j, path, line)
                out.append((VALUE + value, Where(path, line)))
                line += lines
            else:
                if j == i:
                    raise SettingsError(Where(path, line), f"unexpected {text[i]!r}")
                out.append((word, Where(path, line)))
                i = j
            at_start = False
    return out


def _next_is_value(text: str, j: int) -> bool:
    """After ``include``: a pattern follows on the line (not ``=``, ``{`` or ``:``)."""
    rest = text[j : text.find("\n", j) if "\n" in text[j:] else len(text)].strip()
    return bool(rest) and rest[0] not in "={:"


def _value(text: str, i: int, path: str, line: int) -> tuple[str, int, int]:
    """The value starting at ``i``: (text, index after it, newlines inside a quoted one)."""
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == '"':
        buf: list[str] = []
        j, lines = i + 1, 0
        while j < n and text[j] != '"':
            if text[j] == "\\" and j + 1 < n:
                j += 1
                buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(text[j], text[j]))
            else:
                buf.append(text[j])
                lines += text[j] == "\n"
            j += 1
        if j >= n:
            raise SettingsError(Where(path, line), "unterminated quoted string")
        return "".join(buf), j + 1, lines
    j = i
    while j < n and text[j] not in "\n#":
        j += 1
    return text[i:j].strip(), j, 0
