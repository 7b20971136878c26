"""``@frozen``: the decorator of the codec's message values (payloads, header, transforms).

One decorator for all of pike's immutable values: ``pike.frozen`` (frozen dataclasses for
the type checker, plain slotted ones with the frozen kind's ``__eq__``/``__hash__`` at run
time; the codec builds some 40 a handshake). It lives outside ``pike.wire`` because the
kernel specs, policy and crypto values use it too, and those must not import the codec.
"""

from pike.frozen import frozen

__all__ = ["frozen"]
