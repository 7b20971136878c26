"""NAT mapping change (RFC 7296 §2.23): only a new authenticated request moves the SAs.

A captured request replayed from another address (or a retransmission arriving through a
new NAT mapping) must not redirect the IKE SA and the CHILD_SAs there: before the fix a
replay of any earlier request of the peer, integrity intact, moved them to the sender."""

from __future__ import annotations

from pike.sa.actions import InstallChildSa

from .pair import conf, deliver, make_pair, send_informational, transfer
from .test_ondemand import B_TS, A, B, of


def test_replayed_request_from_new_address_does_not_move_the_sas() -> None:
    a, b = make_pair(conf(*A, extra_conn="encap = true"), conf(*B, **B_TS))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    probe = send_informational(a, 5.0)
    b.engine.receive_datagram(probe.data, probe.src, probe.dst, 5.0)
    answer = b.drain()
    installs = len(of(b, InstallChildSa))
    # the same (authentic) request again, from an attacker's address
    b.engine.receive_datagram(probe.data, ("198.51.100.7", 4500), probe.dst, 6.0)
    b.drain()
    assert b.sa().remote == probe.src
    assert len(of(b, InstallChildSa)) == installs  # nothing moved
    # a new request through a new mapping still moves them
    deliver(answer, a, 6.0)
    probe2 = send_informational(a, 7.0)
    b.engine.receive_datagram(probe2.data, ("192.0.2.1", 31000), probe2.dst, 7.0)
    b.drain()
    assert b.sa().remote == ("192.0.2.1", 31000)
    assert len(of(b, InstallChildSa)) == installs + 1
