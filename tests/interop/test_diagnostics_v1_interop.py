"""IKEv1 diagnostics against strongSwan 5.9 (issue 17), piked initiating (host tier, IKE
only):

- a phase-1 proposal charon does not have: charon answers NO_PROPOSAL_CHOSEN in the
  clear, and piked's WARNING names what it offered, in which mode, as IKEv2's line does;
- Aggressive Mode to a charon that refuses it (strongSwan refuses Aggressive Mode with a
  PSK as responder): one WARNING naming the notify, our proposals, the mode and our id;
- an established ISAKMP SA: piked's list-sas names the algorithms as charon does
  (``MODP_2048``; before, piked said ``group14``).
"""

from __future__ import annotations

import re

import pytest

from pike.cli.sa_text import algorithm_names

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .test_self_healing import V1_SECRET
from .topology import branch_hq_v1

pytestmark = pytest.mark.interop


def _warning(text: str, pattern: str) -> str:
    m = re.search(rf"WARNING\s+(.*{pattern}.*)", text)
    assert m is not None, text[-3000:]
    return m.group(1)


def test_phase1_refusal_names_what_we_offered(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    make_charon(
        gateways.right,
        "charon",
        branch_hq_v1("right", proposals=("aes128-sha256-modp2048",)),
        V1_SECRET,
        libipsec=gateways.libipsec,
    )
    piked = make_piked(
        gateways.left,
        "piked",
        branch_hq_v1("left", proposals=("aes256-sha384-modp3072",)),
        V1_SECRET,
    )
    piked.initiate("hq")
    wait_for("piked's warning", lambda: "peer refused: notify" in piked.log_text(), 15)
    line = _warning(piked.log_text(), "peer refused: notify")
    assert line.endswith(
        "peer refused: notify NO_PROPOSAL_CHOSEN; we offered"
        " aes256-sha384-prfsha384-modp3072 in Main Mode (auth psk)"
    ), line


def test_aggressive_mode_refusal_is_one_warning(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    charon = make_charon(
        gateways.right, "charon", branch_hq_v1("right"), V1_SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", branch_hq_v1("left", aggressive=True), V1_SECRET)
    piked.initiate("hq")
    wait_for("piked's warning", lambda: "peer refused: notify" in piked.log_text(), 15)
    line = _warning(piked.log_text(), "peer refused: notify")
    assert "in Aggressive Mode as 192.0.2.1 (auth psk)" in line, line
    assert "Aggressive Mode PSK disabled for security reasons" in charon.log_text()


def test_list_sas_names_the_group_as_charon(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    charon = make_charon(
        gateways.right, "charon", branch_hq_v1("right"), V1_SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", branch_hq_v1("left"), V1_SECRET)
    piked.poll_via_socket = True
    piked.initiate("hq")
    piked.wait_established("hq", timeout=15)
    theirs = charon.wait_established("hq", timeout=10)
    (ours,) = [s for s in piked.list_sas_json() if s["name"] == "hq"]
    assert ours["algorithms"] == "aes128-sha256-prfsha256-modp2048"
    named = algorithm_names(ours["algorithms"]).split("/")
    assert theirs.dh_group == "MODP_2048" and theirs.dh_group in named
    assert theirs.raw.get("prf-alg") in named
