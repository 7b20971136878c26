"""FRR (Debian's ``frr``) as a BGP speaker inside one network namespace: zebra (which puts
the learned routes into the namespace's kernel table) and bgpd, each with its own config,
pid file, zserv socket and vty socket directory under the test's directory, so any number
of them run side by side (and inside the UML guest, which shares the host's file system).
The directory is a fresh one under /tmp (pytest's own are 0700 root, which FRR's user could
not enter); the test's directory gets a copy of the logs when the speaker stops.

FRR drops to its ``frr`` user (whose group ``frrvty`` owns the vty sockets: root is not in
it, and FRR refuses ``-u root`` for that), keeping the capabilities it needs; its directory
is handed to that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .netns import Namespace

FRR_DIR = Path("/usr/lib/frr")
ZEBRA, BGPD = FRR_DIR / "zebra", FRR_DIR / "bgpd"


def frr_available() -> bool:
    return ZEBRA.exists() and BGPD.exists() and _user("frr") is not None


def _user(name: str) -> tuple[int, int] | None:
    import pwd

    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


@dataclass
class BgpSpeaker:
    """One eBGP speaker: ``asn`` announcing ``networks`` to ``neighbor`` (AS ``peer_as``),
    with fast timers (keepalive 1 s, hold 3 s, connect retry 1 s)."""

    ns: Namespace
    workdir: Path
    name: str
    asn: int
    router_id: str
    neighbor: str
    peer_as: int
    networks: tuple[str, ...]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"pike-frr-{self.name}-"))

    def bgpd_conf(self) -> str:
        nets = "".join(f"  network {n}\n" for n in self.networks)
        return (
            f"hostname {self.name}\n"
            f"router bgp {self.asn}\n"
            f" bgp router-id {self.router_id}\n"
            " no bgp ebgp-requires-policy\n"
            " no bgp network import-check\n"
            " timers bgp 1 3\n"
            f" neighbor {self.neighbor} remote-as {self.peer_as}\n"
            f" neighbor {self.neighbor} timers connect 1\n"
            " address-family ipv4 unicast\n"
            f"{nets}"
            " exit-address-family\n"
        )

    def start(self) -> None:
        ids = _user("frr")
        assert ids is not None
        d = self.dir
        (d / "zebra.conf").write_text(f"hostname {self.name}\n")
        (d / "bgpd.conf").write_text(self.bgpd_conf())
        for p in [d, *d.iterdir()]:
            os.chown(p, *ids)
        common = ["-u", "frr", "-g", "frr", "-z", str(d / "zserv.api"), "--vty_socket", str(d)]
        for daemon, extra in ((ZEBRA, []), (BGPD, ["-p", "179"])):
            which = daemon.name
            with (d / f"{which}.log").open("wb") as log:
                argv = [str(daemon), *common, "-i", str(d / f"{which}.pid")]
                argv += ["-f", str(d / f"{which}.conf"), "-P", "0", *extra]
                self.procs.append(self.ns.popen(argv, stdout=log))
            if daemon is ZEBRA:  # bgpd connects to zebra's socket: wait for it
                deadline = time.monotonic() + 10
                while not (d / "zserv.api").exists():
                    assert time.monotonic() < deadline, self.log_tail()
                    time.sleep(0.05)

    def stop(self) -> None:
        from .netns import kill_pid

        for proc in reversed(self.procs):
            kill_pid(proc.pid, grace=3.0)
            proc.wait(timeout=5)
        self.procs.clear()
        keep = self.workdir / f"frr-{self.name}"
        keep.mkdir(parents=True, exist_ok=True)
        for log in self.dir.glob("*.log"):
            shutil.copyfile(log, keep / log.name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def bgp_routes(self) -> list[str]:
        """The routes bgpd put into the namespace's kernel table (via zebra)."""
        out = self.ns.ip("route", "show", "proto", "bgp").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def wait_route(self, prefix: str, timeout: float = 30.0) -> tuple[str, float]:
        """Wait until ``prefix`` is a BGP route in the kernel; (route line, seconds)."""
        t0 = time.monotonic()
        while True:
            for line in self.bgp_routes():
                if line.startswith(prefix + " "):
                    return line, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{self.name}: no BGP route {prefix}\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        out = []
        for which in ("zebra", "bgpd"):
            p = self.dir / f"{which}.log"
            if not p.exists():
                p = self.workdir / f"frr-{self.name}" / f"{which}.log"
            if p.exists():
                out.append(f"--- {which} ---\n" + "\n".join(p.read_text().splitlines()[-15:]))
        return "\n".join(out)


__all__ = ["BgpSpeaker", "frr_available"]
