"""A hub's connection lookup: remote identity wildcards (most specific wins), the
responder trying every connection that fits before refusing a proposal, and lookups over
thousands of connections (indexed, so they do not scan; the cost is in tests/bench)."""

from __future__ import annotations

import dataclasses

import pytest

from ikev1.v1pair import engine as v1engine
from ikev2.pair import PSK, Node, transfer
from ikev2.pair import engine as v2engine
from lib.pikeconf import Child, Conn, PikeConf, Secret
from pike.policy.identity import parse_identity
from pike.policy.loader import load_config_text
from pike.sa.certs import peer_identity
from pike.sa.conn_index import index_of
from pike.sa.id_match import ANY, NONE, ONE_WILDCARD, PERFECT, is_wildcard, match_score

HUB, BRANCH = "192.0.2.2", "192.0.2.1"
IKE = "aes128gcm16-prfsha256-x25519"


def wire(text: str):
    ident = parse_identity(text)
    return peer_identity(ident.id_type, ident.data)


@pytest.mark.parametrize(
    ("configured", "peer", "score"),
    [
        ("branch.example.net", "branch.example.net", PERFECT),
        ("branch.example.net", "BRANCH.example.net", PERFECT),
        ("*.branches.example.net", "b7.branches.example.net", ONE_WILDCARD + 21),
        ("*.branches.example.net", "b7.example.net", NONE),
        ("*", "anything.example.org", ANY),
        ("*@example.net", "alice@example.net", ONE_WILDCARD + 12),
        ("*@example.net", "alice@example.org", NONE),
        ("*@example.net", "example.net", NONE),  # an FQDN is not an e-mail address
        ("C=CH, O=Example, CN=*", "C=CH, O=Example, CN=gw7", PERFECT - (1 << 8)),
        ("C=CH, O=Example, CN=*", "C=CH, O=Other, CN=gw7", NONE),
        ("C=CH, O=*, CN=*", "C=CH, O=Example, CN=gw7", PERFECT - (2 << 8)),
        ("C=CH, O=Example, CN=*", "C=CH, O=Example, OU=x, CN=gw7", NONE),
        ("C=CH, O=Example, CN=gw7", "c=ch, o=example, cn=GW7", PERFECT),
        ("192.0.2.7", "192.0.2.7", PERFECT),
    ],
)
def test_match_score(configured: str, peer: str, score: int) -> None:
    assert match_score(parse_identity(configured), wire(peer)) == score


def test_wildcards_are_known_and_none_is_any() -> None:
    assert is_wildcard(None) and match_score(None, wire("x.example")) == ANY
    assert is_wildcard(parse_identity("*.example.net"))
    assert is_wildcard(parse_identity("C=CH, CN=*"))
    assert not is_wildcard(parse_identity("C=CH, CN=gw"))
    assert not is_wildcard(parse_identity("gw.example.net"))


def conn(name: str, remote_id: str, *, proposals: str = IKE, remote: str = "%any") -> Conn:
    return Conn(
        name=name,
        local_addrs=[HUB],
        remote_addrs=[remote],
        proposals=[proposals],
        local={"auth": "psk", "id": "hub.example.net"},
        remote={"auth": "psk", "id": remote_id},
        children=[Child(["10.2.0.0/24"], ["10.1.0.0/24"], "net", ["aes128gcm16"])],
    )


def hub_text(*conns: Conn) -> str:
    return PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=conns,
        secrets=[Secret("all", PSK)],  # no ids: any pair of identities
    ).render()


def branch_text(my_id: str, *, proposals: str = IKE, version: int = 2) -> str:
    return PikeConf(
        daemon={"control_socket": "/tmp/unused.sock"},
        connections=[
            Conn(
                name="gw",
                version=version,
                local_addrs=[BRANCH],
                remote_addrs=[HUB],
                proposals=[proposals],
                local={"auth": "psk", "id": my_id},
                remote={"auth": "psk", "id": "hub.example.net"},
                children=[Child(["10.1.0.0/24"], ["10.2.0.0/24"], "net", ["aes128gcm16"])],
            )
        ],
        secrets=[Secret("all", PSK)],
    ).render()


def connect(hub_conf: str, my_id: str, *, proposals: str = IKE, version: int = 2) -> str:
    """The hub's connection name for a branch with ``my_id``; the IKE SA must come up."""
    make = v2engine if version == 2 else v1engine
    branch = Node(make(branch_text(my_id, proposals=proposals, version=version), 1))  # type: ignore[arg-type]
    hub = Node(make(hub_conf, 2))  # type: ignore[arg-type]
    branch.engine.initiate("gw", 0.0)
    transfer(branch, hub)
    (sa,) = hub.engine.list_sas()
    assert sa.state == "ESTABLISHED", sa
    assert [c.state for c in sa.children] == ["INSTALLED"]
    return sa.name


