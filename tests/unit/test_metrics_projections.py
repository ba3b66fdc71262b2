from datetime import date, timedelta

from bsm_metrics import projections as p
from bsm_shared.contract.payloads import REPORT_REASONS
from tests.factories import T0
from tests.metrics_support import delivered, issue_scenario, marked, reported

H = timedelta(hours=1)


def fold(events) -> p.InMemoryProjections:
    state = p.InMemoryProjections()
    for e in events:
        for op in p.operations(e):
            state.apply(op)
    return state


def test_late_rate_and_average_follow_the_issue_example_from_event_times():
    events, as_of = issue_scenario()
    r = p.response_times(list(fold(events).tracked.values()), seller_id="s-1", window="7d",
                         as_of=as_of)
    assert (r.counted, r.answered, r.answered_late, r.unanswered_late) == (3, 2, 1, 1)
    assert r.late_response_rate == 2 / 3
    assert r.average_response_time_seconds == 16 * 3600
    assert r.excluded == 1


def test_the_order_in_which_events_arrive_does_not_change_the_figures():
    events, as_of = issue_scenario()
    reordered = [events[6], *events[:6]]  # the marking arrives before the message it marks
    a = p.response_times(list(fold(events).tracked.values()), seller_id="s-1", window="7d",
                         as_of=as_of)
    b = p.response_times(list(fold(reordered).tracked.values()), seller_id="s-1", window="7d",
                         as_of=as_of)
    assert a == b


def test_a_message_younger_than_24_hours_is_not_counted_yet():
    events = [delivered("q", conversation="c", sender_role="buyer", at=T0)]
    r = p.response_times(list(fold(events).tracked.values()), seller_id="s-1", window="7d",
                         as_of=T0 + 5 * H)
    assert (r.counted, r.unanswered_within_24h, r.late_response_rate) == (0, 1, None)


def test_one_reply_answers_every_open_buyer_message_of_its_conversation_only():
    events = [
        delivered("q1", conversation="c", sender_role="buyer", at=T0),
        delivered("q2", conversation="c", sender_role="buyer", at=T0 + H),
        delivered("x", conversation="other", sender_role="buyer", at=T0),
        delivered("a", conversation="c", sender_role="seller", at=T0 + 3 * H),
    ]
    tracked = fold(events).tracked
    assert tracked["q1"].answered_at == tracked["q2"].answered_at == T0 + 3 * H
    assert tracked["x"].answered_at is None


def test_reported_messages_need_no_answer_and_count_in_report_statistics():
    events = [delivered("q", conversation="c", sender_role="seller", at=T0, seller="spammer")]
    events += [reported("q", T0 + H, reporter=f"b-{i}") for i in range(3)]
    state = fold(events)
    stats = p.report_stats(state.reports, state.senders, since=T0, until=T0 + 2 * H)
    assert stats.total == 3 and stats.by_reason == {"spam": 3, "inappropriate": 0,
                                                 "essential_misuse": 0, "other": 0}
    assert stats.flagged_senders == [
        {"sender_party_id": "spammer", "distinct_reporters": 3, "reports": 3}]


def test_report_statistics_count_by_the_fixed_reasons_and_old_free_text_reports_as_other():
    """E4/F3: reasons come from one list; a `Reported` event from before the list carries the
    reporter's free text as its reason and counts as `other`, never as a reason of its own."""
    events = [delivered("q", conversation="c", sender_role="seller", at=T0, seller="s")]
    events += [reported("q", T0 + H, reporter="b-1", reason="inappropriate"),
               reported("q", T0 + H, reporter="b-2", reason="He keeps sending me offers"),
               reported("q", T0 + H, reporter="b-3", reason="other"),
               reported("q", T0 + H, reporter="b-4", reason="essential_misuse")]
    state = fold(events)
    stats = p.report_stats(state.reports, state.senders, since=T0, until=T0 + 2 * H)
    assert stats.by_reason == {"spam": 0, "inappropriate": 1, "essential_misuse": 1, "other": 2}
    assert set(stats.by_reason) == set(REPORT_REASONS)


def test_a_message_and_an_order_count_on_their_utc_day_whatever_their_offset():
    """F2 counted a message on the day of its own offset (issue 12): 23:30 in New York on
    1 November is 2 November in UTC, the day policy charges it to."""
    late_evening = {"type": "PolicyChecked", "data": {
        "sender_role": "seller", "verdict": "approved", "sender_party_id": "s-1",
        "message_id": "m-1", "submitted_at": "2026-11-01T23:30:00-05:00"}}
    [op] = p.operations(late_evening)
    assert op.day == date(2026, 11, 2)


def test_marking_a_message_twice_keeps_the_first_reason():
    state = fold([delivered("q", conversation="c", sender_role="buyer", at=T0),
                  marked("q", T0 + H), reported("q", T0 + 2 * H, reporter="s-1")])
    assert state.tracked["q"].excluded == "no_response_needed"


def test_a_reporter_reporting_the_same_message_twice_counts_once():
    events = [delivered("q", conversation="c", sender_role="seller", at=T0, seller="s")]
    events += [reported("q", T0 + H, reporter="b-1"), reported("q", T0 + 2 * H, reporter="b-1"),
               reported("q", T0 + 2 * H, reporter="b-2")]
    state = fold(events)
    assert [(r.message_id, r.reporter_id) for r in state.reports] == [("q", "b-1"), ("q", "b-2")]
