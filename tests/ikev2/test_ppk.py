"""Post-quantum preshared keys (RFC 8784) in memory: USE_PPK, PPK_IDENTITY, NO_PPK_AUTH,
SK_d/SK_pi/SK_pr mixed with the PPK, ppk_required."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.ikev2.engine import Ikev2Engine
from pike.ikev2.ike_sa import IkeSa
from pike.sa.actions import InstallChildSa
from pike.wire.codec import decode_message
from pike.wire.constants import NotifyType

from .pair import Node, conf, deliver, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
PPK = "0x" + "5a" * 32
OTHER_PPK = "0x" + "a5" * 32


def side(
    ends: tuple[str, str, str, str],
    *,
    ppk_id: str | None = "pq-1",
    required: bool = False,
    ppk: str | None = PPK,
    ppk_secret_id: str = "pq-1",
    lan: tuple[str, str] = ("10.1.0.0/24", "10.2.0.0/24"),
) -> str:
    extra = []
    if ppk_id is not None:
        extra.append(f'ppk_id = "{ppk_id}"')
    if required:
        extra.append("ppk_required = true")
    text = conf(
        *ends,
        local_ts=f'"{lan[0]}"',
        remote_ts=f'"{lan[1]}"',
        extra_conn="\n".join(extra),
    )
    if ppk is not None:
        text += f'\n[secrets.ppk-q]\nid = "{ppk_secret_id}"\nsecret = "{ppk}"\n'
    return text


def sas(n: Node) -> list[IkeSa]:
    engine: Ikev2Engine = n.engine
    return list(engine.sas.values())


def run(a_text: str, b_text: str) -> tuple[Node, Node, list[bytes]]:
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    sent: list[bytes] = []
    in_flight = a.drain()
    while in_flight:
        sent += [d.data for d in in_flight]
        msg = decode_message(in_flight[0].data)
        in_flight = deliver(in_flight, a if msg.is_response else b, 0.0)
    transfer(a, b, 0.0)
    return a, b, sent


B_LAN = ("10.2.0.0/24", "10.1.0.0/24")


def test_ppk_both_sides_mixes_it_into_sk_d() -> None:
    a, b, sent = run(side(A), side(B, lan=B_LAN))
    assert decode_message(sent[0]).notify(NotifyType.USE_PPK) is not None
    assert decode_message(sent[1]).notify(NotifyType.USE_PPK) is not None
    (sa_a,), (sa_b,) = sas(a), sas(b)
    assert sa_a.state.value == sa_b.state.value == "ESTABLISHED"
    assert sa_a.ppk_used and sa_b.ppk_used
    assert sa_a.keys is not None and sa_b.keys is not None and sa_a.prf is not None
    assert sa_a.keys.sk_d == sa_b.keys.sk_d
    # SK_d' = prf+(PPK, SK_d): undo is impossible, but without the PPK the peer's SK_d
    # would differ: a responder keyed without it cannot match
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    ia, ib = a.of(InstallChildSa)[0], b.of(InstallChildSa)[0]
    assert ia.inbound.encr_key == ib.outbound.encr_key


def test_ppk_is_really_mixed_in() -> None:
    """Both ends with a different PPK under the same id: AUTH fails (no fallback,
    because the responder found a PPK for the id)."""
    a, b, _ = run(side(A), side(B, lan=B_LAN, ppk=OTHER_PPK))
    assert all(s.state.value != "ESTABLISHED" for s in sas(a) + sas(b))


def test_responder_without_the_ppk_falls_back_to_no_ppk_auth() -> None:
    a, b, _ = run(side(A), side(B, lan=B_LAN, ppk_id=None, ppk=OTHER_PPK, ppk_secret_id="x"))
    (sa_a,), (sa_b,) = sas(a), sas(b)
    assert sa_a.state.value == sa_b.state.value == "ESTABLISHED"
    assert not sa_a.ppk_used and not sa_b.ppk_used
    assert sa_a.keys is not None and sa_b.keys is not None
    assert sa_a.keys.sk_d == sa_b.keys.sk_d


@pytest.mark.parametrize("who", ["initiator", "responder"])
def test_ppk_required_refuses_a_peer_without_it(who: str) -> None:
    if who == "initiator":
        a_text = side(A, required=True)
        b_text = side(B, lan=B_LAN, ppk_id=None, ppk=None)
    else:
        a_text = side(A, ppk_id=None, ppk=None)
        b_text = side(B, lan=B_LAN, required=True)
    a, b, _ = run(a_text, b_text)
    assert all(s.state.value != "ESTABLISHED" for s in sas(a) + sas(b))


def test_ppk_required_without_ppk_on_the_other_side_but_ppk_support() -> None:
    """The responder announces USE_PPK (it holds some PPK) but not this one: with
    ppk_required on the initiator, the missing PPK_IDENTITY confirmation fails it."""
    a_text = side(A, required=True)
    b_text = side(B, lan=B_LAN, ppk_id=None, ppk=OTHER_PPK, ppk_secret_id="other")
    a, _, _ = run(a_text, b_text)
    assert all(s.state.value != "ESTABLISHED" for s in sas(a))


def test_ppk_keys_follow_rfc8784() -> None:
    """SK_d' = prf+(PPK, SK_d) with the SA's PRF, as long as SK_d: the same handshake
    (same randomness) without PPK gives SK_d, with PPK SK_d'."""
    plain_a, _, _ = run(side(A, ppk_id=None, ppk=None), side(B, lan=B_LAN, ppk_id=None, ppk=None))
    ppk_a, _, _ = run(side(A), side(B, lan=B_LAN))
    (sa0,), (sa1,) = sas(plain_a), sas(ppk_a)
    assert sa0.keys is not None and sa1.keys is not None and sa0.prf is not None
    assert (sa0.spi_i, sa0.keys.sk_ei) == (sa1.spi_i, sa1.keys.sk_ei)  # same handshake
    ppk = bytes.fromhex(PPK[2:])
    assert sa1.keys.sk_d == sa0.prf.plus(ppk, sa0.keys.sk_d, len(sa0.keys.sk_d))
    assert sa1.keys.sk_d != sa0.keys.sk_d


