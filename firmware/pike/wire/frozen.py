"""``@frozen``: the decorator of the codec's message values (payloads, header, transforms).

They are frozen dataclasses for the type checker (``mypy --strict`` rejects any
assignment to a field, across firmware and tests), but at run time plain slotted
dataclasses with the frozen kind's field-wise ``__eq__`` and ``__hash__``. Why: on
CPython 3.11 a frozen dataclass's ``__init__`` sets each field through
``object.__setattr__``, about 4x the cost of a slot store (a 4-field payload: 0.34 µs
against 0.08 µs), and a responder builds some 40 of them per handshake. Nothing in pike
writes to them after construction, so sharing a decoded value (``sa_body``'s caches)
stays safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, eq_default=True)
def frozen(cls: type[_T]) -> type[_T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
