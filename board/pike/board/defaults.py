"""The board's proposals for connections that configure none (piked and pikectl
check-config use the same, so a config checks as the daemon will load it)."""

from __future__ import annotations

from pike.board.detect import detect


def board_proposals(root: str = "/") -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(IKE proposals, ESP proposals, a log line); empty proposals when no profile fits."""
    try:
        board = detect(root)
    except (LookupError, OSError) as exc:  # no profile for this machine
        return (), (), f"board detection failed ({exc}): connections must name proposals"
    crypto = "accelerated" if board.accelerated else "software"
    line = (
        f"board {board.profile.id} ({board.matched_by}): {crypto} crypto, "
        f"default IKE {board.proposals.ike[0]}, ESP {board.proposals.esp[0]}"
    )
    return board.proposals.ike, board.proposals.esp, line
