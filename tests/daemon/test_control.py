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


def test_who_may_change_state() -> None:
    from pike.daemon.peercred import Peer, may_change_state

    me = os.geteuid()
    assert may_change_state(Peer(1, 0, 0, ()), None)  # root
    assert may_change_state(Peer(1, me, 1, ()), None)  # piked's own user
    assert may_change_state(Peer(1, 5000, 5000, (100, 4242)), 4242)  # in pike-admin
    assert may_change_state(Peer(1, 5000, 4242, ()), 4242)  # primary group pike-admin
    if me != 5000:
        assert not may_change_state(Peer(1, 5000, 5000, (100,)), 4242)
        assert not may_change_state(Peer(1, 5000, 5000, (100,)), None)
    assert not may_change_state(None, 4242)


def test_state_changing_commands_need_root_or_pike_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: any member of group pike could terminate or reload. Now such a client
    may look (status, the log stream) but not change (terminate, or the initiate-wait
    stream ``pikectl initiate`` uses); with group pike-admin it may."""
    import subprocess

    from lib.prereq import require

    require(os.geteuid() == 0, "needs root to run a client as another user")
    import tempfile

    import pike.daemon.control as control

    monkeypatch.setattr(control, "admin_gid", lambda: 4242)
    top = tempfile.mkdtemp(prefix="pike-ctl-")  # pytest's tmp_path is 0700 root's
    os.chmod(top, 0o755)
    path = os.path.join(top, "run", "pike.sock")
    handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
        "status": lambda args: "up",
        "terminate": lambda args: "done",
    }
    python = "/usr/bin/python3"  # the venv's may not be readable by nobody
    require(os.path.exists(python), f"no {python}")
    started: list[dict[str, Any]] = []

    class Source:
        """A stream source; following ``initiate-wait`` is what starts a connection."""

        def __init__(self, starts: bool) -> None:
            self.starts = starts

        def follow(self, args: dict[str, Any]) -> Any:
            if self.starts:
                started.append(args)
            return self

        async def next(self) -> list[dict[str, Any]]:
            await asyncio.Event().wait()  # nothing more until the client closes
            return []

        def unfollow(self, stream: Any) -> None:
            pass

    streams: dict[str, Any] = {"log": Source(False), "initiate-wait": Source(True)}
    script = (  # the client's framing, stdlib only
        "import json, socket\n"
        "out = []\n"
        "for cmd in ('status', 'terminate', 'log', 'initiate-wait'):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        f"    s.connect({path!r})\n"
        "    s.sendall(json.dumps({'cmd': cmd}).encode() + b'\\n')\n"
        "    out.append(json.loads(s.makefile().readline()))\n"
        "print(json.dumps(out))\n"
    )

    def client(groups: list[int]) -> list[dict[str, Any]]:
        out = subprocess.run(
            [python, "-c", script],
            user=65534,
            group=65534,
            extra_groups=groups,
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
        ).stdout
        result: list[dict[str, Any]] = json.loads(out)
        return result

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        server = ControlServer(path, handlers, streams)
        await server.start()
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o666)  # the test's stand-in for group pike
        loop = asyncio.get_running_loop()
        try:
            plain = await loop.run_in_executor(None, client, [])
            admin = await loop.run_in_executor(None, client, [4242])
            return plain, admin
        finally:
            await server.close()

    try:
        plain, admin = asyncio.run(main())
    finally:
        import shutil

        shutil.rmtree(top, ignore_errors=True)
    assert plain[0] == {"ok": True, "result": "up"}
    assert plain[1]["ok"] is False and "pike-admin" in plain[1]["error"]
    assert plain[2] == {"ok": True, "result": "following"}
    assert plain[3] == {
        "ok": False,
        "error": "initiate-wait changes state: it needs root or group pike-admin",
    }
    following = {"ok": True, "result": "following"}
    assert admin == [
        {"ok": True, "result": "up"},
        {"ok": True, "result": "done"},
        following,
        following,
    ]
    assert len(started) == 1  # only the admin's initiate-wait started anything
