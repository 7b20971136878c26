"""One host test per guest tier: boot User-Mode-Linux (which has ESP) once, run a marked
set of tests inside it, and report. The host's kernel may lack ESP; this way a plain
``pytest tests`` still exercises the data plane for real.

The guests run in the background: once collection has selected tier tests,
tests/guest/conftest.py calls :func:`start_background`, which boots the selected tiers'
guests, longest first, ``PIKE_GUEST_JOBS`` at a time (default 2; ``0``: each tier boots in
its own test, one after another). A UML guest waits most of its time (lifetimes, DPD,
streams) and uses about half a core, so the host tests run beside them; the tier tests run
last and each waits for its guest, then judges the result exactly as a guest run in the
foreground. A session that ends early (``-x``, Ctrl-C) kills the guests."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from guest.uml import GuestError, GuestResult, guest_kernel, run_in_guest
from lib.prereq import unavailable

REPO = Path(__file__).resolve().parents[2]
# tests/kernel/conftest.py's skip reason for what only pike's UML kernel has (netdevsim,
# XFRM interfaces): the one skip a tier tolerates, and only when booting Debian's kernel.
PIKE_KERNEL_SKIP = "NEEDS THE PIKE UML KERNEL"
JOBS_ENV = "PIKE_GUEST_JOBS"
# Two guests at once: about one core between them, so the host tests beside them keep the
# other; the interop tier alone is about as long as the three others in a row.
DEFAULT_JOBS = 2


@dataclass(frozen=True)
class Tier:
    """A marked set of tests run in one guest. ``prepare`` runs on the host before the
    boot (e.g. builds strongSwan 6, whose cache the guest reads) and may narrow ``paths``;
    it returns the paths to run and notes for the log. ``seconds`` is the tier's idle
    duration, so the longest guests start first."""

    label: str
    marker: str
    paths: tuple[str, ...]
    timeout: float
    seconds: float
    show: Callable[[str], bool] = lambda line: False
    passed: int | None = None
    deselected_ok: bool = False
    prepare: Callable[[tuple[str, ...]], tuple[tuple[str, ...], list[str]]] | None = None


@dataclass
class _Job:
    tier: Tier
    done: threading.Event = field(default_factory=threading.Event)
    result: GuestResult | None = None
    error: BaseException | None = None  # pytest's skip/fail outcomes too, raised in the test
    notes: list[str] = field(default_factory=list)
    waited: float = 0.0  # seconds queued behind other guests (PIKE_GUEST_JOBS) before booting


_jobs: dict[str, _Job] = {}
summaries: list[str] = []  # one line per tier judged, for the session's terminal summary
_cancel = threading.Event()
_threads: list[threading.Thread] = []


def _jobs_allowed() -> int:
    value = os.environ.get(JOBS_ENV, "").strip()
    return int(value) if value else DEFAULT_JOBS


def _runnable() -> bool:
    """Whether guests can boot here; otherwise each tier test says why (skip or fail)."""
    if os.environ.get("PIKE_IN_GUEST") or os.geteuid() != 0:
        return False
    try:
        guest_kernel()
    except GuestError:
        return False
    return True


def start_background(tiers: Iterable[Tier]) -> None:
    """Boot the tiers' guests now, longest first, ``PIKE_GUEST_JOBS`` at a time."""
    jobs = _jobs_allowed()
    todo = [t for t in tiers if t.label not in _jobs]
    if jobs <= 0 or not todo or not _runnable():
        return
    queue = [_Job(t) for t in sorted(todo, key=lambda t: -t.seconds)]
    _jobs.update((job.tier.label, job) for job in queue)
    lock = threading.Lock()
    for n in range(min(jobs, len(queue))):
        thread = threading.Thread(
            target=_worker, args=(queue, lock), name=f"guest worker {n}", daemon=True
        )
        _threads.append(thread)
        thread.start()


