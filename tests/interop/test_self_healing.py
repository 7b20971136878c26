"""Tunnels that recover by themselves, and operator commands, against strongSwan 5.9
(issue 17): piked on ``left`` (branch1.example.net), charon on ``right`` (hq.example.net).

Host tier (IKE only: the host kernel has no ESP, piked refuses CHILD_SAs):

- INITIAL_CONTACT only when no IKE SA with the same identities is up: a second piked
  connection with the same identities comes up beside the first, and charon keeps both
  (with INITIAL_CONTACT charon drops the older one, silently), IKEv2 and IKEv1;
- ``pikectl terminate --force`` removes an IKE SA whose peer is gone at once, where a plain
  ``terminate`` waits out the Delete's retransmissions; in IKEv1 (Deletes are never
  acknowledged) both remove it at once, and charon still learns of it by the Delete;
- ``pikectl initiate`` waits for the outcome and exits 1 when it fails.

Kernel tier (``kernel_interop``, in UML via tests/guest/test_interop_tier.py): with
``close_action = "start"``, charon's ``swanctl --terminate --child`` and ``--terminate
--ike`` are followed within seconds by a new CHILD_SA (IKE SA) that piked initiated;
``pikectl terminate hq.lan`` deletes only the CHILD_SA on both sides.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .netns import Lab
from .piked import PikedNode
from .strongswan import Connection, IkeSaInfo, Secret, StrongswanNode
from .test_lifecycle_interop import SECRET, conn, spis
from .topology import branch_hq_v1, make_gateways

pytestmark = pytest.mark.interop
V1_SECRET = Secret("hq", "pike-self-healing-v1-psk")  # IKEv1: the IDs are the addresses


def psk_tunnel(version: int) -> tuple[Callable[[str], Connection], Secret]:
    """The branch-hq PSK tunnel in IKEv2 or IKEv1: its connection by side, its secret."""
    return (conn, SECRET) if version == 2 else (branch_hq_v1, V1_SECRET)


def _up(node: PikedNode | StrongswanNode, name: str = "hq") -> list[IkeSaInfo]:
    return [s for s in node.list_sas() if s.name == name and s.state == "ESTABLISHED"]


@pytest.mark.parametrize("version", [2, 1])
def test_no_initial_contact_beside_a_live_sa(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    make, secret = psk_tunnel(version)
    charon = make_charon(
        gateways.right, "charon", make("right"), secret, libipsec=gateways.libipsec
    )
    second = dataclasses.replace(make("left"), name="hq2")
    piked = make_piked(gateways.left, "piked", make("left"), second, secret)
    piked.poll_via_socket = True
    piked.initiate("hq")
    first = spis(piked.wait_established("hq", timeout=15))
    piked.initiate("hq2")
    piked.wait_established("hq2", timeout=15)
    wait_for("charon holds both IKE SAs", lambda: len(_up(charon)) == 2, 10)
    time.sleep(1.0)  # an INITIAL_CONTACT would have made charon drop the first by now
    assert first in [spis(s) for s in _up(charon)]  # the first IKE SA survived
    assert [spis(s) for s in _up(piked)] == [first]
    # charon logs the payloads it parsed: the notify came with the first IKE_AUTH only
    assert charon.log_text().count("N(INIT_CONTACT)") <= 1
    assert charon.log_text().count("INITIAL_CONTACT") <= 1


def test_terminate_force_clears_a_stuck_sa(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left"), SECRET)
    piked.poll_via_socket = True
    piked.initiate("hq")
    piked.wait_established("hq", timeout=15)
    # Without ESP in this kernel piked deletes the refused CHILD_SA at once; killing charon
    # before that exchange is answered would queue the IKE SA's Delete behind it (one
    # exchange in flight) and leave it ESTABLISHED: wait for that exchange to end first.
    wait_for(
        "no CHILD_SA exchange in flight",
        lambda: all(
            c.state == "INSTALLED" for s in piked.list_sas() if s.name == "hq" for c in s.children
        ),
        10,
    )
    assert charon.pid is not None
    os.kill(charon.pid, signal.SIGKILL)  # the peer is gone: the Delete goes unanswered
    charon.proc.wait(timeout=5)  # type: ignore[union-attr]
    piked.pikectl("terminate", "hq")
    time.sleep(1.0)
    waiting = [s.state for s in piked.list_sas() if s.name == "hq"]
    assert waiting == ["DELETING"]  # retransmitting the Delete (165 s by default)
    t0 = time.monotonic()
    out = piked.pikectl("terminate", "--force", "hq")
    assert out.returncode == 0
    assert [s for s in piked.list_sas() if s.name == "hq"] == []
    took = time.monotonic() - t0
    print(f"\nterminate --force: a stuck IKE SA removed in {took:.2f}s (pikectl included)")
    assert "terminate requested (forced)" in piked.log_text()


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_terminate_v1_never_waits(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, force: bool
) -> None:
    """IKEv1: ``terminate`` (with or without ``--force``) removes the ISAKMP SA at once,
    the peer alive or gone; the one Delete reaches a live charon, which drops its SA."""
    charon = make_charon(
        gateways.right, "charon", branch_hq_v1("right"), V1_SECRET, libipsec=gateways.libipsec
    )
    second = dataclasses.replace(branch_hq_v1("left"), name="hq2")
    piked = make_piked(gateways.left, "piked", branch_hq_v1("left"), second, V1_SECRET)
    piked.poll_via_socket = True
    flag = ("--force",) if force else ()
    piked.initiate("hq")
    live = spis(piked.wait_established("hq", timeout=15))
    piked.initiate("hq2")
    piked.wait_established("hq2", timeout=15)
    wait_for("charon holds both ISAKMP SAs", lambda: len(_up(charon)) == 2, 10)
    t0 = time.monotonic()
    assert piked.pikectl("terminate", *flag, "hq").returncode == 0
    assert [s for s in piked.list_sas() if s.name == "hq"] == []  # nothing waits
    took = time.monotonic() - t0
    wait_for("charon drops the deleted SA", lambda: live not in [spis(s) for s in _up(charon)], 10)
    assert charon.pid is not None
    os.kill(charon.pid, signal.SIGKILL)  # now the peer is gone: the Delete goes unanswered
    charon.proc.wait(timeout=5)  # type: ignore[union-attr]
    assert piked.pikectl("terminate", *flag, "hq2").returncode == 0
    assert [s.state for s in piked.list_sas() if s.name == "hq2"] == []  # no DELETING
    print(f"\nIKEv1 terminate{' --force' if force else ''}: SA gone in {took:.2f}s")


def test_initiate_waits_and_exits_non_zero_on_failure(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """``pikectl initiate`` waits for the outcome, shows the connection's log lines and
    exits 1 on failure, as ``swanctl --initiate``: here the host kernel has no ESP (the
    IKE SA comes up, the CHILD_SA is refused), then charon refuses a wrong PSK, then the
    name is unknown. (With ESP it exits 0: test_close_action_start_after_the_peer_deletes.)"""
    wrong = Secret("hq", "not-the-psk-piked-has", SECRET.ids)
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left"), SECRET)
    t0 = time.monotonic()
    no_esp = piked.pikectl("initiate", "--timeout", "20", "hq", check=False)
    took = time.monotonic() - t0
    assert no_esp.returncode == 1, no_esp
    assert "initiate hq failed: kernel_no_esp" in no_esp.stderr
    assert "hq[1]" in no_esp.stdout and "IKE_AUTH" in no_esp.stdout  # the log lines
    piked.pikectl("terminate", "--force", "hq")
    charon.stop()
    refusing = make_charon(
        gateways.right, "charon2", conn("right"), wrong, libipsec=gateways.libipsec, start=False
    )
    refusing.start()
    refused = piked.pikectl("initiate", "--timeout", "20", "hq", check=False)
    assert refused.returncode == 1, refused
    assert "initiate hq failed: auth_failed" in refused.stderr, refused
    unknown = piked.pikectl("initiate", "--timeout", "5", "nope", check=False)
    assert unknown.returncode == 1 and "no connection named 'nope'" in unknown.stderr
    print(f"\npikectl initiate: outcome (CHILD_SA refused, no ESP) after {took:.2f}s, exit 1")


# -- with ESP (UML) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_gw(run_prefix: str) -> Iterator[Gateways]:
    with Lab.create(f"{run_prefix}sh-") as la:
        yield make_gateways(la)


@pytest.fixture
def esp_gw(shared_gw: Gateways) -> Iterator[Gateways]:
    if not shared_gw.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    yield shared_gw
    for ns in (shared_gw.left, shared_gw.right):
        ns.run(["ip", "xfrm", "state", "flush"])
        ns.run(["ip", "xfrm", "policy", "flush"])


def _child_spi(sa: IkeSaInfo) -> str:
    c = sa.child("lan")
    assert c is not None and c.state == "INSTALLED", sa
    return c.spi_in


def _healing_pair(
    gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> tuple[PikedNode, StrongswanNode]:
    make, secret = psk_tunnel(version)
    charon = make_charon(gw.right, "charon", make("right"), secret, libipsec=False)
    left = make("left")
    left.children[0].close_action = "start"
    piked = make_piked(gw.left, "piked", left, secret)
    piked.poll_via_socket = True
    up = piked.initiate("hq", wait=20)  # exits 0 once the CHILD_SA is up
    assert "initiate hq: established" in up.stdout, up
    piked.wait_established("hq", timeout=20, child="lan")
    charon.wait_established("hq", timeout=10, child="lan")
    return piked, charon


@pytest.mark.kernel_interop
@pytest.mark.parametrize("version", [2, 1])
def test_close_action_start_after_the_peer_deletes(
    esp_gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    piked, charon = _healing_pair(esp_gw, make_piked, make_charon, version)
    ike = spis(piked.wait_established("hq", child="lan"))
    child = _child_spi(charon.wait_established("hq", child="lan"))
    t0 = time.monotonic()
    charon.terminate_child("lan")
    wait_for(
        "a new CHILD_SA in the same IKE SA",
        lambda: any(
            spis(s) == ike
            and (c := s.child("lan")) is not None
            and c.state == "INSTALLED"
            and c.spi_in != child
            for s in _up(charon)
        ),
        15,
    )
    child_back = time.monotonic() - t0
    t0 = time.monotonic()
    charon.terminate("hq")
    sa = piked.wait_established("hq", timeout=20, child="lan")
    assert sa.initiator and spis(sa) != ike
    charon.wait_established("hq", timeout=10, child="lan")
    ike_back = time.monotonic() - t0
    print(
        f"\nIKEv{version} close_action = start: CHILD_SA back {child_back:.2f}s after"
        f" charon deleted it, IKE SA and CHILD_SA back {ike_back:.2f}s after charon"
        " deleted the IKE SA"
    )
    assert child_back < 10 and ike_back < 15
    assert "close_action=start: initiating again" in piked.log_text()


@pytest.mark.kernel_interop
@pytest.mark.parametrize("version", [2, 1])
def test_terminate_one_child(
    esp_gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    piked, charon = _healing_pair(esp_gw, make_piked, make_charon, version)
    ike = spis(charon.wait_established("hq", child="lan"))
    assert piked.pikectl("terminate", "hq.lan").returncode == 0
    wait_for(
        "charon's CHILD_SA gone, its IKE SA kept",
        lambda: [(spis(s), s.child("lan")) for s in _up(charon)] == [(ike, None)],
        10,
    )
    assert [s.children for s in _up(piked)] == [[]]
    gone = piked.pikectl("terminate", "hq.lan", check=False)
    assert gone.returncode == 1 and "no CHILD_SA up" in gone.stderr
