"""Delivery decisions, pure: the outcome of a policy decision, the mail to send, retry times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from bsm_shared.contract.payloads import AttachmentRef, Bounced, Delivered, PolicyChecked


def rejection(pc: PolicyChecked, *, now: datetime) -> Bounced:
    """A policy rejection as the message's outcome: every violation, explained."""
    first = pc.violations[0] if pc.violations else None
    explanation = " ".join(v.detail for v in pc.violations) or "The message was not approved."
    remedy = " ".join(v.remedy for v in pc.violations if v.remedy)
    return Bounced(
        message_id=pc.message_id,
        stage="policy",
        reason_code=first.code if first else "rejected",
        rule=first.rule if first else None,
        explanation=explanation,
        remedy=remedy,
        violations=list(pc.violations),
        bounced_at=now,
        submitted_at=pc.submitted_at,
        relationship_id=pc.relationship_id,
        conversation_id=pc.conversation_id,
        sender_party_id=pc.sender_party_id,
        recipient_party_id=pc.recipient_party_id,
        sender_role=pc.sender_role,
        order_id=pc.order_id,
    )


def failure(pc: PolicyChecked, *, code: str, explanation: str, remedy: str, now: datetime) -> Bounced:
    """A delivery failure as the message's outcome."""
    return Bounced(
        message_id=pc.message_id, stage="delivery", reason_code=code, rule="D2",
        explanation=explanation, remedy=remedy, bounced_at=now, submitted_at=pc.submitted_at,
        relationship_id=pc.relationship_id, conversation_id=pc.conversation_id,
        sender_party_id=pc.sender_party_id, recipient_party_id=pc.recipient_party_id,
        sender_role=pc.sender_role, order_id=pc.order_id,
    )


def email_message_id(message_id: str, domain: str) -> str:
    return f"<{message_id}@{domain}>"


def compose(
    pc: PolicyChecked, *, sender_name: str, domain: str, now: datetime,
    files: Sequence[tuple[AttachmentRef, bytes]] = (),
) -> EmailMessage:
    """The relayed mail: from the sender's alias with their display name (A6; the event
    carries it sealed, the caller passes it opened — empty for an erased party), to the
    recipient's alias; the real address is only the SMTP envelope recipient. ``files``: the
    message's attachments with their bytes (from the blob store), attached as sent, so a
    recipient answering from a mail client gets them too."""
    mail = EmailMessage()
    mail["From"] = formataddr((sender_name, pc.sender_alias))
    mail["To"] = pc.recipient_alias
    mail["Subject"] = pc.subject or "(no subject)"
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = email_message_id(pc.message_id, domain)
    if pc.in_reply_to:
        parent = email_message_id(pc.in_reply_to, domain)
        mail["In-Reply-To"] = parent
        mail["References"] = parent
    mail["X-Bsm-Conversation"] = pc.conversation_id
    if pc.order_id:
        mail["X-Bsm-Order"] = pc.order_id
    if pc.text is not None:
        mail.set_content(pc.text)
        if pc.html is not None:
            mail.add_alternative(pc.html, subtype="html")
    else:
        mail.set_content(pc.html or "", subtype="html")
    for ref, data in files:
        maintype, _, subtype = ref.content_type.partition("/")
        mail.add_attachment(data, maintype=maintype or "application",
                            subtype=subtype or "octet-stream", filename=ref.filename)
    return mail


def delivered(pc: PolicyChecked, *, now: datetime, domain: str) -> Delivered:
    return Delivered(
        message_id=pc.message_id, conversation_id=pc.conversation_id,
        relationship_id=pc.relationship_id, sender_party_id=pc.sender_party_id,
        recipient_party_id=pc.recipient_party_id, sender_role=pc.sender_role,
        sender_alias=pc.sender_alias, recipient_alias=pc.recipient_alias, order_id=pc.order_id,
        in_reply_to=pc.in_reply_to, submitted_at=pc.submitted_at, delivered_at=now,
        channels=["mailbox", "email"], subject=pc.subject, text=pc.text, html=pc.html,
        attachments=list(pc.attachments),
        email_message_id=email_message_id(pc.message_id, domain),
    )


def next_attempt(now: datetime, attempts: int, first_retry_seconds: float) -> datetime:
    """Exponential backoff: first, 2×, 4×, … capped at one hour."""
    return now + timedelta(seconds=min(first_retry_seconds * 2 ** (attempts - 1), 3600.0))


def is_permanent(code: int | None) -> bool:
    """5xx SMTP replies are permanent; 4xx and connection errors are temporary."""
    return code is not None and 500 <= code < 600
