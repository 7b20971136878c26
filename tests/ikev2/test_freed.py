"""A deleted IKE SA is freed by reference counting alone: nothing of it is left in a
reference cycle for the collector (a hub deletes and rekeys thousands of SAs; cycles
would wait for a full collection, which walks the whole heap) — two engines, fake clock,
the collector off while they run."""

from __future__ import annotations

import logging

import pytest

from lib.freed import (
    assert_freed,
    no_collector,  # noqa: F401  (the autouse fixture: the collector off)
    refs,
)

from .pair import Node, conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


# what an IKE SA is made of (the runner's own garbage, e.g. captured log records, is not)
_PARTS = ("pike.ikev2", "pike.crypto", "pike.sa.child_sa", "pike.sa.chosen", "pike.sa.signing")


def up(extra_a: str = "") -> tuple[Node, Node]:
    a_text = conf(*A, extra_conn=extra_a)
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    return a, b


def test_deleted_by_us_and_by_the_peer() -> None:
    a, b = up()
    gone = refs(a, b)
    a.engine.terminate("gw", 5.0)
    transfer(a, b, 5.0)
    assert not a.engine.sas and not b.engine.sas
    assert_freed(gone, _PARTS, a, b)


def test_rekeyed_away() -> None:
    a, b = up()
    gone = refs(a, b)
    a.engine.rekey("gw", 20.0)
    transfer(a, b, 20.0)
    assert len(a.engine.sas) == len(b.engine.sas) == 1
    assert_freed(gone, _PARTS, a, b)


def test_reauthenticated_away() -> None:
    a, b = up('reauth_time = "20m"')
    gone = refs(a, b)
    (sa,) = a.engine.sas.values()
    t = sa.reauth_at
    del sa
    assert t is not None
    a.engine.handle_timer(t)
    transfer(a, b, t)
    assert len(a.engine.sas) == len(b.engine.sas) == 1
    assert_freed(gone, _PARTS, a, b)


def test_failed_on_retransmits_with_tasks_under_way() -> None:
    a, _b = up()
    gone = refs(a)
    a.engine.rekey("gw", 20.0)
    a.drain()  # the request is lost, and every retransmission
    now = 20.0
    while a.engine.sas:
        t = a.engine.get_timer()
        assert t is not None
        now = t
        a.engine.handle_timer(now)
        a.drain()
    assert_freed(gone, _PARTS, a)


def test_half_open_timeout() -> None:
    c, d = make_pair()
    c.engine.initiate("gw", 0.0)
    (init,) = c.drain()
    d.engine.receive_datagram(init.data, init.src, init.dst, 0.0)
    d.drain()  # the IKE_SA_INIT answer never reaches the initiator
    gone = refs(d)
    assert len(gone) == 1
    d.engine.handle_timer(31.0)
    assert not d.engine.sas
    assert_freed(gone, _PARTS, d)


def test_refused_authentication(caplog: pytest.LogCaptureFixture) -> None:
    # (the ERROR line's argument is the exception, whose traceback holds the SA: the
    # runner's capture keeps that record; a running daemon's handlers do not)
    caplog.set_level(logging.CRITICAL, logger="pike")
    a_text = conf(*A, psk="another-psk-than-the-peers")
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    b.engine.receive_datagram(init.data, init.src, init.dst, 0.0)
    gone = refs(a, b)
    assert len(gone) == 2
    transfer(b, a, 0.0)
    assert not a.engine.sas and not b.engine.sas  # refused, and given up
    assert_freed(gone, _PARTS, a, b)
