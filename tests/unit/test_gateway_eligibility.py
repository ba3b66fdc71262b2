"""Issue 12, items 4–7 on the gateway's pure side: contact options agree with policy's decision
on the same facts (C7 included), a door's refusal names every violation in the API's and the
SP-API model's shapes, reports take a reason from the fixed list, templates fall back visibly."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from bsm_gateway import errors, i18n
from bsm_gateway import policy as gw_policy
from bsm_gateway.app import _strict
from bsm_gateway.models import Report, TemplateIn
from bsm_policy import app as policy_app
from bsm_policy import engine
from bsm_shared.contract import payloads as p
from bsm_shared.record_api import Quota
from tests import gateway_support as g
from tests.factories import T0

NOW = T0 + timedelta(days=60)

#: Order histories as both read models hold them: (status, delivered_at, completed_at).
ORDERS = {
    "pending": ("pending", None, None),
    "shipped": ("shipped", None, None),
    "delivered 3 days ago": ("delivered", NOW - timedelta(days=3), None),
    "delivered 10 days ago (review window)": ("delivered", NOW - timedelta(days=10), None),
    "delivered 40 days ago (C2 closed)": ("delivered", NOW - timedelta(days=40), None),
    "completed without a delivery": ("completed", None, NOW - timedelta(days=8)),
    "cancelled": ("cancelled", None, None),
}
QUOTAS = {"under the limit": Quota(seller_id="s", day="x", used=3, limit=605),
          "at the limit": Quota(seller_id="s", day="x", used=605, limit=605)}


def gateway_row(status: str, delivered: Any, completed: Any, *, opted_out: bool,
                restricted: bool) -> dict[str, Any]:
    """An order as the gateway's read model joins it (``Gateway.order``)."""
    return {
        "order_id": "o-1", "buyer_id": "b-1", "seller_id": "s", "status": status,
        "fulfilment": "merchant", "categories": ["general"], "handmade": False,
        "custom": False, "wine": False, "placed_at": NOW - timedelta(days=50),
        "status_changed_at": delivered or completed or NOW - timedelta(days=45),
        "delivered_at": delivered, "completed_at": completed,
        "restriction": "restricted" if restricted else None,
        "restricted_from": NOW - timedelta(days=1) if restricted else None,
        "restricted_until": NOW + timedelta(days=6) if restricted else None,
        "messaging_set": None, "seller_fulfilment": "merchant", "buyer_locale": "es-ES",
        "unsolicited_opt_out": opted_out,
    }


def policy_context(row: dict[str, Any], quota: Quota) -> engine.Context:
    """The same facts as the policy service gathers them (``PolicyHandlers._context``)."""
    order = policy_app._order_facts({
        **{k: row[k] for k in ("order_id", "buyer_id", "seller_id", "status", "fulfilment",
                               "placed_at", "status_changed_at", "delivered_at",
                               "completed_at")},
        "items": json.dumps([{"category": "general"}])})
    restriction = (engine.Restriction(row["restriction"], row["restricted_from"],
                                      row["restricted_until"]) if row["restriction"] else None)
    seller = engine.SellerFacts("s", None, "merchant", restriction, daily_limit=quota.limit,
                                sent_today=quota.used)
    buyer = engine.BuyerFacts("b-1", opted_out=row["unsolicited_opt_out"],
                              region=engine.region_of(row["buyer_locale"]))
    return engine.Context(order=order, seller=seller, buyer=buyer, recipient_role="buyer")


def proactive(reason: str) -> p.MessageAddressed:
    return p.MessageAddressed(
        message_id="m-1", channel="api", sender=p.PartyRef(party_id="s"),
        recipient=p.PartyRef(party_id="b-1"), order_id="o-1", contact_reason=reason,
        subject="About your order", text="The courier asks which door to use.",
        submitted_at=NOW, relationship_id="r", conversation_id="c", sender_party_id="s",
        recipient_party_id="b-1", sender_role="seller", recipient_role="buyer",
        sender_alias="a@m.example", recipient_alias="b@m.example", sender_display_name="Sol",
        recipient_locale="es-ES", conversation_started_by="seller")


CASES = list(itertools.product(ORDERS, QUOTAS, (False, True), (False, True)))


@pytest.mark.parametrize(("order", "quota", "opted_out", "restricted"), CASES)
def test_contact_options_agree_with_policys_decision_on_the_same_facts_c7_included(
    order: str, quota: str, opted_out: bool, restricted: bool
) -> None:
    """C1, C2, C6, C7, C10 (issue 12, item 5): a reason the gateway offers is one policy lets
    through on the same facts, and a reason it withholds is one policy refuses — only what
    the message itself says (C3–C5) is left to the message."""
    row = gateway_row(*ORDERS[order], opted_out=opted_out, restricted=restricted)
    options = gw_policy.contact_options(row, now=NOW, locale="en-US", quota=QUOTAS[quota])
    ctx = policy_context(row, QUOTAS[quota])
    for option in options.reasons:
        decision = engine.decide(proactive(option.reason), ctx)
        stopping = {v.rule for v in decision.violations} - gw_policy.CONTENT_RULES
        assert option.available == (not stopping), (option.reason, stopping, option.why_not)


