"""The fast TOML reader gives exactly what ``tomllib`` gives (values, types, key order,
and the same error for a bad text), on generated configs in and around its subset and on
a hub config with random one-character edits; and it really reads the subset itself."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import TypeVar

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.bench_hub import pike_toml
from pike.policy import toml_fast

T = TypeVar("T")


def outcome(load: object, text: str) -> tuple[str, str]:
    """What a reader makes of ``text``: its result's repr (types and order show) or its
    error message (which carries tomllib's line and column)."""
    try:
        return "ok", repr(load(text))  # type: ignore[operator]
    except tomllib.TOMLDecodeError as exc:
        return "error", str(exc)


def in_subset(text: str) -> bool:
    try:
        toml_fast._Reader().read(text)
    except toml_fast._Unsupported:
        return False
    return "\r" not in text


def assert_same(text: str) -> None:
    assert outcome(toml_fast.loads, text) == outcome(tomllib.loads, text), text


# Pieces of lines: a few names (so that keys and headers repeat), values in the subset
# and, for about one line in eight, pieces just outside it (escapes, floats, dates, other
# integer forms, quoted and dotted keys, nesting, control characters, bad syntax).
BARE = [f"{k}{i}" for k in ("a", "c-", "d_", "", "true") for i in range(8)]
ODD_NAMES = ['"q"', "a.b", " a ", "é", "a b"]
CHARS = list("az09 ,#[]{}=.'\"é€\t")
ODD_CHARS = ["\\", "\x01", "\x7f", "\\n"]
ODD_SCALARS = ["012", "+1", "1_000", "1.5", "0x1f", "1979-05-27", "inf", "tru", '"""x"""', ""]


@st.composite
def pieces(draw: st.DrawFn, clean: list[T], odd: list[T], rate: int) -> T:
    """One of ``clean``, or one in ``rate`` times (never when 0) one of ``odd``."""
    return draw(st.sampled_from(odd if rate and draw(st.integers(1, rate)) == 1 else clean))


@st.composite
def scalars(draw: st.DrawFn, rate: int) -> str:
    kind = draw(st.integers(0, 4))
    if kind <= 1:
        text = "".join(draw(st.lists(pieces(CHARS, ODD_CHARS, rate), max_size=5)))
        quote = '"' if kind == 0 else "'"
        return (
            quote + text.replace(quote, "") + quote if draw(st.booleans()) else quote + text + quote
        )
    if kind == 2:
        return str(draw(st.integers(-(10**20), 10**20)))
    return draw(pieces(["true", "false", "0", "-0"], ODD_SCALARS, rate))


@st.composite
def values(draw: st.DrawFn, rate: int, depth: int = 0) -> str:
    kind = draw(st.integers(0, 3 if depth == 0 else 0))
    if kind <= 1:
        return draw(scalars(rate))
    items = draw(
        st.lists(
            values(rate, depth + 1) if draw(st.integers(0, 7)) == 0 else scalars(rate), max_size=3
        )
    )
    sep = draw(pieces([", ", ","], [" ,", ",,", "", ",\n"], rate))
    if kind == 2:
        return "[" + sep.join(items) + draw(pieces(["", " ", ","], [" , ", "\n"], rate)) + "]"
    pairs = [f"{draw(pieces(BARE, ODD_NAMES, rate))} = {v}" for v in items]
    return "{ " + sep.join(pairs) + draw(pieces([" ", ""], [",", "\n"], rate)) + "}"


@st.composite
def lines(draw: st.DrawFn, rate: int) -> str:
    kind = draw(st.integers(0, 5))
    comment = draw(pieces(["", "", " # note", " # é\t", "#"], [" # \x02", "# \x7f"], rate))
    if kind == 0:
        path = ".".join(draw(st.lists(pieces(BARE, ODD_NAMES, rate), min_size=1, max_size=3)))
        brackets = draw(
            pieces([("[", "]"), ("[ ", " ]")], [("[[", "]]"), ("[", ""), ("[", "]x")], rate)
        )
        return brackets[0] + path + brackets[1] + comment
    if kind == 1:
        return draw(pieces(["", "  ", "\t# only a comment"], ["\r", "=", "x", " \f"], rate))
    eq = draw(pieces([" = ", "=", "\t=  "], [" == ", " "], rate))
    return draw(pieces(BARE, ODD_NAMES, rate)) + eq + draw(values(rate)) + comment


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 60, 8]).flatmap(lambda rate: st.lists(lines(rate), max_size=12)))
@example(["a0 = {  }", "[a0.a0]"])  # a header may not extend an inline table
def test_generated_texts_read_as_tomllib_reads_them(text_lines: list[str]) -> None:
    assert_same("\n".join(text_lines))


def test_a_hub_config_is_read_by_the_subset_reader() -> None:
    text = pike_toml(3, Path("/run/pike/x.sock"))
    assert in_subset(text)  # not tomllib's work: the comparisons above are not vacuous
    assert_same(text)


def test_one_character_edits_of_a_hub_config_read_as_tomllib_reads_them() -> None:
    text = pike_toml(3, Path("/run/pike/x.sock"))
    rng = random.Random(12)
    alphabet = "\n \t\"'#[]{}=,.ax0-\\é"
    subset = 0
    for _ in range(1500):
        i = rng.randrange(len(text))
        edit = rng.choice(("insert", "delete", "replace"))
        c = rng.choice(alphabet)
        if edit == "insert":
            edited = text[:i] + c + text[i:]
        elif edit == "delete":
            edited = text[:i] + text[i + 1 :]
        else:
            edited = text[:i] + c + text[i + 1 :]
        subset += in_subset(edited)
        assert_same(edited)
    assert subset > 500  # most edits stay in the subset: the fast path is what was compared


def test_repeated_values_are_separate_objects() -> None:
    """tomllib gives each line its own list and table: so must the memo of values."""
    got = toml_fast.loads('[a]\nx = ["1"]\nt = { k = ["2"] }\n[b]\nx = ["1"]\nt = { k = ["2"] }\n')
    assert got == tomllib.loads(
        '[a]\nx = ["1"]\nt = { k = ["2"] }\n[b]\nx = ["1"]\nt = { k = ["2"] }\n'
    )
    assert got["a"]["x"] is not got["b"]["x"]
    assert got["a"]["t"] is not got["b"]["t"] and got["a"]["t"]["k"] is not got["b"]["t"]["k"]
