"""Redundant hubs (issue 14): ``remote_addrs`` with two hubs. An initiation the first
does not answer moves to the second at once (a round over the hubs is one attempt of
keyingtries); a hub found dead by DPD (dpd_action = restart) is replaced by the next one
right away, so the branch is up again within dpd_delay + one retransmission sequence.
Two engines, fake clock, exact times."""

from __future__ import annotations

import pytest

from pike.daemon.engines import Engines
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.sa.actions import SendDatagram
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType

from .pair import Node, conf, engine, transfer

HUB1, HUB2 = "192.0.2.2", "192.0.2.3"
A = ("192.0.2.1", HUB1, "branch.example.net", "hq.example.net")
FAST = 'retransmit_timeout = "1s"\nretransmit_base = 2.0\nretransmit_tries = 2'  # 7 s
SEQUENCE = 7.0


def branch(extra: str) -> str:
    text = conf(*A, extra_conn=extra, extra_daemon=FAST)
    one = f'remote_addrs = ["{HUB1}"]'
    assert one in text
    return text.replace(one, f'remote_addrs = ["{HUB1}", "{HUB2}"]')


def hub(addr: str, seed: int) -> Node:
    text = conf(
        addr,
        "192.0.2.1",
        "hq.example.net",
        "branch.example.net",
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
    )
    return Node(engine(text, seed))


def run_alone(node: Node, until: float) -> list[tuple[float, SendDatagram]]:
    sent: list[tuple[float, SendDatagram]] = []
    now = 0.0
    while True:
        sent += [(now, d) for d in node.drain()]
        t = node.engine.get_timer()
        if t is None or t > until:
            return sent
        now = t
        node.engine.handle_timer(now)


def inits(sent: list[tuple[float, SendDatagram]]) -> list[tuple[float, str]]:
    """(time, hub) of the first IKE_SA_INIT of every new IKE SA."""
    first: dict[bytes, tuple[float, str]] = {}
    for t, d in sent:
        msg = decode_message(d.data)
        if msg.exchange == ExchangeType.IKE_SA_INIT:
            first.setdefault(msg.spi_i, (t, d.dst[0]))
    return sorted(first.values())


def test_silent_first_hub_moves_to_the_second_at_once(caplog: pytest.LogCaptureFixture) -> None:
    a = Node(engine(branch("keyingtries = 2"), 1))
    a.engine.initiate("gw", 0.0)
    starts = inits(run_alone(a, 1000.0))
    # hub 1, hub 2 at once (one attempt), then the second attempt round: hub 1, hub 2
    assert starts == [(0.0, HUB1), (7.0, HUB2), (14.0, HUB1), (21.0, HUB2)]
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None
    assert "gw: hub 192.0.2.2 is not answering: moving to hub 192.0.2.3" in caplog.text
    assert "giving up after 2 attempt(s) (keyingtries = 2)" in caplog.text
    assert a.engine.ctx.hubs.changes["gw"] == 4


def test_second_hub_answers() -> None:
    a, b2 = Node(engine(branch("keyingtries = 1"), 1)), hub(HUB2, 2)
    a.engine.initiate("gw", 0.0, "net")
    assert inits(run_alone(a, SEQUENCE)) == [(0.0, HUB1), (SEQUENCE, HUB2)]
    transfer(a, b2, SEQUENCE, in_flight=a.outbox[-1:])
    (sa,) = a.engine.list_sas()
    assert sa.state == "ESTABLISHED" and sa.remote[0] == HUB2
    assert a.engine.ctx.hubs.active(a.engine.config.connections["gw"]) == HUB2


def test_dead_hub_is_replaced_within_dpd_delay_and_one_sequence() -> None:
    a = Node(engine(branch('dpd_delay = "30s"\ndpd_action = "restart"'), 1))
    b1, b2 = hub(HUB1, 2), hub(HUB2, 3)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b1)
    assert a.sa().state == "ESTABLISHED" and a.sa().remote[0] == HUB1
    a.drain()
    sent = run_alone(a, 30.0 + SEQUENCE)  # hub 1 dies now: DPD at 30 s goes unanswered
    assert inits(sent) == [(30.0 + SEQUENCE, HUB2)]  # the restart goes to hub 2 at once
    transfer(a, b2, 30.0 + SEQUENCE, in_flight=[d for _, d in sent[-1:]])
    (sa,) = a.engine.list_sas()
    assert sa.state == "ESTABLISHED" and sa.remote[0] == HUB2
    assert [c.name for c in sa.children if c.state == "INSTALLED"] == ["net"]


def test_pikectl_initiate_peer_picks_the_hub() -> None:
    engines = Engines(
        load_config_text(branch("keyingtries = 1")),
        random=lambda n: bytes(range(1, n + 1)),
        kernel_caps=KernelCaps(True),
    )
    assert engines.active_hub("gw") == (HUB1, 0, 2)
    with pytest.raises(ValueError, match=r"192\.0\.2\.9 is not one of gw's remote_addrs"):
        engines.initiate("gw", 0.0, peer="192.0.2.9")
    engines.initiate("gw", 0.0, peer=HUB2)
    assert engines.active_hub("gw") == (HUB2, 1, 2)
    (sa,) = engines.list_sas()
    assert sa.remote[0] == HUB2
