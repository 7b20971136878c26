"""``@frozen``: immutable value classes that are cheap to construct.

A class under ``@frozen`` is a frozen slotted dataclass for the type checker (``mypy
--strict`` rejects any assignment to a field, in firmware and tests alike) and hashes and
compares by its fields as one. At run time it is a plain slotted dataclass with the frozen
kind's field-wise ``__eq__`` and ``__hash__``: on CPython 3.11 a frozen dataclass's
``__init__`` stores each field through ``object.__setattr__``, several times the cost of a
slot store (``SaSpec``, 22 fields: 2.3 µs against 0.9 µs), and a responder handshake
builds dozens of these values (specs, actions, agreed transforms). Nothing in pike assigns
to them after construction (the checker sees to it), so values shared between SAs, caches
and ``pike.kernel``/``pike.daemon`` stay safe; a field-wise cache set on purpose still goes
through ``object.__setattr__``, as it did on the frozen kind.

The codec's payloads use it too, so it lives outside
``pike.wire``: policy and crypto values must not import the codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform, overload

_T = TypeVar("_T")


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


@overload
def frozen(*, repr: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, eq_default=True, field_specifiers=(field,))
def frozen(
    cls: type[_T] | None = None, /, *, repr: bool = True
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    def wrap(c: type[_T]) -> type[_T]:
        return dataclass(slots=True, unsafe_hash=True, repr=repr)(c)

    return wrap if cls is None else wrap(cls)
