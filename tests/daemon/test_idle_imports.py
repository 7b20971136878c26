"""What a PSK-only IKEv2 gateway loads at start: not the IKEv1 engine, not the metrics
server (``prometheus_client``), not ``importlib.metadata``; each is imported when a
config or a peer needs it (idle RSS, docs/performance.md). In a fresh interpreter, as
piked starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ikev2.pair import psk_conf
from lib.prereq import unavailable

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

LAZY = ("pike.ikev1.engine", "prometheus_client", "importlib.metadata", "cryptography.x509")


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
