"""Line numbers of TOML keys, which ``tomllib`` does not report.

A small, lenient scan of text that ``tomllib`` has already accepted: it tracks the current
``[table]``/``[[array]]`` header and every ``key = value`` (including the keys inside inline
tables and the elements of arrays) and records the line where each dotted path starts.
Because the text is known to be valid TOML the scanner never has to report errors itself.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PathPart = str | int
KeyPath = tuple[PathPart, ...]

_PUNCT = "[]{}=,."


class _Tok(NamedTuple):  # a tuple: a 10 000-connection file has ~10^6 of them
    kind: str  # "str", "bare", "nl" or one of _PUNCT
    text: str
    line: int


# One token or skipped run at a time; strings start here and end in _string_end.
_TOKEN = re.compile(r"""(\n)|[ \t\r]+|#[^\n]*|(["'])|([\[\]{}=,.])|([^ \t\r\n#"'\[\]{}=,.]+)""")


def _string_end(src: str, i: int) -> int:
    """Index just past the string literal starting at ``src[i]``."""
    q = src[i]
    if src.startswith(q * 3, i):
        end = src.find(q * 3, i + 3)
        end = len(src) - 3 if end < 0 else end
        # A multi-line string may end with up to two extra quotes: """a"""""
        while src.startswith(q, end + 3):
            end += 1
        return end + 3
    j = i + 1
    while j < len(src) and src[j] != q and src[j] != "\n":
        j += 2 if q == '"' and src[j] == "\\" else 1
    return j + 1


def _unquote(text: str) -> str:
    if text[:1] == "'":
        return text[1:-1]
    if text[:1] == '"':
        # Keys rarely contain escapes; decode the common ones without a full parser.
        return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return text


def _tokens(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, line, n = 0, 1, len(src)
    match = _TOKEN.match
    while i < n:
        m = match(src, i)
        if m is None:  # not reached for valid TOML; step over the character
            i += 1
            continue
        nl, quote, punct, bare = m.groups()
        if nl:
            toks.append(_Tok("nl", nl, line))
            line += 1
        elif quote:
            j = _string_end(src, i)
            toks.append(_Tok("str", src[i:j], line))
            line += src.count("\n", i, j)
            i = j
            continue
        elif punct:
            toks.append(_Tok(punct, punct, line))
        elif bare:
            toks.append(_Tok("bare", bare, line))
        i = m.end()
    return toks


class _Scanner:
    def __init__(self, src: str) -> None:
        self.toks = _tokens(src)
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self.aot_counts: dict[KeyPath, int] = {}

    def _peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _next(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def _skip_nl(self) -> None:
        while (t := self._peek()) is not None and t.kind == "nl":
            self.pos += 1

    def _record(self, path: KeyPath, line: int) -> None:
        # The first mention wins: it is where a key or table was defined.
        self.lines.setdefault(path, line)

    def _key(self) -> list[str]:
        parts = [_unquote(self._next().text)]
        while (t := self._peek()) is not None and t.kind == ".":
            self.pos += 1
            parts.append(_unquote(self._next().text))
        return parts

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while (t := self._peek()) is not None:
            if t.kind == "nl":
                self.pos += 1
            elif t.kind == "[":
                self.pos += 1
                aot = (n := self._peek()) is not None and n.kind == "["
                if aot:
                    self.pos += 1
                name = self._resolve(tuple(self._key()))
                self.pos += 2 if aot else 1  # closing bracket(s)
                for k in range(1, len(name)):
                    self._record(name[:k], t.line)
                if aot:
                    idx = self.aot_counts.get(name, 0)
                    self.aot_counts[name] = idx + 1
                    self._record(name, t.line)
                    table = (*name, idx)
                else:
                    table = name
                self._record(table, t.line)
            else:
                self._pair(table)
        return self.lines

    def _resolve(self, name: tuple[PathPart, ...]) -> KeyPath:
        """``[fruit.extra]`` after ``[[fruit]]`` belongs to the last ``fruit`` element."""
        out: tuple[PathPart, ...] = ()
        for i, part in enumerate(name):
            out = (*out, part)
            if i < len(name) - 1 and out in self.aot_counts:
                out = (*out, self.aot_counts[out] - 1)
        return out

    def _pair(self, table: KeyPath) -> None:
        line = self._peek().line  # type: ignore[union-attr]
        key = self._key()
        path = table
        for part in key:
            path = (*path, part)
            self._record(path, line)
        self.pos += 1  # "="
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        t = self._peek()
        if t is None:
            return
        if t.kind == "[":
            self.pos += 1
            idx = 0
            while True:
                self._skip_nl()
                t = self._peek()
                if t is None or t.kind == "]":
                    self.pos += 1
                    return
                if t.kind == ",":
                    self.pos += 1
                    continue
                self._record((*path, idx), t.line)
                self._value((*path, idx))
                idx += 1
        if t.kind == "{":
            self.pos += 1
            while (t := self._peek()) is not None and t.kind != "}":
                if t.kind in (",", "nl"):
                    self.pos += 1
                else:
                    self._pair(path)
            self.pos += 1
            return
        # A scalar: possibly several tokens (dates with a space, floats split at ".").
        while (t := self._peek()) is not None and t.kind not in (",", "]", "}", "nl"):
            self.pos += 1


def key_lines(src: str) -> dict[KeyPath, int]:
    """Map every key path in ``src`` (valid TOML) to the line where it is defined."""
    return _Scanner(src).scan()


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest enclosing key that has one (else 1)."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1


def format_path(path: KeyPath) -> str:
    """``("connections", "hq", "proposals", 1)`` -> ``connections.hq.proposals[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = part != "" and all(c.isalnum() or c in "_-" for c in part)
            text = part if bare and part.isascii() else '"' + part.replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out
