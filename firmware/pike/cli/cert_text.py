"""``pikectl certs`` as text: the certificates piked holds, then its CRLs and sources."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _left(ts: float, now: float) -> str:
    days = (ts - now) / 86400
    return f"expired {-days:.0f} days ago" if days < 0 else f"{days:.0f} days left"


def format_certs(result: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines: list[str] = []
    for c in result.get("certs", []):
        lines.append(f'{c["connection"]} {c["role"]}: "{c["subject"]}"')
        lines.append(f'  issuer "{c["issuer"]}", serial {c["serial"]}')
        lines.append(f"  valid until {_when(c['not_after'])} ({_left(c['not_after'], now)})")
        if "revocation" in c:
            lines.append(f"  revocation: {c['revocation']} ({c['revocation_source'] or '-'})")
    for crl in result.get("crls", []):
        stale = crl["next_update"] is not None and crl["next_update"] < now
        lines.append(f'CRL {crl["source"]}: "{crl["issuer"]}", {crl["revoked"]} revoked')
        lines.append(
            f"  thisUpdate {_when(crl['this_update'])}, nextUpdate {_when(crl['next_update'])}"
            + (" (stale)" if stale else "")
        )
    for s in result.get("sources", []):
        state = f"failing: {s['error']}" if s["error"] else "ok"
        lines.append(f"source {s['source']}: {state}, last success {_when(s['fetched_at'])}")
    return "\n".join(lines) if lines else "no certificates in use"
