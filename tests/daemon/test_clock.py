"""The daemon's clocks: LoopClock is the event loop's; VirtualClock jumps ahead on demand."""

from __future__ import annotations

import asyncio
import time

import pytest

from pike.daemon.clock import LoopClock, VirtualClock


def test_loop_clock_is_the_loops() -> None:
    async def scenario() -> tuple[float, float, float, float, list[str]]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop)
        fired: list[str] = []
        t = clock.call_at(loop.time() + 0.05, lambda: fired.append("x"))
        when = t.when()
        await asyncio.sleep(0.1)
        return clock.monotonic(), loop.time(), clock.wall(), when, fired

    mono, loop_time, wall, when, fired = asyncio.run(scenario())
    assert abs(mono - loop_time) < 0.01 and abs(wall - time.time()) < 1.0
    assert fired == ["x"] and when > 0


def test_virtual_clock_runs_due_timers_in_order_and_not_the_others() -> None:
    async def scenario() -> tuple[list[tuple[str, float]], float, float]:
        clock = VirtualClock(asyncio.get_running_loop(), wall_start=1_000_000.0)
        t0, w0 = clock.monotonic(), clock.wall()
        fired: list[tuple[str, float]] = []

        def at(name: str, delay: float) -> None:
            clock.call_at(t0 + delay, lambda: fired.append((name, clock.monotonic() - t0)))

        at("hour", 3600)
        at("minute", 60)
        at("day", 86400)
        cancelled = clock.call_at(t0 + 120, lambda: fired.append(("cancelled", 0.0)))
        cancelled.cancel()
        await clock.run_for(7200, settle=0.01)
        return fired, clock.monotonic() - t0, clock.wall() - w0

    fired, elapsed, wall = asyncio.run(scenario())
    assert [name for name, _ in fired] == ["minute", "hour"]
    assert 60 <= fired[0][1] < 61 and 3600 <= fired[1][1] < 3601
    assert 7200 <= elapsed < 7210 and abs(wall - elapsed) < 0.01


def test_virtual_clock_only_moves_forward() -> None:
    async def scenario() -> None:
        VirtualClock(asyncio.get_running_loop()).advance(-1)

    with pytest.raises(ValueError, match="forward"):
        asyncio.run(scenario())


def test_a_wall_clock_jump_moves_no_timer() -> None:
    """settimeofday either way: wall() jumps, monotonic() and the timers stay."""

    async def scenario() -> tuple[list[float], float, float]:
        clock = VirtualClock(asyncio.get_running_loop(), wall_start=1_800_000_000.0)
        t0, fired = clock.monotonic(), []
        clock.call_at(t0 + 60, lambda: fired.append(clock.monotonic() - t0))
        clock.jump_wall(86400)
        await asyncio.sleep(0.02)
        ahead = clock.wall()
        clock.jump_wall(-2 * 86400)
        await asyncio.sleep(0.02)
        before = list(fired)
        await clock.run_for(61, settle=0.01)
        return [*before, *fired], ahead, clock.wall()

    fired, ahead, back = asyncio.run(scenario())
    assert len(fired) == 1 and 60 <= fired[0] < 61  # not at either jump
    assert 1_800_086_400 <= ahead < 1_800_086_401
    assert 1_799_913_600 + 61 <= back < 1_799_913_600 + 63