WILD_HUB = [
    conn("any", "%any"),
    conn("domain", "*.example.net"),
    conn("branches", "*.branches.example.net"),
    conn("b7", "b7.branches.example.net"),
    conn("mail", "*@example.net"),
]


@pytest.mark.parametrize(
    ("my_id", "chosen"),
    [
        ("b7.branches.example.net", "b7"),  # exact beats every wildcard
        ("b8.branches.example.net", "branches"),  # the longer suffix is more specific
        ("shop.example.net", "domain"),
        ("alice@example.net", "mail"),
        ("someone.example.org", "any"),  # %any takes what nothing else does
    ],
)
def test_most_specific_remote_identity_wins(my_id: str, chosen: str) -> None:
    assert connect(hub_text(*WILD_HUB), my_id) == chosen


def test_dn_wildcard_with_psk() -> None:
    hub = hub_text(conn("other", "C=CH, O=Other, CN=*"), conn("ours", "C=CH, O=Example, CN=*"))
    assert connect(hub, "C=CH, O=Example, CN=gw7") == "ours"


def test_no_fitting_identity_is_refused() -> None:
    branch = Node(v2engine(branch_text("shop.example.org"), 1))
    hub = Node(v2engine(hub_text(conn("domain", "*.example.net")), 2))
    branch.engine.initiate("gw", 0.0)
    transfer(branch, hub)
    assert [sa.state for sa in hub.engine.list_sas()] != ["ESTABLISHED"]


@pytest.mark.parametrize("version", [1, 2])
def test_alternative_config_by_proposal(version: int) -> None:
    """Two connections for the same peer; only the second one's proposal fits what the
    branch offers: the responder tries it rather than refusing (strongSwan's "trying
    alternative config")."""
    first = conn("strict", "b1.example.net", proposals="aes256gcm16-prfsha384-ecp384")
    second = conn("modern", "b1.example.net")
    if version == 1:
        first = Conn(**{**first.__dict__, "version": 1, "proposals": ["aes256-sha384-ecp384"]})
        second = Conn(**{**second.__dict__, "version": 1, "proposals": ["aes128-sha256-modp2048"]})
        offer = "aes128-sha256-modp2048"
    else:
        offer = IKE
    assert connect(hub_text(first, second), "b1.example.net", proposals=offer, version=version) == (
        "modern"
    )


def test_ten_thousand_connections_each_found_by_identity() -> None:
    conns = [conn(f"c{i}", f"c{i}-r1.example") for i in range(10_000)]
    hub = hub_text(*conns)
    config = load_config_text(hub)
    cands = index_of(config).candidates(2, HUB, "198.51.100.9")
    assert len(cands) == 10_000 and len(cands.proposal_sets()) == 1
    assert [c.name for c in cands.for_peer(wire("c7321-r1.example"))] == ["c7321"]
    assert cands.for_peer(wire("c10000-r1.example")) == []
    assert connect(hub, "c9999-r1.example") == "c9999"


def test_addresses_indexed_hosts_and_subnets() -> None:
    config = load_config_text(
        hub_text(
            conn("host", "%any", remote="198.51.100.7"),
            conn("net", "%any", remote="198.51.100.0/24"),
            conn("v6", "%any", remote="2001:db8::/32"),
        )
    )
    idx = index_of(config)
    assert [c.name for c in idx.candidates(2, HUB, "198.51.100.7")] == ["host", "net"]
    assert [c.name for c in idx.candidates(2, HUB, "198.51.100.8")] == ["net"]
    assert [c.name for c in idx.candidates(2, HUB, "203.0.113.1")] == []
    assert [c.name for c in idx.candidates(1, HUB, "198.51.100.7")] == []
    assert not idx.candidates(2, "192.0.2.99", "198.51.100.7")  # not our local address
    assert idx is index_of(config)  # built once per config


def test_one_wildcard_group_by_local_address_in_any_spelling() -> None:
    """A hub's one ``%any`` group: its local address found by its text, and in another
    spelling of the same address (IPv6) by the address itself; another local address and
    another version find nothing; the wildcard identity admits only what it names."""
    v6 = dataclasses.replace(conn("v6", "*.branch.example"), local_addrs=["2001:db8::2"])
    config = load_config_text(hub_text(v6))
    idx = index_of(config)
    for local in ("2001:db8::2", "2001:DB8:0:0::2"):
        cands = idx.candidates(2, local, "2001:db8:1::7")
        assert [c.name for c in cands] == ["v6"], local
        assert [c.name for c in cands.for_peer(wire("b1.branch.example"))] == ["v6"]
        assert cands.for_peer(wire("b1.other.example")) == []
    assert not idx.candidates(2, "2001:db8::3", "2001:db8:1::7")
    assert not idx.candidates(1, "2001:db8::2", "2001:db8:1::7")
