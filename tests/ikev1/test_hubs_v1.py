"""Redundant hubs in IKEv1 (the shared pike.sa.hubs): Main Mode to a silent first hub
moves to the second at once, which answers. In memory, fake clock."""

from __future__ import annotations

from ikev2.pair import Node, transfer

from .v1pair import A, engine, v1conf

HUB1, HUB2 = "192.0.2.2", "192.0.2.3"
FAST = 'retransmit_timeout = "1s"\nretransmit_base = 2.0\nretransmit_tries = 2'  # 7 s


def test_silent_first_hub_then_the_second_answers() -> None:
    ids = {"local_id": "branch1.example.net", "remote_id": "hq.example.net"}
    text = v1conf(A, HUB1, extra_conn="keyingtries = 1", extra_daemon=FAST, **ids)
    one = f'remote_addrs = ["{HUB1}"]'
    assert one in text
    text = text.replace(one, f'remote_addrs = ["{HUB1}", "{HUB2}"]')
    hub = v1conf(
        HUB2,
        A,
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        local_id=ids["remote_id"],
        remote_id=ids["local_id"],
    )
    a, b2 = Node(engine(text, 1)), Node(engine(hub, 2))  # type: ignore[arg-type]
    a.engine.initiate("gw", 0.0, "net")
    sent: list[tuple[float, str]] = []
    now = 0.0
    while now < 7.0:
        sent += [(now, d.dst[0]) for d in a.drain()]
        t = a.engine.get_timer()
        assert t is not None
        now = t
        a.engine.handle_timer(now)
    first_to_hub2 = [d for d in a.drain() if d.dst[0] == HUB2]
    assert {dst for _, dst in sent} == {HUB1} and len(sent) == 3  # MM1 + 2 retransmits
    assert now == 7.0 and len(first_to_hub2) == 1  # the next hub at once
    transfer(a, b2, now, in_flight=first_to_hub2)
    (sa,) = a.engine.list_sas()
    assert sa.state == "ESTABLISHED" and sa.remote[0] == HUB2
    assert [c.name for c in sa.children if c.state == "INSTALLED"] == ["net"]
