"""What a PSK-only IKEv2 gateway loads at start: not the IKEv1 engine, not the metrics
server (``prometheus_client``), not ``importlib.metadata``, not ``ssl``, not the hot-plug
watcher (``pyudev``); each is imported when a config or a peer needs it (idle RSS,
docs/performance.md). In a fresh interpreter, as piked starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.helpers import free_udp_ports, gateway_config
from ikev2.pair import psk_conf
from lib.prereq import unavailable
from pike.daemon.hotplug import wanted
from pike.policy.loader import load_config_text

SCRIPT = """
import json, os, sys
from pike.cli import piked
from pike.daemon.configfile import load_checked
from pike.daemon.engines import Engines
from pike.daemon.runtime import Daemon
from pike.policy.ipsec import KernelCaps
from pike.version import version

config = load_checked(sys.argv[1], probe=False)
engine = Engines(config, random=os.urandom, kernel_caps=KernelCaps(True))
engine.start(0.0)
version()
print(json.dumps(sorted(sys.modules)))
"""

LAZY = (
    "pike.ikev1.engine",
    "prometheus_client",
    "importlib.metadata",
    "cryptography.x509",
    "zipfile",  # importlib.resources' readers: board profiles are listed as files
    "ctypes.util",  # with shutil, tempfile, bz2, lzma: libc is the process's own
    "pike.kernel.tunnel_links",  # route-based children
    "pike.hsm.filekey",  # a key file
    # with ssh, dsa, ...: certificates and pike-keyd's keys (pike.sa.credentials, ...)
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.padding",  # RSA signature checks
    "cryptography.hazmat.primitives.asymmetric.types",  # with dsa, ed448, mldsa
    "argparse",  # piked's usual command lines: pike.cli.piked.parse_args
    "tomllib",  # configs and board profiles in pike.policy.toml_fast's subset
    "pathlib",  # the config cache's and the board profiles' paths: os.path
    "datetime",  # wall-clock times for certificates and CRLs: imported where made
    "urllib.parse",  # CRL and OCSP URIs: pike.daemon.revocation's first fetch
    # with cryptography's OID tables: the first ECP exchange or signature (pike.crypto.ke,
    # pike.ikev2.pubkey, pike.hsm.signer)
    "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa",  # with random: the first RSA key
)


def test_a_psk_ikev2_gateway_starts_without_what_it_does_not_use(tmp_path: Path) -> None:
    conf = tmp_path / "pike.toml"
    conf.write_text(psk_conf("192.0.2.1", "192.0.2.2", "a.example", "b.example").render())
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(conf)],
        capture_output=True,
        text=True,
        check=True,
        env={"PIKE_CONFIG_CACHE": "", "PATH": "/usr/bin:/bin"},
    )
    loaded = set(json.loads(done.stdout))
    assert "pike.ikev2.engine" in loaded  # the script did load the daemon
    assert [m for m in LAZY if m in loaded] == []


DAEMON_PATH = """
import asyncio, json, sys, time
from pike.cli import piked
from pike.daemon.paths import PathWatcher
from pike.kernel import tunnel_links  # route-based children: imported with the runtime
from pike.kernel.xfrm import XfrmKernel

kernel = piked._kernel()
assert isinstance(kernel, XfrmKernel), kernel
kernel.probe()
assert kernel.events_fileno() is not None
seen = []

class Engine:
    def mobike_peers(self):
        return {"127.0.0.1"}

    def paths_changed(self, addresses, sources, now):
        seen.append(sources)

loop = asyncio.new_event_loop()
watcher = PathWatcher(Engine, time.monotonic, lambda: None)
watcher.start(loop)
watcher.close()
kernel.close()
print(json.dumps({"seen": seen, "modules": sorted(sys.modules)}))
"""


def test_the_daemon_path_does_not_import_pyroute2() -> None:
    """The XFRM backend (probe, events) and the MOBIKE path watcher speak netlink with
    pike's own codec (pike.kernel.netlink): pyroute2 (12 MiB) stays out of piked."""
    if os.geteuid() != 0:
        unavailable("needs root: NETLINK_XFRM needs CAP_NET_ADMIN")
    done = subprocess.run(
        [sys.executable, "-c", DAEMON_PATH],
        capture_output=True,
        text=True,
        check=True,
        env={"PIKE_CONFIG_CACHE": "", "PATH": "/usr/bin:/bin"},
    )
    out = json.loads(done.stdout)
    assert out["seen"] == [{"127.0.0.1": "127.0.0.1"}]  # the watcher did look up routes
    loaded = set(out["modules"])
    assert "pike.kernel.xfrm_events" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] == "pyroute2") == []


