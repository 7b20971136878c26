"""The control socket's client side (``pikectl``): one request, one JSON line back.

Kept apart from the server so that a ``pikectl`` call imports neither asyncio nor
logging: the CLI's start-up time is most of what an operator waits for.
"""

from __future__ import annotations

import json
import socket
import time

# typing is not imported at run time: pikectl's calls should not pay 2 ms for it (issue #12)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def request(
    path: str, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """Send one request and return the response object (client side, blocking).

    Raises OSError when the socket cannot be reached, ValueError on a garbled answer.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(encode({"cmd": cmd, "args": args or {}}))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    resp = json.loads(buf)
    if not isinstance(resp, dict) or "ok" not in resp:
        raise ValueError("malformed answer from the daemon")
    return resp


def follow(
    path: str, cmd: str, args: dict[str, Any] | None = None, deadline: float | None = None
) -> Iterator[dict[str, Any]]:
    """Ask for a stream (``log``, ``initiate``) and yield its events until the daemon
    closes it, or until ``deadline`` (``time.monotonic``), when TimeoutError is raised.

    The first answer is checked like ``request``'s: an ``{"ok": false}`` is yielded as is
    and ends the stream. Raises OSError when the socket cannot be reached."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10.0)
        s.connect(path)
        s.sendall(encode({"cmd": cmd, "args": args or {}}))
        f = s.makefile("rb")
        first = json.loads(f.readline() or b"null")
        if not isinstance(first, dict) or "ok" not in first:
            raise ValueError("malformed answer from the daemon")
        if not first["ok"]:
            yield first
            return
        s.settimeout(None)  # events come when piked logs
        while True:
            if deadline is not None:
                s.settimeout(max(0.001, deadline - time.monotonic()))
            line = f.readline()
            if not line:
                return
            yield json.loads(line)
