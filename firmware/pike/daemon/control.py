"""The control socket: JSON lines over a Unix stream socket.

Request ``{"cmd": "status", "args": {...}}`` -> one response line ``{"ok": true, "result":
...}`` or ``{"ok": false, "error": "..."}``; a connection may carry several requests. A
stream command (``log``) answers ``{"ok": true, "result": "following"}`` and then one
line per event until the client goes away. The
socket's directory is created 0750 and the socket is 0660: group pike may talk to it and
look; commands that change state (``peercred.STATE_CHANGING``) also need root or group
pike-admin (``peercred.may_change_state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import Any, Protocol

from pike.daemon.control_client import encode as _encode
from pike.daemon.control_client import request
from pike.daemon.peercred import ADMIN_GROUP, STATE_CHANGING, admin_gid, may_change_state, peer_of

__all__ = ["ControlError", "ControlServer", "request"]

log = logging.getLogger("pike.daemon.control")

MAX_REQUEST = 1 << 20  # one request line; far above any real one
Handler = Callable[[dict[str, Any]], Any]


class ControlError(Exception):
    """A request the daemon refuses; the message goes to the client as is."""


class Stream(Protocol):
    async def next(self) -> list[dict[str, Any]]: ...


class StreamSource(Protocol):
    """What a stream command follows (``pike.daemon.logstream.LogHub``)."""

    def follow(self, args: dict[str, Any]) -> Stream: ...  # raises ControlError
    def unfollow(self, stream: Any) -> None: ...


def _check_stale(path: str) -> None:
    """Remove a socket left by a dead daemon; refuse to steal a live one's."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
            return
    raise OSError(f"another daemon is listening on {path}")


class ControlServer:
    def __init__(
        self,
        path: str,
        handlers: dict[str, Handler],
        streams: dict[str, StreamSource] | None = None,
    ) -> None:
        self.path = path
        self._handlers = handlers
        self._streams = streams or {}
        self._following: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o750, exist_ok=True)
            os.chmod(parent, 0o750)  # makedirs' mode is filtered by the umask
        _check_stale(self.path)
        old = os.umask(0o117)  # no window where the socket is wider than 0660
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)

    async def close(self) -> None:
        for writer in list(self._following):  # their _serve sees EOF and ends
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        peer = peer_of(sock) if sock is not None else None
        admin = may_change_state(peer, admin_gid())
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_REQUEST
                    writer.write(_encode({"ok": False, "error": "request too long"}))
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                stream = self._stream_request(line)
                if stream is not None:
                    cmd, source, args = stream
                    if not admin and cmd in STATE_CHANGING:
                        writer.write(_encode(_refused(cmd)))
                        await writer.drain()
                        break
                    await self._follow(source, args, reader, writer)
                    break
                writer.write(_encode(self.dispatch(line, admin=admin)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _stream_request(self, line: bytes) -> tuple[str, StreamSource, dict[str, Any]] | None:
        """The name, source and args when ``line`` asks for a stream (else dispatch
        answers)."""
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(req, dict) or req.get("cmd") not in self._streams:
            return None
        args = req.get("args", {})
        cmd = req["cmd"]
        return (cmd, self._streams[cmd], args) if isinstance(args, dict) else None

    async def _follow(
        self,
        source: StreamSource,
        args: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Send ``source``'s events until the client closes (or sends anything)."""
        try:
            stream = source.follow(args)
        except ControlError as exc:
            writer.write(_encode({"ok": False, "error": str(exc)}))
            return
        writer.write(_encode({"ok": True, "result": "following"}))
        self._following.add(writer)
        eof = asyncio.ensure_future(reader.read(1))
        try:
            while True:
                nxt = asyncio.ensure_future(stream.next())
                await asyncio.wait({eof, nxt}, return_when=asyncio.FIRST_COMPLETED)
                if eof.done():
                    nxt.cancel()
                    return
                for event in nxt.result():
                    writer.write(_encode(event))
                # A slow client holds only this coroutine; its events wait in the
                # stream's own bounded buffer.
                await writer.drain()
        finally:
            eof.cancel()
            source.unfollow(stream)
            self._following.discard(writer)

    def dispatch(self, line: bytes, *, admin: bool = True) -> dict[str, Any]:
        """One request line -> the response object. ``admin``: the client may change
        state (else those commands are refused)."""
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "request is not JSON"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return {"ok": False, "error": 'request must be {"cmd": "...", "args": {...}}'}
        args = req.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        handler = self._handlers.get(req["cmd"])
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return {"ok": False, "error": f"unknown command {req['cmd']!r} (known: {known})"}
        if not admin and req["cmd"] in STATE_CHANGING:
            return _refused(req["cmd"])
        try:
            return {"ok": True, "result": handler(args)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            # A bug must not take the daemon down with it; the log has the traceback.
            log.exception("control command %s failed", req["cmd"])
            return {"ok": False, "error": f"internal error: {type(exc).__name__}"}


def _refused(cmd: str) -> dict[str, Any]:
    log.warning("control: %s refused (not root or group %s)", cmd, ADMIN_GROUP)
    return {"ok": False, "error": f"{cmd} changes state: it needs root or group {ADMIN_GROUP}"}
