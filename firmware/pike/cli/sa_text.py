"""``pikectl list-sas`` and ``status`` as text, shaped like ``swanctl --list-sas``.

Works on the JSON the daemon returns (``pike.daemon.sa_view``), so what the text shows
and what ``--json`` gives can never disagree.
"""

from __future__ import annotations

import re

# typing is not imported at run time: pikectl's calls should not pay 2 ms for it (issue #12)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    JsonDict = dict[str, Any]

# strongSwan keyword -> the IANA-style name swanctl prints.
_NAMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^aes(\d+)gcm(?:16|128)?$"), "AES_GCM_16-{0}"),
    (re.compile(r"^aes(\d+)ccm(?:16|128)?$"), "AES_CCM_16-{0}"),
    (re.compile(r"^aes(\d+)$"), "AES_CBC-{0}"),
    (re.compile(r"^chacha20poly1305$"), "CHACHA20_POLY1305"),
    (re.compile(r"^prfsha1$"), "PRF_HMAC_SHA1"),
    (re.compile(r"^prfsha(?:2_)?(\d+)$"), "PRF_HMAC_SHA2_{0}"),
    (re.compile(r"^sha1?$"), "HMAC_SHA1_96"),
    (re.compile(r"^sha(?:2_)?256$"), "HMAC_SHA2_256_128"),
    (re.compile(r"^sha(?:2_)?384$"), "HMAC_SHA2_384_192"),
    (re.compile(r"^sha(?:2_)?512$"), "HMAC_SHA2_512_256"),
    (re.compile(r"^modp(\d+)$"), "MODP_{0}"),
    (re.compile(r"^ecp(\d+)$"), "ECP_{0}"),
    (re.compile(r"^(?:x|curve)(25519|448)$"), "CURVE_{0}"),
    (re.compile(r"^esn$"), "ESN"),
    (re.compile(r"^mlkem(\d+)$"), "ML_KEM_{0}"),
]
# RFC 9370 additional key exchanges: ke1_mlkem768 -> KE1_ML_KEM_768
_ADDKE = re.compile(r"^ke([1-7])_(.+)$")


def algorithm_names(proposal: str) -> str:
    """``aes128gcm16-prfsha256-x25519`` -> ``AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519``."""
    out = []
    for word in filter(None, proposal.split("-")):
        if word == "noesn":
            continue
        addke = _ADDKE.match(word)
        if addke is not None:
            out.append(f"KE{addke.group(1)}_{algorithm_names(addke.group(2))}")
            continue
        for pattern, fmt in _NAMES:
            m = pattern.match(word)
            if m:
                out.append(fmt.format(*m.groups()))
                break
        else:
            out.append(word.upper())
    return "/".join(out)


def _ago(seconds: int | None) -> str:
    # Seconds everywhere, as swanctl prints them: one unit to read and to grep.
    return "not yet" if seconds is None else f"{seconds}s ago"


def _due(d: JsonDict, *keys: tuple[str, str]) -> str:
    """``, rekeying in 3300s, expires in 3600s`` for the times the daemon knows."""
    return "".join(
        f", {label} in {d[key + '_in_s']}s"
        for key, label in keys
        if d.get(key + "_in_s") is not None
    )


def _offload(c: JsonDict) -> str:
    used = c.get("offload", "no")
    return "" if used == "no" else f", {used} offload"


def _child_lines(c: JsonDict) -> list[str]:
    reqid = f"reqid {c['reqid']}, " if c.get("reqid") is not None else ""
    algs = algorithm_names(c.get("algorithms", ""))
    lines = [
        f"  {c['name']}: #{c['unique_id']}, {reqid}{c['state']}, {c['mode']}, "
        f"{c['protocol']}{':' + algs if algs else ''}",
        f"    installed {_ago(c.get('installed_ago_s'))}"
        + _due(c, ("rekey", "rekeying"), ("expire", "expires"))
        + _offload(c),
        f"    in  {c['spi_in']}, {c['bytes_in']:>6} bytes, {c['packets_in']:>6} packets",
        f"    out {c['spi_out']}, {c['bytes_out']:>6} bytes, {c['packets_out']:>6} packets",
    ]
    lines += [f"    local  {ts}" for ts in c.get("local_ts", [])]
    lines += [f"    remote {ts}" for ts in c.get("remote_ts", [])]
    return lines


