"""A draft (``pike.swanctl.convert``) -> pike.toml text that pike's own loader accepts.

The draft is rendered and handed to ``load_config_text``, the loader piked and
``check-config`` use; whatever it refuses (a MODP-1024 proposal, an identity it cannot
parse, a PSK connection without a secret) is taken out, the smallest piece first (a
list element, a key, else the connection), and listed with the loader's own reason at
the swanctl line it came from. So the result is valid by construction, and the reasons
are the ones an operator would get from ``pikectl check-config``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pike.policy.loader import NO_DEFAULTS, DefaultProposals, load_config_text
from pike.policy.toml_table import ConfigError
from pike.swanctl.convert import Draft, Item, Note, Table

MAX_ROUNDS = 500  # each round removes something, so this only bounds a bug
_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string: JSON's escapes are TOML's


def render(tables: list[Table], header: Sequence[str] = ()) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    for t in tables:
        lines += ["", f"[{t.header}]"]
        for item in t.items:
            if isinstance(item.value, list):
                lines.append(f"{item.key} = [{', '.join(_toml(e) for e, _ in item.value)}]")
            else:
                lines.append(f"{item.key} = {_toml(item.value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def settle(
    draft: Draft, path: str = "<imported>", defaults: DefaultProposals = NO_DEFAULTS
) -> None:
    """Take out of ``draft`` what pike refuses, noting each piece, until it loads."""
    for _ in range(MAX_ROUNDS):
        try:
            load_config_text(render(draft.tables), path, defaults)
            return
        except ConfigError as exc:
            _take_out(draft, exc)
    raise RuntimeError("import-swanctl: the draft does not settle")  # a bug, not input


def _take_out(draft: Draft, exc: ConfigError) -> None:
    key, index = exc.key, None
    m = _INDEX.match(key)
    if m:
        key, index = m.group(1), int(m.group(2))
    table, item = _find(draft.tables, key)
    why = f"pike refuses it: {exc.message}"
    if table is not None and item is not None:
        if index is not None and isinstance(item.value, list) and index < len(item.value):
            text, where = item.value.pop(index)
            shown = "(secret)" if item.secret else json.dumps(text)
            draft.notes.append(Note(where, item.swan, f"{shown}: {why}"))
            if item.value:
                return
        else:  # the loader's message never holds a secret
            draft.notes.append(Note(item.where, item.swan, why))
        table.items.remove(item)
        return
    # A whole table is wrong (a required key missing, a PSK without a secret): the
    # connection (or secret) it belongs to goes.
    group = table.group if table is not None else _group_of(draft.tables, key)
    if group is None:
        raise RuntimeError(f"import-swanctl: cannot place {exc}")  # a bug, not input
    first = next(t for t in draft.tables if t.group == group or t.header == group)
    label = f"{exc.key}: " if exc.key and exc.key != group else ""
    draft.notes.append(Note(first.where, group, f"not carried over: {label}{exc.message}"))
    gone = [t for t in draft.tables if t.header == group or t.header.startswith(group + ".")]
    for t in gone:  # line by line: what went with it
        for i in t.items:
            draft.notes.append(Note(i.where, i.swan, f"not carried over with {group}"))
    draft.tables = [t for t in draft.tables if t not in gone]


def _find(tables: list[Table], key: str) -> tuple[Table | None, Item | None]:
    """The table whose header is the longest prefix of ``key``, and its item named by
    the rest (None when ``key`` is the table itself)."""
    holding = [t for t in tables if key == t.header or key.startswith(t.header + ".")]
    best = max(holding, key=lambda t: len(t.header), default=None)
    if best is None:
        return None, None
    rest = key[len(best.header) + 1 :]
    item = next((i for i in best.items if i.key == rest), None)
    return best, item


def _group_of(tables: list[Table], key: str) -> str | None:
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if any(t.group == prefix for t in tables):
            return prefix
    return None
