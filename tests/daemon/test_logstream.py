"""``pikectl log``'s server side: a bounded buffer per follower, the level filter, records
from other threads, and the control socket's stream framing (ended by the server)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pike.daemon.control import ControlError, ControlServer
from pike.daemon.control_client import follow
from pike.daemon.logstream import LogHub

log = logging.getLogger("pike.test.logstream")


def test_a_slow_follower_loses_the_oldest_lines_and_is_told() -> None:
    async def scenario() -> list[dict[str, Any]]:
        hub = LogHub()
        f = hub.follow({"level": "info"})
        f._buf = type(f._buf)(maxlen=3)  # a small buffer for the test
        for i in range(5):
            hub.handle(log.makeRecord(log.name, logging.INFO, "f", 1, "line %d", (i,), None))
        hub.handle(log.makeRecord(log.name, logging.DEBUG, "f", 1, "below", (), None))
        return await asyncio.wait_for(f.next(), 1)

    events = asyncio.run(scenario())
    assert events[0] == {"dropped": 2}
    assert [e["message"] for e in events[1:]] == ["line 2", "line 3", "line 4"]
    assert events[1]["level"] == "INFO" and events[1]["logger"] == "pike.test.logstream"


def test_bad_level_and_too_many_followers() -> None:
    async def scenario() -> None:
        hub = LogHub()
        with pytest.raises(ControlError, match="level must be one of"):
            hub.follow({"level": "chatty"})
        for _ in range(8):
            hub.follow({})
        with pytest.raises(ControlError, match="follow the log already"):
            hub.follow({})

    asyncio.run(scenario())


def test_follow_over_the_control_socket(tmp_path: Path) -> None:
    """A client follows; lines logged on the loop and in another thread arrive, filtered
    by level; closing the server ends the client's stream."""
    path = str(tmp_path / "pike.sock")
    hub = LogHub()
    root = logging.getLogger()
    got: list[dict[str, Any]] = []
    following = threading.Event()

    def client() -> None:
        for event in follow(path, "log", {"level": "warning"}):
            got.append(event)
            following.set()

    async def scenario() -> None:
        server = ControlServer(path, {}, {"log": hub})
        await server.start()
        root.addHandler(hub)
        old = log.level
        log.setLevel(logging.DEBUG)
        try:
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(None, client)
            while not hub._followers:
                await asyncio.sleep(0.01)
            log.info("not for a warning follower")
            log.warning("on the loop")
            await loop.run_in_executor(None, log.error, "from a thread")
            while len(got) < 2:
                await asyncio.sleep(0.01)
            await server.close()
            await asyncio.wait_for(done, 5)  # the stream ended with the server
        finally:
            log.setLevel(old)
            root.removeHandler(hub)

    asyncio.run(scenario())
    assert [(e["level"], e["message"]) for e in got] == [
        ("WARNING", "on the loop"),
        ("ERROR", "from a thread"),
    ]
    assert not hub._followers  # unfollowed when the stream ended
