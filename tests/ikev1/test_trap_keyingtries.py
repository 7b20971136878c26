"""IKEv1 on demand (start_action = trap, dpd_action = trap) and keyingtries, in memory."""

from __future__ import annotations

import pytest

from ikev2.pair import transfer
from pike.sa.actions import DeleteChildSa, IkeSaDeleted, InstallChildSa, InstallTrap

from .v1pair import make_pair


def test_trap_then_acquire_negotiates_with_the_trap_reqid() -> None:
    a, b = make_pair({"start": "trap"})
    a.engine.start(0.0)
    a.drain()
    (trap,) = a.of(InstallTrap)
    assert isinstance(trap, InstallTrap) and trap.child == "net"
    assert {p.direction for p in trap.policies} == {"in", "out", "fwd"}
    assert all(p.trap for p in trap.policies)
    assert a.outbox == []  # nothing negotiated before traffic
    a.engine.acquire(trap.reqid, 1.0)
    transfer(a, b, 1.0)
    (install,) = a.of(InstallChildSa)
    assert isinstance(install, InstallChildSa)
    assert install.inbound.reqid == install.outbound.reqid == trap.reqid
    a.engine.terminate("gw", 2.0)
    transfer(a, b, 2.0)
    (gone,) = a.of(DeleteChildSa)
    assert isinstance(gone, DeleteChildSa) and gone.keep_policies  # the trap stays


def test_dpd_action_trap_returns_the_child_to_its_trap() -> None:
    kw = {"extra_conn": 'dpd_delay = 10\ndpd_action = "trap"'}
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (install,) = a.of(InstallChildSa)
    assert isinstance(install, InstallChildSa)
    now = 0.0
    while a.engine.list_sas():  # b is gone
        t = a.engine.get_timer()
        assert t is not None and t < 500
        now = t
        a.engine.handle_timer(now)
    a.drain()
    (trap,) = a.of(InstallTrap)
    assert isinstance(trap, InstallTrap) and trap.reqid == install.inbound.reqid
    (gone,) = a.of(DeleteChildSa)
    assert isinstance(gone, DeleteChildSa) and gone.keep_policies
    a.engine.acquire(trap.reqid, now + 1)  # traffic again: a new negotiation starts
    assert len(a.drain()) == 1


def test_keyingtries_starts_again_with_new_cookies(caplog: pytest.LogCaptureFixture) -> None:
    a, _ = make_pair({"extra_conn": "keyingtries = 3"})
    a.engine.initiate("gw", 0.0, "net")
    cookies = set()
    while (t := a.engine.get_timer()) is not None and t < 2000:
        for sa in a.engine.sas.values():  # type: ignore[attr-defined]
            cookies.add(sa.spi_i)
        a.engine.handle_timer(t)
    a.drain()
    assert len(cookies) == 3
    reasons = [d.reason for d in a.of(IkeSaDeleted)]  # type: ignore[union-attr]
    assert reasons == ["retransmit_timeout"] * 3
    assert len(a.outbox) == 18  # three sequences of MM1 + 5 retransmits
    assert a.engine.list_sas() == []
    gave_up = [r.getMessage() for r in caplog.records if "giving up after" in r.getMessage()]
    assert len(gave_up) == 1 and "after 3 attempt(s) (keyingtries = 3)" in gave_up[0], gave_up


def test_dpd_action_restart_initiates_again() -> None:
    kw = {"extra_conn": 'dpd_delay = 10\ndpd_action = "restart"'}
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    old = a.sa().spi_i
    while (t := a.engine.get_timer()) is not None and a.engine.list_sas()[0].spi_i == old:
        assert t < 500
        a.engine.handle_timer(t)
    a.drain()
    (new,) = a.engine.list_sas()
    assert new.spi_i != old and new.state == "CONNECTING"
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["retransmit_timeout"]  # type: ignore[union-attr]
