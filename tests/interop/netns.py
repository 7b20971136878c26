"""Network-namespace topologies for interop tests and lab scripts.

A :class:`Lab` owns every namespace it creates (all named ``<prefix><name>``, the prefix
unique per run, e.g. ``pk1234x-0-``) and every process started through it.  Closing the
lab (context manager exit, the pytest fixture's teardown, or ``atexit`` in scripts)
kills those processes by PID, then any process still inside one of its namespaces, then
deletes the namespaces.  Nothing is touched outside the lab's own namespaces: veth pairs
are created directly inside them (``ip -n NS link add ... peer ... netns NS2``).

Plain-script use (tests/ on ``sys.path``, as pytest has it)::

    from interop.netns import Lab

    with Lab.create() as lab:
        a, b = lab.add_ns("a"), lab.add_ns("b")
        lab.link(a, b, "192.0.2.1/24", "192.0.2.2/24")
        a.run(["ping", "-c1", "192.0.2.2"])
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_IP = "ip"
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """A topology command failed (the message carries the command and its stderr)."""


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=input
    )
    if check and proc.returncode != 0:
        raise NetnsError(
            f"{' '.join(argv)!s} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
        )
    return proc


def default_prefix() -> str:
    """The per-process namespace prefix: ``pk<pid>x-``."""
    return f"pk{os.getpid()}x-"


def kill_pid(pid: int, grace: float = 3.0) -> None:
    """SIGTERM ``pid``, wait up to ``grace`` seconds, then SIGKILL.  Missing PIDs are fine."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    # Reap our own children so they do not linger as zombies (which still "exist").
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # field 3 (after "(comm)") is the state; Z = zombie
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Namespace:
    """One network namespace of a lab."""

    lab: Lab = field(repr=False)
    name: str  # full name, with the lab prefix
    short: str  # name given to add_ns()

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` wrapped in ``ip netns exec NAME``."""
        return [_IP, "netns", "exec", self.name, *cmd]

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace and wait; text output captured."""
        argv = self.argv(cmd)
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
            env=env,
        )
        if check and proc.returncode != 0:
            raise NetnsError(
                f"[{self.short}] {' '.join(cmd)} exited {proc.returncode}: "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n NAME args...``."""
        return _run([_IP, "-n", self.name, *args], check=check)

    def popen(
        self,
        cmd: Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.STDOUT,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` inside the namespace; the lab kills it (by PID) on close.

        ``ip netns exec`` execs the command, so the Popen's pid is the command's pid.
        """
        proc = subprocess.Popen(
            self.argv(cmd),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.lab.track(proc)
        return proc

    def sysctl(self, key: str, value: str | int) -> None:
        self.run(["sysctl", "-qw", f"{key}={value}"])

    def enable_forwarding(self) -> None:
        self.sysctl("net.ipv4.ip_forward", 1)
        self.sysctl("net.ipv6.conf.all.forwarding", 1)

    def addrs(self, dev: str) -> list[str]:
        out = self.ip("-o", "addr", "show", "dev", dev).stdout
        return [line.split()[3] for line in out.splitlines() if " inet" in line]

    def ping(self, dst: str, *, count: int = 1, timeout: float = 2.0) -> bool:
        """True when ``dst`` answers."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", str(max(1, int(timeout))), dst]
        if ":" in dst:
            argv.insert(1, "-6")
        return self.run(argv, check=False, timeout=timeout * count + 5).returncode == 0

    def udp_to(
        self,
        receiver: Namespace,
        dst: str,
        *,
        port: int = 5000,
        payload: bytes = b"pike\n",
        timeout: float = 10.0,
    ) -> bytes:
        """Send one UDP datagram from here to ``dst:port`` where ``receiver`` listens (socat);
        returns what the receiver got (empty when nothing arrived in ``timeout``)."""
        family = "UDP6" if ":" in dst else "UDP4"
        listen = ["socat", "-u", "-T", str(int(timeout) + 1), f"{family}-RECVFROM:{port}", "-"]
        rx = receiver.popen(listen, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            target = f"[{dst}]" if family == "UDP6" else dst
            while True:
                # resend until the receiver got it (it may not be bound yet)
                send = ["socat", "-u", "-", f"{family}-SENDTO:{target}:{port}"]
                self.run(send, input=payload.decode(), check=False, timeout=timeout)
                try:
                    out, _ = rx.communicate(timeout=0.5)
                    return out
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        return b""
        finally:
            if rx.poll() is None:
                kill_pid(rx.pid, grace=1.0)
                rx.wait(timeout=5)

    def pids(self) -> list[int]:
        """PIDs of every process inside the namespace (``ip netns pids``)."""
        out = _run([_IP, "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]


@dataclass
class Link:
    """A veth pair between two namespaces."""

    a: Namespace
    a_dev: str
    a_addrs: list[str]
    b: Namespace
    b_dev: str
    b_addrs: list[str]

    @staticmethod
    def _host(cidrs: list[str], version: int) -> str | None:
        for c in cidrs:
            iface = ipaddress.ip_interface(c)
            if iface.version == version:
                return str(iface.ip)
        return None

    @property
    def a_ip(self) -> str:
        """First IPv4 (else IPv6) address on the ``a`` side, without prefix length."""
        ip = self._host(self.a_addrs, 4) or self._host(self.a_addrs, 6)
        assert ip is not None, "link has no address on side a"
        return ip

    @property
    def b_ip(self) -> str:
        ip = self._host(self.b_addrs, 4) or self._host(self.b_addrs, 6)
        assert ip is not None, "link has no address on side b"
        return ip

    @property
    def a_ip6(self) -> str | None:
        return self._host(self.a_addrs, 6)

    @property
    def b_ip6(self) -> str | None:
        return self._host(self.b_addrs, 6)


@dataclass
class HostNet:
    """A "host network behind a gateway": a third namespace (or dummy device) on a LAN."""

    gateway: Namespace
    gateway_addr: str  # e.g. 10.1.0.1/24
    host: Namespace | None  # None when a dummy device was used
    host_addr: str | None  # e.g. 10.1.0.2/24
    subnet: str  # e.g. 10.1.0.0/24

    @property
    def host_ip(self) -> str:
        assert self.host_addr is not None
        return str(ipaddress.ip_interface(self.host_addr).ip)

    @property
    def gateway_ip(self) -> str:
        return str(ipaddress.ip_interface(self.gateway_addr).ip)


@dataclass
class Lab:
    """A set of namespaces with guaranteed teardown."""

    prefix: str
    namespaces: list[Namespace] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    _links: int = 0
    _closed: bool = False

    @classmethod
    def create(cls, prefix: str | None = None) -> Lab:
        """A lab with ``prefix`` (default ``pk<pid>x-``); refuses a prefix already in use."""
        prefix = prefix or default_prefix()
        if len(prefix) > 40:
            raise ValueError(f"namespace prefix too long: {prefix!r}")
        existing = [n for n in list_netns() if n.startswith(prefix)]
        if existing:
            raise NetnsError(f"namespaces with prefix {prefix!r} already exist: {existing}")
        return cls(prefix=prefix)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ---------------------------------------------------------------------------

    def add_ns(self, name: str, *, forwarding: bool = False) -> Namespace:
        """Create namespace ``<prefix><name>`` with ``lo`` up."""
        full = self.prefix + name
        _run([_IP, "netns", "add", full])
        ns = Namespace(self, full, name)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        if forwarding:
            ns.enable_forwarding()
        return ns

    def ns(self, name: str) -> Namespace:
        for n in self.namespaces:
            if n.short == name:
                return n
        raise KeyError(name)

    def link(
        self,
        a: Namespace,
        b: Namespace,
        a_addrs: str | Sequence[str] = (),
        b_addrs: str | Sequence[str] = (),
        *,
        a_dev: str | None = None,
        b_dev: str | None = None,
        mtu: int | None = None,
    ) -> Link:
        """A veth pair between ``a`` and ``b`` with the given CIDR addresses, both ends up.

        Device names default to ``v<n>-<b.short>`` in ``a`` and ``v<n>-<a.short>`` in ``b``
        (truncated to 15 bytes).  IPv6 addresses are added with ``nodad``.
        """
        n = self._links
        self._links += 1
        a_dev = a_dev or f"v{n}-{b.short}"[:15]
        b_dev = b_dev or f"v{n}-{a.short}"[:15]
        la = [a_addrs] if isinstance(a_addrs, str) else list(a_addrs)
        lb = [b_addrs] if isinstance(b_addrs, str) else list(b_addrs)
        a.ip("link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b.name)
        for ns, dev, addrs in ((a, a_dev, la), (b, b_dev, lb)):
            if mtu:
                ns.ip("link", "set", dev, "mtu", str(mtu))
            for addr in addrs:
                _add_addr(ns, dev, addr)
            ns.ip("link", "set", dev, "up")
        return Link(a, a_dev, la, b, b_dev, lb)

    def add_host_net(
        self,
        gateway: Namespace,
        subnet: str = "10.1.0.0/24",
        *,
        name: str | None = None,
        dummy: bool = False,
    ) -> HostNet:
        """A LAN behind ``gateway``: the gateway gets ``.1``, a host namespace ``.2``.

        With ``dummy=True`` no host namespace is made; the gateway gets a dummy device (or,
        without the dummy driver, a veth pair kept inside the gateway) carrying ``.1``
        (enough for policy-based tunnels to have a source address).
        Forwarding is enabled in the gateway; the host's default route points at it.
        """
        net = ipaddress.ip_network(subnet)
        gw_addr = f"{net.network_address + 1}/{net.prefixlen}"
        host_addr = f"{net.network_address + 2}/{net.prefixlen}"
        gateway.enable_forwarding()
        if dummy:
            dev = f"lan{self._links}"[:15]
            self._links += 1
            if gateway.ip("link", "add", dev, "type", "dummy", check=False).returncode != 0:
                # no dummy driver (this host kernel cannot load modules): a veth pair whose
                # both ends stay in the gateway serves the same purpose
                gateway.ip("link", "add", dev, "type", "veth", "peer", "name", dev + "p")
                gateway.ip("link", "set", dev + "p", "up")
            _add_addr(gateway, dev, gw_addr)
            gateway.ip("link", "set", dev, "up")
            return HostNet(gateway, gw_addr, None, None, str(net))
        host = self.add_ns(name or f"{gateway.short}h")
        self.link(gateway, host, gw_addr, host_addr, a_dev=f"lan{self._links}", b_dev="eth0")
        via = str(net.network_address + 1)
        host.ip("-6" if net.version == 6 else "-4", "route", "add", "default", "via", via)
        return HostNet(gateway, gw_addr, host, host_addr, str(net))

    # -- processes --------------------------------------------------------------------------

    def track(self, proc: subprocess.Popen[bytes] | int) -> None:
        """Kill this process (a Popen or a PID) when the lab closes."""
        if isinstance(proc, int):
            self.pids.append(proc)
        else:
            self.procs.append(proc)

    # -- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Kill tracked processes by PID, then stragglers inside our namespaces, then
        delete the namespaces.  Idempotent; never raises for already-gone things."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.procs):
            if proc.poll() is None:
                kill_pid(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        for pid in reversed(self.pids):
            kill_pid(pid)
        for ns in reversed(self.namespaces):
            for pid in ns.pids():
                kill_pid(pid, grace=1.0)
        errors: list[str] = []
        for ns in reversed(self.namespaces):
            res = _run([_IP, "netns", "del", ns.name], check=False)
            if res.returncode != 0 and ns.name in list_netns():
                errors.append(f"{ns.name}: {res.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise NetnsError("could not delete namespaces: " + "; ".join(errors))


def _add_addr(ns: Namespace, dev: str, addr: str) -> None:
    iface = ipaddress.ip_interface(addr)
    if iface.version == 6:
        ns.ip("-6", "addr", "add", addr, "dev", dev, "nodad")
    else:
        ns.ip("addr", "add", addr, "dev", dev)


def list_netns() -> list[str]:
    """Names of all named network namespaces on the machine."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def cleanup_stale(prefix_start: str = "pk") -> list[str]:
    """Delete namespaces ``pk<pid>x-...`` whose creating process <pid> is gone.

    Only names of that exact shape are considered, only when the PID is dead (so a
    concurrent run's namespaces are never touched), and only when no process is left
    inside (nothing is killed here).  Returns the names deleted.
    """
    removed = []
    for name in list_netns():
        if not name.startswith(prefix_start):
            continue
        digits = name[len(prefix_start) :].split("x-", 1)[0]
        if not digits.isdigit() or "x-" not in name:
            continue
        if Path(f"/proc/{digits}").exists():
            continue
        if Namespace(Lab(prefix=""), name, name).pids():
            continue
        if _run([_IP, "netns", "del", name], check=False).returncode == 0:
            removed.append(name)
    return removed


@contextlib.contextmanager
def lab(prefix: str | None = None) -> Iterator[Lab]:
    """``with lab() as l: ...`` — same as ``with Lab.create(prefix) as l``."""
    with Lab.create(prefix) as la:
        yield la
