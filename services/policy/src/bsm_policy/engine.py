"""The communication rulebook (C1–C11), as a pure engine: no I/O, no clock, no random ids.

Everything a rule needs comes in as arguments — the message (or a draft), the facts about the
order, the seller and the buyer the adapter has gathered from ``bsm.orders`` and
``bsm.parties``, and ``now``, which for a real message is its ``submitted_at`` (so a replay of
the log decides exactly the same way).

Public calls (the gateway's "ask before sending"):

* :func:`contact_options` — which contact reasons a seller may choose for an order now, and
  whether the buyer has opted out of unsolicited messages.
* :func:`lint` — every violation a draft would get, sending nothing.
* :func:`decide` — the decision on an addressed message (what the service does).

Every violation carries the rule id, a stable code, the span, an explanation in the sender's
language and a remedy (C11); every decision lists all violations, not only the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from bsm_shared import attachments as file_types
from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES, MAX_SANITIZED_BODY_BYTES, body_bytes,
)
from bsm_shared.contract.payloads import AttachmentRef, MessageAddressed, Span, Violation

from . import content
from .i18n import explain

Role = Literal["buyer", "seller"]

# ---------------------------------------------------------------------------------------------
# The registry (data file) and the catalogue of rule ids
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonRule:
    """One contact reason of the registry (``data/registry.json``)."""

    id: str
    essential: bool
    statuses: frozenset[str]
    fulfilment: frozenset[str]
    categories: frozenset[str] | None
    requires_item: str | None
    text_limit: int
    text_required: bool
    links: bool
    attachments_min: int
    attachments_max: int
    attachment_kinds: frozenset[str]
    window_days: tuple[int, int] | None
    sp_api: str | None


@dataclass(frozen=True)
class Registry:
    proactive_window_days: int
    reasons: dict[str, ReasonRule]

    def get(self, reason: str | None) -> ReasonRule | None:
        return self.reasons.get(reason) if reason else None


def load_registry(raw: dict[str, Any] | None = None) -> Registry:
    """The registry from the package's data file (or from ``raw``, e.g. in a test)."""
    if raw is None:
        raw = json.loads(resources.files("bsm_policy").joinpath("data/registry.json").read_text())
    reasons = {}
    for rid, r in raw["reasons"].items():
        att = r.get("attachments", {})
        cats = r.get("categories")
        win = r.get("window_days")
        reasons[rid] = ReasonRule(
            id=rid, essential=bool(r["essential"]), statuses=frozenset(r["statuses"]),
            fulfilment=frozenset(r.get("fulfilment", ["merchant", "platform"])),
            categories=frozenset(cats) if cats is not None else None,
            requires_item=r.get("requires_item"), text_limit=int(r["text_limit"]),
            text_required=bool(r.get("text_required", True)), links=bool(r.get("links", False)),
            attachments_min=int(att.get("min", 0)), attachments_max=int(att.get("max", 0)),
            attachment_kinds=frozenset(att.get("kinds", [])),
            window_days=(int(win[0]), int(win[1])) if win else None, sp_api=r.get("sp_api"),
        )
    return Registry(int(raw.get("proactive_window_days", 30)), reasons)


@lru_cache(maxsize=1)
def registry() -> Registry:
    return load_registry()


