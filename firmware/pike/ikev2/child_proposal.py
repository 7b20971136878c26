"""ESP proposal selection for a CHILD_SA, pure: the responder's choice among the
initiator's proposals (RFC 7296 §2.7, §1.2: no KE in IKE_AUTH)."""

from __future__ import annotations

from collections.abc import Sequence

from pike.crypto.proposal import ProposalSpec
from pike.ikev2.memo import ByIdentity
from pike.ikev2.negotiate import select
from pike.sa.chosen import Chosen
from pike.wire.constants import ProtocolId
from pike.wire.payloads import Proposal

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_ESP = ProtocolId.ESP


def _without_ke(specs: tuple[ProposalSpec, ...]) -> tuple[ProposalSpec, ...]:
    return tuple(s.without_ke() for s in specs)


# IKE_AUTH carries no KE payload, so PFS groups are left out there (RFC 7296 §1.2), and
# with them the additional key exchanges (RFC 9370 §2.2.3). Made once per config tuple:
# every IKE_AUTH asks for its child's.
without_ke: ByIdentity[tuple[ProposalSpec, ...], tuple[ProposalSpec, ...]] = ByIdentity(_without_ke)


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
