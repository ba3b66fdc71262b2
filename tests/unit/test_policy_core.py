import pytest

from bsm_policy import core
from tests.factories import addressed

ORDER = core.OrderFacts("o-1", "buyer-1", "seller-1", "shipped")


def test_a_buyer_message_about_their_order_is_approved():
    decision = core.decide(addressed(), ORDER, wait_over=False)
    assert decision.verdict == "approved" and decision.violations == ()


def test_a_message_about_an_order_not_yet_seen_waits_for_it():
    with pytest.raises(core.WaitForOrder):
        core.decide(addressed(), None, wait_over=False)


def test_when_the_wait_is_over_an_unknown_order_is_rejected_under_c1_with_a_remedy():
    decision = core.decide(addressed(), None, wait_over=True)
    assert decision.verdict == "rejected"
    [v] = decision.violations
    assert (v.rule, v.code) == ("C1", "unknown_order") and v.remedy


def test_an_order_between_other_parties_is_rejected():
    other = core.OrderFacts("o-1", "buyer-9", "seller-1", "shipped")
    decision = core.decide(addressed(), other, wait_over=False)
    assert [v.code for v in decision.violations] == ["order_not_between_parties"]


def test_a_seller_starting_a_conversation_needs_a_contact_reason_and_every_violation_is_listed():
    msg = addressed(
        sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"},
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", order_id="o-2",
    )
    decision = core.decide(msg, None, wait_over=True)
    assert [v.code for v in decision.violations] == ["unknown_order", "contact_reason_required"]


def test_a_seller_reply_needs_no_contact_reason():
    msg = addressed(
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", in_reply_to="m-0",
    )
    assert core.decide(msg, ORDER, wait_over=False).verdict == "approved"


def test_essential_reasons_and_important_subjects_are_essential():
    assert core.decide(addressed(contact_reason="schedule_delivery"), ORDER, wait_over=False).essential
    assert core.decide(addressed(subject="[Important] delivery"), ORDER, wait_over=False).essential
    assert not core.decide(addressed(contact_reason="invoice"), ORDER, wait_over=False).essential


def test_html_is_sanitized_before_it_goes_on():
    decision = core.decide(
        addressed(html='<p onclick="x()">Hi<script>alert(1)</script></p>'), ORDER, wait_over=False
    )
    assert decision.html == "<p>Hi</p>"
