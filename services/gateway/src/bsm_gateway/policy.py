"""Adapter to the policy service's pure rule library (``bsm_policy.engine``): the facts the
gateway's read model holds, turned into the engine's inputs, and its answers into JSON.

The gateway asks the same engine the policy service decides with, so "ask before sending"
(contact options, lint, SP-API action lists, the SP-API door and ``?validate=true``) and the
decision on the real message agree: same rules, and the same facts — the read model's order,
seller and buyer, and C7's limit and today's count from the record (F2, ``bsm_shared.quota``'s
one formula). The policy service stays the authority for what is delivered.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bsm_policy import engine
from bsm_shared.record_api import Quota

from .errors import ApiError

from .models import SendMessage


def order_facts(row: Any) -> engine.OrderFacts:
    return engine.OrderFacts(
        order_id=row["order_id"], buyer_id=row["buyer_id"], seller_id=row["seller_id"],
        status=row["status"], fulfilment=row["fulfilment"] or "merchant",
        categories=frozenset(row["categories"] or ()), handmade=row["handmade"],
        custom=row["custom"], wine=row["wine"], placed_at=row["placed_at"],
        status_changed_at=row["status_changed_at"], delivered_at=row["delivered_at"],
        completed_at=row["completed_at"])


def seller_facts(row: Any, quota: Quota | None = None) -> engine.SellerFacts:
    """The seller as the rules see them; ``quota``: C7's limit and today's approved count
    (``None``: not known just now, C7 not judged)."""
    restriction = None
    if row["restriction"]:
        restriction = engine.Restriction(
            level=row["restriction"], starts_at=row["restricted_from"] or row["placed_at"],
            until=row["restricted_until"])
    return engine.SellerFacts(
        seller_id=row["seller_id"], messaging_enabled=row["messaging_set"],
        fulfilment=row["seller_fulfilment"] or row["fulfilment"] or "merchant",
        restriction=restriction, daily_limit=quota.limit if quota is not None else None,
        sent_today=quota.used if quota is not None else 0)


def buyer_facts(row: Any) -> engine.BuyerFacts:
    return engine.BuyerFacts(buyer_id=row["buyer_id"], opted_out=bool(row["unsolicited_opt_out"]),
                             region=engine.region_of(row["buyer_locale"] or "en-US"))


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def contact_options(row: Any, *, now: Any, locale: str,
                    quota: Quota | None) -> engine.ContactOptions:
    return engine.contact_options(order_facts(row), seller_facts(row, quota), buyer_facts(row),
                                  now=now, locale=locale)


def not_judged(quota: Quota | None) -> list[str]:
    """Rules the gateway could not judge for want of facts (C7 while the record is away)."""
    return ["C7"] if quota is None else []


def options_json(options: engine.ContactOptions, quota: Quota | None) -> dict[str, Any]:
    out = {
        "order_id": options.order_id, "buyer_opted_out": options.buyer_opted_out,
        "can_message": options.can_message, "available": options.available,
        "blocked_by": _plain(list(options.blocked_by)),
        "reasons": [{**{k: v for k, v in asdict(r).items() if k != "why_not"},
                     "why_not": _plain(list(r.why_not))} for r in options.reasons],
        "daily_limit": quota.model_dump() if quota is not None else None,
        "not_judged": not_judged(quota),
    }
    return out


def sp_api_names() -> dict[str, str]:
    """bsm contact reason → SP-API message type, from the policy registry."""
    return {rid: r.sp_api for rid, r in engine.registry().reasons.items() if r.sp_api}


def lint(body: SendMessage, *, role: str, party_id: str, row: Any | None, recipient: str | None,
         recipient_role: str | None, started_by: str | None, locale: str, now: Any,
         attachments: list[Any], quota: Quota | None) -> list[dict[str, Any]]:
    """Every violation ``body`` would get if ``party_id`` sent it at ``now``. ``started_by``:
    who started the conversation a reply answers (``None``: not known, judged as proactive)."""
    draft = engine.Draft(
        sender_role=role,  # type: ignore[arg-type]
        subject=body.subject, text=body.text, html=body.html, attachments=tuple(attachments),
        contact_reason=body.contact_reason, order_id=body.order_id if row else None,
        in_reply_to=body.in_reply_to,
        conversation_started_by=(started_by if body.in_reply_to  # type: ignore[arg-type]
                                 else role),
        sender_party_id=party_id, recipient_party_id=recipient, sender_locale=locale)
    context = engine.Context(
        order=order_facts(row) if row else None,
        seller=seller_facts(row, quota) if row else None,
        buyer=buyer_facts(row) if row else None,
        recipient_role=recipient_role or (  # type: ignore[arg-type]
            "buyer" if role == "seller" else "seller"))
    return _plain(engine.lint(draft, context, now=now))


#: What a message says (C3 content, C4 contact details and links, C5 HTML): the sender can
#: fix it and send again — ``400`` at the SP-API door. Every other rule is about whether the
#: message may be sent at all (order, window, opt-out, limit, sanctions): ``403``.
CONTENT_RULES = frozenset({"C3", "C4", "C5"})
#: Which stop a refusal names first: what blocks every message now (a sanction, the daily limit,
#: the closed window), then what blocks this one (its contact reason, the opt-out), then content.
_FIRST = ("C10", "C7", "C2", "C9", "C8", "C1", "C6")


def refusal(violations: list[dict[str, Any]], *, status: int | None = None) -> ApiError:
    """The answer of a door that refuses a message on the rule library's word: every
    violation (rule, code, span, explanation, remedy), those about sending at all first;
    ``status``: ``422`` for ``POST /v1/messages?validate=true``, else ``403`` when any rule
    forbids sending now and ``400`` when only the content must change (the SP-API door)."""
    ordered = sorted(violations, key=lambda v: _FIRST.index(v["rule"]) if v["rule"] in _FIRST
                     else len(_FIRST))
    first = ordered[0]
    if status is None:
        status = 400 if first["rule"] in CONTENT_RULES else 403
    n = len(ordered)
    return ApiError(status, "policy_violations" if status == 422 else first["code"],
                    f"The message breaks {n} rule{'s' if n > 1 else ''} and was not sent: "
                    f"{first['detail']}", rule=first["rule"], violations=ordered)
