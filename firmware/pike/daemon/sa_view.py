"""IKE and CHILD SAs as the JSON that ``pikectl list-sas`` receives.

The engine reports SAs (``IkeSaInfo``) with times on the monotonic clock; counters come
from the kernel at request time. Here both become plain JSON values: SPIs in hex,
times as seconds ago plus a wall-clock timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pike.policy.ipsec import SaCounters, SaSpec
from pike.sa.actions import ChildSaInfo, IkeSaInfo

# Counters of one SA, or None when the kernel cannot tell (no ESP, SA gone).
QueryCounters = Callable[[SaSpec], SaCounters | None]
JsonDict = dict[str, Any]


def _times(at: float | None, now: float, wall_now: float) -> tuple[int | None, float | None]:
    if at is None:
        return None, None
    ago = max(0.0, now - at)
    return int(ago), round(wall_now - ago, 3)


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
        "installed": ago,
        "installed_at": at,
    }


def _offload(cin: SaCounters | None, cout: SaCounters | None) -> str:
    """The NIC offload in use: one word when both directions agree (hw_offload = auto
    may end up with different ones per direction)."""
    seen_in, seen_out = (cin.offload if cin else "no"), (cout.offload if cout else "no")
    return seen_in if seen_in == seen_out else f"in {seen_in}, out {seen_out}"


def ike_json(sa: IkeSaInfo, query: QueryCounters, now: float, wall_now: float) -> JsonDict:
    ago, at = _times(sa.established_at, now, wall_now)
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
        "established": ago,
        "established_at": at,
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        **liveness_json(sa, now, wall_now),
        "children": [child_json(c, query, now, wall_now) for c in sa.children],
    }


def liveness_json(sa: IkeSaInfo, now: float, wall_now: float) -> JsonDict:
    """DPD and NAT-T keepalive health: when the peer last spoke (authenticated IKE),
    whether a liveness check is waiting for its answer, when the next keepalive goes."""
    ago, at = _times(sa.last_inbound, now, wall_now)
    keepalive = None if sa.keepalive_at is None else max(0, round(sa.keepalive_at - now))
    return {
        "last_inbound": ago,
        "last_inbound_at": at,
        "dpd_outstanding": sa.dpd_outstanding,
        "next_keepalive": keepalive,
    }


def list_sas_json(
    sas: list[IkeSaInfo], query: QueryCounters, now: float, wall_now: float
) -> list[JsonDict]:
    return [ike_json(sa, query, now, wall_now) for sa in sas]
