"""pike.sa.traps.Traps.keeps_policies: a CHILD_SA's policies outlive it while a trap or
another live child (INSTALLED, REKEYING or REKEYED) uses them; IKEv1 now follows the same
rule as IKEv2 (it used to look at INSTALLED children only). In memory."""

from __future__ import annotations

from ikev2.pair import deliver, transfer
from pike.sa.actions import DeleteChildSa, InstallChildSa
from pike.sa.state import ChildState

from .both import pair


def test_ikev1_child_removed_while_its_twin_rekeys_keeps_the_policies() -> None:
    a, b = pair(1)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.engine.rekey("gw", 10.0, "net")  # a's child: REKEYING, its Quick Mode never arrives
    a.drain()
    b.engine.rekey("gw", 10.0, "net")  # b's own new pair for the same selectors
    qm3 = deliver(deliver(b.drain(), a, 10.0), b, 10.0)
    deliver(qm3[:1], a, 10.0)  # QM3; b's Delete of its old pair is lost
    (isakmp,) = a.engine.sas.values()
    rekeying, twin = isakmp.children
    assert rekeying.state == ChildState.REKEYING and twin.state == ChildState.INSTALLED
    assert len(a.of(InstallChildSa)) == 2
    # hard expiry of the new pair, at its life_time (earlier it would be made again)
    assert twin.expire_at is not None
    a.engine.child_expired(twin.spi_in, True, twin.expire_at)
    a.drain()
    (gone,) = a.of(DeleteChildSa)
    assert isinstance(gone, DeleteChildSa) and gone.unique_id == twin.unique_id
    assert gone.keep_policies  # the rekeying child still uses them
