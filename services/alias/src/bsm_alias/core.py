"""The alias service's decisions, pure: no I/O, no clock, no random ids of its own.

Given a submitted message and what the address book knows, decide whether the message can be
addressed (both parties known, one buyer and one seller, the reply target in the same
relationship) and, if so, the fields the next stages need; otherwise why it stops, with what
the sender can do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bsm_shared.contract.limits import (
    MAX_ATTACHMENTS,
    MAX_BODY_BYTES,
    MAX_EVENT_BYTES,
    body_bytes,
)
from bsm_shared.contract.payloads import AddressedFields, MessageSubmitted, Role

_ALIAS_LOCAL = re.compile(r"^[a-z0-9]{15,16}$")


def alias_local_part(address: str, mail_domain: str) -> str | None:
    """The local part of an alias address at our domain, or None if it is not one."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != mail_domain.lower() or not _ALIAS_LOCAL.match(local):
        return None
    return local


def addressed_alias(msg: MessageSubmitted, mail_domain: str) -> str | None:
    """The alias local part a message is addressed to (a recipient given by address, not by
    party id), or None."""
    if msg.recipient.party_id or not msg.recipient.address:
        return None
    return alias_local_part(msg.recipient.address, mail_domain)


@dataclass(frozen=True)
class Party:
    party_id: str
    role: Role
    display_name: str  # plaintext, for this process only (scrubbing names out of mail)
    locale: str
    sealed_name: str = ""  # the same, sealed with the party's key: what events carry
    erased: bool = False


@dataclass(frozen=True)
class Relationship:
    relationship_id: str
    buyer_id: str
    seller_id: str
    buyer_alias: str
    seller_alias: str

    def alias_of(self, party_id: str, domain: str) -> str:
        local = self.buyer_alias if party_id == self.buyer_id else self.seller_alias
        return f"{local}@{domain}"


@dataclass(frozen=True)
class PriorMessage:
    message_id: str
    conversation_id: str
    relationship_id: str
    conversation_started_by: Role


@dataclass(frozen=True)
class Stop:
    """Why the alias stage stops a message (becomes a ``Bounced`` with stage ``alias``)."""

    reason_code: str
    explanation: str
    remedy: str
    rule: str
    """The requirement the stop applies (X1/C11: every stop names its rule)."""


def check_size(msg: MessageSubmitted) -> Stop | None:
    """Whether the message can travel on (``bsm_shared.contract.limits``). Our doors refuse
    what exceeds the limits; a message from an outside producer on the input topic is stopped
    here, with the limit named, instead of becoming an event too large for Kafka. Reason codes
    and rule as policy's for the same facts (``message_too_large``, ``too_many_attachments``:
    C3); the total size of the attachments is policy's rule (they travel as references)."""
    size = body_bytes(msg.text, msg.html)
    if size > MAX_BODY_BYTES:
        return Stop(
            "message_too_large",
            f"The message's text and HTML are {size:,} bytes; a message may have at most "
            f"{MAX_BODY_BYTES:,}.",
            "Shorten the message, or send long content as an attachment.",
            "C3",
        )
    if len(msg.attachments) > MAX_ATTACHMENTS:
        return Stop(
            "too_many_attachments",
            f"The message has {len(msg.attachments):,} attachments; a message may have at most "
            f"{MAX_ATTACHMENTS}.",
            "Send the files in several messages.",
            "C3",
        )
    return None


def too_large_to_carry(size: int) -> Stop:
    """The addressed message would be an event of ``size`` bytes, more than one Kafka record
    holds (text that JSON escapes, such as control characters, takes up to six bytes a
    character; long ids add up)."""
    return Stop(
        "message_too_large",
        f"The message would become an event of {size:,} bytes; an event may be at most "
        f"{MAX_EVENT_BYTES:,}.",
        "Shorten the message, or send long content as an attachment.",
        "C3",
    )


def _shown(value: str, limit: int = 80) -> str:
    """An id from the sender, as quoted in an explanation (an outside producer's can be long)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def check_parties(msg: MessageSubmitted, sender: Party | None, recipient: Party | None) -> Stop | None:
    """Both parties known, distinct, and one buyer and one seller."""
    for party in (sender, recipient):
        if party is not None and party.erased:
            return Stop(
                "party_erased",
                "This account was closed and its personal data erased; it can no longer "
                "send or receive messages.",
                "Contact the marketplace's support if you believe this is a mistake.",
                "A3",  # the alias resolves to no party any more
            )
    if sender is None:
        return Stop(
            "unknown_sender",
            "The sender is not a registered buyer or seller of this marketplace.",
            "Send the message from your marketplace account, or from an address registered "
            "on it.",
            "A4",
        )
    if recipient is None:
        return Stop(
            "unknown_recipient",
            "The recipient is not a registered party, or the address is not an alias of this "
            "marketplace.",
            "Check the address: reply to the alias the message came from.",
            "A3",
        )
    if sender.party_id == recipient.party_id:
        return Stop(
            "self_addressed", "A party cannot send a message to itself.",
            "Choose the buyer or seller you want to reach.", "A1",
        )
    if sender.role == recipient.role:
        if sender.role == "seller":
            return Stop(
                "seller_to_seller",
                "Sellers may not contact other sellers through the messaging service.",
                "Use the marketplace's seller forums or support to reach other sellers.",
                "C9",
            )
        return Stop(
            "buyer_to_buyer",
            "Buyers can only write to sellers through the messaging service.",
            "Write to the seller of your order.", "A1",  # a buyer–seller relationship only
        )
    return None


def decide_conversation(
    msg: MessageSubmitted,
    relationship: Relationship,
    parent: PriorMessage | None,
    *,
    sender_role: Role,
    new_conversation_id: str,
) -> tuple[str, Role] | Stop:
    """The conversation a message belongs to, and who started it."""
    if msg.in_reply_to is None:
        return new_conversation_id, sender_role
    if parent is None:
        return Stop(
            "unknown_reply_target",
            f"The message this replies to ({_shown(msg.in_reply_to)}) is not known.",
            "Reply from the conversation in the message center, or start a new message.",
            "E6",
        )
    if parent.relationship_id != relationship.relationship_id:
        return Stop(
            "reply_outside_relationship",
            "The message this replies to belongs to another conversation partner.",
            "Reply to the conversation you are part of.",
            "E6",
        )
    return parent.conversation_id, parent.conversation_started_by


def addressed_fields(
    msg: MessageSubmitted,
    *,
    sender: Party,
    recipient: Party,
    relationship: Relationship,
    conversation_id: str,
    started_by: Role,
    mail_domain: str,
) -> AddressedFields:
    return AddressedFields(
        relationship_id=relationship.relationship_id,
        conversation_id=conversation_id,
        sender_party_id=sender.party_id,
        recipient_party_id=recipient.party_id,
        sender_role=sender.role,
        recipient_role=recipient.role,
        sender_alias=relationship.alias_of(sender.party_id, mail_domain),
        recipient_alias=relationship.alias_of(recipient.party_id, mail_domain),
        sender_display_name=sender.sealed_name,
        sender_locale=sender.locale,
        recipient_locale=recipient.locale,
        conversation_started_by=started_by,
    )
