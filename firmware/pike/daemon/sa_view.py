"""IKE and CHILD SAs as the JSON that ``pikectl list-sas`` receives.

The engine reports SAs (``IkeSaInfo``) with times on the monotonic clock; counters come
from the kernel at request time. Here both become plain JSON values: SPIs in hex,
times as seconds (``*_ago_s`` before now, ``*_in_s`` ahead) plus a wall-clock
timestamp (``*_at``, Unix time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pike.policy.ipsec import SaCounters, SaSpec
from pike.sa.actions import ChildSaInfo, IkeSaInfo

# Counters of one SA, or None when the kernel cannot tell (no ESP, SA gone).
QueryCounters = Callable[[SaSpec], SaCounters | None]
JsonDict = dict[str, Any]


# (connection, child) -> (reason, wall-clock time) of the last failure of a CHILD_SA
# that has not come up since (``pike.metrics.recorder.Recorder.child_failed``).
ChildFailures = Mapping[tuple[str, str], tuple[str, float]]
NO_FAILURES: ChildFailures = MappingProxyType({})


def _times(at: float | None, now: float, wall_now: float) -> tuple[int | None, float | None]:
    """(whole seconds ago, wall-clock time) of engine-clock time ``at``."""
    if at is None:
        return None, None
    ago = max(0.0, now - at)
    return int(ago), round(wall_now - ago, 3)


def _ahead(at: float | None, now: float, wall_now: float) -> tuple[int | None, float | None]:
    """(whole seconds from now, wall-clock time) of engine-clock time ``at``."""
    if at is None:
        return None, None
    left = max(0.0, at - now)
    return int(left), round(wall_now + left, 3)


def _due_json(times: dict[str, float | None], now: float, wall_now: float) -> JsonDict:
    """``KEY_in_s`` and ``KEY_at`` of each engine-clock time in ``times``."""
    out: JsonDict = {}
    for key, due in times.items():
        out[f"{key}_in_s"], out[f"{key}_at"] = _ahead(due, now, wall_now)
    return out


def child_json(c: ChildSaInfo, query: QueryCounters, now: float, wall_now: float) -> JsonDict:
    cin = query(c.inbound) if c.inbound is not None else None
    cout = query(c.outbound) if c.outbound is not None else None
    ago, at = _times(c.installed_at, now, wall_now)
    return {
        "name": c.name,
        "unique_id": c.unique_id,
        "reqid": c.inbound.reqid if c.inbound is not None else None,
        "state": c.state,
        "mode": c.mode.upper(),
        "protocol": c.protocol,
        "spi_in": f"{c.spi_in:08x}",
        "spi_out": f"{c.spi_out:08x}",
        "local_ts": list(c.local_ts),
        "remote_ts": list(c.remote_ts),
        "algorithms": c.algorithms,
        "bytes_in": cin.bytes if cin else 0,
        "bytes_out": cout.bytes if cout else 0,
        "packets_in": cin.packets if cin else 0,
        "packets_out": cout.packets if cout else 0,
        "offload": _offload(cin, cout),
        "installed_ago_s": ago,
        "installed_at": at,
        **_due_json({"rekey": c.rekey_at, "expire": c.expire_at}, now, wall_now),
    }


def _offload(cin: SaCounters | None, cout: SaCounters | None) -> str:
    """The NIC offload in use: one word when both directions agree (hw_offload = auto
    may end up with different ones per direction)."""
    seen_in, seen_out = (cin.offload if cin else "no"), (cout.offload if cout else "no")
    return seen_in if seen_in == seen_out else f"in {seen_in}, out {seen_out}"


def ike_json(
    sa: IkeSaInfo,
    query: QueryCounters,
    now: float,
    wall_now: float,
    failures: ChildFailures = NO_FAILURES,
) -> JsonDict:
    ago, at = _times(sa.established_at, now, wall_now)
    failed = sorted((child, f) for (conn, child), f in failures.items() if conn == sa.name)
    return {
        "name": sa.name,
        "unique_id": sa.unique_id,
        "state": sa.state,
        "version": sa.version,
        "initiator": sa.initiator,
        "local_addr": sa.local[0],
        "local_port": sa.local[1],
        "remote_addr": sa.remote[0],
        "remote_port": sa.remote[1],
        "local_id": sa.local_id,
        "remote_id": sa.remote_id,
        "spi_i": sa.spi_i.hex(),
        "spi_r": sa.spi_r.hex(),
        "algorithms": sa.algorithms,
        "ppk": sa.ppk,
        "mobike": sa.mobike,
        "peer_additional_addrs": list(sa.peer_addrs),
        "established_ago_s": ago,
        "established_at": at,
        **_due_json({"rekey": sa.rekey_at, "reauth": sa.reauth_at}, now, wall_now),
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        **liveness_json(sa, now, wall_now),
        "children": [child_json(c, query, now, wall_now) for c in sa.children],
        "failed_children": [
            {
                "name": child,
                "reason": reason,
                "failed_ago_s": max(0, int(wall_now - wall)),
                "failed_at": round(wall, 3),
            }
            for child, (reason, wall) in failed
        ],
    }


def liveness_json(sa: IkeSaInfo, now: float, wall_now: float) -> JsonDict:
    """DPD and NAT-T keepalive health: when the peer last spoke (authenticated IKE),
    whether a liveness check is waiting for its answer, when the next keepalive goes."""
    ago, at = _times(sa.last_inbound, now, wall_now)
    keepalive, keepalive_at = _ahead(sa.keepalive_at, now, wall_now)
    return {
        "last_inbound_ago_s": ago,
        "last_inbound_at": at,
        "dpd_outstanding": sa.dpd_outstanding,
        "next_keepalive_in_s": keepalive,
        "next_keepalive_at": keepalive_at,
    }


def list_sas_json(
    sas: list[IkeSaInfo],
    query: QueryCounters,
    now: float,
    wall_now: float,
    failures: ChildFailures = NO_FAILURES,
) -> list[JsonDict]:
    return [ike_json(sa, query, now, wall_now, failures) for sa in sas]
