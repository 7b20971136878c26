"""What an IKEv1 Quick Mode between piked and charon shows, with ESP in the kernel or
without (shared by test_piked_strongswan.py and test_piked_certs.py).

With ESP both halves are INSTALLED with the same SPIs. Without (the host kernel), piked
cannot install a CHILD_SA and pretends none, as in IKEv2 (pike.sa.child_lifecycle): as
Quick Mode initiator it completes the exchange (QM3), fails its half and sends a Delete
for it, which charon (kernel-libipsec, so it installed its half) follows; as responder it
refuses QM1 with NO_PROPOSAL_CHOSEN after choosing a proposal. The ISAKMP SA stays up on
both sides either way. The tests that need piked's half in the kernel also run in the
UML guest (marked ``kernel_interop``; tests/guest/test_ikev1_tier.py).
"""

from __future__ import annotations

import re

from .lifecycle_tools import wait_for
from .piked import PikedNode
from .strongswan import IkeSaInfo, StrongswanNode

# piked's log line for the half it could not install (pike.sa.child_sa's transition)
_FAILED = re.compile(r"hq\.lan: CHILD_SA CREATED -> FAILED, SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o")


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
    if piked_initiated:
        # the exchange completed: charon installed its half with the SPIs piked chose
        # and took, then our Delete took it out again
        m = wait_for("piked's failed half", lambda: _FAILED.search(piked.log_text()), 15)
        spi_in, spi_out = m[1], m[2]
        assert "CHILD_SA lan negotiated but kernel lacks" in piked.log_text()
        established = "CHILD_SA lan{"
        try:
            wait_for(
                "charon's half deleted",
                lambda: f"received DELETE for ESP CHILD_SA with SPI {spi_in}" in charon.log_text(),
                10,
            )
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{charon.log_text()[-4000:]}") from None
        clog = charon.log_text()
        line = next(x for x in clog.splitlines() if established in x and "established" in x)
        assert f"SPIs {spi_out}_i {spi_in}_o" in line, line
    else:
        wait_for(
            "piked's refusal",
            lambda: "cannot install CHILD_SA lan: kernel lacks" in piked.log_text(),
            15,
        )
        wait_for(
            "charon told",
            lambda: "received NO_PROPOSAL_CHOSEN error notify" in charon.log_text(),
            10,
        )
    for sa in (piked.ike_sa("hq"), charon.ike_sa("hq")):
        assert sa is not None and sa.state == "ESTABLISHED", sa
        lan = sa.child("lan")
        assert lan is None or lan.state != "INSTALLED", lan
