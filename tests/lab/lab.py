"""The pike lab: piked and strongSwan as two gateways, each with a LAN, and traffic across.

    lefthost 10.1.0.2 -- 10.1.0.1 [branch: piked] 192.0.2.1
        ==== 192.0.2.2 [hq: strongSwan] 10.2.0.1 -- righthost 10.2.0.2

``python tests/lab/lab.py`` runs it here (root; the kernel must have ESP);
``python tests/lab/lab.py --uml`` boots the User-Mode-Linux guest and runs it in there,
streaming its output.  ``tests/lab/run`` picks for you.  Everything lives in network
namespaces with a unique prefix and is deleted at the end, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the test helpers, as pytest imports them

from interop.netns import Lab  # noqa: E402
from interop.piked import PikedNode  # noqa: E402
from interop.strongswan import (  # noqa: E402
    Connection,
    Secret,
    StrongswanNode,
    kernel_has_esp,
)
from interop.topology import branch_hq, make_gateways  # noqa: E402

PSK = "pike-lab-example-psk"
BRANCH, HQ = "branch1.example.net", "hq.example.net"
T0 = time.monotonic()


def heading(text: str) -> None:
    print(f"\n== {text} ({time.monotonic() - T0:.1f}s)", flush=True)


def say(text: str = "") -> None:
    print(text, flush=True)


def indent(text: str, pad: str = "   ") -> str:
    return "\n".join(pad + line for line in text.rstrip().splitlines())


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- the lab itself (needs ESP in this kernel) ----------------------------------------------


def connection(left: bool) -> Connection:
    return branch_hq(
        "left" if left else "right",
        ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"),
        ("aes128gcm16", "aes256-sha256"),
    )


def run_lab(keep: bool) -> int:
    prefix = f"pklab{os.getpid()}-"
    workdir = Path(tempfile.mkdtemp(prefix="pike-lab-"))
    secret = Secret("hq", PSK, [BRANCH, HQ])
    with Lab.create(prefix) as la:
        heading(f"Topology (network namespaces {prefix}*)")
        gw = make_gateways(la)
        assert gw.left_lan.host is not None and gw.right_lan.host is not None
        lhost, rhost = gw.left_lan.host, gw.right_lan.host
        left_ip, right_ip = gw.left_lan.host_ip, gw.right_lan.host_ip
        say(f"   lefthost {left_ip} -- 10.1.0.1 [branch: piked] 192.0.2.1")
        say("        ==== wan0 (veth) ====")
        say(f"   192.0.2.2 [hq: strongSwan charon] 10.2.0.1 -- righthost {right_ip}")
        if not gw.esp_in_kernel:
            say("this kernel has no ESP: run tests/lab/run (it boots User-Mode-Linux)")
            return 2

        heading("Gateways start")
        charon = StrongswanNode(gw.right, workdir, "hq-strongswan", libipsec=False)
        charon.add(connection(False), secret)
        charon.start()
        say(f"   hq:     strongSwan charon (kernel-netlink), pid {charon.pid}")
        piked = PikedNode(gw.left, workdir, "branch-piked", daemon={"log_level": "info"})
        piked.add(connection(True), secret)
        piked.start()
        say(f"   branch: piked --config {piked.config_path}, pid {piked.pid}")
        try:
            rc = _exercise(la, gw, piked, charon, lhost, rhost, left_ip, right_ip, keep)
        finally:
            heading("Teardown")
            piked.stop()
            charon.stop()
            say(f"   piked and charon stopped; deleting namespaces {prefix}*")
    if rc == 0:
        say("\nlab OK: tunnel up, ping and UDP crossed it both ways, SA counters moved")
    return rc


def _exercise(la, gw, piked, charon, lhost, rhost, left_ip, right_ip, keep) -> int:
    heading("IKE: piked initiates 'hq'")
    t = time.monotonic()
    piked.initiate("hq")
    piked.poll_via_socket = True
    piked.wait_established("hq", timeout=30, child="lan")
    charon.wait_established("hq", timeout=30, child="lan")
    say(f"   tunnel up in {time.monotonic() - t:.2f}s (IKE_SA + CHILD_SA on both gateways)")

    heading("pikectl list-sas (before traffic)")
    say(indent(piked.pikectl("list-sas").stdout))

    heading(f"ping {left_ip} -> {right_ip} and back")
    for src, dst, label in ((lhost, right_ip, "lefthost"), (rhost, left_ip, "righthost")):
        out = src.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", dst], check=False)
        stats = [ln for ln in out.stdout.splitlines() if "packets transmitted" in ln]
        say(f"   {label} -> {dst}: {stats[0] if stats else out.stdout.strip()}")
        if out.returncode != 0:
            say("   PING FAILED")
            return 1

    heading("UDP datagrams across (socat)")
    for src, dst_ns, dst, port, label in (
        (lhost, rhost, right_ip, 5001, "lefthost -> righthost"),
        (rhost, lhost, left_ip, 5002, "righthost -> lefthost"),
    ):
        payload = f"hello from {label.split()[0]}\n".encode()
        got = src.udp_to(dst_ns, dst, port=port, payload=payload)
        say(f"   {label} udp/{port}: sent {payload!r}, received {got!r}")
        if got != payload:
            say("   UDP FAILED")
            return 1

    heading("pikectl list-sas (after traffic: the counters moved)")
    say(indent(piked.pikectl("list-sas").stdout))

    heading("Kernel SAs in the branch gateway (ip -s xfrm state, counters)")
    out = gw.left.run(["ip", "-s", "xfrm", "state"]).stdout
    for block in re.split(r"^(?=src )", out, flags=re.M):
        addrs = re.match(r"src (\S+) dst (\S+)", block)
        spi = re.search(r"proto esp spi 0x([0-9a-f]+)", block)
        cur = re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        if addrs and spi and cur:
            direction = "out" if addrs.group(1) == "192.0.2.1" else "in "
            say(
                f"   {direction} {addrs.group(1)} -> {addrs.group(2)}  spi {spi.group(1)}: "
                f"{cur.group(1)} bytes, {cur.group(2)} packets"
            )

    heading("strongSwan's view (swanctl --list-sas on hq)")
    say(indent(charon.swanctl("--list-sas").stdout))

    if keep:
        heading("--keep: the lab stays up; Ctrl-C tears it down")
        for ns in la.namespaces:
            say(f"   ip netns exec {ns.name} ...")
        say(f"   {REPO}/.venv/bin/pikectl --socket {piked.socket_path} list-sas")
        signal.pause()
    return 0


# -- the same inside User-Mode-Linux ---------------------------------------------------------


def run_in_uml(keep: bool) -> int:
    from guest import uml  # tests/guest/uml.py

    say("== This kernel has no ESP: booting a User-Mode-Linux kernel that has (tests/guest/uml.py)")
    kernel = uml.guest_kernel()
    run_dir = Path(tempfile.mkdtemp(prefix="pike-lab-uml-"))
    python = REPO / ".venv/bin/python"
    command = [str(python), "-u", str(Path(__file__).resolve()), "--here"]
    if keep:
        say("   (--keep is not offered inside the guest; the lab runs once)")
    result: dict[str, Any] = {}

    def boot() -> None:
        try:
            result["r"] = uml._boot(
                kernel, command, str(REPO), 600.0, "768M", dict(os.environ), False, run_dir
            )
        except BaseException as e:  # reported below
            result["e"] = e

    thread = threading.Thread(target=boot, daemon=True)
    thread.start()
    shown = 0
    out = run_dir / "stdout"
    try:
        while thread.is_alive():
            thread.join(0.3)
            shown = _stream(out, shown)
        shown = _stream(out, shown)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping the UML guest (its namespaces go with it)")
        _kill_uml(run_dir)
        thread.join(15)
        raise
    finally:
        if not thread.is_alive():
            subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    if "e" in result:
        say(f"UML guest failed: {result['e']}")
        return 125
    r = result["r"]
    err = getattr(r, "stderr", "")
    if err.strip():
        say(indent(err[-3000:], "   guest stderr: "))
    boot_s, total_s = getattr(r, "boot_seconds", 0.0), getattr(r, "total_seconds", 0.0)
    say(f"\n(UML guest: boot {boot_s:.1f}s, total {total_s:.1f}s)")
    return int(getattr(r, "returncode", 1))


def _stream(path: Path, shown: int) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return shown
    if len(data) > shown:
        sys.stdout.write(data[shown:].decode(errors="replace"))
        sys.stdout.flush()
    return len(data)


def _kill_uml(run_dir: Path) -> None:
    """SIGKILL the UML process group we started (its pid file is under uml_dir)."""
    for pidfile in run_dir.glob("*/pid"):
        try:
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, signal.SIGKILL)
        except (ValueError, OSError):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--here", action="store_true", help="run in this kernel (needs ESP)")
    where.add_argument("--uml", action="store_true", help="run inside User-Mode-Linux")
    parser.add_argument("--keep", action="store_true", help="leave the lab up until Ctrl-C")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    try:
        if args.uml:
            return run_in_uml(args.keep)
        if not args.here and not esp_here():
            return run_in_uml(args.keep)
        return run_lab(args.keep)
    except KeyboardInterrupt:
        say("\ninterrupted: everything torn down")
        return 130


def esp_here() -> bool:
    with Lab.create(f"pkprobe{os.getpid()}-") as la:
        return kernel_has_esp(la.add_ns("probe"))


if __name__ == "__main__":
    sys.exit(main())