def _worker(queue: list[_Job], lock: threading.Lock) -> None:
    """Boot the next queued tier's guest until none is left (or the session ended)."""
    t0 = time.monotonic()
    while True:
        with lock:
            if not queue:
                return
            job = queue.pop(0)
        job.waited = time.monotonic() - t0
        try:
            if _cancel.is_set():
                raise GuestError("the test session ended before this guest booted")
            job.result = _boot(job.tier, job.notes, _cancel)
        except BaseException as e:  # handed to the tier's test, which raises it there
            job.error = e
        finally:
            job.done.set()


def stop_background() -> None:
    """End of session: kill guests still running (their tests did not wait for them)."""
    _cancel.set()
    for thread in _threads:
        thread.join(timeout=30)


def _boot(tier: Tier, notes: list[str], cancel: threading.Event | None) -> GuestResult:
    paths = tier.paths
    if tier.prepare is not None:
        paths, more = tier.prepare(paths)
        notes.extend(more)
    python = REPO / ".venv/bin/python"
    command = [
        str(python if python.exists() else sys.executable),
        *("-m", "pytest", "-m", tier.marker, *paths, "-q", "-s", "-rs", "-p", "no:cacheprovider"),
    ]
    return run_in_guest(command, cwd=str(REPO), timeout=tier.timeout, cancel=cancel)


def run_tier(tier: Tier) -> list[str]:
    """Run ``pytest -m marker paths`` in the guest (or take the result of the guest started
    in the background); assert it passed with nothing skipped or deselected (exactly
    ``passed`` tests when given). Prints the summary and the output lines ``show`` picks
    (figures worth seeing in the host log); returns the output lines."""
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    if os.geteuid() != 0:
        unavailable(f"{tier.label} needs root (network namespaces inside the guest)")
    try:
        kernel = guest_kernel()
    except GuestError as e:
        unavailable(str(e))
        raise
    job = _jobs.get(tier.label)
    if job is None:  # not started in the background (PIKE_GUEST_JOBS=0): boot it now
        notes: list[str] = []
        result = _boot(tier, notes, None)
        how = "foreground"
    else:
        t0 = time.monotonic()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        result, notes = job.result, job.notes
        how = f"background, queued {job.waited:.0f}s, waited for {time.monotonic() - t0:.0f}s"
    for note in notes:
        print(note)
    return _judge(tier, kernel.origin, kernel.path, kernel.ours, result, how)


def _judge(
    tier: Tier, origin: str, path: str, ours: bool, result: GuestResult, how: str
) -> list[str]:
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    figures = (
        f"boot {result.boot_seconds:.2f}s, total {result.total_seconds:.0f}s, "
        f"cpu {result.cpu_seconds:.0f}s"
    )
    summaries.append(f"{tier.label} ({how}): {figures}: {summary}")
    print(f"\n{tier.label} in UML ({origin} kernel {path}, {how}): {figures}: {summary}")
    print("\n".join(line for line in lines if tier.show(line)))
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, output
    count = re.search(r"(\d+) passed", summary)
    assert count and int(count.group(1)) > 0, output
    if tier.passed is not None:
        assert int(count.group(1)) == tier.passed, summary
    if "skipped" in summary:  # ESP must be there in the guest; so must netdevsim in ours
        skips = [line for line in lines if line.startswith("SKIPPED")]
        assert not ours and all(PIKE_KERNEL_SKIP in line for line in skips), output
        print(
            f"!!! {tier.label}: {len(skips)} tests SKIPPED on Debian's linux.uml:\n"
            + "\n".join(skips)
        )
    if not tier.deselected_ok:
        assert "deselected" not in summary, summary  # every test named is of this tier
    return lines


def selected_tiers(items: Iterable[pytest.Item]) -> list[Tier]:
    """The tiers of the selected tests marked ``guest_tier(TIER)``, once each."""
    seen: dict[str, Tier] = {}
    for item in items:
        mark = item.get_closest_marker("guest_tier")
        if mark is not None and isinstance(mark.args[0], Tier):
            seen.setdefault(mark.args[0].label, mark.args[0])
    return list(seen.values())
