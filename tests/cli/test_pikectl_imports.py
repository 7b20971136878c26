"""``pikectl status`` imports only what it needs: it is run often (operators, monitoring
scripts), and each module is start-up time on a loaded gateway (issue #12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pike.cli import pikectl
code = pikectl.main(["--socket", sys.argv[1], "status"])
print(json.dumps([code, sorted(sys.modules)]))
"""

# what status has no use for; each was imported by every pikectl call
NOT_FOR_STATUS = (
    "typing",  # annotations only (TYPE_CHECKING = False in the CLI's modules)
    "shutil",  # argparse's terminal width: pike.cli.terminal
    "subprocess",  # pikectl firmware's RAUC calls
    "cryptography",
    "asyncio",
    "pike.policy.config",
)


def test_pikectl_status_imports_only_what_it_needs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "no.sock")],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    code, loaded = json.loads(done.stdout.splitlines()[-1])
    assert code == 2  # no daemon there: it did try to reach one
    assert "pike.daemon.control_client" in loaded
    assert [m for m in NOT_FOR_STATUS if m in loaded] == []