#: Which requirement each stable code belongs to (C11: every stop names its rule).
RULES: dict[str, str] = {
    "unknown_order": "C1", "order_not_between_parties": "C1", "contact_reason_required": "C1",
    "reason_not_available_for_status": "C1", "reason_not_available_for_fulfilment": "C1",
    "reason_not_available_for_category": "C1", "reason_needs_custom_item": "C1",
    "order_required": "C1",
    "proactive_window_closed": "C2", "review_request_outside_window": "C2",
    "text_too_long": "C3", "message_too_large": "C3", "text_required": "C3", "attachment_required": "C3",
    "too_many_attachments": "C3", "positive_review_request": "C3", "review_incentive": "C3",
    "thank_you_only": "C3", "order_confirmation": "C3", "marketing": "C3", "coupon": "C3",
    "cross_selling": "C3",
    "phone_number": "C4", "email_address": "C4", "link": "C4", "insecure_link": "C4",
    "opt_out_link": "C4", "emoji": "C4", "animated_gif": "C4", "tracking_pixel": "C4",
    "hidden_image": "C4", "remote_image": "C4", "linked_image": "C4",
    "attachment_kind_not_allowed": "C4", "attachment_type_not_allowed": "C4",
    "attachments_too_large": "C4",
    "html_forbidden_element": "C5",
    "buyer_opted_out": "C6",
    "daily_limit_reached": "C7",
    "seller_messaging_off": "C8",
    "seller_to_seller": "C9",
    "seller_restricted": "C10", "seller_suspended": "C10",
}

#: Rules whose violations count towards the sanction ladder (C10): what a seller wrote, not
#: circumstances they could not see (an opt-out, the daily limit, a late order).
SANCTIONED_RULES: frozenset[str] = frozenset({"C2", "C3", "C4", "C5", "C9"})

_LIMIT_FREE_REASONS = frozenset({"unexpected_problem", "schedule_delivery"})

# ---------------------------------------------------------------------------------------------
# Facts the adapter gathers (reference data from bsm.orders and bsm.parties)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    buyer_id: str
    seller_id: str
    status: str = "pending"
    fulfilment: str = "merchant"
    categories: frozenset[str] = frozenset()
    handmade: bool = False
    custom: bool = False
    wine: bool = False
    placed_at: datetime | None = None
    status_changed_at: datetime | None = None
    delivered_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class Restriction:
    """A step of the sanction ladder (C10) in force."""

    level: Literal["restricted", "suspended"]
    starts_at: datetime
    until: datetime | None

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.until is None or at < self.until)


@dataclass(frozen=True)
class Ladder:
    """The sanction ladder's settings (C10): ``strikes`` violations within ``window`` move a
    seller one step up; the first steps restrict for ``restriction_days`` each, the next one
    suspends until an operator lifts it."""

    strikes: int
    window: timedelta
    restriction_days: tuple[int, ...]


@dataclass(frozen=True)
class Sanction:
    """A step up the ladder: the new restriction and the step it is."""

    restriction: Restriction
    step: int


def strikes_since(current_since: datetime | None, at: datetime, ladder: Ladder) -> datetime:
    """Where the strikes that count at ``at`` start: the window's start, or the last step's
    start if later (a step is paid for once: its strikes do not count towards the next)."""
    return max(filter(None, [current_since, at - ladder.window]))


def next_sanction(current: Restriction | None, steps: int, strikes: int, at: datetime,
                  ladder: Ladder) -> Sanction | None:
    """The ladder's decision after a violation at ``at`` (C10): none while a restriction is
    in force or too few strikes count (``strikes``, counted from :func:`strikes_since`); else
    the next step — restricted for that step's days, suspended beyond the last."""
    if current is not None and current.active(at):
        return None
    if strikes < ladder.strikes:
        return None
    step = steps + 1
    if step <= len(ladder.restriction_days):
        until: datetime | None = at + timedelta(days=ladder.restriction_days[step - 1])
        return Sanction(Restriction("restricted", at, until), step)
    return Sanction(Restriction("suspended", at, None), step)


@dataclass(frozen=True)
class SellerFacts:
    seller_id: str
    messaging_enabled: bool | None = None  # None: not set, the fulfilment's default applies
    fulfilment: str = "merchant"
    restriction: Restriction | None = None
    daily_limit: int | None = None  # C7; None: not counted (e.g. a lint without the numbers)
    sent_today: int = 0

    @property
    def messaging_on(self) -> bool:
        """C8: merchant-fulfilled sellers start with messaging on, platform-fulfilled off."""
        if self.messaging_enabled is not None:
            return self.messaging_enabled
        return self.fulfilment == "merchant"


