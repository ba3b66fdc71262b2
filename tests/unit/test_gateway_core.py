"""The gateway's pure decisions: inbox views (E1), conversation state, SP-API types."""

from datetime import UTC, datetime, timedelta

from bsm_gateway import core
from bsm_gateway.core import MessageFacts as M

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def test_a_received_unanswered_message_needs_a_response():
    assert core.view_of([M("buyer", at(0), "delivered")], "seller") == "response_needed"


def test_the_latest_message_sent_by_the_viewer_puts_the_conversation_under_sent():
    msgs = [M("buyer", at(0), "delivered"), M("seller", at(5), "addressed")]
    assert core.view_of(msgs, "seller") == "sent"
    assert core.view_of(msgs, "buyer") == "response_needed"


def test_a_marked_or_reported_message_needs_no_response():
    assert core.view_of([M("buyer", at(0), "delivered", response_not_needed=True)],
                        "seller") == "no_response_needed"
    assert core.view_of([M("buyer", at(0), "delivered", reported=True)],
                        "seller") == "no_response_needed"


def test_a_bounced_reply_does_not_answer_the_message_before_it():
    msgs = [M("buyer", at(0), "delivered"), M("seller", at(5), "bounced")]
    assert core.view_of(msgs, "seller") == "response_needed"
    assert core.view_of([M("seller", at(5), "bounced")], "seller") == "sent"
    assert core.view_of([M("seller", at(5), "bounced")], "buyer") is None


def test_all_matches_every_view_but_not_a_conversation_the_viewer_has_no_part_in():
    assert core.matches("sent", "all") and core.matches("sent", "sent")
    assert not core.matches("sent", "response_needed") and not core.matches(None, "all")


def test_state_is_closed_with_the_order_resolved_when_marked_and_open_otherwise():
    msgs = [M("buyer", at(0), "delivered")]
    assert core.state_of(msgs, "cancelled") == "closed"
    assert core.state_of(msgs, "shipped") == "open"
    assert core.state_of([M("buyer", at(0), "delivered", reported=True)], None) == "resolved"


def test_every_sp_api_message_type_of_the_model_maps_to_a_bsm_contact_reason():
    from typing import get_args

    from bsm_shared.contract.payloads import ContactReason

    assert set(core.SP_TYPES.values()) <= set(get_args(ContactReason))
    assert len(set(core.SP_TYPES.values())) == len(core.SP_TYPES)
