"""Prometheus scraping piked inside a namespace, and HTTP from inside it (tests/ops).

Both ports are on the namespace's loopback only: no clash with the host or another run.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interop.netns import Namespace

METRICS_PORT = 19447  # piked's metrics_listen
PROM_PORT = 19090


# One long-lived fetcher per namespace: a Python start-up per request (``ip netns exec``)
# takes seconds in a busy UML guest, which left gaps of many seconds between samples.
_FETCHER = r"""
import json, sys, urllib.request
for line in sys.stdin:
    timeout, url = line.rstrip("\n").split("\t", 1)
    try:
        body = urllib.request.urlopen(url, timeout=float(timeout)).read().decode()
        out = {"ok": True, "body": body}
    except Exception as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
"""
_fetchers: dict[str, subprocess.Popen[bytes]] = {}


def _fetcher(ns: Namespace) -> subprocess.Popen[bytes]:
    proc = _fetchers.get(ns.name)
    if proc is None or proc.poll() is not None:  # the lab ended it with its namespace
        proc = ns.popen(
            [sys.executable, "-c", _FETCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        _fetchers[ns.name] = proc
    return proc


def http_get(ns: Namespace, url: str, timeout: float = 10.0) -> str:
    """GET ``url`` from inside ``ns``; the body (the request must succeed)."""
    proc = _fetcher(ns)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{timeout}\t{url}\n".encode())
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 2 * timeout + 30.0)
    assert ready, f"no answer from the fetcher in {ns.name} for {url}"
    line = proc.stdout.readline()
    assert line, f"the fetcher in {ns.name} ended (exit {proc.poll()})"
    out = json.loads(line)
    assert out["ok"], f"GET {url} in {ns.name}: {out['error']}"
    body: str = out["body"]
    return body


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