@dataclass(frozen=True)
class BuyerFacts:
    buyer_id: str
    opted_out: bool = False
    region: str = "US"  # for national phone formats (from the buyer's locale)


@dataclass(frozen=True)
class Context:
    """Everything the rules need besides the message."""

    order: OrderFacts | None = None
    seller: SellerFacts | None = None
    buyer: BuyerFacts | None = None
    recipient_role: Role | None = None
    #: The buyer already has a conversation with this seller (C8: existing buyers still can).
    known_buyer: bool = False
    mail_domain: str = "marketplace.example"
    #: For a real message: True once the wait for a late order is over.
    wait_over: bool = True
    #: False when the caller (a lint) does not know the order: reason availability is skipped.
    judge_order: bool = True
    registry: Registry | None = None


@dataclass(frozen=True)
class Draft:
    """What a message says and how it is sent; a ``MessageAddressed`` without the aliases."""

    sender_role: Role
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: Sequence[AttachmentRef] = ()
    contact_reason: str | None = None
    order_id: str | None = None
    in_reply_to: str | None = None
    conversation_started_by: Role | None = None
    sender_party_id: str | None = None
    recipient_party_id: str | None = None
    sender_display_name: str = ""
    sender_locale: str = "en-US"
    #: Per attachment sha256: how many frames the file has, where the adapter could read it.
    gif_frames: dict[str, int] = field(default_factory=dict)
    #: Per attachment sha256: the type judged from the file (``bsm_shared.attachments``),
    #: where the adapter could read it; it overrides the type the reference declares.
    content_types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: MessageAddressed, **over: Any) -> "Draft":
        d = cls(
            sender_role=msg.sender_role, subject=msg.subject, text=msg.text, html=msg.html,
            attachments=tuple(msg.attachments), contact_reason=msg.contact_reason,
            order_id=msg.order_id, in_reply_to=msg.in_reply_to,
            conversation_started_by=msg.conversation_started_by,
            sender_party_id=msg.sender_party_id, recipient_party_id=msg.recipient_party_id,
            sender_display_name=msg.sender_display_name, sender_locale=msg.sender_locale,
        )
        return replace(d, **over) if over else d


@dataclass(frozen=True)
class Decision:
    verdict: Literal["approved", "rejected"]
    essential: bool
    violations: tuple[Violation, ...]
    html: str | None
    #: Whether the message takes a slot of the seller's daily limit if approved (C7).
    counts_towards_limit: bool = False
    #: Whether the violations count towards the seller's sanction ladder (C10).
    sanctionable: bool = False


class WaitForOrder(Exception):
    """The order is not known yet; decide again when it arrives or the wait is over."""


# ---------------------------------------------------------------------------------------------
# Small predicates, used by the rules and by the adapter
# ---------------------------------------------------------------------------------------------


def is_important(subject: str) -> bool:
    """The seeds' convention: ``[Important]`` in the subject marks an essential message."""
    return "[important]" in subject.lower()


def is_essential(draft: Draft, reg: Registry | None = None) -> bool:
    rule = (reg or registry()).get(draft.contact_reason)
    return bool(rule and rule.essential) or is_important(draft.subject)


def is_reply_in_buyer_conversation(draft: Draft) -> bool:
    return draft.in_reply_to is not None and draft.conversation_started_by == "buyer"


def is_proactive(draft: Draft) -> bool:
    """A seller's message that is not a reply inside a conversation the buyer started."""
    return draft.sender_role == "seller" and not is_reply_in_buyer_conversation(draft)


def counts_towards_limit(draft: Draft) -> bool:
    """C7: every message a seller sends counts — proactive ones and replies alike; buyers'
    messages and rejected messages do not (documented in docs/policy.md)."""
    return draft.sender_role == "seller"


def region_of(locale: str) -> str:
    parts = locale.replace("_", "-").split("-")
    return parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else "US"