def test_at_the_daily_limit_contact_options_offer_nothing_and_name_c7() -> None:
    """The gateway's contact options never reported C7 (issue 12): at the limit every reason
    was "available", and policy then refused each message."""
    row = gateway_row(*ORDERS["delivered 3 days ago"], opted_out=False, restricted=False)
    options = gw_policy.contact_options(row, now=NOW, locale="en-US",
                                        quota=QUOTAS["at the limit"])
    answer = gw_policy.options_json(options, QUOTAS["at the limit"])
    assert answer["available"] == [] and answer["can_message"] is False
    assert [(v["rule"], v["code"]) for v in answer["blocked_by"]] == [
        ("C7", "daily_limit_reached")]
    assert answer["daily_limit"]["used"] == answer["daily_limit"]["limit"] == 605
    assert answer["not_judged"] == []


def test_without_the_records_figures_c7_is_said_to_be_not_judged() -> None:
    row = gateway_row(*ORDERS["delivered 3 days ago"], opted_out=False, restricted=False)
    answer = gw_policy.options_json(
        gw_policy.contact_options(row, now=NOW, locale="en-US", quota=None), None)
    assert answer["daily_limit"] is None and answer["not_judged"] == ["C7"]


# -- a door's refusal (item 4) --------------------------------------------------------------

PHONE = {"rule": "C4", "code": "phone_number", "detail": "A phone number.",
         "remedy": "Remove it.", "span": {"field": "text", "start": 8, "end": 20,
                                          "element": None}}
OPTED_OUT = {"rule": "C6", "code": "buyer_opted_out", "detail": "The buyer opted out.",
             "remedy": "Send only essential messages.", "span": {"field": "message"}}


def request(path: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [],
                    "query_string": b""})


def test_a_refusal_answers_403_when_sending_is_not_allowed_and_400_for_content_alone() -> None:
    content_only = gw_policy.refusal([PHONE])
    both = gw_policy.refusal([PHONE, OPTED_OUT])
    validated = gw_policy.refusal([PHONE, OPTED_OUT], status=422)
    assert (content_only.status, content_only.code) == (400, "phone_number")
    assert (both.status, both.code, both.extra["rule"]) == (403, "buyer_opted_out", "C6")
    assert [v["code"] for v in both.extra["violations"]] == ["buyer_opted_out", "phone_number"]
    assert (validated.status, validated.code) == (422, "policy_violations")


def test_the_sp_api_shape_gives_one_error_per_violation_naming_rule_code_and_span() -> None:
    refusal = gw_policy.refusal([PHONE, OPTED_OUT])
    sp = json.loads(refusal.render(request("/messaging/v1/orders/o/messages/warranty")).body)
    bsm = json.loads(refusal.render(request("/v1/messages")).body)
    g.sp_validate(sp, "CreateWarrantyResponse")
    assert [e["details"] for e in sp["errors"]] == [
        "buyer_opted_out (rule C6) at message", "phone_number (rule C4) at text[8:20]"]
    assert {e["code"] for e in sp["errors"]} == {"Unauthorized"}
    assert sp["errors"][1]["message"] == "A phone number. Remove it."
    assert bsm["error"] == "buyer_opted_out" and bsm["rule"] == "C6"
    assert [v["span"] for v in bsm["violations"]] == [OPTED_OUT["span"], PHONE["span"]]


def test_a_span_reads_as_one_phrase() -> None:
    assert errors.span_text(None) == "message"
    assert errors.span_text({"field": "attachments", "start": 0, "end": 1,
                             "element": "a.exe"}) == "attachments[0:1] (a.exe)"


def test_prefer_handling_strict_asks_for_validation() -> None:
    assert _strict("handling=strict") and _strict("respond-async, handling = strict")
    assert not _strict(None) and not _strict("handling=lenient")


# -- reports (item 6) -------------------------------------------------------------------------

def test_a_report_takes_a_reason_from_the_fixed_list_and_other_needs_words() -> None:
    assert Report(reason="spam").text is None
    assert Report(reason="other", text=" It threatens me ").text == "It threatens me"
    for bad in ({"reason": "other"}, {"reason": "other", "text": "  "},
                {"reason": "abusive"}, {"reason": "spam", "extra": 1}):
        with pytest.raises(ValidationError):
            Report.model_validate(bad)
    assert p.report_reason("He keeps writing") == "other"
    assert [p.report_reason(r) for r in p.REPORT_REASONS] == list(p.REPORT_REASONS)
    assert set(p.REPORT_REASON_LABELS) == set(p.REPORT_REASONS)


# -- templates by language (item 7) -------------------------------------------------------------

def test_a_template_gives_the_buyers_language_else_english_else_its_own_saying_so() -> None:
    assert i18n.choose({"en", "es"}, "es-ES") == i18n.Choice("es", "es", False)
    assert i18n.choose({"en", "es"}, "de-DE") == i18n.Choice("en", "de", True)
    assert i18n.choose({"it", "fr"}, "de-DE", own="it") == i18n.Choice("it", "de", True)
    assert i18n.choose({"en"}, "ja-JP") == i18n.Choice("en", "ja", True)


def test_a_template_holds_one_text_per_language() -> None:
    t = TemplateIn(name="n", subject="Hi", text="Hello", language="en",
                   translations={"es": {"subject": "Hola", "text": "Hola"}})
    assert sorted(t.texts()) == ["en", "es"]
    for bad in ({"language": "es", "translations": {"es": {"text": "x"}}},
                {"translations": {"ja": {"text": "x"}}}, {"language": "xx"}):
        with pytest.raises(ValidationError):
            TemplateIn.model_validate({"name": "n", "text": "Hello", **bad})
