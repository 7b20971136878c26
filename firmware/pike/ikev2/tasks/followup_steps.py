"""The IKE_FOLLOWUP_KE steps CHILD_SA creation and IKE SA rekey share (RFC 9370 §2.2.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pike.ikev2.followup_ke import Followup, FollowupError
from pike.ikev2.tasks.base import RespondError, Task
from pike.wire.constants import NotifyType
from pike.wire.payloads import Message

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


def take_answer(followup: Followup, msg: Message) -> str | None:
    """The initiator takes the responder's IKE_FOLLOWUP_KE; why it failed, else None."""
    try:
        followup.process_i(msg)
    except FollowupError as e:
        return f"additional key exchange: {e}"
    return None


def take_request(followup: Followup, msg: Message, refused: Callable[[], None]) -> None:
    """The responder takes an IKE_FOLLOWUP_KE; a bad one is undone by `refused` and
    answered with NO_PROPOSAL_CHOSEN, the IKE SA kept."""
    try:
        followup.process_r(msg)
    except FollowupError as e:
        refused()
        raise RespondError(NotifyType.NO_PROPOSAL_CHOSEN, fatal=False, detail=str(e)) from None


def offer(followup: Followup, msg: Message, sa: IkeSa, task: Task) -> None:
    """The CREATE_CHILD_SA answer links to the first IKE_FOLLOWUP_KE, which finds ``task``."""
    sa.await_followup(followup.offer_link(msg), task)


def answer(followup: Followup, msg: Message, sa: IkeSa, task: Task) -> bool:
    """The responder's IKE_FOLLOWUP_KE answer: True once all are done, else the next
    request finds ``task`` by the link the answer carries."""
    followup.build_r(msg)
    if not followup.finished:
        sa.await_followup(followup.link, task)
    return followup.finished
