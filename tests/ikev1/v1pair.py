"""Two IKEv1 engines back to back (fixed randomness, a fake clock), with the IKEv2 pair's
helpers: the engines share the action types, so ``Node``/``transfer`` work unchanged."""

from __future__ import annotations

import random

from ikev2.pair import Node, psk_conf
from lib.pikeconf import PikeConf, rendered
from pike.ikev1.engine import Ikev1Engine
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text

A, B = "192.0.2.1", "192.0.2.2"


def v1psk_conf(local: str, remote: str, **kw: str) -> PikeConf:
    """:func:`ikev2.pair.psk_conf` for IKEv1, with IKEv1 defaults: ids are the addresses,
    MODP-3072 and AES-CBC proposals."""
    local_id = kw.pop("local_id", local)
    remote_id = kw.pop("remote_id", remote)
    kw.setdefault("proposals", '"aes256-sha256-modp3072"')
    kw.setdefault("esp", '"aes256-sha256"')
    return psk_conf(local, remote, local_id, remote_id, version=1, **kw)


v1conf = rendered(v1psk_conf)  # the same, as TOML text


def engine(text: str, seed: int, esp: bool = True) -> Ikev1Engine:
    rng = random.Random(seed)
    caps = KernelCaps(True) if esp else KernelCaps(False, ("ESP (CONFIG_INET_ESP)",))
    return Ikev1Engine(load_config_text(text), random=rng.randbytes, kernel_caps=caps)


def make_pair(
    a_kw: dict[str, str] | None = None, b_kw: dict[str, str] | None = None
) -> tuple[Node, Node]:
    a = v1conf(A, B, **(a_kw or {}))
    b_defaults = {"local_ts": '"10.2.0.0/24"', "remote_ts": '"10.1.0.0/24"'}
    b = v1conf(B, A, **{**b_defaults, **(b_kw or {})})
    return Node(engine(a, 1)), Node(engine(b, 2))  # type: ignore[arg-type]