def _pubkey_pair(tmp_path: Path, b_ppk_id: str) -> tuple[Node, Node]:
    """Certificate authentication; a uses PPK 'pq-1', b holds a PPK under ``b_ppk_id``."""
    from .test_pubkey import engine_from
    from .test_pubkey import pair as cert_pair

    cert_pair(tmp_path, "ecdsa-p256", "ecdsa-p256")  # writes certificates and pike.toml
    nodes = []
    for name, seed, ppk_id in (("a", 1, "pq-1"), ("b", 2, b_ppk_id)):
        path = tmp_path / name / "pike.toml"
        text = path.read_text()
        if name == "a":
            text = text.replace("[connections.gw]\n", '[connections.gw]\nppk_id = "pq-1"\n', 1)
        path.write_text(text + f'\n[secrets.ppk-q]\nid = "{ppk_id}"\nsecret = "{PPK}"\n')
        nodes.append(Node(engine_from(path, seed)))
    return nodes[0], nodes[1]


@pytest.mark.parametrize("b_has_it", [True, False])
def test_ppk_with_certificates(tmp_path: Path, b_has_it: bool) -> None:
    """With certificates the initiator signs twice when the peer may lack the PPK: AUTH
    over SK_pi', NO_PPK_AUTH over SK_pi; either way the IKE SA comes up."""
    a, b = _pubkey_pair(tmp_path, "pq-1" if b_has_it else "other")
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    (sa_a,), (sa_b,) = sas(a), sas(b)
    assert sa_a.state.value == sa_b.state.value == "ESTABLISHED"
    assert sa_a.ppk_used is sa_b.ppk_used is b_has_it
    assert sa_a.keys is not None and sa_b.keys is not None
    assert sa_a.keys.sk_d == sa_b.keys.sk_d
    assert len(a.sign_requests) == 0 and len(a.signed) == 2  # AUTH and NO_PPK_AUTH
