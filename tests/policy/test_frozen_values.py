"""``@frozen`` values (``pike.frozen``): compare, hash and pickle by class and fields."""

from __future__ import annotations

import ipaddress
import pickle

from pike.crypto.kdf import ChildKeys
from pike.policy.ipsec import Lifetime, SaSpec
from pike.policy.ts import TrafficSelector
from pike.sa.actions import SendDatagram


def _spec(spi: int) -> SaSpec:
    a, b = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
    return SaSpec(a, b, spi, 7, "tunnel", 20, b"k" * 20, 128, 0, b"", lifetime=Lifetime(1, 2))


def test_equal_fields_equal_values_and_hashes() -> None:
    assert _spec(1) == _spec(1) and hash(_spec(1)) == hash(_spec(1))
    assert _spec(1) != _spec(2)
    assert len({_spec(1), _spec(1), _spec(2)}) == 2
    # another class with the same fields is another value
    assert SendDatagram(b"x", ("a", 1), ("b", 2)) != (b"x", ("a", 1), ("b", 2))


def test_slotted_and_pickled_as_values() -> None:
    spec = _spec(3)
    assert not hasattr(spec, "__dict__")
    assert pickle.loads(pickle.dumps(spec)) == spec
    ts = TrafficSelector.from_cidr("10.0.0.0/8", 6, 443)
    assert pickle.loads(pickle.dumps(ts)) == ts


def test_hidden_repr_kept() -> None:
    keys = ChildKeys(b"a" * 16, b"", b"b" * 16, b"")
    assert "aaaa" not in repr(keys) and "<16 bytes>" in repr(keys)
    assert "kkkk" not in repr(_spec(1))  # field(repr=False) still honoured


def test_config_values_compare_hash_and_pickle() -> None:
    from pike.policy.config import Identity

    a, b = Identity(2, b"hub.example", "hub.example"), Identity(2, b"hub.example", "hub.example")
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert Identity(2, b"other.example", "other.example") != a
