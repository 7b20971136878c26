"""ESP proposal selection for a CHILD_SA, pure: the responder's choice among the
initiator's proposals (RFC 7296 §2.7, §1.2: no KE in IKE_AUTH)."""

from __future__ import annotations

from collections.abc import Sequence

from pike.crypto.proposal import ProposalSpec
from pike.ikev2.negotiate import select
from pike.sa.chosen import Chosen
from pike.wire.constants import ProtocolId
from pike.wire.payloads import Proposal

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_ESP = ProtocolId.ESP


def without_ke(specs: tuple[ProposalSpec, ...]) -> tuple[ProposalSpec, ...]:
    """IKE_AUTH carries no KE payload, so PFS groups are left out there (RFC 7296 §1.2),
    and with them the additional key exchanges (RFC 9370 §2.2.3)."""
    known = _without_ke.get(id(specs))
    if known is not None and known[0] is specs:
        return known[1]
    out = tuple(s.without_ke() for s in specs)
    if len(_without_ke) >= WITHOUT_KE_MAX:
        _without_ke.clear()
    _without_ke[id(specs)] = (specs, out)  # (the entry holds ``specs``: its id stays its own)
    return out


# ``without_ke`` by the identity of the specs: every IKE_AUTH asks for a child config's
# ESP proposals (the config's tuple) without KE. Bounded.
_without_ke: dict[int, tuple[tuple[ProposalSpec, ...], tuple[ProposalSpec, ...]]] = {}
WITHOUT_KE_MAX = 256


def child_specs(esp_proposals: tuple[ProposalSpec, ...], in_auth: bool) -> tuple[ProposalSpec, ...]:
    """Our ESP proposals for a child created in IKE_AUTH (no PFS) or CREATE_CHILD_SA."""
    return without_ke(esp_proposals) if in_auth else tuple(esp_proposals)


def choose_esp(
    ours: Sequence[ProposalSpec], theirs: Sequence[Proposal], ke_group: int | None
) -> Chosen | None:
    """The first of our proposals the initiator offered, with its 4-octet ESP SPI; None:
    NO_PROPOSAL_CHOSEN."""
    chosen = select(tuple(ours), theirs, _ESP, ke_group)
    if chosen is None or len(chosen.spi) != 4:
        return None
    return chosen
