"""pike.sa.traps.Traps.keeps_policies: a CHILD_SA's policies outlive it while a trap or
another live child (INSTALLED, REKEYING or REKEYED) uses them; IKEv1 now follows the same
rule as IKEv2 (it used to look at INSTALLED children only). In memory."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("version", [1, 2])
def test_policy_users_follow_install_rekey_and_removal(version: int) -> None:
    """The index of installed children by kernel policy (asked on every CHILD_SA's
    removal instead of a walk over every child) gains each installed child and loses it
    with its removal: a rekey's old pair goes with its policies kept for the new one, and
    after the end nothing is left in it."""
    a, b = pair(version)
    users = a.engine.ctx.policy_users
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert len(users) == 1
    a.engine.rekey("gw", 10.0, "net")
    transfer(a, b, 10.0)
    gone = [d for d in a.of(DeleteChildSa) if isinstance(d, DeleteChildSa)]
    assert len(gone) == 1 and gone[0].keep_policies  # the new pair still uses them
    assert len(users) == 1
    a.engine.terminate("gw", 5000.0)
    transfer(a, b, 5000.0)
    last = [d for d in a.of(DeleteChildSa) if isinstance(d, DeleteChildSa)][-1]
    assert not last.keep_policies  # nobody else has them: out of the kernel
    assert len(users) == 0 and len(b.engine.ctx.policy_users) == 0


@pytest.mark.parametrize("version", [1, 2])
def test_children_of_one_config_share_its_kernel_lifetime(version: int) -> None:
    """Without volume jitter (the default) a CHILD_SA's kernel limits are its config's
    alone: every CHILD_SA of that config, of either version, is installed with the one
    ``Lifetime`` kept on the config, with the config's soft and hard limits."""
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.engine.rekey("gw", 10.0, "net")
    transfer(a, b, 10.0)
    first, second = a.of(InstallChildSa)[:2]
    assert isinstance(first, InstallChildSa) and isinstance(second, InstallChildSa)
    lifetime = first.inbound.lifetime
    assert lifetime is first.outbound.lifetime is second.inbound.lifetime
    (cfg,) = a.engine.ctx.config.connections["gw"].children
    assert lifetime is cfg.kernel_lifetime
    soft = max(cfg.rekey_time, 1)
    assert (lifetime.soft_seconds, lifetime.hard_seconds) == (soft, max(cfg.life_time, soft))
    assert (lifetime.soft_bytes, lifetime.soft_packets) == (cfg.rekey_bytes, cfg.rekey_packets)
    assert (lifetime.hard_bytes, lifetime.hard_packets) == (cfg.life_bytes, cfg.life_packets)