RUNNING = """
import gc, json, sys
import pike.cli.piked_entry  # as the installed piked command: before asyncio
import asyncio
from pike.cli import piked
from pike.daemon import runtime
from pike.daemon.nokernel import NoKernel

piked._kernel = lambda: NoKernel("test")
run = runtime.Daemon.run

async def report(daemon):
    await daemon.ready.wait()
    await asyncio.sleep(0.5)  # the watchers started after READY
    loaded = sorted(k for k, v in sys.modules.items() if v is not None)
    print(gc.get_freeze_count(), flush=True)  # what startup left out of the collector's scans
    print(json.dumps(loaded), flush=True)
    daemon.request_stop()

async def run_and_report(self):
    asyncio.get_running_loop().create_task(report(self))
    return await run(self)

runtime.Daemon.run = run_and_report
sys.exit(piked.main())
"""

# started and listening, the running daemon still without these (besides LAZY)
LAZY_RUNNING = (
    "ssl",  # piked speaks no TLS (pike.cli.piked_entry)
    "_ssl",
    "pyudev",  # hot-plug: nothing in this config for it (pike.daemon.hotplug.wanted)
    "shutil",  # argparse's terminal width (pike.cli.piked._Formatter)
    "lzma",
    "tempfile",  # the config cache entry's file (pike.policy.config_cache._write)
)


def _run_piked(tmp_path: Path, metrics: bool = False) -> tuple[set[str], int]:
    """piked's own entry (the ``piked`` command) up to READY and 0.5 s on: the modules
    then loaded, and how many objects it froze (``gc.freeze`` once ready)."""
    ike, natt, http = free_udp_ports(3)
    gateway_config(
        tmp_path,
        "gw",
        local="127.0.0.1",
        remote="127.0.0.2",
        local_id="hq.example.net",
        remote_id="branch1.example.net",
        ike_port=ike,
        natt_port=natt,
    )
    conf = tmp_path / "gw.toml"
    if metrics:  # the metrics server: prometheus_client, which needs ssl
        text = conf.read_text()
        assert "[daemon]\n" in text
        conf.write_text(
            text.replace("[daemon]\n", f'[daemon]\nmetrics_listen = "127.0.0.1:{http}"\n')
        )
    (tmp_path / "gw").mkdir()
    conf.chmod(0o600)
    done = subprocess.run(
        [sys.executable, "-c", RUNNING, "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PIKE_CONFIG_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    *_, frozen, modules = done.stdout.splitlines()
    loaded = set(json.loads(modules))
    assert "pike.daemon.paths" in loaded and "asyncio" in loaded  # it did run
    assert list((tmp_path / "cache").iterdir())  # and wrote its config cache entry
    return loaded, int(frozen)


def test_a_running_psk_gateway_has_not_loaded_what_it_does_not_use(tmp_path: Path) -> None:
    """Its watchers started: no ``ssl`` (asyncio runs without it), no hot-plug watcher
    for a responder-only config. What it held when ready is out of the collector's scans
    (``gc.freeze``: modules, config, loop; tens of thousands of objects)."""
    loaded, frozen = _run_piked(tmp_path)
    assert [m for m in (*LAZY, *LAZY_RUNNING) if m in loaded] == []
    assert frozen > 10_000


def test_what_needs_ssl_still_gets_it(tmp_path: Path) -> None:
    """asyncio loaded without ``ssl`` does not keep it from what needs it later: with
    ``metrics_listen`` piked starts its metrics server (``prometheus_client`` imports
    ``ssl``)."""
    loaded, _ = _run_piked(tmp_path, metrics=True)
    assert {"prometheus_client", "ssl"} <= loaded


HOTPLUG_CONF = """
[connections.gw]
local_addrs = ["192.0.2.1"]
remote_addrs = [{remote}]
proposals = ["aes128gcm16-prfsha256-x25519"]
[connections.gw.local]
auth = "psk"
id = "a.example"
[connections.gw.remote]
auth = "psk"
id = "b.example"
[connections.gw.children.net]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
[secrets.ike-gw]
secret = "0sv4Qn9-example-only-psk-replace-me-7Kd2"
"""


@pytest.mark.parametrize(
    ("remote", "start", "want"),
    [
        ('"192.0.2.2"', "none", False),  # a responder: nothing for hot-plug
        ('"%any"', "none", False),
        ('"192.0.2.2"', "start", True),  # its interface may come later
        ('"192.0.2.2"', "trap", False),
    ],
)
def test_hotplug_is_wanted_for_self_starting_connections(
    remote: str, start: str, want: bool
) -> None:
    """(A token key wants it too: tests/hsm/test_hotplug_tokens.py.)"""
    text = HOTPLUG_CONF.format(remote=remote, start=start)
    assert wanted(load_config_text(text, "pike.toml")) is want
