"""``rekey()`` when there is nothing to rekey: a clear refusal (RekeyRefused, one line for
``pikectl rekey``), never a silent no-op — two engines, fake clock."""

from __future__ import annotations

import pytest

from pike.sa.state import RekeyRefused

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
SECOND = """
[connections.gw.children.voip]
local_ts = ["10.1.9.0/24"]
remote_ts = ["10.2.9.0/24"]
esp_proposals = ["aes128gcm16"]
"""


def _pair():  # type: ignore[no-untyped-def]
    return make_pair(
        conf(*A) + SECOND,
        conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'),
    )


def _refused(node, child: str | None) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(RekeyRefused) as info:
        node.engine.rekey("gw", 1.0, child)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_rekey_refusals_name_what_is_wrong() -> None:
    a, b = _pair()
    with pytest.raises(KeyError, match="gw has no established IKE SA"):
        a.engine.rekey("gw", 0.0, "net")
    with pytest.raises(KeyError, match="gw has no child nope"):
        a.engine.rekey("gw", 0.0, "nope")
    a.engine.initiate("gw", 0.0)
    # IKE_SA_INIT is out, nothing established yet
    assert _refused(a, "net") == "gw: IKE_SA is CONNECTING, not ESTABLISHED"
    assert _refused(a, None) == "gw: IKE_SA is CONNECTING, not ESTABLISHED"
    transfer(a, b)
    # a configured child that is not up (b's config has no voip: never negotiated)
    assert _refused(a, "voip") == "gw.voip: no CHILD_SA to rekey (not up)"
    # a CHILD_SA rekey in flight: the child is REKEYING until the answer comes
    a.engine.rekey("gw", 1.0, "net")
    (req,) = a.drain()
    assert _refused(a, "net") == "gw.net: CHILD_SA is REKEYING, not INSTALLED: not rekeyed"
    transfer(a, b, 1.0, in_flight=[req])
    (child,) = a.sa().children
    assert child.state == "INSTALLED"
    a.engine.rekey("gw", 2.0, "net")  # accepted again once the rekey is done
    transfer(a, b, 2.0)
    # an IKE SA rekey in flight, or queued behind another exchange: no second one
    a.engine.rekey("gw", 3.0)
    assert _refused(a, None) == "gw: IKE_SA is REKEYING, not ESTABLISHED"
    transfer(a, b, 3.0)
    a.engine.rekey("gw", 3.5, "net")  # a CREATE_CHILD_SA goes out first
    a.engine.rekey("gw", 3.5)  # queued behind it
    assert _refused(a, None) == "gw: an IKE_SA rekey is already under way"
    transfer(a, b, 3.5)
    a.engine.rekey("gw", 4.0)  # the new IKE SA can be rekeyed
    transfer(a, b, 4.0)
    assert a.sa().state == "ESTABLISHED"
    assert a.engine.ctx.counters.conn("gw").ike_rekeys == 3
