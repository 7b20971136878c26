"""Floods before authentication while strongSwan connects (issue 13, item 7): the scenario
shared by tests/interop/test_preauth_floods.py (asserts) and tests/bench/bench_floods.py
(prints figures at a larger scale).

::

    charon 192.0.2.2 [right] wan0 ---- wan0 [left] piked 192.0.2.1, 198.51.100.1
                                             wan1 ---- wan0 [mallory] 198.51.100.2-10

piked answers charon (connection ``hq``, PSK) and a roaming connection ``rw`` for
198.51.100.0/24 and 198.18.0.0/15 whose peers authenticate with certificates from its CA.
``mallory`` runs one flood at a time (tests/interop/flood_tool.py, bounded in count and
rate, only to 198.51.100.1): spoofed IKE_SA_INIT from 198.18.0.0/15 (left routes it back to
mallory, which drops the answers), a cookie-echoing source, certificate-laden IKE_AUTHs
from an unknown CA after a proper IKE_SA_INIT, and SKF fragments over max_packet on
half-open SAs. Half a second into each flood charon initiates; the figures are the time
until its IKE SA is up, piked's RSS before and after, the event loop's lag as piked
measures it (``pikectl status``) and as the control socket's answer time shows it, and the
gaps between piked's WATCHDOG=1 notifications (piked runs with ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC``, as under systemd).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ikev2.x509gen import make_ca

from .netns import Lab, Namespace
from .piked import PikedNode
from .strongswan import Child, Connection, Secret, StrongswanNode
from .strongswan_v1 import ikev1_connection
from .test_piked_strongswan import BRANCH, HQ, PSK, charon_conn
from .topology import make_gateways

TOOL = Path(__file__).with_name("flood_tool.py")
TARGET = "198.51.100.1"
MALLORY = [f"198.51.100.{n}" for n in range(2, 11)]
SPOOFED = "198.18.0.0/15"
WATCHDOG_USEC = 2_000_000  # systemd would kill piked after 2 s without WATCHDOG=1 (pings every 1 s)
HALF_OPEN_MAX = 1000  # piked's default half_open_max


@dataclass(frozen=True)
class Flood:
    kind: str
    count: int
    rate: float
    sources: list[str]
    ike: str = "hq"  # charon's connection that comes up meanwhile (hq1: IKEv1 Main Mode)
    child: str = "lan"
    full: int = 0  # charon starts only once piked holds this many IKE SAs (else after 0.5 s)


def floods(scale: float = 1.0) -> list[Flood]:
    """The four floods; ``scale`` multiplies their counts (and the time they take)."""

    def n(x: int) -> int:
        return max(1, round(x * scale))

    return [
        Flood("spoof", n(6000), 3000.0, [SPOOFED]),
        Flood("echo", n(300), 200.0, MALLORY[:1]),
        Flood("certs", n(60), 40.0, MALLORY[1:5]),
        Flood("frags", n(24), 20.0, MALLORY[5:9]),
    ]


def floods_v1(scale: float = 1.0) -> list[Flood]:
    """IKEv1 (no COOKIEs there): spoofed Main Mode and Aggressive Mode first messages, and
    Main Mode half-open SAs from one address, while charon's IKEv1 ``hq1`` comes up."""

    def n(x: int) -> int:
        return max(1, round(x * scale))

    return [  # in this order: the spoofed ones leave half_open_max full for 30 s
        Flood("v1half", n(300), 200.0, MALLORY[:1], "hq1", "lan1"),
        Flood("v1am", n(500), 500.0, [SPOOFED], "hq1", "lan1"),
        Flood("v1mm", n(3000), 3000.0, [SPOOFED], "hq1", "lan1", full=HALF_OPEN_MAX),
    ]


@dataclass
class Figures:
    kind: str
    flood: dict[str, int | float]  # what flood_tool.py says it did
    peer_up: float  # seconds from charon's initiate until its IKE SA is up
    rss_before: int  # KiB
    rss_after: int
    lag_worst: float  # piked's own probe: worst since start, after this flood
    status_rtt: float  # worst control-socket answer time during the flood
    half_open: int  # IKE SAs piked holds that are not ESTABLISHED, after the flood
    packets_in: int  # what left's wan1 (mallory's side) received during the flood
    packets_out: int  # and sent: piked's answers (COOKIEs, responses)
    rcvbuf_drops: int  # datagrams the kernel dropped, piked's socket buffers full (all UDP)
    half_open_most: int = 0  # the most half-open IKE SAs one address holds, after the flood

    def line(self) -> str:
        return (
            f"{self.kind:5}: charon up in {self.peer_up:.2f} s, RSS {self.rss_before / 1024:.1f}"
            f" -> {self.rss_after / 1024:.1f} MiB, loop lag worst {self.lag_worst * 1000:.0f} ms"
            f", status answered within {self.status_rtt * 1000:.0f} ms, {self.half_open} "
            f"half-open held, {self.packets_in} packets in, {self.packets_out} out, "
            f"{self.rcvbuf_drops} dropped at a full socket buffer, at most "
            f"{self.half_open_most} half-open from one address; "
            f"flood {json.dumps(self.flood)}"
        )


