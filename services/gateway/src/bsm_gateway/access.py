"""Who may do what: the gateway's authorization, in this one file.

:mod:`.auth` says *who* a request comes from (a bearer token names a party and a role); this
module says what that :class:`Principal` may do. Two kinds of answer:

* **Which messages and conversations exist for someone** (:meth:`Principal.may_see_message`,
  :meth:`Principal.may_read`): a message that did not reach its recipient does not exist for
  them, and anything not theirs answers ``404`` exactly like something that does not exist
  (``readmodel.visible_sql`` is the same rule in SQL).
* **Which actions a role may take** (:data:`RULES`, checked with :func:`require`): a refusal
  is ``403`` with the rule's code and a sentence naming who may. Every router asks here; no
  route compares roles itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from .errors import ApiError

Role = Literal["seller", "buyer", "dispute", "operator"]
ROLES: tuple[str, ...] = get_args(Role)
#: The read model's status of a message that reached its recipient (a provider's later bounce
#: report of the email copy keeps it: the message is in the recipient's message center).
REACHED = "delivered"


@dataclass(frozen=True)
class Principal:
    party_id: str
    role: Role

    @property
    def is_party(self) -> bool:
        """A buyer or seller: sees and writes only their own conversations."""
        return self.role in ("seller", "buyer")

    @property
    def reads_everything(self) -> bool:
        return self.role == "dispute"

    def may_read(self, *party_ids: str | None) -> bool:
        """May open a conversation between these parties (which of its messages it shows is
        :meth:`may_see_message`'s answer)."""
        return self.reads_everything or (self.is_party and self.party_id in party_ids)

    def may_see_message(self, sender: str | None, recipient: str | None, status: str) -> bool:
        """May see one message — in any view, quote, count or download: its sender always;
        its recipient only once it reached them (``delivered``); the dispute team always.

        A message that did not reach its recipient — stopped by the alias stage or the policy
        (a phone number, her own opt-out, a stranger naming her as recipient), failed in
        delivery, or still on its way — does not exist for the recipient: showing it would
        deliver what the rules refused. (``readmodel.visible_sql`` is this rule in SQL.)"""
        if self.reads_everything:
            return True
        if not self.is_party:
            return False
        return self.party_id == sender or (self.party_id == recipient and status == REACHED)


# -- the actions ------------------------------------------------------------------------------

#: ``allowed(who, owner)``: ``owner`` is the party the request is about (the seller of
#: ``/v1/sellers/{id}/…``, the buyer of ``/v1/buyers/{id}/…``), where there is one.
Check = Callable[[Principal, "str | None"], bool]


def _parties(who: Principal, _: str | None) -> bool:
    return who.is_party


def _roles(*roles: str) -> Check:
    return lambda who, _: who.role in roles


def _self_or_operator(role: str) -> Check:
    return lambda who, owner: (who.role == role and who.party_id == owner) \
        or who.role == "operator"


@dataclass(frozen=True)
class Rule:
    allowed: Check
    code: str
    refusal: str  # may name ``{role}``: the caller's


Action = Literal[
    "send", "read_conversations", "notifications", "mark_or_report", "lint", "upload",
    "ask_about_order", "find_orders_by_alias", "use_templates",
    "read_seller_settings", "change_seller_settings", "change_buyer_preferences",
    "erase_party", "lift_restriction",
    "read_record", "read_response_times", "read_quota", "read_report_stats",
]

_NOT_ALLOWED = "not_allowed"

RULES: dict[Action, Rule] = {
    # Messages and conversations: buyers and sellers write; the dispute team reads too.
    "send": Rule(_parties, "role_cannot_write", "The {role} role cannot send messages."),
    "read_conversations": Rule(lambda w, _: w.is_party or w.reads_everything,
                               "role_cannot_read",
                               "The {role} role does not read conversations."),
    "notifications": Rule(_parties, "role_cannot_read", "The {role} role has no notifications."),
    "mark_or_report": Rule(_parties, "role_cannot_write",
                           "The {role} role cannot mark or report messages."),
    "lint": Rule(_parties, "role_cannot_write", "The {role} role does not send."),
    "upload": Rule(_parties, "role_cannot_write", "The {role} role cannot upload."),
    # A seller's own orders and templates.
    "ask_about_order": Rule(_roles("seller"), "role_cannot_write",
                            "Only the order's seller asks this."),
    "find_orders_by_alias": Rule(_roles("seller"), "role_cannot_read",
                                 "Only sellers look up their buyers' orders."),
    "use_templates": Rule(_roles("seller"), "role_cannot_use_templates",
                          "Templates are for sellers."),
    # Settings: the party itself, or an operator.
    "read_seller_settings": Rule(_self_or_operator("seller"), _NOT_ALLOWED,
                                 "Only the seller or an operator reads these."),
    "change_seller_settings": Rule(_self_or_operator("seller"), _NOT_ALLOWED,
                                   "Only the seller or an operator changes these."),
    "change_buyer_preferences": Rule(_self_or_operator("buyer"), _NOT_ALLOWED,
                                     "Only the buyer or an operator changes these."),
    # Operators only.
    "erase_party": Rule(_roles("operator"), _NOT_ALLOWED, "Only operators erase a party's data."),
    "lift_restriction": Rule(_roles("operator"), _NOT_ALLOWED, "Only operators lift sanctions."),
    # The record (through the metrics service).
    "read_record": Rule(_roles("dispute", "operator"), "role_cannot_read_record",
                        "The {role} role cannot read an order's record; the dispute team and "
                        "operators can."),
    "read_response_times": Rule(_self_or_operator("seller"), _NOT_ALLOWED,
                                "Only the seller and operators see a seller's response times."),
    "read_quota": Rule(_self_or_operator("seller"), _NOT_ALLOWED,
                       "Only the seller and operators see a seller's daily quota."),
    "read_report_stats": Rule(_roles("operator", "dispute"), "role_cannot_read_reports",
                              "The {role} role cannot read report statistics; trust & safety "
                              "operators and the dispute team can."),
}


def allowed(who: Principal, action: Action, owner: str | None = None) -> bool:
    return RULES[action].allowed(who, owner)


def require(who: Principal, action: Action, owner: str | None = None) -> None:
    """Go on if ``who`` may take ``action`` (on ``owner``'s data); otherwise ``403`` with the
    rule's code and who may."""
    rule = RULES[action]
    if not rule.allowed(who, owner):
        raise ApiError(403, rule.code, rule.refusal.format(role=who.role))


def require_sender(who: Principal, named: str | None) -> None:
    """A message's body may name its sender only as the token's party."""
    if named not in (None, who.party_id):
        raise ApiError(403, "not_the_sender", "The token names another sender.")


def require_recipient(who: Principal, recipient: str | None) -> None:
    """E2/E4: only a message's recipient marks or reports it."""
    if recipient != who.party_id:
        raise ApiError(403, "not_the_recipient",
                       "Only the recipient of a message can mark or report it.")
