"""The UML runner itself: error paths on the host, and one real boot."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from guest import tier, uml
from lib.prereq import unavailable


def test_missing_linux_uml_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(uml.KERNEL_ENV, "debian")
    monkeypatch.setattr(uml.shutil, "which", lambda name: None)
    monkeypatch.setattr(uml.os, "access", lambda path, mode: False)
    with pytest.raises(uml.GuestError, match=r"apt-get install .*user-mode-linux"):
        uml.run_in_guest(["true"])


def test_env_script_keeps_only_known_variables() -> None:
    text = uml._env_script({"PATH": "/x:/y", "SECRET": "no", "PIKE_LOG": "a b'c"})
    assert "export PATH=/x:/y\n" in text and "SECRET" not in text
    assert "export PIKE_LOG='a b'\"'\"'c'\n" in text and "PIKE_IN_GUEST=uml" in text


def test_cli_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        uml.main(["--"])
    assert "no command given" in capsys.readouterr().err


def test_guest_runs_command_in_cwd_with_exit_code(tmp_path: Path) -> None:
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    try:
        kernel = uml.guest_kernel()
    except uml.GuestError as e:
        unavailable(str(e))
    script = "pwd; echo out; echo err >&2; test -w /tmp && ip netns list >/dev/null; exit 3"
    result = uml.run_in_guest(["sh", "-c", script], cwd=str(tmp_path), timeout=60)
    print(
        f"\nUML {kernel.origin}: boot {result.boot_seconds:.2f}s, all {result.total_seconds:.2f}s"
    )
    assert result.returncode == 3
    assert result.stdout.splitlines() == [str(tmp_path), "out"]
    assert result.stderr.strip() == "err"
    assert 0 < result.boot_seconds < result.total_seconds


def test_kernel_choice_prefers_pike_kernels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    monkeypatch.setattr(uml, "SHARED_KERNEL", shared)
    monkeypatch.setattr(uml, "CACHE_KERNEL", cache)
    monkeypatch.delenv(uml.KERNEL_ENV, raising=False)
    for path in (shared, cache):
        path.write_text("")
        path.chmod(0o755)
    assert uml.guest_kernel() == uml.GuestKernel(str(shared), None, "shared")
    shared.unlink()
    kernel = uml.guest_kernel()
    assert (kernel.origin, kernel.ours) == ("cache", True)
    monkeypatch.setenv(uml.KERNEL_ENV, str(tmp_path / "nope"))
    with pytest.raises(uml.GuestError, match="not an executable kernel"):
        uml.guest_kernel()
    monkeypatch.delenv(uml.KERNEL_ENV)
    cache.chmod(0o644)  # there but broken: CI fails, a developer falls back to Debian's
    monkeypatch.setenv("CI", "true")
    with pytest.raises(uml.GuestError, match="exists but is not an executable kernel"):
        uml.guest_kernel()
    monkeypatch.setenv(uml.KERNEL_ENV, "debian")  # Debian's linux.uml and its modules
    monkeypatch.setattr(uml, "uml_binary", lambda: "/usr/bin/linux.uml")
    monkeypatch.setattr(uml, "modules_dir", lambda: Path("/usr/lib/uml/modules/6.1"))
    kernel = uml.guest_kernel()
    assert (kernel.origin, kernel.ours) == ("debian", False)


def test_built_in_kernel_loads_no_modules() -> None:
    assert uml._module_steps(None) == ("", "")
    insmod, modprobe = uml._module_steps(Path("/usr/lib/uml/modules/6.1"))
    assert insmod.startswith("insmod /usr/lib/uml/modules/6.1/kernel/fs/overlayfs/overlay.ko")
    assert "modprobe -a xfrm_algo xfrm_user esp4" in modprobe


def test_cancelled_guest_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest left running in the background when the session ends goes at once."""
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    try:
        uml.guest_kernel()
    except uml.GuestError as e:
        unavailable(str(e))
    run_dirs: list[str] = []  # this guest's, named in its UML processes' command lines
    mkdtemp = uml.tempfile.mkdtemp

    def made(prefix: str) -> str:
        run_dirs.append(mkdtemp(prefix=prefix))
        return run_dirs[-1]

    monkeypatch.setattr(uml.tempfile, "mkdtemp", made)
    cancel = threading.Event()
    running: list[list[str]] = []

    def stop() -> None:
        running.append(_processes_naming(f"uml_dir={run_dirs[0]} "))
        cancel.set()

    timer = threading.Timer(3.0, stop)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(uml.GuestError, match="cancelled"):
        uml.run_in_guest(["sleep", "120"], timeout=60, cancel=cancel)
    assert time.monotonic() - t0 < 20
    assert len(run_dirs) == 1 and running[0]  # it was running, and found by its run_dir
    assert not _processes_naming(f"uml_dir={run_dirs[0]} ")


def _processes_naming(text: str) -> list[str]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes().replace(b"\0", b" "):
                pids.append(cmdline.parent.name)
        except OSError:
            pass
    return pids


def test_background_tiers_queue_longest_first_and_hand_errors_to_their_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler alone (no boot): one worker takes the longest tier first; a tier's
    failure (here a skip from its prepare step) is raised by that tier's own test."""
    booted: list[str] = []

    def boot(t: tier.Tier, notes: list[str], cancel: threading.Event | None) -> uml.GuestResult:
        booted.append(t.label)
        if t.label == "short":
            pytest.skip("prerequisite missing: a test of the scheduler")
        notes.append(f"{t.label} prepared")
        return uml.GuestResult(0, "1 passed in 1s\n", "", 1.0, 2.0, 0.5)

    monkeypatch.setenv(tier.JOBS_ENV, "1")
    monkeypatch.setattr(tier, "_runnable", lambda: True)
    monkeypatch.setattr(tier, "_boot", boot)
    monkeypatch.setattr(tier, "_jobs", {})
    monkeypatch.setattr(tier, "_threads", [])
    short = tier.Tier("short", "m", ("a",), timeout=9, seconds=10)
    long = tier.Tier("long", "m", ("b",), timeout=9, seconds=100)
    tier.start_background([short, long])
    for thread in tier._threads:
        thread.join(10)
    assert booted == ["long", "short"] and len(tier._threads) == 1
    job_long, job_short = tier._jobs["long"], tier._jobs["short"]
    assert job_long.notes == ["long prepared"] and job_long.result is not None
    assert isinstance(job_short.error, pytest.skip.Exception)
