"""What a PSK-only IKEv2 gateway loads at start: not the IKEv1 engine, not the metrics
server (``prometheus_client``), not ``importlib.metadata``; each is imported when a
config or a peer needs it (idle RSS, docs/performance.md). In a fresh interpreter, as
piked starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ikev2.pair import psk_conf

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

LAZY = ("pike.ikev1.engine", "prometheus_client", "importlib.metadata")


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
