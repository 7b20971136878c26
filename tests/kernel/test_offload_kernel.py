"""NIC offload per child in a real kernel (issue 6, item 2): veths have no ESP offload, so
``hw_offload = "auto"`` falls back to software and ``pikectl list-sas`` says so, while an
explicit ``hw_offload = "crypto"`` fails the CHILD_SA with one clear reason (the IKE SA
stays up). Kernel tier (UML guest; skips on a kernel without ESP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from kernel.piked_netns import established, make_pair, running
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}ko-") as la:
        yield la


def test_auto_falls_back_to_software_and_list_sas_shows_it(lab: Lab, tmp_path: Path) -> None:
    offload = {"child": 'hw_offload = "auto"'}
    pair = make_pair(
        lab, tmp_path, left={**offload, "start_action": "start"}, right=offload, hosts=False
    )
    with running(pair) as p:
        p.wait(lambda: established(p.left, 1) and established(p.right, 1), 20, "CHILD_SA")
        for side in (p.left, p.right):
            child = side.sas()[0]["children"][0]
            assert child["offload"] == "no", child
            assert "offload no (" in side.text_log(), side.tail(80)
            assert "esp-hw-offload" in side.text_log()


def test_explicit_crypto_offload_fails_the_child_clearly(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(
        lab,
        tmp_path,
        left={"child": 'hw_offload = "crypto"', "start_action": "start"},
        hosts=False,
    )
    with running(pair) as p:
        p.wait(lambda: established(p.left), 20, "IKE SA")
        p.wait(
            lambda: "hw_offload = crypto is impossible" in p.left.text_log(), 10, "install error"
        )
        assert not established(p.left, 1)
        assert p.left.proc is not None and p.left.proc.poll() is None  # still running
