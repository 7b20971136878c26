"""Decoded payloads by their bytes: the bodies a hub receives from branch after branch.

Every branch configured alike sends the same IKE_SA_INIT offer, names the hub in the same
IDr and asks for the same traffic selectors, and building the frozen values again is most
of what decoding those payloads costs. A memo per payload type maps a body's exact bytes
to the value its decoder made of them; the values are immutable, so handing the same one
to every message is safe. Only bodies that decoded are kept, and a value depends on the
body's bytes alone, so a hit returns what the decoder would: anything new, and anything
malformed, still goes through the decoders, which alone judge it.

Bounded: at most ``MEMO_MAX`` bodies of at most ``MEMO_BODY_MAX`` bytes per type; a peer
sending ever new bodies only empties it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pike.wire.bodies import GENERIC, Step, Unusual

MEMO_MAX = 256
MEMO_BODY_MAX = 1024

_GENERIC_UNPACK = GENERIC.unpack_from
_HEAD = GENERIC.size

# A body decoder: the message's bytes and the body's bounds, all of it used.
Decoder = Callable[[bytes, int, int], Any]


def memoized(
    decode: Decoder, memo: dict[bytes, Any], keep: Callable[[Any], bool] | None = None
) -> Step:
    """A step (see ``bodies.Step``) that finds the body in ``memo`` or decodes it with
    ``decode`` and keeps the value (when ``keep`` says it will recur)."""

    def step_memo(data: bytes, pos: int, end: int) -> tuple[Any, int, int]:
        next_kind, _, length = _GENERIC_UNPACK(data, pos)
        stop = pos + length
        if length < _HEAD or stop > end:
            raise Unusual  # the full way names what is wrong
        body = data[pos + _HEAD : stop]
        payload = memo.get(body)
        if payload is None:
            payload = decode(data, pos + _HEAD, stop)
            if length <= MEMO_BODY_MAX + _HEAD and (keep is None or keep(payload)):
                if len(memo) >= MEMO_MAX:
                    memo.clear()
                memo[body] = payload
        return payload, next_kind, stop

    return step_memo
