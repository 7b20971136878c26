"""What an IKEv1 Quick Mode between piked and charon shows, with ESP in the kernel or
without (shared by test_piked_strongswan.py and test_piked_certs.py).

With ESP both halves are INSTALLED with the same SPIs. Without (the host kernel), piked
agrees to no CHILD_SA it cannot install, as in IKEv2 (pike.sa.child_lifecycle): as Quick
Mode responder it answers QM1, as initiator QM2, with NO_PROPOSAL_CHOSEN after choosing
the proposal (as charon's initiator does when its kernel refuses). charon installs on QM3,
which never comes, so neither side keeps a half; the ISAKMP SA stays up on both. The
tests that need piked's half in the kernel also run in the UML guest (marked
``kernel_interop``; tests/guest/test_ikev1_tier.py).
"""

from __future__ import annotations

from functools import partial

from .lifecycle_tools import wait_for
from .piked import PikedNode
from .strongswan import IkeSaInfo, StrongswanNode
from .strongswan_v1 import ikev1_exchanges


def installed_alike(piked: PikedNode, charon: StrongswanNode) -> tuple[IkeSaInfo, IkeSaInfo]:
    """With ESP: both halves of ``lan`` INSTALLED, each one's inbound SPI the other's
    outbound, with the configured selectors."""
    p = piked.wait_established("hq", timeout=10, child="lan")
    c = charon.wait_established("hq", timeout=10, child="lan")
    pc, cc = p.child("lan"), c.child("lan")
    assert pc is not None and cc is not None
    assert pc.state == cc.state == "INSTALLED", (pc, cc)
    assert (pc.spi_in, pc.spi_out) == (cc.spi_out, cc.spi_in)
    assert (pc.local_ts, pc.remote_ts) == (["10.1.0.0/24"], ["10.2.0.0/24"])
    assert (cc.local_ts, cc.remote_ts) == (["10.2.0.0/24"], ["10.1.0.0/24"])
    return p, c


def refused_without_esp(piked: PikedNode, charon: StrongswanNode, piked_initiated: bool) -> None:
    """Without ESP in piked's kernel: the Quick Mode ends as piked's role says, no
    CHILD_SA is left on either side, and the ISAKMP SA stays up on both."""
    wait_for(
        "piked's refusal",
        lambda: "cannot install CHILD_SA lan: kernel lacks" in piked.log_text(),
        15,
    )
    try:
        wait_for(
            "charon told",
            lambda: "received NO_PROPOSAL_CHOSEN error notify" in charon.log_text(),
            10,
        )
    except TimeoutError as e:
        raise AssertionError(f"{e}\n{_ike_lines(charon)}") from None
    quick = [x for x in ikev1_exchanges(charon.log_text()) if "QUICK_MODE" in x]
    if piked_initiated:  # QM1 and QM2 (with or without KE), no QM3
        assert len(quick) == 2, quick
        assert quick[0].startswith("< QUICK_MODE [ HASH SA No"), quick
        assert quick[1].startswith("> QUICK_MODE [ HASH SA No"), quick
    else:  # QM1, answered only by the notify
        assert len(quick) == 1 and quick[0].startswith("> QUICK_MODE [ HASH SA No"), quick
    established = [x for x in charon.log_text().splitlines() if "established with SPIs" in x]
    assert established == [], established  # charon never installed a half
    for node in (piked, charon):
        # (as seen through swanctl --list-sas and pikectl, a moment after the logs)
        try:
            sa = wait_for("no CHILD_SA left", partial(_without_child, node), 5)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{_ike_lines(charon)}") from None
        assert sa.state == "ESTABLISHED", sa


def _without_child(node: PikedNode | StrongswanNode) -> IkeSaInfo | None:
    sa = node.ike_sa("hq")
    if sa is None:
        raise AssertionError("the ISAKMP SA is gone")
    lan = sa.child("lan")
    return sa if lan is None or lan.state != "INSTALLED" else None


def _ike_lines(charon: StrongswanNode) -> str:
    """charon's log of the exchanges (for a failure message)."""
    lines = charon.log_text().splitlines()
    return "\n".join(x for x in lines if "[IKE]" in x or "[ENC]" in x)[-4000:]