def _order_exempt_from_opt_out(order: OrderFacts | None) -> bool:
    return bool(order and (order.handmade or order.custom or order.wine))


#: Statuses that mean the buyer has the goods: a completed order was delivered, even when the
#: platform never published a separate ``delivered`` status.
RECEIVED = frozenset({"delivered", "completed"})


def _window_base(order: OrderFacts) -> datetime | None:
    """When the windows after delivery start: delivery when known, else completion."""
    return order.delivered_at or order.completed_at


def status_allows(statuses: frozenset[str] | set[str] | list[str], status: str) -> bool:
    """Whether a reason available in ``statuses`` is available in ``status``: what is available
    after delivery is available for a completed order too."""
    return status in statuses or (status == "completed" and "delivered" in statuses)


def fold_status(order: OrderFacts, status: str, changed_at: datetime) -> OrderFacts:
    """The order after one ``OrderStatusChanged``, whatever order the events arrive in: the
    latest change (by its own time) sets the status; the first delivery and the first completion
    are kept (they start the windows of C2 and of review requests)."""
    latest = order.status_changed_at is None or order.status_changed_at <= changed_at
    return replace(
        order,
        status=status if latest else order.status,
        status_changed_at=changed_at if latest else order.status_changed_at,
        delivered_at=min(filter(None, [order.delivered_at,
                                       changed_at if status == "delivered" else None]),
                         default=None),
        completed_at=min(filter(None, [order.completed_at,
                                       changed_at if status == "completed" else None]),
                         default=None),
    )


# ---------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------


@dataclass
class _Found:
    code: str
    span: Span | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _span(fld: str, start: int | None = None, end: int | None = None,
          element: str | None = None) -> Span:
    return Span(field=fld, start=start, end=end, element=element)  # type: ignore[arg-type]


def _order_rules(draft: Draft, ctx: Context) -> list[_Found]:
    out: list[_Found] = []
    if draft.order_id is None:
        return out
    order = ctx.order
    if order is None:
        if not ctx.wait_over:
            raise WaitForOrder(draft.order_id)
        return [_Found("unknown_order", _span("message"), {"order_id": draft.order_id})]
    if draft.sender_party_id is not None and draft.recipient_party_id is not None:
        buyer, seller = (
            (draft.sender_party_id, draft.recipient_party_id) if draft.sender_role == "buyer"
            else (draft.recipient_party_id, draft.sender_party_id)
        )
        if (order.buyer_id, order.seller_id) != (buyer, seller):
            out.append(_Found("order_not_between_parties", _span("message"),
                              {"order_id": draft.order_id}))
    return out


def reason_availability(rule: ReasonRule, order: OrderFacts | None, now: datetime,
                        reg: Registry) -> list[_Found]:
    """Why ``rule`` is not available for ``order`` at ``now`` (empty: it is)."""
    out: list[_Found] = []
    span = _span("message", element="contact_reason")
    p = {"reason": rule.id}
    if order is None:
        return [_Found("order_required", span, p)]
    if not status_allows(rule.statuses, order.status):
        out.append(_Found("reason_not_available_for_status", span,
                          {**p, "status": order.status, "statuses": ", ".join(sorted(rule.statuses))}))
    if order.fulfilment not in rule.fulfilment:
        out.append(_Found("reason_not_available_for_fulfilment", span,
                          {**p, "fulfilment": order.fulfilment}))
    if rule.categories is not None and not (order.categories & rule.categories):
        out.append(_Found("reason_not_available_for_category", span,
                          {**p, "categories": ", ".join(sorted(rule.categories))}))
    if rule.requires_item == "custom" and not order.custom:
        out.append(_Found("reason_needs_custom_item", span, p))
    if rule.window_days is not None:
        base = _window_base(order)
        lo, hi = rule.window_days
        if base is None or not (base + timedelta(days=lo) <= now <= base + timedelta(days=hi)):
            out.append(_Found("review_request_outside_window", span,
                              {**p, "from_days": lo, "to_days": hi}))
    return out


