"""Run a command inside a User-Mode-Linux guest that has ESP (the kernel test tier).

The guest kernel (``guest_kernel()``) is pike's own UML build when there is one: ESP, XFRM
interfaces and netdevsim (a NIC driver that takes ESP offload) built in, from
``<repo>/../shared/uml/linux`` or the per-machine cache ``/var/cache/pike-uml/linux`` that
``tests/guest/build-uml-kernel.sh`` fills; else Debian's ``linux.uml`` and its modules
(no XFRM interfaces, no netdevsim: the tests needing them skip and say so).
``PIKE_UML_KERNEL`` names a kernel explicitly (a path, or ``debian``). It boots with the host
root read-only over hostfs and a tmpfs overlay on top, so the venv, the repo and iproute2 are
all there; the command runs as root in the same working directory. Output and exit status
come back through a hostfs mount of a per-run directory on the host.

    tests/guest/uml-run -- .venv/bin/pytest -m kernel tests/kernel

Library use: ``run_in_guest(["cmd", ...]) -> GuestResult``. Standard library only (the
host side runs before anything is installed into the guest).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

UML_BINARY = "linux.uml"
UML_MODULES = Path("/usr/lib/uml/modules")
REPO = Path(__file__).resolve().parents[2]
SHARED_KERNEL = REPO.parent / "shared/uml/linux"  # read-only beside the clone (CI, dev hosts)
CACHE_KERNEL = Path("/var/cache/pike-uml/linux")  # tests/guest/build-uml-kernel.sh's output
KERNEL_ENV = "PIKE_UML_KERNEL"
GUEST_RUN = "/run/pike-guest"  # where the host run directory appears inside the guest

# ESP, XFRM and the crypto the kernel tier uses; names missing from this UML build or
# built in are fine (modprobe -a just loads what is modular).
MODULES: tuple[str, ...] = (
    "xfrm_algo",
    "xfrm_user",
    "esp4",
    "esp6",
    "ah4",
    "xfrm4_tunnel",
    "tunnel4",
    "authenc",
    "authencesn",
    "gcm",
    "ghash-generic",
    "ctr",
    "cbc",
    "seqiv",
    "echainiv",
    "hmac",
    "sha256_generic",
    "sha512_generic",
    "chacha20poly1305",
    "chacha_generic",
    "poly1305_generic",
    "aes_generic",
    "veth",
    "udp_tunnel",
    # seqiv/echainiv draw IVs from stdrng
    "drbg",
    "jitterentropy_rng",
    "ansi_cprng",
)

# Variables worth carrying into the guest; everything else starts clean.
PASS_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "PYTHONHASHSEED")
PASS_ENV_PREFIXES = ("PIKE_", "PYTEST_")

STAGE1 = """#!/bin/sh
# PID 1 of the UML guest, on the read-only host root: build a writable overlay root.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p {run} /run/ovl /run/root
mount -t hostfs -o {host_run} hostfs {run}
{insmod_overlay}
mount -t tmpfs tmpfs /run/ovl
mkdir -p /run/ovl/upper /run/ovl/work
fail() {{ echo "$1" >>{run}/guest.log; echo o >/proc/sysrq-trigger; }}
mount -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work \\
    /run/root 2>>{run}/guest.log || fail "overlay root failed"
