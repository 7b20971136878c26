"""NIC offload: ethtool features read on veth inside a private namespace (veth has no ESP
offload: ``auto`` falls back to software, ``crypto``/``packet`` fail clearly), and the
selection order with a NIC that has it."""

from __future__ import annotations

import pytest

from pike.board.ethtool import ESP_HW_OFFLOAD, ESP_TX_CSUM_HW_OFFLOAD, read_features
from pike.board.offload import (
    Mode,
    NicOffload,
    OffloadError,
    apply_offload,
    local_interface,
    outgoing_interface,
    packet_offload_unsupported,
    plan_offload,
    plan_offload_for,
    probe_nic,
)

from .conftest import Netns

ESP_NIC = NicOffload("eth1", esp=True, esp_available=True, esp_tx_csum=True)


class Recorder:
    """An ``install`` callback that refuses the modes it is told to refuse."""

    def __init__(self, refuse: tuple[Mode | None, ...] = ()) -> None:
        self.refuse = refuse
        self.calls: list[Mode | None] = []

    def __call__(self, mode: Mode | None) -> None:
        self.calls.append(mode)
        if mode in self.refuse:
            raise OSError(95, "Operation not supported")


# -- on veth, in a namespace of our own ---------------------------------------------------


def test_veth_features_are_read_in_the_namespace(veth: Netns) -> None:
    feats = read_features("v0", veth.name)
    assert ESP_HW_OFFLOAD in feats and ESP_TX_CSUM_HW_OFFLOAD in feats
    assert not feats[ESP_HW_OFFLOAD].active
    assert feats[ESP_HW_OFFLOAD].fixed
    # veth does checksum offload: proves the bits are read, not all zero.
    assert feats["tx-checksum-ip-generic"].active


def test_veth_has_no_esp_offload(veth: Netns) -> None:
    nic = probe_nic("v0", veth.name)
    assert nic == NicOffload("v0", esp=False, esp_available=False, esp_tx_csum=False)
    assert "esp-hw-offload unavailable" in nic.describe()


def test_auto_falls_back_to_software_on_veth(veth: Netns) -> None:
    plan = plan_offload_for("auto", "192.0.2.2", veth.name)
    assert plan.dev == "v0"
    assert plan.attempts == ()
    assert plan.software_fallback
    assert plan.reason.startswith("software ESP: v0: no ESP offload")
    install = Recorder()
    assert apply_offload(plan, install) == "no"
    assert install.calls == [None]


@pytest.mark.parametrize("mode", ["crypto", "packet"])
def test_explicit_offload_fails_clearly_on_veth(veth: Netns, mode: str) -> None:
    with pytest.raises(OffloadError) as err:
        plan_offload_for(mode, "192.0.2.2", veth.name)  # type: ignore[arg-type]
    assert str(err.value) == (
        f"hw_offload = {mode} is impossible: "
        "v0: no ESP offload (ethtool feature esp-hw-offload unavailable)"
    )


def test_no_never_looks_at_the_nic(veth: Netns) -> None:
    plan = plan_offload_for("no", "192.0.2.2", veth.name)
    assert (plan.dev, plan.attempts, plan.software_fallback) == (None, (), True)


def test_outgoing_interface(veth: Netns) -> None:
    veth.ip("link", "add", "w0", "type", "veth", "peer", "name", "w1")
    veth.ip("addr", "add", "198.51.100.1/24", "dev", "w0")
    veth.ip("link", "set", "w0", "up")
    assert outgoing_interface("192.0.2.2", veth.name) == "v0"
    assert outgoing_interface("198.51.100.7", veth.name) == "w0"
    assert outgoing_interface("203.0.113.1", veth.name) is None  # no route


def test_inbound_sa_uses_the_interface_of_its_local_address(veth: Netns) -> None:
    # w0 holds 198.51.100.1 while the route to the peer leaves through v0: an inbound SA
    # to 198.51.100.1 is planned on w0 (strongSwan's choice), an outbound one on v0.
    veth.ip("link", "add", "w0", "type", "veth", "peer", "name", "w1")
    veth.ip("addr", "add", "198.51.100.1/24", "dev", "w0")
    veth.ip("link", "set", "w0", "up")
    assert local_interface("198.51.100.1", veth.name) == "w0"
    assert local_interface("203.0.113.1", veth.name) is None
    plan = plan_offload_for("auto", "192.0.2.2", veth.name, inbound_local="198.51.100.1")
    assert plan.dev == "w0"
    assert plan_offload_for("auto", "192.0.2.2", veth.name).dev == "v0"
    # a local address on no interface: the route to the peer decides
    assert plan_offload_for("auto", "192.0.2.2", veth.name, inbound_local="203.0.113.1").dev == "v0"


def test_missing_interface_is_described(netns: Netns) -> None:
    nic = probe_nic("nope0", netns.name)
    assert nic.error == "no such interface"
    with pytest.raises(OffloadError, match="nope0: features unreadable"):
        plan_offload("crypto", nic)
    assert plan_offload("auto", nic).attempts == ()


def test_missing_namespace_is_not_created() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_features("lo", "pike-no-such-namespace")


# -- selection logic with an ESP-capable NIC ----------------------------------------------


def test_auto_tries_packet_then_crypto() -> None:
    plan = plan_offload("auto", ESP_NIC)
    assert plan.attempts == ("packet", "crypto")
    install = Recorder()
    assert apply_offload(plan, install) == "packet"
    install = Recorder(refuse=("packet",))
    assert apply_offload(plan, install) == "crypto"
    assert install.calls == ["packet", "crypto"]
    install = Recorder(refuse=("packet", "crypto"))
    assert apply_offload(plan, install) == "no"
    assert install.calls == ["packet", "crypto", None]


def test_packet_offload_needs_linux_6_2() -> None:
    assert packet_offload_unsupported("6.2.0") is None
    assert packet_offload_unsupported("6.18.44-fc-v1300") is None
    assert packet_offload_unsupported("7.0.1") is None
    why = packet_offload_unsupported("6.1.0-42-amd64")
    assert why == (
        "packet offload needs Linux 6.2 or later (XFRM_OFFLOAD_PACKET); "
        "this kernel is 6.1.0-42-amd64"
    )
    plan = plan_offload("auto", ESP_NIC, why)
    assert plan.attempts == ("crypto",) and plan.reason.endswith(why)
    with pytest.raises(OffloadError, match=r"hw_offload = packet is impossible: packet offload"):
        plan_offload("packet", ESP_NIC, why)
    assert plan_offload("crypto", ESP_NIC, why).attempts == ("crypto",)


def test_explicit_mode_refused_by_the_kernel_is_an_error() -> None:
    plan = plan_offload("packet", ESP_NIC)
    assert (plan.attempts, plan.software_fallback) == (("packet",), False)
    with pytest.raises(OffloadError, match="hw_offload = packet: the kernel refused it on eth1"):
        apply_offload(plan, Recorder(refuse=("packet",)))
    assert apply_offload(plan_offload("crypto", ESP_NIC), Recorder()) == "crypto"


def test_switched_off_feature_gives_the_ethtool_hint() -> None:
    nic = NicOffload("eth1", esp=False, esp_available=True, esp_tx_csum=False)
    with pytest.raises(OffloadError, match=r"ethtool -K eth1 esp-hw-offload on"):
        plan_offload("crypto", nic)
    assert plan_offload("auto", nic).software_fallback


def test_unknown_interface() -> None:
    with pytest.raises(OffloadError, match="outgoing interface is unknown"):
        plan_offload("crypto", None)
    assert plan_offload("auto", None).reason == "software ESP: the outgoing interface is unknown"
