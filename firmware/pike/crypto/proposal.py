"""Proposals as values, and strongSwan proposal strings (``aes256gcm16-prfsha384-ecp384``).

A ``ProposalSpec`` is one configured proposal: the algorithms we offer or accept for one
protocol (IKE or ESP), each transform type listing its choices in preference order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pike.crypto.ids import TransformType

Protocol = Literal["ike", "esp"]


@dataclass(frozen=True, slots=True)
class Algorithm:
    type: TransformType
    id: int
    key_length: int | None = None  # bits, for variable-length ciphers (AES)


@dataclass(frozen=True, slots=True)
class ProposalSpec:
    protocol: Protocol
    transforms: tuple[Algorithm, ...]

    def of(self, ttype: TransformType) -> tuple[Algorithm, ...]:
        return tuple(a for a in self.transforms if a.type == ttype)
