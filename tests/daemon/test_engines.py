"""IKEv1 and IKEv2 behind one runtime engine: dispatch by the header's major version and
by the connection's version; one action queue, one set of ids and counters."""

from __future__ import annotations

import random
from dataclasses import replace

from ikev1.v1pair import v1psk_conf
from ikev2.pair import Node, psk_conf, transfer
from pike.daemon.engines import Engines
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.sa.actions import InstallChildSa

A, B = "192.0.2.1", "192.0.2.2"


def _both(local: str, remote: str, lts: str, rts: str, *, v1: bool = True) -> str:
    """One file: the IKEv2 connection ``gw`` and (``v1``) the IKEv1 one ``old``."""
    v2 = psk_conf(local, remote, f"v2-{local}", f"v2-{remote}", local_ts=lts, remote_ts=rts)
    if not v1:
        return v2.render()
    old = v1psk_conf(local, remote, local_ts=lts, remote_ts=rts)
    return replace(
        v2,
        connections=[*v2.connections, replace(old.connections[0], name="old")],
        secrets=[*v2.secrets, replace(old.secrets[0], name="old")],
    ).render()


def _engines(text: str, seed: int) -> Engines:
    rng = random.Random(seed)
    return Engines(load_config_text(text), random=rng.randbytes, kernel_caps=KernelCaps(True))


def test_one_engine_speaks_both_versions_on_the_same_addresses() -> None:
    a = Node(_engines(_both(A, B, '"10.1.0.0/24"', '"10.2.0.0/24"'), 1))  # type: ignore[arg-type]
    b = Node(_engines(_both(B, A, '"10.2.0.0/24"', '"10.1.0.0/24"'), 2))  # type: ignore[arg-type]
    a.engine.initiate("old", 0.0, "net")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    for node in (a, b):
        sas = sorted(node.engine.list_sas(), key=lambda s: s.version)
        assert [(s.name, s.version, s.state) for s in sas] == [
            ("old", 1, "ESTABLISHED"),
            ("gw", 2, "ESTABLISHED"),
        ]
        ids = [s.unique_id for s in sas] + [c.unique_id for s in sas for c in s.children]
        assert len(set(ids)) == len(ids)  # one id space
        assert len(node.of(InstallChildSa)) == 2
        per_conn = node.engine.ctx.counters.per_conn
        assert set(per_conn) == {"old", "gw"}
        assert per_conn["old"].messages_in and per_conn["gw"].messages_in
    a.engine.terminate("old", 1.0)
    transfer(a, b, 1.0)
    assert [s.version for s in b.engine.list_sas()] == [2]


def test_reload_removing_the_ikev1_connection_deletes_its_sa() -> None:
    text_a = _both(A, B, '"10.1.0.0/24"', '"10.2.0.0/24"')
    a = Node(_engines(text_a, 1))  # type: ignore[arg-type]
    b = Node(_engines(_both(B, A, '"10.2.0.0/24"', '"10.1.0.0/24"'), 2))  # type: ignore[arg-type]
    a.engine.initiate("old", 0.0, "net")
    transfer(a, b, 0.0)
    only_v2 = _both(A, B, '"10.1.0.0/24"', '"10.2.0.0/24"', v1=False)
    result = a.engine.reload(load_config_text(only_v2), 1.0)
    assert result["removed"] == ["old"]
    transfer(a, b, 1.0)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []


def test_the_ikev1_engine_comes_with_an_ikev1_connection_or_datagram() -> None:
    """Made on demand (idle memory): a gateway without IKEv1 connections still answers an
    IKEv1 peer as before, and a reload that adds one brings it up."""
    only_v2 = _both(A, B, '"10.1.0.0/24"', '"10.2.0.0/24"', v1=False)
    both_b = _both(B, A, '"10.2.0.0/24"', '"10.1.0.0/24"')
    engines = _engines(only_v2, 1)
    assert engines._v1 is None
    a, b = Node(engines), Node(_engines(both_b, 2))  # type: ignore[arg-type]
    b.engine.initiate("old", 0.0, "net")
    transfer(b, a, 0.0)
    assert engines._v1 is not None
    assert a.engine.list_sas() == []  # no IKEv1 connection here: nothing comes up
    c, d = Node(_engines(only_v2, 3)), Node(_engines(both_b, 4))
    c.engine.reload(load_config_text(_both(A, B, '"10.1.0.0/24"', '"10.2.0.0/24"')), 1.0)
    c.engine.initiate("old", 1.0, "net")
    transfer(c, d, 1.0)
    assert [(s.name, s.state) for s in c.engine.list_sas()] == [("old", "ESTABLISHED")]
