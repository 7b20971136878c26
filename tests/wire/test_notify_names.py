"""Notifies are named in logs and errors, never shown as bare numbers when IANA names
them (``N(ADDITIONAL_IP4_ADDRESS)``, not ``N(16397)``; IKEv1 ``NO_PROPOSAL_CHOSEN``, not
``notify 14``)."""

from __future__ import annotations

from pike.ikev2.describe import describe_payloads
from pike.ikev2.tasks.base import RespondError
from pike.wire.constants import NotifyType, notify_name
from pike.wire.isakmp_constants import notify_v1_name
from pike.wire.payloads import NotifyPayload


def test_ikev2_notifies_by_name() -> None:
    payloads = [NotifyPayload(16397), NotifyPayload(NotifyType.COOKIE), NotifyPayload(40001)]
    assert describe_payloads(payloads) == "[ N(ADDITIONAL_IP4_ADDRESS) N(COOKIE) N(40001) ]"
    assert notify_name(14) == "NO_PROPOSAL_CHOSEN"
    assert str(RespondError(NotifyType.TS_UNACCEPTABLE)) == "notify TS_UNACCEPTABLE"


def test_ikev1_notifies_by_name() -> None:
    assert notify_v1_name(14) == "NO_PROPOSAL_CHOSEN"
    assert notify_v1_name(24) == "AUTHENTICATION_FAILED"
    assert notify_v1_name(9999) == "9999"