def _liveness(sa: JsonDict) -> str:
    dpd = "DPD outstanding" if sa.get("dpd_outstanding") else "DPD idle"
    text = f"last inbound {_ago(sa.get('last_inbound_ago_s'))}, {dpd}"
    if sa.get("next_keepalive_in_s") is not None:
        text += f", next keepalive in {sa['next_keepalive_in_s']}s"
    return text


def format_ike_sa(sa: JsonDict) -> str:
    # swanctl marks our own SPI with "*".
    mine_i = "*" if sa["initiator"] else ""
    mine_r = "" if sa["initiator"] else "*"
    lines = [
        f"{sa['name']}: #{sa['unique_id']}, {sa['state']}, IKEv{sa['version']}, "
        f"{sa['spi_i']}_i{mine_i} {sa['spi_r']}_r{mine_r}",
        f"  local  '{sa['local_id']}' @ {sa['local_addr']}[{sa['local_port']}]"
        + (" [NAT]" if sa.get("nat_local") else ""),
        f"  remote '{sa['remote_id']}' @ {sa['remote_addr']}[{sa['remote_port']}]"
        + (" [NAT]" if sa.get("nat_remote") else "")
        + _hub(sa.get("hub"))
        + _mobike(sa),
    ]
    if sa.get("algorithms"):
        ppk = ", PPK" if sa.get("ppk") else ""  # RFC 8784 key mixed in
        lines.append(f"  {algorithm_names(sa['algorithms'])}{ppk}")
    if sa.get("established_ago_s") is not None:
        due = _due(sa, ("rekey", "rekeying"), ("reauth", "reauth"))
        lines.append(f"  established {_ago(sa['established_ago_s'])}{due}")
    if sa.get("last_inbound_ago_s") is not None:
        lines.append("  " + _liveness(sa))
    for c in sa.get("children", []):
        lines += _child_lines(c)
    for f in sa.get("failed_children", []):
        lines.append(f"  {f['name']}: FAILED, {f['reason']}, {_ago(f['failed_ago_s'])}")
    return "\n".join(lines)


def format_list_sas(sas: list[JsonDict]) -> str:
    return "\n".join(format_ike_sa(sa) for sa in sas)


def format_status(st: JsonDict) -> str:
    kernel = st.get("kernel", {})
    if kernel.get("esp"):
        esp = "ESP available"
    else:
        esp = "ESP missing (" + ", ".join(kernel.get("missing", [])) + ")"
    return "\n".join(
        [
            f"piked {st['version']}, pid {st['pid']}, up {st['uptime']}s",
            f"config: {st['config']}",
            f"kernel: {esp}",
            f"IKE_SAs: {st['ike_sas']}, CHILD_SAs: {st['child_sas']}",
            "connections: " + (", ".join(st["connections"]) or "none"),
            *_loop_lag_line(st),
        ]
    )


def _mobike(sa: JsonDict) -> str:
    """`` [MOBIKE, also 203.0.113.2]``: the path (local/remote above) may move, and to
    which other addresses of the peer."""
    if not sa.get("mobike"):
        return ""
    also = sa.get("peer_additional_addrs") or []
    return " [MOBIKE" + (", also " + ", ".join(also) if also else "") + "]"


def _hub(hub: dict[str, Any] | None) -> str:
    """`` hub 2/3 (hub-b.example.net)``: which of several remote_addrs is active."""
    if not hub:
        return ""
    return f" hub {hub['index'] + 1}/{hub['count']} ({hub['active']})"


def _loop_lag_line(st: JsonDict) -> list[str]:
    lag = st.get("event_loop_lag")
    if not isinstance(lag, dict):
        return []  # an older piked
    recent, worst = lag.get("recent", 0.0), lag.get("worst", 0.0)
    return [f"event loop lag: {recent * 1000:.0f} ms (last 10 s), {worst * 1000:.0f} ms worst"]
