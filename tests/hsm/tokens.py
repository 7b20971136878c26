"""Real tokens for tests: SoftHSM2 with a private config, and a TPM 2.0 simulator.

``SoftHsm(tmp)``: a token directory and SOFTHSM2_CONF of its own; ``init(label)`` makes a
token (user PIN ``USER_PIN``). ``Tpm(tmp)``: swtpm on 127.0.0.1 (a free port pair),
a private dbus-daemon, tpm2-abrmd on it, and a tpm2-pkcs11 store with one token; every
process is ours and is stopped by PID (``start(init_store=False)``: a fresh TPM, no
token). The PINs here are test PINs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TPM_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
# Not hex and not digits only: "PIN not in the log" must not match inside an SPI or a count.
USER_PIN = "userpin-qz"
SO_PIN = "sopin-qzkx"


def softhsm_available() -> bool:
    return os.path.exists(SOFTHSM_MODULE) and shutil.which("softhsm2-util") is not None


def tpm_available() -> bool:
    tools = ("swtpm", "tpm2-abrmd", "tpm2_ptool", "dbus-daemon", "tpm2_getcap")
    return os.path.exists(TPM_MODULE) and all(shutil.which(t) for t in tools)


def uri(module: str, token: str, obj: str, pin_file: Path | None = None) -> str:
    q = f"module-path={module}"
    if pin_file is not None:
        q += f"&pin-source=file:{pin_file}"
    return f"pkcs11:token={token};object={obj}?{q}"


def reset_pike_tokens() -> None:
    """Forget pike's per-process token sessions, and re-read module config on next use."""
    from pike.hsm import pkcs11 as p

    p._TOKENS.clear()
    for mod in p._MODULES.values():
        if mod.lib is not None:
            mod.needs_reinit = True


