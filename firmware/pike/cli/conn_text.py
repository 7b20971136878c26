"""``pikectl list-conns`` and ``reload`` as text (from the daemon's JSON answers)."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def format_reload(r: JsonDict) -> str:
    lines = [f"reloaded {r.get('config', '')}"]
    for key in ("unchanged", "changed", "removed", "added"):
        names = r.get(key) or []
        lines.append(f"  {key + ':':<10} {', '.join(names) if names else '-'}")
    if r.get("restart_needed"):
        lines.append("  restart piked to apply [daemon] " + ", ".join(r["restart_needed"]))
    return "\n".join(lines)


def _conn_lines(c: JsonDict) -> list[str]:
    states = ", ".join(f"{n} {s}" for s, n in sorted(c.get("ike_sas", {}).items())) or "down"
    lines = [
        f"{c['name']}: IKEv{c['version']}, {states}",
        f"  local  '{c['local_id']}' @ {', '.join(c['local_addrs'])} ({c['local_auth']})",
        f"  remote '{c['remote_id']}' @ {', '.join(c['remote_addrs']) or '%any'}"
        f" ({c['remote_auth']})",
        f"  proposals {', '.join(c['proposals'])}",
    ]
    extra = [f"rekey {c['rekey_time']}s"]
    if c.get("dpd_delay"):
        extra.append(f"dpd {c['dpd_delay']}s/{c['dpd_action']}")
    if c.get("encap"):
        extra.append("encap")
    lines.append("  " + ", ".join(extra))
    for ch in c.get("children", []):
        lines += [
            f"  {ch['name']}: {ch['mode'].upper()}, start_action {ch['start_action']}, "
            f"{ch['installed']} installed",
            f"    local  {', '.join(ch['local_ts'])}",
            f"    remote {', '.join(ch['remote_ts'])}",
            f"    esp_proposals {', '.join(ch['esp_proposals'])}",
        ]
    return lines


def format_list_conns(conns: list[JsonDict]) -> str:
    return "\n".join(line for c in conns for line in _conn_lines(c))
