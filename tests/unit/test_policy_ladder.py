"""C10's sanction ladder decided in the core (issue 14, item 2: decisions out of the adapter's
SQL): strikes within the window move a seller one step up — restricted for each step's days,
suspended beyond the last — never while a step is in force, and a step's strikes count once."""

from datetime import UTC, datetime, timedelta

import pytest

from bsm_policy.engine import Ladder, Restriction, next_sanction, strikes_since

AT = datetime(2026, 11, 20, 10, tzinfo=UTC)
LADDER = Ladder(strikes=3, window=timedelta(days=30), restriction_days=(5, 30))


def test_fewer_strikes_than_the_ladder_asks_decide_nothing():
    assert next_sanction(None, 0, 2, AT, LADDER) is None


@pytest.mark.parametrize("steps, level, days", [(0, "restricted", 5), (1, "restricted", 30),
                                                (2, "suspended", None), (5, "suspended", None)])
def test_enough_strikes_take_the_next_step(steps, level, days):
    sanction = next_sanction(None, steps, 3, AT, LADDER)
    assert sanction is not None and sanction.step == steps + 1
    assert sanction.restriction == Restriction(
        level, AT, AT + timedelta(days=days) if days else None)


def test_nothing_is_decided_while_a_step_is_in_force_and_the_next_counts_once_it_ended():
    current = Restriction("restricted", AT - timedelta(days=1), AT + timedelta(days=4))
    assert next_sanction(current, 1, 10, AT, LADDER) is None
    later = AT + timedelta(days=5)
    assert next_sanction(current, 1, 3, later, LADDER).step == 2


def test_strikes_count_from_the_window_or_from_the_last_step_whichever_is_later():
    assert strikes_since(None, AT, LADDER) == AT - timedelta(days=30)
    last_step = AT - timedelta(days=2)
    assert strikes_since(last_step, AT, LADDER) == last_step
    assert strikes_since(AT - timedelta(days=60), AT, LADDER) == AT - timedelta(days=30)
