"""Typed, line-aware access to parsed TOML tables, for the config loader.

Every read records the key as known, so that ``finish()`` can refuse the keys nobody read:
a typo must never pass silently. Errors carry ``FILE:LINE: KEY: what is wrong``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pike.policy.key_hints import unknown_key
from pike.policy.toml_lines import KeyPath, PathPart, format_path, key_lines, line_of

T = TypeVar("T")
_MISSING: Any = object()


class ConfigError(Exception):
    """A configuration problem: ``FILE:LINE: KEY: what is wrong`` (never a secret)."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}: " if line > 0 else f"{file}: "
        where += f"{key}: " if key else ""
        super().__init__(where + message)


_HEADER = re.compile(r"^[ \t]*\[[ \t]*([A-Za-z0-9_.\- \t]+?)[ \t]*\][ \t]*(?:#.*)?$", re.M)


class Source:
    """The file being loaded: its name and the line of every key path.

    The lines come from a scan of the text as slow as tomllib itself (10 000 connections:
    a second here), so it runs only when an error or an unknown key needs them; a table's
    own line (``header_line``, for ``source_line``) comes from a scan of ``[headers]``."""

    __slots__ = ("_headers", "_lines", "file", "text")

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text = file, text
        self._lines: dict[KeyPath, int] | None = None
        self._headers: dict[KeyPath, int] | None = None

    @property
    def lines(self) -> dict[KeyPath, int]:
        if self._lines is None:
            self._lines = key_lines(self.text)
        return self._lines

    def header_line(self, path: KeyPath) -> int | None:
        """The line of ``[a.b]`` for ``path`` ("a", "b"): plain headers are found by a
        regex; anything else (quoted names, inline tables) by the full scan."""
        if self._headers is None:
            self._headers = {}
            pos, line = 0, 1
            for m in _HEADER.finditer(self.text):
                line += self.text.count("\n", pos, m.start())
                pos = m.start()
                key = tuple(p.strip() for p in m.group(1).split("."))
                self._headers.setdefault(key, line)
        found = self._headers.get(path)
        return found if found is not None else self.lines.get(path)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(self.file, line_of(self.lines, path), format_path(path), message)


_KINDS: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _type_name(value: object) -> str:
    return _KINDS.get(type(value), "a date/time")


class Table:
    """One TOML table at ``path``."""

    def __init__(self, src: Source, path: KeyPath, data: Mapping[str, Any]) -> None:
        self.src = src
        self.path = path
        self.data = data
        self._seen: set[str] = set()

    def at(self, *parts: PathPart) -> KeyPath:
        return (*self.path, *parts)

    def error(self, key: str | KeyPath, message: str) -> ConfigError:
        path = self.at(key) if isinstance(key, str) else key
        return self.src.error(path, message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "missing (required)")
        return default

    def typed(self, key: str, kind: type[T], default: Any = _MISSING) -> T:
        value = self.raw(key, default)
        if value is default and key not in self.data:
            return value  # type: ignore[no-any-return]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not ok:
            raise self.error(
                key, f"must be {_KINDS.get(kind, kind.__name__)}, not {_type_name(value)}"
            )
        return value  # type: ignore[no-any-return]

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.typed(key, int, default)
        if not lo <= value <= hi:
            raise self.error(key, f"{value} is out of range {lo}..{hi}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.typed(key, str, default)
        if value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def convert(self, key: str, fn: Callable[[Any], T], default: Any = _MISSING) -> T:
        """``fn(value)``; its ValueError becomes a ConfigError at this key."""
        value = self.raw(key, default)
        if key not in self.data:
            return value  # type: ignore[no-any-return]
        try:
            return fn(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def strings(
        self, key: str, default: Any = _MISSING, *, split: bool = True
    ) -> list[tuple[KeyPath, str]]:
        """An array of strings (or one string: comma-separated as in strongSwan when
        ``split``, else one item), with the key path of each element for errors."""
        value = self.raw(key, default)
        if key not in self.data:
            return [(self.at(key), v) for v in value]
        if isinstance(value, str):
            if not split:
                return [(self.at(key), value)]
            return [(self.at(key), v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise self.error(key, f"must be an array of strings, not {_type_name(value)}")
        out = []
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise self.error(self.at(key, i), f"must be a string, not {_type_name(v)}")
            out.append((self.at(key, i), v))
        return out

    def table(self, key: str, default: Any = _MISSING) -> Table:
        value = self.raw(key, default)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, not {_type_name(value)}")
        return Table(self.src, self.at(key), value)

    def tables(self, key: str) -> list[Table]:
        """A table of tables, e.g. ``[connections.NAME]``: one Table per NAME."""
        outer = self.table(key, {})
        out = []
        for name in outer.data:
            out.append(outer.table(name))
        return out

    def finish(self) -> None:
        """Refuse keys that were never read (the first in file order)."""
        unknown = [k for k in self.data if k not in self._seen]
        if unknown:
            unknown.sort(key=lambda k: line_of(self.src.lines, self.at(k)))
            raise self.error(unknown[0], unknown_key(self.path, str(unknown[0])))