def _proactive_window(draft: Draft, ctx: Context, now: datetime, reg: Registry) -> list[_Found]:
    """C2: proactive messages only within N days after the buyer received the order (from
    delivery when known, else from completion)."""
    order = ctx.order
    base = _window_base(order) if order is not None else None
    if order is None or base is None or order.status not in RECEIVED:
        return []
    closes = base + timedelta(days=reg.proactive_window_days)
    if now > closes:
        return [_Found("proactive_window_closed", _span("message"),
                       {"days": reg.proactive_window_days, "closed_at": closes.date().isoformat()})]
    return []


def _attachment_rules(draft: Draft, rule: ReasonRule | None, seller_rules: bool) -> list[_Found]:
    out: list[_Found] = []
    total = 0
    for i, att in enumerate(draft.attachments):
        total += att.size
        declared = draft.content_types.get(att.sha256) or att.content_type
        ctype = declared.split(";")[0].strip().lower()
        kind = file_types.kind_of(ctype)
        el = att.filename
        if kind is None:
            out.append(_Found("attachment_type_not_allowed", _span("attachments", i, i + 1, el),
                              {"filename": att.filename, "content_type": ctype,
                               "accepted": file_types.ACCEPTED}))
            continue
        animated = draft.gif_frames.get(att.sha256, 0) > 1 or "animated" in att.content_type
        if ctype == "image/gif" and animated and seller_rules:
            out.append(_Found("animated_gif", _span("attachments", i, i + 1, el),
                              {"filename": att.filename}))
        if rule is not None and seller_rules and kind not in rule.attachment_kinds:
            out.append(_Found("attachment_kind_not_allowed", _span("attachments", i, i + 1, el),
                              {"filename": att.filename, "reason": rule.id,
                               "kinds": ", ".join(sorted(rule.attachment_kinds)) or "-"}))
    if total > MAX_ATTACHMENT_BYTES:
        out.append(_Found("attachments_too_large", _span("attachments"),
                          {"size_mb": f"{total / 1048576:.1f}",
                           "limit_mb": MAX_ATTACHMENT_BYTES // 1048576}))
    if rule is not None and seller_rules:
        n = len(draft.attachments)
        if n < rule.attachments_min:
            out.append(_Found("attachment_required", _span("attachments"),
                              {"reason": rule.id, "min": rule.attachments_min}))
        elif n > rule.attachments_max and rule.attachments_max >= 0 and rule.attachment_kinds:
            out.append(_Found("too_many_attachments", _span("attachments"),
                              {"reason": rule.id, "max": rule.attachments_max}))
        elif n > 0 and not rule.attachment_kinds:
            out.append(_Found("too_many_attachments", _span("attachments"),
                              {"reason": rule.id, "max": 0}))
    return out


def _content_rules(draft: Draft, ctx: Context, rule: ReasonRule | None,
                   region: str) -> list[_Found]:
    """C3/C4/C5 content of a seller's message."""
    out: list[_Found] = []
    links_allowed = bool(rule and rule.links)
    pieces: list[tuple[str, str]] = []
    if draft.subject:
        pieces.append(("subject", draft.subject))
    if draft.text:
        pieces.append(("text", draft.text))
    if draft.html:
        pieces.append(("html", draft.html))
        for f in content.html_findings(draft.html, mail_domain=ctx.mail_domain,
                                       links_allowed=links_allowed):
            out.append(_Found(f.code, _span(f.field, f.start, f.end, f.element),
                              {"element": f.element or "", **f.params}))
    for fld, text in pieces:
        hints = content.scan_hints(content.lowered(text))  # one pass, shared by the detectors
        findings = content.text_findings(text, fld, region=region, mail_domain=ctx.mail_domain,
                                         links_allowed=links_allowed, html=fld == "html",
                                         ignore=(draft.order_id or "",), hints=hints)
        # C3's content rules hold in replies too (marketing, coupons, cross-selling, review
        # pressure and incentives); only confirmations are for proactive messages alone.
        findings += content.phrase_findings(text, fld, hints, proactive=is_proactive(draft))
        for f in findings:
            if fld == "html" and any(
                x.span and x.span.field == "html" and x.span.start is not None
                and x.span.start <= (f.start or 0) < (x.span.end or 0) for x in out
            ):
                continue  # already reported as the element it sits in
            excerpt = text[f.start:f.end] if f.start is not None else ""
            out.append(_Found(f.code, _span(f.field, f.start, f.end, f.element),
                              {"excerpt": excerpt, **f.params}))
    if is_proactive(draft):
        body = draft.text if draft.text is not None else (
            content.visible_text(draft.html) if draft.html and len(draft.html) < 2000 else "")
        if not draft.attachments and content.is_thank_you_only(body, draft.sender_display_name):
            out.append(_Found("thank_you_only", _span("text" if draft.text is not None else "html")))
        if draft.contact_reason in _LIMIT_FREE_REASONS:
            # An "unexpected problem" may have to say the order was sent: not a confirmation.
            out = [f for f in out if f.code != "order_confirmation"]
    if rule is not None:
        length = len(draft.text or "")
        if length > rule.text_limit:
            out.append(_Found("text_too_long", _span("text", rule.text_limit, length),
                              {"reason": rule.id, "limit": rule.text_limit, "length": length}))
        if rule.text_required and not (draft.text or "").strip() and not (draft.html or "").strip():
            out.append(_Found("text_required", _span("text"), {"reason": rule.id}))
    return out


def _party_rules(draft: Draft, ctx: Context, now: datetime, essential: bool) -> list[_Found]:
    out: list[_Found] = []
    seller, buyer = ctx.seller, ctx.buyer
    if draft.sender_role == "seller" and ctx.recipient_role == "seller":
        out.append(_Found("seller_to_seller", _span("message")))
    if draft.sender_role == "seller" and ctx.recipient_role != "seller":
        proactive = is_proactive(draft)
        # C6: the buyer's opt-out, with its exceptions.
        if (buyer is not None and buyer.opted_out and proactive and not essential
                and not _order_exempt_from_opt_out(ctx.order)):
            out.append(_Found("buyer_opted_out", _span("message")))
        # C10: a restricted or suspended seller sends no proactive messages.
        if seller is not None and seller.restriction and proactive and seller.restriction.active(now):
            r = seller.restriction
            code = "seller_suspended" if r.level == "suspended" else "seller_restricted"
            out.append(_Found(code, _span("message"),
                              {"until": r.until.isoformat(timespec="minutes") if r.until else ""}))
        # C7: the daily limit (the adapter also takes the slot atomically).
        if seller is not None and seller.daily_limit is not None and seller.sent_today >= seller.daily_limit:
            out.append(_Found("daily_limit_reached", _span("message"),
                              {"limit": seller.daily_limit, "day": now.date().isoformat()}))
    if (draft.sender_role == "buyer" and draft.in_reply_to is None and not ctx.known_buyer
            and seller is not None and not seller.messaging_on):
        out.append(_Found("seller_messaging_off", _span("message")))
    return out


def _explain(found: Iterable[_Found], locale: str) -> list[Violation]:
    out = []
    for f in found:
        detail, remedy = explain(f.code, locale, f.params)
        out.append(Violation(rule=RULES[f.code], code=f.code, detail=detail, remedy=remedy,
                             span=f.span))
    return out


#: How many violations of one code, and in all, a decision lists (the first ones, in order):
#: a message with thousands of phone numbers must still give an event that fits in Kafka.
MAX_LISTED_PER_CODE = 20
MAX_LISTED = 100


def _listed(found: list[_Found]) -> list[_Found]:
    per_code: dict[str, int] = {}
    kept: list[_Found] = []
    for f in found:
        per_code[f.code] = per_code.get(f.code, 0) + 1
        if per_code[f.code] <= MAX_LISTED_PER_CODE and len(kept) < MAX_LISTED:
            kept.append(f)
    return kept


def evaluate(draft: Draft, ctx: Context, *, now: datetime) -> Decision:
    """Every rule on one draft. Raises :class:`WaitForOrder` while a late order may come."""
    reg = ctx.registry or registry()
    found: list[_Found] = _order_rules(draft, ctx)
    rule = reg.get(draft.contact_reason) if draft.sender_role == "seller" else None
    essential = is_essential(draft, reg)
    seller_msg = draft.sender_role == "seller"
    if seller_msg and draft.in_reply_to is None and draft.contact_reason is None:
        found.append(_Found("contact_reason_required", _span("message", element="contact_reason")))
    if rule is not None and draft.in_reply_to is None and ctx.judge_order:
        found += reason_availability(rule, ctx.order, now, reg) if draft.order_id or ctx.order \
            else [_Found("order_required", _span("message", element="contact_reason"),
                         {"reason": rule.id})]
    if seller_msg and is_proactive(draft):
        found += _proactive_window(draft, ctx, now, reg)
    if seller_msg:
        region = ctx.buyer.region if ctx.buyer else "US"
        found += _content_rules(draft, ctx, rule if draft.in_reply_to is None else None, region)
    elif draft.html:
        # Buyers are not held to the sellers' guidelines, but active HTML is refused for all.
        for f in content.html_findings(draft.html, mail_domain=ctx.mail_domain, links_allowed=True):
            if f.code == "html_forbidden_element":
                found.append(_Found(f.code, _span(f.field, f.start, f.end, f.element),
                                    {"element": f.element or "", **f.params}))
    found += _attachment_rules(draft, rule if draft.in_reply_to is None else None, seller_msg)
    found += _party_rules(draft, ctx, now, essential)
    html = content.sanitize_html(draft.html)
    size = body_bytes(draft.text, html)
    if size > MAX_SANITIZED_BODY_BYTES:
        # It could not travel in the decision's event; the sender and the dispute team still
        # read it in the record (the submitted and addressed events carry it as sent).
        found.append(_Found("message_too_large", _span("message"),
                            {"size": size, "limit": MAX_SANITIZED_BODY_BYTES}))
        html = None
    violations = tuple(_explain(_listed(found), draft.sender_locale))
    rules = {v.rule for v in violations}
    return Decision(
        verdict="rejected" if violations else "approved",
        essential=essential,
        violations=violations,
        html=html,
        counts_towards_limit=counts_towards_limit(draft) and not violations,
        sanctionable=seller_msg and bool(rules & SANCTIONED_RULES),
    )


def decide(msg: MessageAddressed, ctx: Context, *, gif_frames: dict[str, int] | None = None,
           content_types: dict[str, str] | None = None, sender_name: str = "") -> Decision:
    """The decision on an addressed message; ``now`` is the message's own ``submitted_at``.
    ``sender_name``: the sender's display name, opened by the caller (the event carries it
    sealed); it only helps recognise a signature in a thank-you note. ``gif_frames`` and
    ``content_types``: what the caller read from the attachments' files (:class:`Draft`).

    Raises :class:`WaitForOrder` while the order may still arrive (``ctx.wait_over`` False).
    """
    draft = Draft.of(msg, gif_frames=gif_frames or {}, content_types=content_types or {},
                     sender_display_name=sender_name)
    ctx = replace(ctx, recipient_role=ctx.recipient_role or msg.recipient_role)
    return evaluate(draft, ctx, now=msg.submitted_at)


def lint(draft: Draft, context: Context, *, now: datetime) -> list[Violation]:
    """What ``draft`` would get if sent at ``now``, sending nothing.

    ``draft``: a :class:`Draft` (sender role, subject, text/html, attachments, contact reason,
    order id, in_reply_to, who started the conversation, the sender's locale for the
    explanations). ``context``: a :class:`Context` with the :class:`OrderFacts`,
    :class:`SellerFacts` (messaging switch, restriction, daily limit and today's count) and
    :class:`BuyerFacts` (opt-out, region) the caller knows; facts left out are not judged
    (an order the caller does not pass is not reported unknown). Returns every violation,
    each with rule, code, span, explanation in ``draft.sender_locale`` and remedy.
    """
    ctx = replace(context, wait_over=True)
    if ctx.order is None:
        # An order the caller does not pass is not judged (neither unknown nor unavailable).
        draft = replace(draft, order_id=None)
        ctx = replace(ctx, judge_order=False)
    return list(evaluate(draft, ctx, now=now).violations)


@dataclass(frozen=True)
class ReasonOption:
    reason: str
    available: bool
    essential: bool
    text_limit: int
    attachments_min: int
    attachments_max: int
    links_allowed: bool
    delivered_despite_opt_out: bool
    #: Why it is not available now (violations with explanation and remedy), empty if it is.
    why_not: tuple[Violation, ...] = ()


@dataclass(frozen=True)
class ContactOptions:
    order_id: str
    buyer_opted_out: bool
    #: Whether a proactive message is possible at all now (window, restriction, daily limit).
    can_message: bool
    reasons: tuple[ReasonOption, ...]
    #: Why no proactive message is possible now (C2, C7, C10), with remedies.
    blocked_by: tuple[Violation, ...] = ()

    @property
    def available(self) -> list[str]:
        return [r.reason for r in self.reasons if r.available]


def contact_options(order: OrderFacts, seller: SellerFacts | None, buyer: BuyerFacts | None, *,
                    now: datetime, locale: str = "en-US",
                    registry_: Registry | None = None) -> ContactOptions:
    """Which contact reasons a seller may choose for ``order`` at ``now``, and whether the
    buyer opted out of unsolicited messages (C1, C2, C6, C7, C10).

    ``order``: :class:`OrderFacts` (status and its times, fulfilment, categories, item flags).
    ``seller``/``buyer``: :class:`SellerFacts` / :class:`BuyerFacts` where known. ``now``: the
    time to judge at (the gateway passes its clock). ``locale``: language of the explanations.
    Returns :class:`ContactOptions`: per reason whether it is available, essential, its text
    limit, attachment counts, whether links are allowed, whether it reaches an opted-out buyer,
    and, when not available, the violations saying why.
    """
    reg = registry_ or registry()
    opted_out = bool(buyer and buyer.opted_out)
    ctx = Context(order=order, seller=seller, buyer=buyer, recipient_role="buyer", registry=reg)
    probe = Draft(sender_role="seller", order_id=order.order_id, sender_locale=locale)
    blocked = _proactive_window(probe, ctx, now, reg)
    blocked += [f for f in _party_rules(probe, ctx, now, essential=True)
                if f.code in {"seller_restricted", "seller_suspended", "daily_limit_reached"}]
    options = []
    for rid, rule in reg.reasons.items():
        why = reason_availability(rule, order, now, reg)
        exempt = rule.essential or _order_exempt_from_opt_out(order)
        if opted_out and not exempt:
            why.append(_Found("buyer_opted_out", _span("message")))
        options.append(ReasonOption(
            reason=rid, available=not why and not blocked, essential=rule.essential,
            text_limit=rule.text_limit, attachments_min=rule.attachments_min,
            attachments_max=rule.attachments_max, links_allowed=rule.links,
            delivered_despite_opt_out=exempt, why_not=tuple(_explain(why, locale)),
        ))
    return ContactOptions(order_id=order.order_id, buyer_opted_out=opted_out,
                          can_message=not blocked, reasons=tuple(options),
                          blocked_by=tuple(_explain(blocked, locale)))