mkdir -p /run/root/run
mount -t tmpfs -o mode=755 tmpfs /run/root/run
mkdir -p /run/root{run}
mount --move {run} /run/root{run}
exec chroot /run/root /bin/sh {run}/stage2.sh
"""

STAGE2 = """#!/bin/sh
# Inside the overlay root: a normal-looking system, then the command.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mkdir -p /dev/pts /dev/shm && mount -t tmpfs tmpfs /dev/shm
# /tmp stays the overlay: writable (tmpfs upper) and still showing the host /tmp, so a
# working directory under /tmp (pytest tmp_path) exists in the guest too.
test -w /tmp || echo "/tmp not writable" >>{run}/guest.log
mkdir -p /run/netns /run/lock
[ -e /var/run ] || ln -s /run /var/run
{load_modules}
# Everything needed is loaded now; without autoload the kernel's request_module() calls
# (one per new crypto instance, ~0.3 s each under UML) fail fast instead of exec'ing modprobe.
{autoload}
ip link set lo up
cut -d' ' -f1 /proc/uptime >{run}/boot_seconds
. {run}/env.sh
cd {cwd} || echo "cannot cd to {cwd}" >>{run}/guest.log
{command} >{run}/stdout 2>{run}/stderr </dev/null
echo $? >{run}/status
sync
echo o >/proc/sysrq-trigger
"""


class GuestError(RuntimeError):
    """The guest could not run the command (missing UML, boot failure, timeout)."""


@dataclass(frozen=True)
class GuestResult:
    returncode: int
    stdout: str
    stderr: str
    boot_seconds: float  # guest uptime when the command started
    total_seconds: float  # host wall clock, boot to power-off
    cpu_seconds: float = float("nan")  # host CPU (user + system) of the UML processes


@dataclass(frozen=True)
class GuestKernel:
    path: str
    modules: Path | None  # Debian's module tree; None: everything needed is built in
    origin: str  # "shared", "cache", "env" or "debian": said in logs and skip reasons

    @property
    def ours(self) -> bool:
        """pike's build (XFRM interfaces, netdevsim), not Debian's linux.uml."""
        return self.modules is None


def guest_kernel() -> GuestKernel:
    """The kernel to boot: $PIKE_UML_KERNEL, ../shared/uml/linux, the cache, linux.uml."""
    explicit = os.environ.get(KERNEL_ENV, "")
    if explicit and explicit != "debian":
        if not os.access(explicit, os.X_OK):
            raise GuestError(f"{KERNEL_ENV}={explicit}: not an executable kernel")
        return GuestKernel(explicit, None, "env")
    if not explicit:
        for path, origin in ((SHARED_KERNEL, "shared"), (CACHE_KERNEL, "cache")):
            if os.access(path, os.X_OK):
                return GuestKernel(str(path), None, origin)
            if path.exists() and os.environ.get("CI", "").lower() == "true":
                # there but broken: in CI that must not quietly become Debian's kernel
                raise GuestError(f"{path} exists but is not an executable kernel")
    return GuestKernel(uml_binary(), modules_dir(), "debian")


def uml_binary() -> str:
    """Debian's linux.uml (the fallback kernel)."""
    path = shutil.which(UML_BINARY) or (
        "/usr/bin/linux.uml" if os.access("/usr/bin/linux.uml", os.X_OK) else None
    )
    if path is None:
        raise GuestError(
            "no UML kernel: neither ../shared/uml/linux nor /var/cache/pike-uml/linux "
            "(tests/guest/build-uml-kernel.sh) nor linux.uml "
            "(apt-get install --no-install-recommends user-mode-linux)"
        )
    return path


def modules_dir() -> Path:
    versions = sorted(UML_MODULES.glob("*")) if UML_MODULES.is_dir() else []
    if not versions:
        raise GuestError(f"no UML modules under {UML_MODULES} (package user-mode-linux)")
    return versions[-1]


def _env_script(env: dict[str, str]) -> str:
    keep = {k: v for k, v in env.items() if k in PASS_ENV or k.startswith(PASS_ENV_PREFIXES)}
    keep.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    keep["HOME"] = "/tmp"
    keep["PIKE_IN_GUEST"] = "uml"
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(keep.items()))


def run_in_guest(
    command: list[str],
    cwd: str | None = None,
    timeout: float = 300.0,
    mem: str = "768M",
    env: dict[str, str] | None = None,
    autoload: bool = False,
    cancel: threading.Event | None = None,
) -> GuestResult:
    """Boot UML, run ``command`` as root in ``cwd``, power off; return its exit code and
    output. ``autoload`` keeps on-demand module loading (slow) for modules beyond MODULES.
    Setting ``cancel`` kills the guest (a test session ending under a guest running in the
    background). Raises GuestError when the guest itself fails."""
    kernel = guest_kernel()
    cwd = os.path.abspath(cwd or os.getcwd())
    run_dir = Path(tempfile.mkdtemp(prefix="pike-uml-"))
    try:
        env = env or dict(os.environ)
        env = {**env, "PIKE_GUEST_KERNEL": kernel.origin}  # tests inside say which kernel
        return _boot(kernel, command, cwd, timeout, mem, env, autoload, run_dir, cancel)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _module_steps(modules: Path | None) -> tuple[str, str]:
    """Stage 1's overlay insmod and stage 2's modprobe; nothing for a kernel that has it
    all built in (Debian's module tree would not match it anyway)."""
    if modules is None:
        return "", ""
    overlay = modules / "kernel/fs/overlayfs/overlay.ko"
    return (
        f"insmod {overlay} 2>>{GUEST_RUN}/guest.log",
        # modprobe wants /lib/modules/<release>; the host has none, the overlay is writable.
        f"rm -rf /usr/lib/modules && ln -s {UML_MODULES} /usr/lib/modules\n"
        f"modprobe -a {' '.join(MODULES)} 2>>{GUEST_RUN}/guest.log",
    )


