"""Which connections a link appearing brings up (pike.daemon.interfaces)."""

from __future__ import annotations

from pike.daemon.interfaces import Bringup, address_present, to_bring_up
from pike.policy.loader import load_config_text
from pike.sa.actions import IkeSaInfo

CONF = """
[connections.{name}]
local_addrs = [{local}]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.{name}.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
"""
SECRET = '[secrets.s]\nsecret = "0sc2VjcmV0c2VjcmV0"\n'


def config(*conns: tuple[str, str, str]) -> str:
    text = "".join(CONF.format(name=n, local=addr, start=start) for n, addr, start in conns)
    return text + SECRET


def sa(name: str, state: str) -> IkeSaInfo:
    return IkeSaInfo(
        name, 1, state, 2, True, ("192.0.2.1", 500), ("192.0.2.2", 500), "", "",
        b"", b"", "", None, False, False, (),
    )  # fmt: skip


def test_start_connections_on_present_addresses_come_up() -> None:
    cfg = load_config_text(
        config(
            ("idle", '"192.0.2.1"', "start"),  # no IKE SA: initiate
            ("stuck", '"192.0.2.1"', "start"),  # still CONNECTING: restart
            ("up", '"192.0.2.1"', "start"),  # established: leave alone
            ("elsewhere", '"198.51.100.1"', "start"),  # its address is not here
            ("any", '"%any"', "start"),  # bound to every interface
            ("ondemand", '"192.0.2.1"', "trap"),  # traps need no initiation
        )
    )
    here = {"192.0.2.1"}
    sas = [sa("stuck", "CONNECTING"), sa("up", "ESTABLISHED")]
    assert to_bring_up(cfg, sas, here.__contains__) == [
        Bringup("idle", "lan", "initiate"),
        Bringup("stuck", "lan", "restart"),
        Bringup("any", "lan", "initiate"),
    ]


def test_address_present() -> None:
    assert address_present("127.0.0.1")
    assert not address_present("192.0.2.254")  # TEST-NET-1, never on this machine
    assert address_present("gw.example.net")  # names are not bound to an interface
