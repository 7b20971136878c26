"""A hub under strongSwan's load-tester: responder CPU and memory per IKE_SA+CHILD_SA,
charon and piked side by side, plus piked's start time and pikectl latency.

    sudo .venv/bin/python tests/bench/bench_hub.py [--sas 1000] [--conns 1,10000] [--rounds 3]
        [--idle 20] [--prefix DIR]   # strongSwan with load-tester; built there if missing
        [--python PATH [--python PATH2 ...]] [--no-charon]

``--python``: the interpreter piked runs under (a venv's python with pike installed; default
this repository's ``.venv``). Given twice or more, each round runs one piked per
interpreter, interleaved (``piked#1``, ``piked#2``, ...): Debian's /usr/bin/python3 against
pyenv's, or another checkout's ``.venv`` (its editable install: its code) against this one.

Two network namespaces made here (``gen`` 192.0.2.1, ``resp`` 192.0.2.2, one veth;
nothing leaves them). The generator is charon with the load-tester plugin
(``fake_kernel``; ``initiators`` x ``iterations`` = ``--sas`` IKE SAs, PSK,
aes128gcm16-prfsha256-x25519, IDs c1-r1.example ...). The responder is, in turn:
charon (the same build, load-tester ``fake_kernel``, ``initiators = 0``, swanctl
connections, no log lines, ``dos_protection = no``) and piked (``piked_fake_kernel.py``:
a kernel that installs nothing, as charon's; log level warning; COOKIE and per-address
thresholds out of reach, as charon's), each with 1 connection (remote id ``%any``)
or one per branch ID, DPD armed on every IKE SA (300 s). Figures: the responder's CPU
(all threads, the scheduler's nanoseconds in /proc/PID/task/*/schedstat; its user and
system parts from /proc/PID/stat, in clock ticks) and VmRSS growth, divided by the IKE
SAs the generator saw established; then, all SAs held, the responder's CPU over ``--idle``
seconds (nothing due: what the held SAs and their armed timers cost) and piked's CHILD_SA
rekey jitter from ``pikectl list-sas --json``. With ``--split``, piked's CPU per SA is
also split into the engine's (thread CPU inside its datagram and timer entry points,
``piked_fake_kernel.py``) and the runtime's around it (sockets, dispatch, kernel calls,
metrics, the event loop; the rest), and the collector's collections and CPU (in either).
piked starts twice: the first start fills its config cache, the second (measured) reads
it. Rounds interleave charon and piked; medians are printed with every round's value. A
benchmark: it prints, never asserts. The machine is shared: expect +-25 % between rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from interop.netns import Lab, Namespace, kill_pid
from lib.pikeconf import Child, Conn, PikeConf, Secret

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv" / "bin"  # piked's interpreter and pikectl, unless given (``python=``)
GEN, RESP = "192.0.2.1", "192.0.2.2"
IKE, ESP = "aes128gcm16-prfsha256-x25519", "aes128gcm16"
PSK = "bench-only-psk-3c1f9a7e"
TICK = os.sysconf("SC_CLK_TCK")
# DPD armed on every IKE SA (none due while idle is measured); rekeys at the defaults
# (IKE 4 h, CHILD 1 h minus up to rand_time 6 min), as a hub would run
DPD = 300
CHILD_REKEY, CHILD_RAND = 3600, 360
RESPONDER_CPU, GENERATOR_CPU = 0, 1  # --pin


def cpu_seconds(pid: int) -> float:
    """CPU time of all live threads, exact (the scheduler's nanoseconds, not clock ticks:
    at 1000 SAs a tick is 0.01 ms per SA)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def user_system(pid: int) -> tuple[float, float]:
    """utime, stime of all threads, seconds: Python's work and the kernel's (sockets)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def ensure_load_tester(prefix: Path) -> Path:
    charon = prefix / "libexec" / "ipsec" / "charon"
    plugin = prefix / "lib" / "ipsec" / "plugins" / "libstrongswan-load-tester.so"
    if not (charon.exists() and plugin.exists()):
        print(f"# building strongSwan with load-tester into {prefix} (minutes)", flush=True)
        script = Path(__file__).with_name("build_load_tester.sh")
        subprocess.run([str(script), str(prefix)], check=True)
    (prefix / "run").mkdir(exist_ok=True)  # each charon binds its own directory over it
    return charon


def charon_conf(d: Path, plugins: str, quiet: bool = False) -> Path:
    """``quiet``: no log lines (the responder, as piked at log level warning: neither
    formats nor writes a line per SA); else the IKE lines the generator is counted by."""
    level = -1 if quiet else 1
    conf = d / "strongswan.conf"
    conf.write_text(
        f"""charon {{
  threads = 16
  reuse_ikesa = no
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  dos_protection = no
  install_routes = no
  retransmit_tries = 2
  filelog {{
    log {{
      path = {d}/charon.log
      default = {min(level, 0)}
      ike = {level}
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{d}/charon.vici
    }}
    {plugins}
  }}
}}
"""
    )
    return conf


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` bound to ``cpu`` (``--pin``), or as it is."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def start_charon(
    ns: Namespace,
    prefix: Path,
    d: Path,
    plugins: str,
    cpu: int | None = None,
    quiet: bool = False,
) -> subprocess.Popen[bytes]:
    """charon in ``ns`` with its own mount namespace (its piddir ``prefix/run`` private),
    on ``cpu`` if given, without log lines if ``quiet`` (``charon_conf``)."""
    (d / "run").mkdir(parents=True, exist_ok=True)
    conf = charon_conf(d, plugins, quiet)
    charon = prefix / "libexec" / "ipsec" / "charon"
    script = f"mount --bind {d}/run {prefix}/run && exec {charon}"
    env = dict(os.environ, STRONGSWAN_CONF=str(conf))
    with (d / "stdout.log").open("wb") as out:
        return ns.popen(
            pinned(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cpu),
            stdout=out,
            env=env,
        )


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.05)


def branch_ids(n: int) -> list[str]:
    return [f"c{i}-r1.example" for i in range(1, n + 1)]


def swanctl_conf(conns: int) -> str:
    ids = ["%any"] if conns == 1 else branch_ids(conns)
    out = ["connections {"]
    for i, rid in enumerate(ids):
        out.append(
            f"  h{i} {{ version = 2\n local_addrs = {RESP}\n remote_addrs = %any\n"
            f" proposals = {IKE}\n unique = never\n dpd_delay = {DPD}s\n"
            f" local {{ auth = psk\n id = srv.example }}\n remote {{ auth = psk\n id = {rid} }}\n"
            f" children {{ net {{ esp_proposals = {ESP}\n local_ts = {RESP}/32\n"
            f" remote_ts = 192.0.2.0/24 }} }} }}"
        )
    out.append("}\nsecrets {\n  ike-all { secret = " + PSK + " }\n}\n")
    return "\n".join(out)


def pike_toml(conns: int, sock: Path) -> str:
    ids = ["%any"] if conns == 1 else branch_ids(conns)
    return PikeConf(
        # charon runs with dos_protection = no (above): the generator is one address
        # with dozens of handshakes in flight, which piked's defaults answer with
        # COOKIEs and, past 5 proven half-open SAs, drops the generator retransmits
        # 4 s later: work charon is not asked to do. The same settings for both.
        daemon={
            "control_socket": str(sock),
            "log_level": "warning",
            "cookie_threshold": 1_000_000,
            "block_threshold": 1_000_000,
        },
        connections=[
            Conn(
                name=f"h{i}",
                local_addrs=[RESP],
                remote_addrs=["%any"],
                proposals=[IKE],
                extra={"dpd_delay": f"{DPD}s"},
                local={"auth": "psk", "id": "srv.example"},
                remote={"auth": "psk", "id": rid},
                children=[Child([f"{RESP}/32"], ["192.0.2.0/24"], "net", [ESP])],
            )
            for i, rid in enumerate(ids)
        ],
        secrets=[Secret("all", PSK)],
    ).render()


def generator_plugins(n: int) -> str:
    initiators = 4 if n % 4 == 0 else 1
    return f"""load-tester {{
      enable = yes
      fake_kernel = yes
      version = 2
      initiators = {initiators}
      iterations = {n // initiators}
      delay = 1
      init_limit = 32
      shutdown_when_complete = no
      initiator = {GEN}
      responder = {RESP}
      proposal = {IKE}
      esp = {ESP}
      initiator_auth = psk
      responder_auth = psk
      initiator_id = c%d-r%d.example
      responder_id = srv.example
      preshared_key = {PSK}
    }}"""


def established(log: Path) -> int:
    if not log.exists():
        return 0
    return len(re.findall(r"IKE_SA \S+ established between", log.read_text(errors="replace")))


def wait_up(log: Path, n: int, quiet: float = 5.0) -> int:
    """Until the generator logging to ``log`` saw ``n`` IKE SAs up, or none more came up
    for ``quiet`` seconds (a lost IKE_SA_INIT it gave up on; 60 s for the first): what
    came up is what is counted."""
    last, since = -1, time.monotonic()
    while (up := established(log)) < n and time.monotonic() - since < (quiet if last > 0 else 60):
        if up != last:
            last, since = up, time.monotonic()
        time.sleep(0.2)
    return up


def start_piked(
    ns: Namespace,
    d: Path,
    conns: int,
    text: str | None = None,
    split: bool = False,
    python: Path | None = None,
    record: Path | None = None,
    cpu: int | None = None,
) -> tuple[subprocess.Popen[bytes], float]:
    """piked with the fake kernel; returns it and the seconds until it said READY=1.
    Its config cache is ``d/cache`` (a second start in ``d`` reads it). ``text``: the
    config, else ``pike_toml(conns, ...)``. ``split``: it accounts its engine's CPU
    (``engine_cpu``). ``python``: its interpreter (default ``VENV``'s). ``record``: it
    keeps its conversation for ``live_replay.py`` (written there on SIGUSR2). ``cpu``: the
    one it runs on."""
    sock, notify = d / "pike.sock", d / "notify.sock"
    (d / "pike.toml").write_text(pike_toml(conns, sock) if text is None else text)
    (d / "pike.toml").chmod(0o600)
    notify.unlink(missing_ok=True)
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ready.bind(str(notify))
    ready.settimeout(120)
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(notify),
        PYTHONUNBUFFERED="1",
        PIKE_CONFIG_CACHE=str(d / "cache"),
    )
    if split:
        env["PIKE_BENCH_ENGINE_CPU"] = str(d / "engine-cpu")
    if record is not None:
        env["PIKE_BENCH_RECORD"] = str(record)
    script = str(Path(__file__).with_name("piked_fake_kernel.py"))
    t0 = time.monotonic()
    with (d / "piked.log").open("wb") as out:
        proc = ns.popen(
            pinned([str(python or VENV / "python"), script, "--config", str(d / "pike.toml")], cpu),
            stdout=out,
            env=env,
        )
    while b"READY=1" not in ready.recv(4096):
        pass
    took = time.monotonic() - t0
    ready.close()
    return proc, took


def engine_cpu(pid: int, d: Path, n: int) -> tuple[float, float, list[int]]:
    """The CPU seconds piked (``start_piked(split=True)`` in ``d``) spent in its engine so
    far, those its collector took, and its collections per generation; ``n``: how many
    times it has been asked, this one included."""
    path = d / "engine-cpu"
    os.kill(pid, signal.SIGUSR2)
    wait_for(lambda: path.exists() and path.read_text().split()[0] == str(n), 10, "engine CPU")
    _, engine, gc_cpu, *collections = path.read_text().split()
    return float(engine), float(gc_cpu), [int(c) for c in collections]


def rekey_spread(resp: Namespace, sock: Path, pikectl: Path) -> dict[str, float]:
    """How far piked's CHILD_SA rekeys are drawn before rekey_time (their jitter, up to
    rand_time): from ``pikectl list-sas --json``, rekey due + age = rekey_time - jitter."""
    listing = resp.run([str(pikectl), "--socket", str(sock), "list-sas", "--json"], timeout=120)
    jitter = sorted(
        CHILD_REKEY - (c["rekey_in_s"] + c["installed_ago_s"])
        for sa in json.loads(listing.stdout)
        for c in sa["children"]
        if c.get("rekey_in_s") is not None
    )
    if not jitter:
        return {}
    tenths = [0] * 10  # how many fall in each tenth of rand_time
    for j in jitter:
        tenths[min(max(int(j * 10 // CHILD_RAND), 0), 9)] += 1
    return {
        "rekey jitter min s": jitter[0],
        "rekey jitter max s": jitter[-1],
        "rekey jitter median s": statistics.median(jitter),
        "rekeys in fullest tenth %": max(tenths) * 100 / len(jitter),
    }


def run_one(
    lab: Lab,
    gen: Namespace,
    resp: Namespace,
    prefix: Path,
    impl: str,
    conns: int,
    n: int,
    idle: float,
    split: bool = False,
    python: Path | None = None,
    pin: bool = False,
) -> dict[str, float]:
    """One responder (``impl``: charon or piked, the latter under ``python``) under the
    load-tester's ``n`` IKE SAs. ``pin``: the responder on CPU 0, the generator on CPU 1."""
    with tempfile.TemporaryDirectory(prefix=f"bench-hub-{impl}-") as tmp:
        d = Path(tmp)
        out: dict[str, float] = {}
        cpu, gen_cpu = (RESPONDER_CPU, GENERATOR_CPU) if pin else (None, None)
        if impl == "charon":
            rd = d / "resp"
            rd.mkdir()
            proc = start_charon(
                resp,
                prefix,
                rd,
                # its load-tester credentials answer for srv.example too: the same PSK
                "load-tester {\n enable = yes\n fake_kernel = yes\n initiators = 0\n"
                f" preshared_key = {PSK}\n }}",
                cpu,
                quiet=True,
            )
            vici = rd / "charon.vici"
            wait_for(vici.exists, 30, "charon's vici socket")
            (rd / "swanctl").mkdir()
            (rd / "swanctl" / "swanctl.conf").write_text(swanctl_conf(conns))
            t0 = time.monotonic()
            resp.run(
                [
                    str(prefix / "sbin" / "swanctl"),
                    "--load-all",
                    "--noprompt",
                    "--uri",
                    f"unix://{vici}",
                    "--file",
                    str(rd / "swanctl" / "swanctl.conf"),
                ],
                timeout=600,
            )
            out["load s"] = time.monotonic() - t0
        else:
            # the first start parses and fills the config cache, the second reads it
            proc, out["ready s"] = start_piked(resp, d, conns, python=python, cpu=cpu)
            kill_pid(proc.pid)
            proc, out["ready s cached"] = start_piked(
                resp, d, conns, split=split, python=python, cpu=cpu
            )
        split = split and impl == "piked"
        pid = proc.pid
        time.sleep(0.5)
        (user0, sys0), cpu0, rss0 = user_system(pid), cpu_seconds(pid), rss_kib(pid)
        engine0, gc0, coll0 = engine_cpu(pid, d, 1) if split else (0.0, 0.0, [0, 0, 0])
        out["idle RSS MiB"] = rss0 / 1024
        gd = d / "gen"
        gd.mkdir()
        gen_proc = start_charon(gen, prefix, gd, generator_plugins(n), gen_cpu)
        log = gd / "charon.log"
        wait_up(log, n)
        time.sleep(0.3)  # the last CHILD_SAs' responses are out
        got = established(log)
        (user1, sys1), cpu1, rss1 = user_system(pid), cpu_seconds(pid), rss_kib(pid)
        engine1, gc1, coll1 = engine_cpu(pid, d, 2) if split else (0.0, 0.0, [0, 0, 0])
        if idle:
            # all SAs held, their DPD and rekey timers armed, nothing due: what does
            # holding them cost?
            time.sleep(2)
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(idle)
            out["idle CPU %"] = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
        if impl == "piked":
            pikectl = (python or VENV / "python").parent / "pikectl"
            out.update(rekey_spread(resp, d / "pike.sock", pikectl))
        kill_pid(gen_proc.pid)
        kill_pid(pid)
        if got:
            out["CPU ms/SA"] = (cpu1 - cpu0) * 1000 / got
            # the kernel's part of it, in clock ticks (sampled: +-0.01 ms at 1000 SAs)
            out["system ms/SA"] = (sys1 - sys0) * 1000 / got
            out["user ms/SA"] = (user1 - user0) * 1000 / got
            out["KiB/SA"] = (rss1 - rss0) / got
            if split:
                out["engine ms/SA"] = (engine1 - engine0) * 1000 / got
                out["runtime ms/SA"] = out["CPU ms/SA"] - out["engine ms/SA"]
                out["collector ms/SA"] = (gc1 - gc0) * 1000 / got  # in either of them
                for generation, (n0, n1) in enumerate(zip(coll0, coll1, strict=True)):
                    out[f"collections gen {generation}"] = n1 - n0
        out["established"] = got
        out["load"] = os.getloadavg()[0]
        return out


def pikectl_latency(lab: Lab, resp: Namespace, python: Path | None = None) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-hub-ctl-") as tmp:
        d = Path(tmp)
        proc, _ = start_piked(resp, d, 1, python=python)
        pikectl = (python or VENV / "python").parent / "pikectl"
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            subprocess.run(
                [str(pikectl), "--socket", str(d / "pike.sock"), "status"],
                check=True,
                capture_output=True,
            )
            times.append(time.monotonic() - t0)
        kill_pid(proc.pid)
        return statistics.median(times)


def interpreter(python: Path) -> str:
    """What ``python`` is: its real executable and version (the header's line)."""
    info = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    base = Path(python).resolve()
    return f"{python} -> {base} (Python {info})"


def fmt(k: str, x: float) -> str:
    return f"{x:.3f}" if "ms/SA" in k else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sas", type=int, default=1000)
    ap.add_argument("--conns", default="1,10000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--idle", type=float, default=20, help="seconds of idle CPU measured with all SAs held"
    )
    ap.add_argument("--prefix", type=Path, default=REPO / "tests" / "bench" / ".load-tester")
    ap.add_argument(
        "--split", action="store_true", help="piked's CPU per SA: the engine's and the rest"
    )
    ap.add_argument(
        "--python",
        type=Path,
        action="append",
        help="piked's interpreter (a venv's python with pike installed; default "
        "this repository's .venv); given twice or more, one piked each, interleaved",
    )
    ap.add_argument("--no-charon", action="store_true", help="piked only (A/B of pikeds)")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="the responder on CPU 0 and the generator on CPU 1 (taskset): neither "
        "preempts the other, so what each wake-up costs is the responder's own",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_hub needs root (network namespaces)")
    prefix = args.prefix.resolve()
    ensure_load_tester(prefix)
    pythons: list[Path] = args.python or [VENV / "python"]
    pikeds = (
        {"piked": pythons[0]}
        if len(pythons) == 1
        else {f"piked#{i}": py for i, py in enumerate(pythons, 1)}
    )
    impls = list(pikeds) if args.no_charon else ["charon", *pikeds]
    for name, py in pikeds.items():
        print(f"# {name}: {interpreter(py)}", flush=True)
    results: dict[tuple[str, int, str], list[float]] = {}
    with Lab.create() as lab:
        gen, resp = lab.add_ns("gen"), lab.add_ns("resp")
        lab.link(gen, resp, f"{GEN}/24", f"{RESP}/24")
        for r in range(args.rounds):
            for conns in (int(c) for c in args.conns.split(",")):
                for impl in impls if r % 2 == 0 else impls[::-1]:
                    got = run_one(
                        lab,
                        gen,
                        resp,
                        prefix,
                        "charon" if impl == "charon" else "piked",
                        conns,
                        args.sas,
                        args.idle,
                        args.split,
                        pikeds.get(impl),
                        args.pin,
                    )
                    print(f"# round {r + 1} {impl} {conns} conns: {got}", flush=True)
                    for k, v in got.items():
                        results.setdefault((impl, conns, k), []).append(v)
        ctl = pikectl_latency(lab, resp, pythons[0])
    loads = [v for (_, _, k), vals in results.items() if k == "load" for v in vals]
    print(
        f"\nmachine: 2 cores shared with others (load average {min(loads):.1f}-"
        f"{max(loads):.1f} at the runs' ends); {args.sas} IKE SAs per run; medians of "
        f"{args.rounds} rounds (each round's values in brackets)"
    )
    for name, py in pikeds.items():
        print(f"{name}: {interpreter(py)}")
    for conns in (int(c) for c in args.conns.split(",")):
        for k in (
            "CPU ms/SA",
            "user ms/SA",
            "system ms/SA",
            "KiB/SA",
            "idle RSS MiB",
            "idle CPU %",
        ):
            c = results.get(("charon", conns, k), [])
            line = f"{conns:>6} conns  {k:13s}"
            if c:
                line += f" charon {fmt(k, statistics.median(c))}"
            for name in pikeds:
                p = results.get((name, conns, k), [])
                if not p:
                    continue
                mp = statistics.median(p)
                line += f"  {name} {fmt(k, mp)}"
                if c and statistics.median(c):
                    line += f" ({mp / statistics.median(c):.2f}x charon)"
                line += f" [{', '.join(fmt(k, x) for x in p)}]"
            if c:
                line += f"  charon [{', '.join(fmt(k, x) for x in c)}]"
            print(line)
        for k in (
            "engine ms/SA",
            "runtime ms/SA",
            "collector ms/SA",
            "collections gen 0",
            "collections gen 1",
            "collections gen 2",
            "ready s",
            "ready s cached",
            "rekey jitter min s",
            "rekey jitter median s",
            "rekey jitter max s",
            "rekeys in fullest tenth %",
        ):
            for name in pikeds:
                vals = results.get((name, conns, k), [])
                if vals:
                    print(
                        f"{conns:>6} conns  {name} {k:25s} {fmt(k, statistics.median(vals)):>8}"
                        f"   [{', '.join(fmt(k, x) for x in vals)}]"
                    )
    print(f"pikectl status (1 conn, {pythons[0]}): {ctl * 1000:.0f} ms")


if __name__ == "__main__":
    main()
