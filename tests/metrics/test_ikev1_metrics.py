"""The metrics show IKEv1 SAs like IKEv2 ones: the collector reads the engine's SA views
and counters, whatever the version."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

from ikev1.v1pair import make_pair
from ikev2.pair import transfer
from pike.metrics.collector import PikeCollector, Sources
from pike.metrics.recorder import Recorder


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")) if m else None
        if m and m.group(1) == name and got == labels:
            return float(m.group(3))
    raise KeyError(f"{name}{labels}")


def test_ikev1_sas_and_counters_are_exported() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    rec = Recorder(lambda spec: None, wall=lambda: 1_700_000_000.0)
    for event in a.events:
        rec.observe(event)
    engine = a.engine
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        PikeCollector(
            Sources(
                config=lambda: engine.config,
                sas=engine.list_sas,
                counters=lambda: engine.ctx.counters,
                now=lambda: 1.0,
                wall=lambda: 1_700_000_001.0,
                esp=lambda: True,
                recorder=rec,
                version="test",
                started_wall=1_700_000_000.0,
            )
        )
    )
    text = generate_latest(registry).decode()
    assert _value(text, "pike_ike_sa_up", connection="gw") == 1.0
    assert _value(text, "pike_ike_sas", connection="gw", state="ESTABLISHED") == 1.0
    assert _value(text, "pike_child_sa_installed", connection="gw", child="net") == 1.0
    assert _value(text, "pike_ike_sa_establishments_total", connection="gw") == 1.0
    sent = _value(
        text, "pike_ike_messages_total", connection="gw", exchange="MAIN", direction="out"
    )
    assert sent == 3.0  # MM1, MM3, MM5
    quick = _value(
        text, "pike_ike_messages_total", connection="gw", exchange="QUICK", direction="in"
    )
    assert quick == 1.0  # QM2
