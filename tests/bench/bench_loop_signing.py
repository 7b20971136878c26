"""Does piked keep answering while a TPM signs? Event-loop lag and ``status`` round trips
during N parallel IKE_AUTHs that each need a TPM RSA-2048 signature.

    .venv/bin/python tests/bench/bench_loop_signing.py [--n 32] [--rounds 2]

piked (the real ``Daemon``, in this process, ``NoKernel``, loopback only) answers as
responder with its key in a TPM 2.0 simulator (swtpm + tpm2-abrmd + tpm2-pkcs11, started
here and stopped by PID). The initiators are N pike IKEv2 connections in a separate
process (PSK on their side, so only piked signs), all started at once. Meanwhile this
process measures the loop lag (a 2 ms sleep's overshoot, on piked's loop) and the round
trip of ``status`` over piked's control socket (from a thread, every 5 ms): idle (1 s
before the initiators start), over the whole burst, and only the samples that overlap a
signature in flight (asked by the engine, not yet answered).

Two ways of signing are run side by side: ``thread`` (what piked does: SignRequest ->
thread pool -> sign_done) and ``inline`` (the same signature made on the event loop, as
before the key custody change) as the reference. A benchmark: it prints, never asserts.
Read the sample counts and medians of the "signing" rows: inline, the loop takes one
sample or two while signatures are in flight (it is frozen); with threads it keeps
sampling. Maxima include the times the whole process waited for a CPU (on a shared
2-core machine, hundreds of ms), in either mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pike.sa.credentials import CredentialStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (hsm, ikev2 helpers)

HQ = "hq.example.net"


def _initiators(path: str, timeout: float, spread: float) -> int:
    """Child process: every connection of ``path`` initiates (at once, or one every
    ``spread`` seconds); prints a JSON line."""
    from pike.ikev2.engine import Ikev2Engine
    from pike.policy.ipsec import KernelCaps
    from pike.policy.loader import load_config
    from pike.sa.actions import IkeSaEstablished, SendDatagram

    cfg = load_config(path)
    eng = Ikev2Engine(cfg, random=os.urandom, kernel_caps=KernelCaps(False, ("bench",)))
    local = next(iter(cfg.connections.values())).local_addrs[0]
    me = (local, cfg.daemon.ike_port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(me)
    t0 = time.monotonic()
    up = 0
    todo = list(cfg.connections)
    next_at = t0
    while up < len(cfg.connections) and time.monotonic() - t0 < timeout:
        while todo and time.monotonic() >= next_at:
            eng.initiate(todo.pop(0), time.monotonic())
            next_at += spread
        while (a := eng.next_action()) is not None:
            if isinstance(a, SendDatagram):
                sock.sendto(a.data, a.dst)
            elif isinstance(a, IkeSaEstablished):
                up += 1
        timer = eng.get_timer()
        wait = 0.05 if timer is None else max(0.0, min(0.05, timer - time.monotonic()))
        if todo:
            wait = max(0.0, min(wait, next_at - time.monotonic()))
        if select.select([sock], [], [], wait)[0]:
            data, src = sock.recvfrom(65535)
            eng.receive_datagram(data, (src[0], src[1]), me, time.monotonic())
        else:
            eng.handle_timer(time.monotonic())
    print(json.dumps({"established": up, "seconds": time.monotonic() - t0}), flush=True)
    return 0


def _configs(d: Path, n: int, key: str, ports: tuple[int, int, int]) -> tuple[Path, Path]:
    from lib.pikeconf import Conn, PikeConf, Secret

    a_ike, a_natt, b_ike = ports
    branches = [(f"b{k}", f"branch{k}.example.net", f"bench-only-psk-{k}-5b1e0f") for k in range(n)]
    hq_auth = {"auth": "pubkey", "id": HQ, "certs": [str(d / "hq.pem")], "key": key}
    a = PikeConf(
        daemon={"control_socket": str(d / "piked.sock"), "ike_port": a_ike, "natt_port": a_natt},
        connections=[
            Conn(
                name=name,
                local_addrs=["127.0.0.1"],
                remote_addrs=["127.0.0.2"],
                proposals=["aes128gcm16-prfsha256-x25519"],
                local=hq_auth,
                remote={"auth": "psk", "id": br},
            )
            for name, br, _ in branches
        ],
        secrets=[Secret(name, psk, [HQ, br]) for name, br, psk in branches],
    )
    b = PikeConf(
        daemon={"control_socket": str(d / "unused.sock"), "ike_port": b_ike},
        connections=[
            Conn(
                name=name,
                local_addrs=["127.0.0.2"],
                remote_addrs=["127.0.0.1"],
                remote_port=a_ike,
                proposals=["aes128gcm16-prfsha256-x25519"],
                local={"auth": "psk", "id": br},
                remote={"auth": "pubkey", "id": HQ, "cacerts": [str(d / "ca.pem")]},
            )
            for name, br, _ in branches
        ],
        secrets=[Secret(name, psk, [br, HQ]) for name, br, psk in branches],
    )
    (d / "a.toml").write_text(a.render())
    (d / "b.toml").write_text(b.render())
    return d / "a.toml", d / "b.toml"


def _pcts(xs: list[float]) -> str:
    if not xs:
        return "    -       -       -       -"
    s = sorted(xs)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"{len(s):4} {statistics.median(s) * 1000:7.2f} {p99 * 1000:7.2f} {s[-1] * 1000:7.2f}"


async def _scenario(
    a_conf: Path, b_conf: Path, n: int, inline: bool, spread: float, store: CredentialStore
) -> dict[str, Any]:
    from pike.cli.piked import _engine
    from pike.daemon import signing
    from pike.daemon.control import request
    from pike.daemon.nokernel import NoKernel
    from pike.daemon.runtime import Daemon
    from pike.policy.loader import load_config

    cfg = load_config(str(a_conf))
    daemon = Daemon(cfg, NoKernel("bench"), _engine, ipv6=False, credentials=store)
    orig_submit, orig_done = signing.Signing.submit, signing.Signing._done
    busy: list[list[float]] = []  # [start, end] of each signature, from ask to answer
    started: dict[int, list[float]] = {}

    def submit(self: signing.Signing, req: Any) -> None:
        started[req.ref] = span = [time.monotonic(), float("inf")]
        busy.append(span)
        if not inline:
            orig_submit(self, req)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        fut.set_result(signing._sign(self._store(), req))  # on the loop: blocks it
        self.in_flight += 1
        self._done(req, fut)

    def done(self: signing.Signing, req: Any, fut: Any) -> None:
        started.pop(req.ref)[1] = time.monotonic()
        orig_done(self, req, fut)

    signing.Signing.submit = submit  # type: ignore[method-assign]
    signing.Signing._done = done  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 10)
    loop = asyncio.get_running_loop()
    phase = "idle"
    # samples: (start, end, value) on time.monotonic (the loop's clock)
    lag: dict[str, list[tuple[float, float, float]]] = {"idle": [], "burst": []}
    rtt: dict[str, list[tuple[float, float, float]]] = {"idle": [], "burst": []}
    stop = threading.Event()

    async def lag_probe() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.002)
            end = loop.time()
            lag[phase].append((t, end, max(0.0, end - t - 0.002)))

    def status_probe() -> None:
        while not stop.is_set():
            p = phase
            t = time.monotonic()
            resp = request(cfg.daemon.control_socket, "status")
            end = time.monotonic()
            if resp.get("ok"):
                rtt[p].append((t, end, end - t))
            time.sleep(0.005)

    probe = asyncio.create_task(lag_probe())
    th = threading.Thread(target=status_probe, daemon=True)
    th.start()
    await asyncio.sleep(1.0)
    phase = "burst"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--initiators",
        str(b_conf),
        "--spread",
        str(spread),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    stop.set()
    probe.cancel()
    await asyncio.get_running_loop().run_in_executor(None, th.join)
    result = json.loads(out.decode().strip().splitlines()[-1])
    durations = daemon.ops.recorder.sign_durations
    signs = sum(h.n for h in durations.values())
    mean = sum(h.total for h in durations.values()) / signs if signs else 0.0
    daemon.request_stop()
    await task
    signing.Signing.submit = orig_submit  # type: ignore[method-assign]
    signing.Signing._done = orig_done  # type: ignore[method-assign]

    def split(samples: dict[str, list[tuple[float, float, float]]]) -> dict[str, list[float]]:
        """idle; burst; and the burst samples that overlap a signature in flight."""
        during = [v for a, b, v in samples["burst"] if any(a < e and b > s for s, e in busy)]
        return {
            "idle": [v for _, _, v in samples["idle"]],
            "burst": [v for _, _, v in samples["burst"]],
            "signing": during,
        }

    return {"lag": split(lag), "rtt": split(rtt), "signs": signs, "sign_mean": mean, **result}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=32, help="parallel IKE_AUTHs per run")
    p.add_argument("--rounds", type=int, default=2, help="runs per way of signing")
    p.add_argument("--spread", type=float, default=0.0,
                   help="seconds between two initiators' starts (0: all at once)")  # fmt: skip
    p.add_argument("--debug", action="store_true", help="asyncio debug: log slow callbacks")
    p.add_argument("--initiators", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.initiators:
        return _initiators(args.initiators, 60.0, args.spread)

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from daemon.helpers import free_udp_ports
    from hsm.tokens import USER_PIN, Tpm, reset_pike_tokens, tpm_available, uri
    from ikev2.x509gen import certify, make_ca, write
    from pike.hsm import pkcs11 as hsm
    from pike.hsm import provision
    from pike.hsm.pkcs11 import Pkcs11Signer
    from pike.sa.credentials import CredentialStore

    if not tpm_available():
        print("swtpm / tpm2-abrmd / tpm2-pkcs11 not installed: nothing to measure")
        return 1
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ["PIKE_PIN"] = USER_PIN
    tmp = Path(tempfile.mkdtemp(prefix="pike-bench-loop-"))
    tpm = Tpm(tmp, label="bench")
    os.environ.update(tpm.env())
    try:
        tpm.start()
        lib = hsm.module(tpm.module).load()
        key = uri(tpm.module, "bench", "ike-rsa")
        with hsm.find_token(lib, hsm.parse(key)).open(rw=True, user_pin=USER_PIN) as s:
            provision.generate(s, "rsa2048", "ike-rsa", b"ike-rsa")
        ca = make_ca("rsa", "bench CA")
        signer = Pkcs11Signer(key)
        req = provision.csr(signer, x509.Name.from_rfc4514_string(f"CN={HQ}"), [])
        cert = certify(ca, req, [x509.DNSName(HQ)])
        (tmp / "hq.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write(tmp, "ca", ca)
        reset_pike_tokens()
        a_conf, b_conf = _configs(tmp, args.n, key, tuple(free_udp_ports(3)))  # type: ignore[arg-type]
        from pike.policy.loader import load_config

        store = CredentialStore()  # piked's, preloaded as at its start (logs in)
        problems = store.preload(load_config(str(a_conf)))
        assert not problems, problems
        when = f"one every {args.spread * 1000:.0f} ms" if args.spread else "all at once"
        print(f"piked responder, TPM RSA-2048 key (swtpm via tpm2-abrmd), {args.n} initiators "
              f"({when})")  # fmt: skip
        print("samples, then ms: median / p99 / max")
        print(f"{'signing':8} {'phase':7} {'loop lag':>28} {'status round trip':>28}  "
              f"{'IKE SAs':>8} {'burst s':>8} {'sign ms':>8}")  # fmt: skip
        for rnd in range(args.rounds):
            for mode in ("thread", "inline"):
                r = asyncio.run(
                    _scenario(a_conf, b_conf, args.n, mode == "inline", args.spread, store),
                    debug=args.debug,
                )
                for ph in ("idle", "burst", "signing"):
                    extra = (
                        f"  {r['established']:>4}/{args.n:<3} {r['seconds']:8.2f} "
                        f"{r['sign_mean'] * 1000:8.2f}"
                        if ph == "signing"
                        else ""
                    )
                    print(f"{mode:8} {ph:7} {_pcts(r['lag'][ph])} {_pcts(r['rtt'][ph])}{extra}",
                          flush=True)  # fmt: skip
            if rnd + 1 < args.rounds:
                print()
    finally:
        reset_pike_tokens()
        tpm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
