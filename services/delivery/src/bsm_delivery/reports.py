"""Bounce reports after delivery (D1), pure: which report stops a delivered message, and the
``Bounced`` it becomes.

The relay accepted the mail (``Delivered``), then the recipient's provider reported at the
message's VERP return path that it could not deliver it after all; the mail door recorded that as
``BounceReportReceived``. Only ``failed`` counts: ``delayed`` means the provider is still
trying, ``delivered`` / ``relayed`` / ``expanded`` are good news. The record keeps both
outcomes: ``Delivered`` (handed over) and this ``Bounced`` (``after_delivery``).
"""

from __future__ import annotations

from bsm_shared.contract.payloads import BounceReportReceived, Bounced, PolicyChecked

REASON_CODE = "bounce_report"

#: What the sender can do, by the RFC 3463 status subject (the digit after the class).
_REMEDIES = {
    "1": "The recipient's mailbox does not exist or no longer accepts mail. The message stays "
    "readable for them in the marketplace's message center; if they need it by mail, ask them "
    "to update the address on their account.",
    "2": "The recipient's mailbox is full or disabled. The message stays readable for them in "
    "the marketplace's message center; you can write again later.",
    "7": "The recipient's mail provider refused the message as unwanted. Remove links or "
    "attachments that look like advertising and write again; the message stays readable for "
    "them in the marketplace's message center.",
}
_DEFAULT_REMEDY = (
    "The message stays readable for the recipient in the marketplace's message center; you can "
    "write again later."
)


def acts_on(report: BounceReportReceived) -> bool:
    """Whether a report can stop a delivered message (only a permanent failure does)."""
    return report.action == "failed"


def remedy_for(status: str) -> str:
    parts = status.split(".")
    return _REMEDIES.get(parts[1] if len(parts) == 3 else "", _DEFAULT_REMEDY)


def bounce_after_delivery(pc: PolicyChecked, report: BounceReportReceived) -> Bounced:
    """The delivered message ``pc`` as bounced by ``report`` (time: when the report arrived)."""
    where = report.reporting_mta or "the recipient's mail server"
    explanation = (
        f"After the message was handed over, {where} reported that it could not be delivered "
        f"(status {report.status}"
        + (f": {report.diagnostic}" if report.diagnostic else "")
        + ")."
    )
    return Bounced(
        message_id=pc.message_id, stage="delivery", reason_code=REASON_CODE, rule="D1",
        explanation=explanation, remedy=remedy_for(report.status),
        bounced_at=report.received_at, submitted_at=pc.submitted_at,
        relationship_id=pc.relationship_id, conversation_id=pc.conversation_id,
        sender_party_id=pc.sender_party_id, recipient_party_id=pc.recipient_party_id,
        sender_role=pc.sender_role, order_id=pc.order_id, after_delivery=True,
    )
