"""Events for metrics tests: a buyer–seller exchange with chosen event times."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.factories import T0


def delivered(message_id: str, *, conversation: str, sender_role: str, at: datetime,
              buyer: str = "b-1", seller: str = "s-1", order_id: str = "o-1") -> dict[str, Any]:
    sender, recipient = (buyer, seller) if sender_role == "buyer" else (seller, buyer)
    return {
        "event_id": str(uuid.uuid4()), "type": "Delivered", "version": 1,
        "occurred_at": at.isoformat(), "producer": "delivery", "correlation_id": message_id,
        "data": {
            "message_id": message_id, "conversation_id": conversation, "relationship_id": "r-1",
            "sender_party_id": sender, "recipient_party_id": recipient,
            "sender_role": sender_role, "sender_alias": "a" * 16 + "@m.example",
            "recipient_alias": "b" * 16 + "@m.example", "order_id": order_id,
            "submitted_at": at.isoformat(), "delivered_at": at.isoformat(),
            "channels": ["mailbox", "email"],
        },
    }


def marked(message_id: str, at: datetime, party: str = "s-1") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "ResponseNotNeeded", "version": 1,
            "occurred_at": at.isoformat(), "producer": "gateway", "correlation_id": message_id,
            "data": {"message_id": message_id, "party_id": party, "marked_at": at.isoformat()}}


def reported(message_id: str, at: datetime, reporter: str, reason: str = "spam") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "Reported", "version": 1,
            "occurred_at": at.isoformat(), "producer": "gateway", "correlation_id": message_id,
            "data": {"message_id": message_id, "reporter_party_id": reporter, "reason": reason,
                     "reported_at": at.isoformat()}}


def issue_scenario(seller: str = "s-1") -> tuple[list[dict[str, Any]], datetime]:
    """Issue 5's example: answered after 2 h, answered after 30 h, unanswered for 40 h;
    plus one marked no-response-needed, which does not count."""
    h = timedelta(hours=1)
    events = [
        delivered("q1", conversation="c1", sender_role="buyer", at=T0, seller=seller),
        delivered("a1", conversation="c1", sender_role="seller", at=T0 + 2 * h, seller=seller),
        delivered("q2", conversation="c2", sender_role="buyer", at=T0 + 10 * h, seller=seller),
        delivered("a2", conversation="c2", sender_role="seller", at=T0 + 40 * h, seller=seller),
        delivered("q3", conversation="c3", sender_role="buyer", at=T0 + 20 * h, seller=seller),
        delivered("q4", conversation="c4", sender_role="buyer", at=T0 + 21 * h, seller=seller),
        marked("q4", T0 + 22 * h, party=seller),
    ]
    return events, T0 + 60 * h  # q3 has waited 40 hours by then