def _boot(
    kernel: GuestKernel,
    command: list[str],
    cwd: str,
    timeout: float,
    mem: str,
    env: dict[str, str],
    autoload: bool,
    run_dir: Path,
    cancel: threading.Event | None = None,
) -> GuestResult:
    insmod_overlay, load_modules = _module_steps(kernel.modules)
    stage1 = run_dir / "init.sh"
    stage1.write_text(STAGE1.format(run=GUEST_RUN, host_run=run_dir, insmod_overlay=insmod_overlay))
    (run_dir / "stage2.sh").write_text(
        STAGE2.format(
            run=GUEST_RUN,
            load_modules=load_modules,
            cwd=shlex.quote(cwd),
            command=shlex.join(command),
            autoload="" if autoload else "echo >/proc/sys/kernel/modprobe",
        )
    )
    (run_dir / "env.sh").write_text(_env_script(env))
    stage1.chmod(0o755)
    argv = [
        kernel.path,
        f"mem={mem}",
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
        f"init={stage1}",
        f"uml_dir={run_dir}",
        # unique per guest: one process may run several guests at once (tests/guest/tier.py)
        f"umid=pike{os.getpid()}-{run_dir.name.rsplit('-', 1)[-1]}",
        "quiet",
        "con=null",
        "con0=fd:0,fd:1",
        "ssl=null",
    ]
    console = run_dir / "console.log"
    start = time.monotonic()
    with open(console, "wb") as out:
        # Own session: on timeout the whole UML process group (its helper processes
        # too) goes, and nothing else.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = start + timeout
        cpu = float("nan")
        while True:
            # wait4, not Popen.poll: its rusage is the guest's CPU time (UML reaps the host
            # processes of its guest processes, so their time is in it)
            pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(wstatus)
                cpu = usage.ru_utime + usage.ru_stime
                break
            if cancel is not None and cancel.is_set():
                _kill_group(proc)
                raise GuestError("UML guest cancelled (the test session ended)")
            if time.monotonic() >= deadline:
                _kill_group(proc)
                raise GuestError(
                    f"UML guest timed out after {timeout:.0f}s\n{_diagnostics(run_dir)}"
                )
            time.sleep(0.2)
    total = time.monotonic() - start
    status = run_dir / "status"
    if not status.exists():
        raise GuestError(f"guest did not report an exit status\n{_diagnostics(run_dir)}")
    boot = run_dir / "boot_seconds"
    return GuestResult(
        returncode=int(status.read_text().strip() or "255"),
        stdout=_read(run_dir / "stdout"),
        stderr=_read(run_dir / "stderr"),
        boot_seconds=float(boot.read_text().strip()) if boot.exists() else float("nan"),
        total_seconds=total,
        cpu_seconds=cpu,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the UML process group we started and wait until all of it is gone."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _diagnostics(run_dir: Path) -> str:
    parts = []
    for name in ("guest.log", "console.log", "stderr"):
        text = _read(run_dir / name).strip()
        if text:
            parts.append(f"--- {name} (tail) ---\n" + "\n".join(text.splitlines()[-40:]))
    return "\n".join(parts) or "(no guest output)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="uml-run", description="Run a command inside a UML guest with ESP."
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--mem", default="768M")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("-q", "--quiet", action="store_true", help="no timing line")
    parser.add_argument(
        "--autoload", action="store_true", help="let the kernel load further modules on demand"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (uml-run -- CMD ...)")
    try:
        result = run_in_guest(
            command, cwd=args.cwd, timeout=args.timeout, mem=args.mem, autoload=args.autoload
        )
    except GuestError as e:
        print(f"uml-run: {e}", file=sys.stderr)
        return 125
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if not args.quiet:
        print(
            f"uml-run: exit {result.returncode}, boot {result.boot_seconds:.2f}s, "
            f"total {result.total_seconds:.2f}s, cpu {result.cpu_seconds:.2f}s",
            file=sys.stderr,
        )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
