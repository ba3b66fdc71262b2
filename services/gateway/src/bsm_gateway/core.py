"""The gateway's pure decisions: which inbox view a conversation belongs to and its state;
the Selling Partner API message types and the bsm contact reasons they stand for (which of
them an order allows is the policy library's answer, see :mod:`.policy`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

View = Literal["response_needed", "sent", "no_response_needed"]
Filter = Literal["response_needed", "sent", "no_response_needed", "all"]
State = Literal["open", "resolved", "closed"]


@dataclass(frozen=True)
class MessageFacts:
    """What the inbox needs to know about one message of a conversation."""

    sender_party_id: str | None
    submitted_at: datetime
    status: str  # submitted | addressed | delivered | bounced
    response_not_needed: bool = False
    reported: bool = False


def view_of(messages: Sequence[MessageFacts], viewer: str) -> View | None:
    """The inbox view (E1) a conversation is in for ``viewer``.

    Only messages that reached (or are on their way to) the other side count: a bounced
    message asks nothing of anyone. The latest such message decides: sent by the viewer →
    *Sent*; received and marked (no response needed, or reported — E4: a reported message needs
    no marking) → *No response needed*; otherwise → *Response needed*.
    """
    live = sorted((m for m in messages if m.status != "bounced"), key=lambda m: m.submitted_at)
    if not live:
        return "sent" if any(m.sender_party_id == viewer for m in messages) else None
    last = live[-1]
    if last.sender_party_id == viewer:
        return "sent"
    if last.response_not_needed or last.reported:
        return "no_response_needed"
    return "response_needed"


def matches(view: View | None, wanted: Filter) -> bool:
    return view is not None and (wanted == "all" or view == wanted)


CLOSED_ORDER = frozenset({"cancelled", "returned", "completed"})


def state_of(messages: Sequence[MessageFacts], order_status: str | None) -> State:
    """*closed* once the order is over, *resolved* when the latest message needs no answer,
    otherwise *open*."""
    if order_status in CLOSED_ORDER:
        return "closed"
    live = sorted((m for m in messages if m.status != "bounced"), key=lambda m: m.submitted_at)
    if live and (live[-1].response_not_needed or live[-1].reported):
        return "resolved"
    return "open"


# -- Selling Partner API Messaging v1 ---------------------------------------------------------

#: SP-API message type → bsm contact reason (the typed message goes through the normal
#: pipeline as a seller-started conversation with this reason).
SP_TYPES: dict[str, str] = {
    "confirmCustomizationDetails": "confirm_customization",
    "confirmDeliveryDetails": "schedule_delivery",
    "legalDisclosure": "legal_disclosure",
    "confirmOrderDetails": "confirm_order_details",
    "confirmServiceDetails": "schedule_service",
    "warranty": "warranty",
    "digitalAccessKey": "digital_access_key",
    "unexpectedProblem": "unexpected_problem",
    "invoice": "invoice",
}


@dataclass(frozen=True)
class Refusal:
    """Why no message type is available: the rule and the reason, named (where Amazon answers
    an empty list or a bare 403)."""

    rule: str
    code: str
    message: str
