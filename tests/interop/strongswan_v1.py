"""IKEv1 peers for interop tests: charon with a Main or Aggressive Mode connection.

Everything is a parameter of the same :class:`~.strongswan.Connection` / ``Child`` /
``Secret`` the IKEv2 tests use (``version=1``); this module only fills them in the IKEv1
way and installs what pubkey authentication needs::

    conn = ikev1_connection("192.0.2.2", "192.0.2.1", local_ts="10.2.0.0/24",
                            remote_ts="10.1.0.0/24", esp_proposals=("aes128-sha256-modp2048",))
    charon = ikev1_charon(gw.right, tmp_path, "right", conn, psk=PSK)   # not started
    charon.start(); ...

Authentication: ``psk=`` (Main Mode with ID = IP address unless ids are given; Aggressive
Mode with ``aggressive=True``, which charon refuses for PSK unless
``i_dont_care_about_security_and_use_aggressive_mode_psk`` is set: StrongswanNode sets it
whenever one of its connections asks for Aggressive Mode), or ``ca=``/``cert=`` from
:mod:`.pki` (RSA or ECDSA; the identity is the cert's DNS name). PFS is a group in
``esp_proposals`` (``aes128-sha256-modp2048``), DPD ``dpd_delay``/``dpd_timeout`` with
``dpd_action`` on the child, ``encap=True`` forces UDP encapsulation.

On the host kernel (no ESP) the IKE_SA is established either way. With
``libipsec=True`` (default there) charon runs ESP in user space and the CHILD_SA is
installed; with ``libipsec=False`` the initiator fails to install it after Quick Mode
message 2, sends ``INFORMATIONAL_V1 [HASH N(NO_PROP)]`` instead of message 3 and keeps
the IKE_SA (see tests/interop/test_strongswan_v1.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .netns import Namespace
from .pki import Ca, Cert
from .strongswan import Child, Connection, Secret, StrongswanNode, kernel_has_esp
from .topology import LEFT_LAN, RIGHT_LAN, Gateways

IKEV1_DEFAULT_PROPOSALS = ("aes128-sha256-modp2048",)
IKEV1_DEFAULT_ESP = ("aes128-sha256",)


def ikev1_connection(
    local_addr: str,
    remote_addr: str,
    *,
    name: str = "hq",
    child: str = "lan",
    local_ts: str | Sequence[str] = ("dynamic",),
    remote_ts: str | Sequence[str] = ("dynamic",),
    proposals: Sequence[str] = IKEV1_DEFAULT_PROPOSALS,
    esp_proposals: Sequence[str] = IKEV1_DEFAULT_ESP,
    aggressive: bool = False,
    local_id: str | None = None,
    remote_id: str | None = None,
    cert: Cert | None = None,
    dpd_delay: str | None = None,
    dpd_timeout: str | None = None,
    dpd_action: str | None = None,
    encap: bool = False,
    start_action: str = "none",
    rekey_time: str | None = None,
    child_rekey_time: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> Connection:
    """An IKEv1 :class:`Connection` with one child. ``cert`` switches both ends to pubkey
    authentication (the remote end is then identified by ``remote_id``, a DNS name)."""
    lts = [local_ts] if isinstance(local_ts, str) else list(local_ts)
    rts = [remote_ts] if isinstance(remote_ts, str) else list(remote_ts)
    kid = Child(
        child,
        lts,
        rts,
        tuple(esp_proposals),
        start_action=start_action,
        dpd_action=dpd_action,
        rekey_time=child_rekey_time,
    )
    auth = "pubkey" if cert is not None else "psk"
    conn = Connection(
        name,
        [local_addr],
        [remote_addr],
        version=1,
        proposals=tuple(proposals),
        local_auth=auth,
        remote_auth=auth,
        local_id=local_id if local_id is not None else (cert.name if cert else None),
        remote_id=remote_id,
        local_certs=[cert.cert.name] if cert is not None else [],
        children=[kid],
        dpd_delay=dpd_delay,
        dpd_timeout=dpd_timeout,
        aggressive=aggressive,
        encap=encap,
        rekey_time=rekey_time,
    )
    if extra:
        conn.extra.update(dict(extra))  # type: ignore[arg-type]
    return conn


def ikev1_charon(
    ns: Namespace,
    workdir: Path,
    name: str,
    *connections: Connection,
    psk: str | None = None,
    ca: Ca | None = None,
    cert: Cert | None = None,
    libipsec: bool | None = None,
    log_levels: dict[str, int] | None = None,
) -> StrongswanNode:
    """A charon (not started) holding ``connections``, the PSK (for any peer) or the CA,
    cert and key. ``libipsec`` defaults to "the kernel has no ESP"."""
    if libipsec is None:
        libipsec = not kernel_has_esp(ns)
    node = StrongswanNode(ns, workdir, name, libipsec=libipsec)
    if log_levels is not None:
        node.log_levels = dict(log_levels)
    node.add(*connections)
    if psk is not None:
        node.add(Secret(name, psk))
    node.write_config()
    if ca is not None:
        node.install_cert(ca.cert, ca=True)
    if cert is not None:
        node.install_cert(cert.cert)
        node.install_key(cert.key)
    return node


def ikev1_pair(
    gw: Gateways,
    workdir: Path,
    *,
    psk: str | None = None,
    ca: Ca | None = None,
    certs: tuple[Cert, Cert] | None = None,
    left_id: str | None = None,
    right_id: str | None = None,
    log_levels: dict[str, int] | None = None,
    libipsec: bool | None = None,
    **conn_args: object,
) -> tuple[StrongswanNode, StrongswanNode]:
    """Two charons (not started) on :func:`~.topology.make_gateways`' left and right with
    mirrored IKEv1 connections ``hq``/``lan`` (LAN 10.1.0.0/24 <-> 10.2.0.0/24).

    ``psk`` or ``ca`` + ``certs`` (left's, right's); further keyword arguments go to
    :func:`ikev1_connection` on both sides."""
    if (psk is None) == (certs is None):
        raise ValueError("give either psk or ca + certs")
    libipsec = gw.libipsec if libipsec is None else libipsec
    sides = (
        ("left", gw.left, gw.wan.a_ip, gw.wan.b_ip, LEFT_LAN, RIGHT_LAN, left_id, right_id, 0),
        ("right", gw.right, gw.wan.b_ip, gw.wan.a_ip, RIGHT_LAN, LEFT_LAN, right_id, left_id, 1),
    )
    nodes: list[StrongswanNode] = []
    for name, ns, local, remote, lts, rts, lid, rid, idx in sides:
        cert = certs[idx] if certs else None
        if certs:
            rid = rid or certs[1 - idx].name
        conn = ikev1_connection(
            local,
            remote,
            local_ts=lts,
            remote_ts=rts,
            local_id=lid,
            remote_id=rid,
            cert=cert,
            **conn_args,  # type: ignore[arg-type]
        )
        nodes.append(
            ikev1_charon(
                ns,
                workdir,
                name,
                conn,
                psk=psk,
                ca=ca,
                cert=cert,
                libipsec=libipsec,
                log_levels=log_levels,
            )
        )
    return nodes[0], nodes[1]


_EXCHANGE = re.compile(
    r"\[ENC\] (?:<[^>]*> )?(?P<verb>generating|parsed) (?P<exchange>[A-Z_0-9]+) "
    r"(?:request|response) \d+ (?P<payloads>\[.*\])$"
)


def ikev1_exchanges(log: str) -> list[str]:
    """The messages charon generated (``>``) and parsed (``<``), in order:
    ``generating ID_PROT request 0 [ SA V V V V V ]`` -> ``> ID_PROT [ SA V V V V V ]``."""
    out: list[str] = []
    for line in log.splitlines():
        m = _EXCHANGE.search(line)
        if m:
            arrow = ">" if m["verb"] == "generating" else "<"
            out.append(f"{arrow} {m['exchange']} {m['payloads']}")
    return out


__all__ = [
    "IKEV1_DEFAULT_ESP",
    "IKEV1_DEFAULT_PROPOSALS",
    "ikev1_charon",
    "ikev1_connection",
    "ikev1_exchanges",
    "ikev1_pair",
]
