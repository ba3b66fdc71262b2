"""When the seller's answer is due (E1, F1): 24 hours from the oldest buyer message still
unanswered, counted as the metrics service counts F1; none when nothing is owed."""

from datetime import UTC, datetime, timedelta

from bsm_gateway import core
from bsm_gateway.core import MessageFacts as M

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def test_the_clock_runs_from_the_oldest_unanswered_buyer_message():
    msgs = [M("buyer", at(0), "delivered"), M("buyer", at(30), "delivered")]
    assert core.response_due(msgs, "buyer") == at(0) + DAY


def test_a_delivered_seller_reply_answers_every_buyer_message_before_it():
    msgs = [M("buyer", at(0), "delivered"), M("seller", at(10), "delivered"),
            M("buyer", at(20), "delivered")]
    assert core.response_due(msgs, "buyer") == at(20) + DAY
    assert core.response_due(msgs[:2], "buyer") is None


def test_a_reply_at_the_same_instant_answers_the_message():
    msgs = [M("seller", at(0), "delivered"), M("buyer", at(0), "delivered")]
    assert core.response_due(msgs, "buyer") is None


def test_a_reply_that_has_not_reached_the_buyer_answers_nothing_yet():
    for status in ("submitted", "addressed", "bounced"):
        msgs = [M("buyer", at(0), "delivered"), M("seller", at(5), status)]
        assert core.response_due(msgs, "buyer") == at(0) + DAY, status


def test_marked_reported_or_undelivered_buyer_messages_are_owed_nothing():
    assert core.response_due([M("buyer", at(0), "delivered", response_not_needed=True)],
                             "buyer") is None
    assert core.response_due([M("buyer", at(0), "delivered", reported=True)], "buyer") is None
    assert core.response_due([M("buyer", at(0), "bounced")], "buyer") is None
    marked_first = [M("buyer", at(0), "delivered", response_not_needed=True),
                    M("buyer", at(9), "delivered")]
    assert core.response_due(marked_first, "buyer") == at(9) + DAY


def test_an_empty_or_seller_only_conversation_owes_nothing():
    assert core.response_due([], "buyer") is None
    assert core.response_due([M("seller", at(0), "delivered")], "buyer") is None


def test_the_window_is_the_one_the_metrics_service_counts_late_after():
    from bsm_metrics.projections import LATE_AFTER

    assert core.response_due([M("buyer", at(0), "delivered")], "buyer") == at(0) + LATE_AFTER
