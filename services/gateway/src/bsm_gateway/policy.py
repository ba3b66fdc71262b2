"""Adapter to the policy service's pure rule library (``bsm_policy.engine``): the facts the
gateway's read model holds, turned into the engine's inputs, and its answers into JSON.

The gateway asks the same engine the policy service decides with, so "ask before sending"
(contact options, lint, SP-API action lists) and the decision on the real message agree.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bsm_policy import engine

from .models import SendMessage


def order_facts(row: Any) -> engine.OrderFacts:
    return engine.OrderFacts(
        order_id=row["order_id"], buyer_id=row["buyer_id"], seller_id=row["seller_id"],
        status=row["status"], fulfilment=row["fulfilment"] or "merchant",
        categories=frozenset(row["categories"] or ()), handmade=row["handmade"],
        custom=row["custom"], wine=row["wine"], placed_at=row["placed_at"],
        status_changed_at=row["status_changed_at"], delivered_at=row["delivered_at"],
        completed_at=row["completed_at"])


def seller_facts(row: Any) -> engine.SellerFacts:
    restriction = None
    if row["restriction"]:
        restriction = engine.Restriction(
            level=row["restriction"], starts_at=row["restricted_from"] or row["placed_at"],
            until=row["restricted_until"])
    return engine.SellerFacts(
        seller_id=row["seller_id"], messaging_enabled=row["messaging_set"],
        fulfilment=row["seller_fulfilment"] or row["fulfilment"] or "merchant",
        restriction=restriction)


def buyer_facts(row: Any) -> engine.BuyerFacts:
    locale = row["buyer_locale"] or "en-US"
    region = locale.split("-")[1] if "-" in locale else "US"
    return engine.BuyerFacts(buyer_id=row["buyer_id"], opted_out=bool(row["unsolicited_opt_out"]),
                             region=region)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def contact_options(row: Any, *, now: Any, locale: str) -> engine.ContactOptions:
    return engine.contact_options(order_facts(row), seller_facts(row), buyer_facts(row),
                                  now=now, locale=locale)


def options_json(options: engine.ContactOptions) -> dict[str, Any]:
    out = {
        "order_id": options.order_id, "buyer_opted_out": options.buyer_opted_out,
        "can_message": options.can_message, "available": options.available,
        "blocked_by": _plain(list(options.blocked_by)),
        "reasons": [{**{k: v for k, v in asdict(r).items() if k != "why_not"},
                     "why_not": _plain(list(r.why_not))} for r in options.reasons],
    }
    return out


def sp_api_names() -> dict[str, str]:
    """bsm contact reason → SP-API message type, from the policy registry."""
    return {rid: r.sp_api for rid, r in engine.registry().reasons.items() if r.sp_api}


def lint(body: SendMessage, *, role: str, party_id: str, row: Any | None, recipient: str | None,
         locale: str, now: Any, attachments: list[Any]) -> list[dict[str, Any]]:
    draft = engine.Draft(
        sender_role=role,  # type: ignore[arg-type]
        subject=body.subject, text=body.text, html=body.html, attachments=tuple(attachments),
        contact_reason=body.contact_reason, order_id=body.order_id,
        in_reply_to=body.in_reply_to,
        conversation_started_by=None if body.in_reply_to else role,  # type: ignore[arg-type]
        sender_party_id=party_id, recipient_party_id=recipient, sender_locale=locale)
    context = engine.Context(
        order=order_facts(row) if row else None, seller=seller_facts(row) if row else None,
        buyer=buyer_facts(row) if row else None,
        recipient_role="buyer" if role == "seller" else "seller")
    return _plain(engine.lint(draft, context, now=now))