class SoftHsm:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "softhsm"
        self.tokens = self.dir / "tokens"
        self.tokens.mkdir(parents=True)
        self.conf = self.dir / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {self.tokens}\nlog.level = ERROR\n")
        self.module = SOFTHSM_MODULE

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init(self, label: str) -> None:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True, capture_output=True, env=dict(os.environ, **self.env()),
        )  # fmt: skip

    def pull(self) -> Path:
        """'Remove' every token: move the token directory away."""
        away = self.dir / "away"
        self.tokens.rename(away)
        self.tokens.mkdir()
        return away

    def plug(self, away: Path) -> None:
        self.tokens.rmdir()
        away.rename(self.tokens)


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _wait(pred: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Tpm:
    """swtpm + private dbus + tpm2-abrmd + a tpm2-pkcs11 store with token ``label``."""

    def __init__(self, tmp: Path, label: str = "tpm") -> None:
        self.dir = tmp / "tpm"
        self.dir.mkdir(parents=True)
        self.label = label
        self.module = TPM_MODULE
        self.port = free_port_pair()
        self.bus_name = f"com.intel.tss2.Tabrmd.pk{os.getpid()}x{self.port}"
        self.bus = f"unix:path={self.dir}/bus"
        self.store = self.dir / "store"
        self.store.mkdir()
        self.swtpm_pid: int | None = None
        self.dbus: subprocess.Popen[bytes] | None = None
        self.abrmd: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        tcti = f"tabrmd:bus_name={self.bus_name},bus_type=session"
        return {
            "DBUS_SESSION_BUS_ADDRESS": self.bus,
            "TPM2_PKCS11_STORE": str(self.store),
            "TPM2_PKCS11_TCTI": tcti,
            "TPM2TOOLS_TCTI": tcti,
            "TPM2_PKCS11_LOG_LEVEL": "0",
        }

    def _run(self, *argv: str) -> str:
        r = subprocess.run(
            argv, capture_output=True, text=True, env=dict(os.environ, **self.env()), timeout=60
        )
        if r.returncode:
            raise RuntimeError(f"{argv[0]} {argv[1]}: {r.stderr[-500:]}")
        return r.stdout

    def start(self, init_store: bool = True) -> None:
        """``init_store=False``: a fresh TPM and an empty store, no token (init-token's job)."""
        state = self.dir / "state"
        state.mkdir()
        pidfile = self.dir / "swtpm.pid"
        subprocess.run(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear", "--daemon", "--pid", f"file={pidfile}"],
            check=True, capture_output=True,
        )  # fmt: skip
        _wait(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "swtpm pid file")
        self.swtpm_pid = int(pidfile.read_text().strip())
        _wait(self._swtpm_listens, 5, "swtpm's TPM socket")  # abrmd exits if it is not yet
        self.dbus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.bus}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: (self.dir / "bus").exists(), 5, "dbus socket")
        self.start_abrmd()
        if not init_store:
            return
        self._run("tpm2_ptool", "init")
        self._run("tpm2_ptool", "addtoken", "--pid=1", f"--sopin={SO_PIN}",
                  f"--userpin={USER_PIN}", f"--label={self.label}")  # fmt: skip

    def _swtpm_listens(self) -> bool:
        with socket.socket() as probe:  # swtpm takes the next client once this one closes
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def start_abrmd(self) -> None:
        log = self.dir / "abrmd.log"
        tcti = f"--tcti=swtpm:host=127.0.0.1,port={self.port}"
        argv = ["tpm2-abrmd", "--session", "--allow-root", "--flush-all",
                f"--dbus-name={self.bus_name}", tcti]  # fmt: skip
        starts, spawned = 0, 0.0

        def spawn() -> None:
            nonlocal starts, spawned
            starts, spawned = starts + 1, time.monotonic()
            with log.open("ab") as err:
                self.abrmd = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ, **self.env())
                )

        # Ready when the name answers (tpm2_getcap goes through it). Should abrmd exit (as
        # it does at once when the simulator does not answer), it is started again a second
        # later (five times at most), and its log says why if it never comes up.
        def ready() -> bool:
            assert self.abrmd is not None
            if self.abrmd.poll() is not None:
                if starts >= 5:
                    raise RuntimeError(f"tpm2-abrmd exited {starts} times")
                if time.monotonic() - spawned >= 1.0:
                    spawn()
                return False
            r = subprocess.run(
                ["tpm2_getcap", "properties-variable"], capture_output=True,
                env=dict(os.environ, **self.env()),
            )  # fmt: skip
            return r.returncode == 0

        spawn()
        try:
            _wait(ready, 10, "tpm2-abrmd")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its log: {log.read_text()[-800:]}") from None

    def stop_abrmd(self) -> None:
        if self.abrmd is not None:
            self.abrmd.terminate()
            self.abrmd.wait(5)
            self.abrmd = None

    def lockout_counter(self) -> int:
        out = self._run("tpm2_getcap", "properties-variable")
        for line in out.splitlines():
            if "TPM2_PT_LOCKOUT_COUNTER" in line:
                return int(line.split(":")[1].strip(), 0)
        raise RuntimeError("no TPM2_PT_LOCKOUT_COUNTER in tpm2_getcap output")

    def stop(self) -> None:
        self.stop_abrmd()
        if self.dbus is not None:
            self.dbus.terminate()
            self.dbus.wait(5)
        if self.swtpm_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.swtpm_pid, signal.SIGTERM)


_SHARED: Tpm | None = None


def shared_tpm(base: Path) -> Tpm:
    """One TPM simulator per test process: tpm2-pkcs11's tabrmd TCTI keeps the process's
    D-Bus session connection, so a second private bus would not be seen. Its variables
    stay in os.environ; it is stopped (by PID) when the process exits."""
    global _SHARED
    if _SHARED is None:
        import atexit

        t = Tpm(base / "shared-tpm", label="tpm")
        os.environ.update(t.env())
        try:
            t.start()
        except BaseException:
            t.stop()
            raise
        atexit.register(t.stop)
        _SHARED = t
    return _SHARED
