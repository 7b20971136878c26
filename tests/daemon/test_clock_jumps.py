"""Wall-clock jumps (issue 13, item 5): settimeofday forward or back, by NTP or by hand,
must not fire or hold back a timer (they run on the monotonic clock), while certificate
validity is judged on the wall clock. Two real daemons over loopback on one
``VirtualClock`` whose wall clock the test steps (this machine's real clock is never
touched): hq authenticates with a certificate valid for two more days, the branch with
a PSK, and the branch rekeys its IKE SA every hour.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ikev2.x509gen import DAY, NOW, issue, make_ca, write
from pike.policy.config import Config
from pike.policy.loader import load_config

from .helpers import gateway_pair
from .test_runtime_loopback import _ask, _established, _until
from .virtual_pair import VirtualPair

HOUR = 3600


def _configs(tmp_path: Path) -> tuple[Config, Config]:
    """The loopback pair, hq (b) with a certificate that expires in two days."""
    ca = make_ca()
    hq = issue(ca, "ecdsa-p256", "hq.example.net", [x509.DNSName("hq.example.net")],
               not_before=NOW - DAY, not_after=NOW + 2 * DAY)  # fmt: skip
    write(tmp_path, "ca", ca)
    write(tmp_path, "hq", hq)
    gateway_pair(tmp_path, a_extra='rekey_time = "1h"\n')
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(
        a.read_text().replace(
            'remote = { auth = "psk", id = "hq.example.net" }',
            'remote = { auth = "pubkey", id = "hq.example.net", cacerts = ["ca.pem"] }',
        )
    )
    b.write_text(
        b.read_text().replace(
            'local = { auth = "psk", id = "hq.example.net" }',
            'local = { auth = "pubkey", id = "hq.example.net", certs = ["hq.pem"], '
            'key = "hq.key" }',
        )
    )
    return load_config(str(a)), load_config(str(b))


def test_wall_clock_jumps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = _configs(tmp_path)

    async def scenario() -> dict[str, Any]:
        pair = VirtualPair(cfg_a, cfg_b, random.Random(13).randbytes)
        await pair.start_both()
        clock, a = pair.clock, pair.a
        sock = cfg_a.daemon.control_socket
        first = (await _until(sock, _established))[0]
        rekeys = a.engine.ctx.counters.conn("hq")  # type: ignore[attr-defined]
        out: dict[str, Any] = {"first": first}

        # forward 3 days: past the certificate's end, and past any lifetime if timers
        # ran on the wall clock; 10 minutes of monotonic time then pass
        clock.jump_wall(3 * 86400)
        await clock.run_for(600)
        out["after_forward"] = (await _ask(sock, "list-sas"))["result"]
        out["rekeys_forward"] = rekeys.ike_rekeys
        # a new IKE SA now meets hq's certificate after its end: refused
        await _ask(sock, "terminate", {"conn": "hq"})
        await _until(sock, lambda sas: not sas)
        await _ask(sock, "initiate", {"conn": "hq"})
        out["refused"] = await _until(sock, lambda sas: not sas, timeout=5)
        # back 3 days: the certificate is valid again and a new IKE SA comes up
        clock.jump_wall(-3 * 86400)
        await _ask(sock, "initiate", {"conn": "hq"})
        second = (await _until(sock, _established))[0]
        out["second"] = second
        # backward did not hold the rekey timer: one rekey within the next hour
        await clock.run_for(HOUR + 10)
        out["rekeys_hour"] = rekeys.ike_rekeys
        out["status"] = (await _ask(sock, "status"))["result"]
        assert await pair.stop() == [0, 0]
        return out

    r = asyncio.run(scenario())
    log = caplog.text
    # forward jump: the IKE SA is the first one, untouched; no rekey fired
    (sa,) = r["after_forward"]
    assert sa["spi_i"] == r["first"]["spi_i"] and sa["state"] == "ESTABLISHED"
    assert r["rekeys_forward"] == 0
    # the certificate was judged on the (jumped) wall clock, with one clear reason
    assert r["refused"] == []
    assert re.search(r"'CN=hq\.example\.net,O=pike test,C=CH' expired at", log), log[-3000:]
    # backward jump: valid again, and the rekey came on the monotonic schedule
    assert r["second"]["state"] == "ESTABLISHED" and r["second"]["spi_i"] != r["first"]["spi_i"]
    assert r["rekeys_hour"] == 1
    assert r["status"]["uptime"] >= HOUR + 600  # monotonic, not the stepped wall clock
    assert "Traceback" not in log


# Modules that may read the wall clock, and why; every other one takes time from the
# runtime's Clock (monotonic for timers), so a settimeofday cannot move a timer.
WALL_CLOCK_READERS = {
    "firmware/pike/daemon/clock.py": "LoopClock.wall and VirtualClock's start",
    "firmware/pike/sa/credentials.py": "certificate validity when no daemon clock is set",
    "hsm/pike/hsm/provision.py": "notBefore of a certificate being made",
    "firmware/pike/cli/cert_text.py": "pikectl certs: days left of each certificate",
    "firmware/pike/cli/keys.py": "pikectl keys enroll --within: days left of --cert",
}
WALL_CLOCK_CALLS = re.compile(r"\btime\.time\(|\bdatetime\.now\(|\butcnow\(|\bdate\.today\(")


def _code(path: Path) -> str:
    """The file without its comments (a comment may name time.time())."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def test_only_the_clock_reads_the_wall_clock() -> None:
    root = Path(__file__).resolve().parents[2]
    readers = {
        str(path.relative_to(root))
        for top in ("firmware/pike", "board/pike", "hsm/pike")
        for path in (root / top).rglob("*.py")
        if WALL_CLOCK_CALLS.search(_code(path))
    }
    assert readers <= set(WALL_CLOCK_READERS), sorted(readers - set(WALL_CLOCK_READERS))