@dataclass
class Outcome:
    figures: list[Figures] = field(default_factory=list)
    watchdog_gaps: list[float] = field(default_factory=list)  # between WATCHDOG=1
    piked_log: str = ""


def log_burst(text: str) -> tuple[int, str]:
    """The most lines of one kind (the text with numbers, SPIs and addresses as N) that
    piked's log (``2026-12-07 11:00:41,746 INFO    ...``) holds within one clock second,
    and that kind. The rate limit allows LINES_PER_SECOND a second per reason: twice that
    in a clock second when its window straddles two."""
    seen: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        stamp, _, rest = line.partition(",")
        kind = re.sub(r"[0-9a-f]{8,}|\d+", "N", rest[4:])
        seen[(stamp, kind)] += 1
    if not seen:
        return 0, ""
    (_, kind), most = seen.most_common(1)[0]
    return most, kind


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _ca(directory: Path) -> None:
    """A CA for ``rw`` (P-256, self-signed) that signed none of the flood's certificates."""
    ca = make_ca("ecdsa-p256", "pike flood test CA")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))


class _Watchdog:
    """systemd's side of NOTIFY_SOCKET: the times of every WATCHDOG=1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.pings: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.sock.recv(256)
            except OSError:
                continue
            if msg == b"WATCHDOG=1":
                self.pings.append(time.monotonic())

    def close(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return [b - a for a, b in zip(self.pings, self.pings[1:], strict=False)]


def _mallory(lab: Lab, left: Namespace) -> Namespace:
    mallory = lab.add_ns("mallory")
    lab.link(left, mallory, f"{TARGET}/24", f"{MALLORY[0]}/24", a_dev="wan1", b_dev="wan0")
    for addr in MALLORY[1:]:
        mallory.ip("addr", "add", f"{addr}/24", "dev", "wan0")
    left.ip("route", "add", SPOOFED, "via", MALLORY[0])  # the COOKIEs go back to mallory
    return mallory


def _nodes(lab: Lab, workdir: Path) -> tuple[Namespace, StrongswanNode, PikedNode]:
    gw = make_gateways(lab)
    mallory = _mallory(lab, gw.left)
    secret = Secret("hq", PSK, [BRANCH, HQ])
    charon = StrongswanNode(gw.right, workdir, "charon", libipsec=gw.libipsec)
    # charon 5.9.8 sends its IKE_SA_INIT with the COOKIE while it still holds the IKE SA,
    # and drops an answer that comes back within that window ("ignoring request with ID 0,
    # already processing", seen here with piked answering in ~1 ms): it then waits for its
    # retransmission, 4 s by default. A shorter first timeout keeps that race from
    # counting as the flood's effect.
    charon.charon_settings = {"retransmit_timeout": "0.5"}
    charon.add(charon_conn(), secret)
    hq1_charon = ikev1_connection(
        "192.0.2.2", "192.0.2.1", name="hq1", child="lan1", local_ts="10.2.0.0/24",
        remote_ts="10.1.0.0/24", local_id=HQ, remote_id=BRANCH,
    )  # fmt: skip
    charon.add(hq1_charon)
    hq = Connection(
        "hq",
        ["192.0.2.1"],
        ["192.0.2.0/24"],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=BRANCH,
        remote_id=HQ,
        children=[Child("lan", ["10.1.0.0/24"], ["10.2.0.0/24"], ("aes128gcm16",))],
    )
    rw = Connection(
        "rw",
        [TARGET],
        ["198.51.100.0/24", SPOOFED],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id="rw.example",
        remote_id="flood.example",
        children=[Child("c", ["10.1.0.0/24"], ["10.9.0.0/24"], ("aes128gcm16",))],
    )
    rw_secret = Secret("rw", "pike-flood-rw-local-psk", ["rw.example"])
    hq1 = ikev1_connection(
        "192.0.2.1", "192.0.2.2", name="hq1", child="lan1", local_ts="10.1.0.0/24",
        remote_ts="10.2.0.0/24", local_id=BRANCH, remote_id=HQ,
    )  # fmt: skip
    # IKEv1 roaming peers in Main Mode and in Aggressive Mode (PSK): what the v1 floods hit
    roaming = []
    for name, aggressive in (("rw1", False), ("rwa", True)):
        c = ikev1_connection(
            TARGET, "%any", name=name, child="c", local_ts="10.1.0.0/24",
            remote_ts="10.9.0.0/24", local_id="rw1.example", remote_id="flood.example",
            aggressive=aggressive,
        )  # fmt: skip
        c.remote_addrs = ["198.51.100.0/24", SPOOFED]
        roaming.append(c)
    rw1_secret = Secret("rw1", "pike-flood-rw1-psk-never-used", ["rw1.example", "flood.example"])
    piked = PikedNode(gw.left, workdir, "piked")
    piked.add(hq, rw, hq1, *roaming, secret, rw_secret, rw1_secret)
    piked.daemon = {"log_level": "info"}  # debug lines per flood datagram would be the load
    piked.extra = {
        "rw": {"remote": {"auth": "pubkey", "id": "flood.example", "cacerts": ["ca.pem"]}}
    }
    piked.poll_via_socket = True
    _ca(piked.dir)
    return mallory, charon, piked


def _packets(ns: Namespace, dev: str) -> tuple[int, int]:
    """(received, sent) packets of ``dev`` in ``ns``."""
    st = Path(f"/sys/class/net/{dev}/statistics")
    out = ns.run(["cat", str(st / "rx_packets"), str(st / "tx_packets")]).stdout.split()
    return int(out[0]), int(out[1])


def _rcvbuf_errors(ns: Namespace) -> int:
    """UDP RcvbufErrors of ``ns`` (/proc/net/snmp): datagrams lost to full socket buffers."""
    lines = [ln.split() for ln in ns.run(["cat", "/proc/net/snmp"]).stdout.splitlines()]
    head, values = [ln for ln in lines if ln and ln[0] == "Udp:"][:2]
    return int(values[head.index("RcvbufErrors")])


def _status(piked: PikedNode) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    st = piked.control("status")
    return time.monotonic() - t0, st


def run(lab: Lab, workdir: Path, plan: list[Flood]) -> Outcome:
    """Start charon and piked, run ``plan`` one flood at a time, stop both."""
    mallory, charon, piked = _nodes(lab, workdir)
    dog = _Watchdog(workdir / "notify")
    piked.env = {"NOTIFY_SOCKET": str(dog.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    out = Outcome()
    try:
        charon.start()
        piked.start()
        assert piked.proc is not None
        pid = piked.proc.pid
        for f in plan:
            out.figures.append(_one(mallory, charon, piked, pid, f))
    finally:
        charon.stop()
        piked.stop()
        out.watchdog_gaps = dog.close()
        out.piked_log = piked.log_text()
    return out


def _one(
    mallory: Namespace, charon: StrongswanNode, piked: PikedNode, pid: int, f: Flood
) -> Figures:
    rss0 = rss_kib(pid)
    rx0, tx0 = _packets(piked.ns, "wan1")
    drops0 = _rcvbuf_errors(piked.ns)
    argv = [sys.executable, str(TOOL), f.kind, TARGET, ",".join(f.sources), str(f.count)]
    proc = mallory.popen([*argv, str(f.rate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rtts: list[float] = []
    try:
        deadline = time.monotonic() + (10.0 if f.full else 0.5)
        while time.monotonic() < deadline:  # the flood under way
            rtt, st = _status(piked)
            rtts.append(rtt)
            if f.full and isinstance(st["ike_sas"], int) and st["ike_sas"] >= f.full:
                break
            time.sleep(0.05)
        else:
            if f.full:
                raise AssertionError(f"{f.kind}: piked never held {f.full} IKE SAs")
        t0 = time.monotonic()
        charon.initiate(f.child, ike=f.ike, timeout=5, check=False)
        sa = charon.wait_established(f.ike, timeout=5)
        took = time.monotonic() - t0
        p = piked.wait_established(f.ike, timeout=5)
        if (p.initiator_spi, p.responder_spi) != (sa.initiator_spi, sa.responder_spi):
            raise AssertionError(f"{f.kind}: piked's hq SA is not charon's: {p} {sa}")
        while proc.poll() is None:
            rtts.append(_status(piked)[0])
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"flood {f.kind} exited {proc.returncode}: {stderr.decode()[-2000:]}")
    rtt, st = _status(piked)
    lag = st["event_loop_lag"]
    assert isinstance(lag, dict)
    held = [s.remote_host for s in piked.list_sas() if s.state != "ESTABLISHED"]
    half_open = len(held)
    most = max((held.count(a) for a in set(held)), default=0)
    rx1, tx1 = _packets(piked.ns, "wan1")
    fig = Figures(
        f.kind,
        json.loads(stdout.decode().strip().splitlines()[-1]),
        took,
        rss0,
        rss_kib(pid),
        float(lag["worst"]),
        max([rtt, *rtts]),
        half_open,
        rx1 - rx0,
        tx1 - tx0,
        _rcvbuf_errors(piked.ns) - drops0,
        most,
    )
    charon.terminate(f.ike, check=False)
    charon.wait_no_sas(ike=f.ike, timeout=5)
    return fig
