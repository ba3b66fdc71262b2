"""The policy decision, pure: no I/O, no clock, no random ids.

This is the walking skeleton's rulebook: the order must exist and be between the two parties,
and a seller who starts a conversation must give a contact reason. The full rulebook (C1–C11)
grows here; every rule returns :class:`Violation` s with the rule id, a stable code, the
offending span where there is one, an explanation and a remedy (C11).
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3

from bsm_shared.contract.payloads import MessageAddressed, Violation

#: Contact reasons that are essential (delivered despite a buyer's opt-out, C6).
ESSENTIAL_REASONS = frozenset(
    {
        "unexpected_problem",
        "additional_information_required",
        "confirm_customization",
        "schedule_delivery",
        "schedule_service",
        "legal_disclosure",
    }
)


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    buyer_id: str
    seller_id: str
    status: str


@dataclass(frozen=True)
class Decision:
    verdict: str  # "approved" | "rejected"
    essential: bool
    violations: tuple[Violation, ...]
    html: str | None


class WaitForOrder(Exception):
    """The order is not known yet; decide again when it arrives or the wait is over."""


def is_essential(msg: MessageAddressed) -> bool:
    return msg.contact_reason in ESSENTIAL_REASONS or "[important]" in msg.subject.lower()


def sanitize_html(html: str | None) -> str | None:
    """HTML through nh3's allow-list (the detailed table comes with the full rulebook, C5)."""
    return None if html is None else nh3.clean(html)


def decide(msg: MessageAddressed, order: OrderFacts | None, *, wait_over: bool) -> Decision:
    """Decide one addressed message. Raises :class:`WaitForOrder` while the order may be late."""
    violations: list[Violation] = []
    if msg.order_id is not None:
        if order is None:
            if not wait_over:
                raise WaitForOrder(msg.order_id)
            violations.append(
                Violation(
                    rule="C1",
                    code="unknown_order",
                    detail=f"Order {msg.order_id} is not known to the marketplace.",
                    remedy="Check the order number, or write without an order if you are a "
                    "buyer asking before you order.",
                )
            )
        else:
            buyer, seller = (
                (msg.sender_party_id, msg.recipient_party_id)
                if msg.sender_role == "buyer"
                else (msg.recipient_party_id, msg.sender_party_id)
            )
            if (order.buyer_id, order.seller_id) != (buyer, seller):
                violations.append(
                    Violation(
                        rule="C1",
                        code="order_not_between_parties",
                        detail=f"Order {msg.order_id} is not an order between this buyer and "
                        "this seller.",
                        remedy="Choose one of the orders between you and your correspondent.",
                    )
                )
    if msg.sender_role == "seller" and msg.in_reply_to is None and msg.contact_reason is None:
        violations.append(
            Violation(
                rule="C1",
                code="contact_reason_required",
                detail="A seller starting a conversation must choose a contact reason.",
                remedy="Choose the contact reason that fits, or reply inside the buyer's "
                "conversation.",
            )
        )
    return Decision(
        verdict="rejected" if violations else "approved",
        essential=is_essential(msg),
        violations=tuple(violations),
        html=sanitize_html(msg.html),
    )
