"""Prometheus scraping piked inside a namespace, and HTTP from inside it (tests/ops).

Both ports are on the namespace's loopback only: no clash with the host or another run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interop.netns import Namespace

METRICS_PORT = 19447  # piked's metrics_listen
PROM_PORT = 19090


def http_get(ns: Namespace, url: str, timeout: float = 10.0) -> str:
    """GET ``url`` from inside ``ns``; the body (the request must succeed)."""
    code = (
        "import sys,urllib.request;"
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))"
        ".read().decode())"
    )
    out = ns.run([sys.executable, "-c", code, url, str(timeout)], check=False, timeout=2 * timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def prom_query(ns: Namespace, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The result vector of PromQL ``expr`` (instant query)."""
    url = f"http://127.0.0.1:{PROM_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(http_get(ns, url, timeout))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def prom_value(ns: Namespace, expr: str, timeout: float = 10.0) -> float | None:
    """The first sample of ``expr``, None when the vector is empty."""
    r = prom_query(ns, expr, timeout)
    return float(r[0]["value"][1]) if r else None


def start_prometheus(
    ns: Namespace, directory: Path, rule_files: Sequence[Path] = ()
) -> subprocess.Popen[bytes]:
    """Prometheus in ``ns`` scraping piked's metrics every second; data and log under
    ``directory``. The caller's namespace teardown ends it."""
    directory.mkdir()
    rules = f"rule_files: {json.dumps([str(p) for p in rule_files])}\n" if rule_files else ""
    (directory / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n" + rules + "scrape_configs:\n"
        "  - job_name: pike\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{METRICS_PORT}']}}]\n"
    )
    with (directory / "log").open("wb") as log:
        return ns.popen(
            [
                "prometheus",
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{PROM_PORT}",
            ],
            stdout=log,
        )
