"""When an SA rekeys, reauthenticates or expires is part of what the engines report
(``IkeSaInfo``, ``ChildSaInfo``), both versions, so ``pikectl list-sas`` reads no engine
internals."""

from __future__ import annotations

import pytest

from ikev2.pair import transfer

from .both import pair


@pytest.mark.parametrize("version", [1, 2])
def test_due_times_are_in_the_sa_infos(version: int) -> None:
    a, b = pair(version, 'rekey_time = "1h"')
    a.engine.initiate("gw", 10.0, "net")
    transfer(a, b, 10.0)
    (sa,) = a.engine.list_sas()
    (child,) = sa.children
    # the child: rekey_time 1 h minus up to rand_time 6 min, life_time 66 min
    assert child.rekey_at is not None and 10.0 + 3600 - 360 <= child.rekey_at <= 10.0 + 3600
    assert child.expire_at == 10.0 + 3960
    if version == 2:  # the IKE SA rekeys (rand_time: up to 6 min earlier)
        assert sa.rekey_at is not None and 10.0 + 3600 - 360 <= sa.rekey_at <= 10.0 + 3600
        assert sa.reauth_at is None
    else:  # IKEv1 has no phase-1 rekey: the ISAKMP SA is replaced when its life ends
        assert sa.rekey_at is None and sa.reauth_at is not None
