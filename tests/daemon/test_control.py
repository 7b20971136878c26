"""The control socket's JSON-lines framing, errors and permissions."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pike.daemon.control import ControlError, ControlServer, request


def _boom(args: dict[str, Any]) -> Any:
    raise RuntimeError("bug")


def _refuse(args: dict[str, Any]) -> Any:
    raise ControlError("no connection named 'x'")


HANDLERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "echo": lambda args: args,
    "boom": _boom,
    "refuse": _refuse,
}


async def _with_server(path: str, fn: Any) -> Any:
    server = ControlServer(path, HANDLERS)
    await server.start()
    try:
        return await asyncio.get_running_loop().run_in_executor(None, fn)
    finally:
        await server.close()


def test_round_trip_and_errors(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "pike.sock")

    def client() -> list[dict[str, Any]]:
        return [
            request(path, "echo", {"a": 1}),
            request(path, "nope"),
            request(path, "refuse"),
            request(path, "boom"),
        ]

    echo, unknown, refused, boom = asyncio.run(_with_server(path, client))
    assert echo == {"ok": True, "result": {"a": 1}}
    assert unknown == {"ok": False, "error": "unknown command 'nope' (known: boom, echo, refuse)"}
    assert refused == {"ok": False, "error": "no connection named 'x'"}
    assert boom == {"ok": False, "error": "internal error: RuntimeError"}
    assert not os.path.exists(path)  # removed on close


def test_several_requests_on_one_connection_and_garbage(tmp_path: Path) -> None:
    path = str(tmp_path / "pike.sock")

    def client() -> list[dict[str, Any]]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(b'{"cmd": "echo", "args": {"n": 1}}\n\nnot json\n[1]\n')
            s.sendall(b'{"cmd": "echo", "args": 5}\n{"cmd": "echo"}\n')
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return [json.loads(line) for line in data.splitlines()]

    out = asyncio.run(_with_server(path, client))
    assert out == [
        {"ok": True, "result": {"n": 1}},
        {"ok": False, "error": "request is not JSON"},
        {"ok": False, "error": 'request must be {"cmd": "...", "args": {...}}'},
        {"ok": False, "error": "args must be an object"},
        {"ok": True, "result": {}},
    ]


def test_permissions(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "pike" / "pike.sock")

    def client() -> tuple[int, int]:
        return (
            stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
            stat.S_IMODE(os.stat(path).st_mode),
        )

    dir_mode, sock_mode = asyncio.run(_with_server(path, client))
    assert (dir_mode, sock_mode) == (0o750, 0o660)


def test_stale_socket_is_replaced_live_one_is_not(tmp_path: Path) -> None:
    path = str(tmp_path / "pike.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # file left behind, nobody listening
    assert asyncio.run(_with_server(path, lambda: request(path, "echo")))["ok"]

    async def two() -> None:
        first = ControlServer(path, HANDLERS)
        await first.start()
        try:
            with pytest.raises(OSError, match="another daemon is listening"):
                await ControlServer(path, HANDLERS).start()
        finally:
            await first.close()

    asyncio.run(two())


def test_request_to_missing_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        request(str(tmp_path / "none.sock"), "status")
