"""The same two-engine pair for either IKE version (fixed randomness, a fake clock), so a
test of the shared SA layer runs once per version with the same steps and asserts."""

from __future__ import annotations

from typing import Any

from ikev1.v1pair import engine as v1engine
from ikev1.v1pair import v1conf
from ikev2.pair import Node, conf
from ikev2.pair import engine as v2engine

A, B = "192.0.2.1", "192.0.2.2"
B_TS: dict[str, Any] = {"local_ts": '"10.2.0.0/24"', "remote_ts": '"10.1.0.0/24"'}


def pair(
    version: int,
    extra_conn: str = "",
    *,
    a_esp: bool = True,
    b_esp: bool = True,
    a_child: str = "",
    b_proposals: str = "",
    a_start: str = "none",
    a_remote: str = "",
    b_psk: str = "",
    b_daemon: str = "",
) -> tuple[Node, Node]:
    """a (192.0.2.1) and b (192.0.2.2) with connection gw, child net; ``a_esp``, ``b_esp``:
    whether their kernels have ESP; ``a_child``: TOML lines for a's child;
    ``b_proposals``: b's IKE proposals (TOML array items) instead of the same as a's;
    ``a_start``: a's start_action; ``a_remote``: a's remote_addrs entry (a DNS name)
    instead of b's address; ``b_psk``: b's PSK instead of the same as a's; ``b_daemon``: TOML
    lines for b's [daemon] table."""
    b_kw = {**B_TS, "proposals": b_proposals} if b_proposals else dict(B_TS)
    if b_psk:
        b_kw["psk"] = b_psk
    if version == 1:
        a_text = v1conf(A, B, extra_conn=extra_conn, extra_child=a_child, start=a_start)
        a_text = _remote(a_text, a_remote)
        b_text = _daemon(v1conf(B, A, extra_conn=extra_conn, **b_kw), b_daemon)
        return Node(v1engine(a_text, 1, a_esp)), Node(v1engine(b_text, 2, b_esp))  # type: ignore[arg-type]
    a_text = conf(
        A,
        B,
        "branch.example.net",
        "hq.example.net",
        extra_conn=extra_conn,
        extra_child=a_child,
        start=a_start,
    )
    a_text = _remote(a_text, a_remote)
    b_text = conf(B, A, "hq.example.net", "branch.example.net", extra_conn=extra_conn, **b_kw)
    b_text = _daemon(b_text, b_daemon)
    return Node(v2engine(a_text, 1, a_esp)), Node(v2engine(b_text, 2, b_esp))


def _remote(text: str, remote: str) -> str:
    return (
        text.replace(f'remote_addrs = ["{B}"]', f'remote_addrs = ["{remote}"]') if remote else text
    )


def _daemon(text: str, lines: str) -> str:
    return text.replace("[daemon]\n", f"[daemon]\n{lines}\n", 1) if lines else text
