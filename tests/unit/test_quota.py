"""C7's daily limit, defined once (``bsm_shared.quota``) for the policy that enforces it and the
record that reports it (F2)."""

from datetime import UTC, date, datetime

from bsm_shared import quota
from bsm_shared.quota import DailyLimitSettings


def test_the_limit_is_five_times_the_average_daily_orders_of_the_30_days_before_plus_600():
    assert quota.daily_limit(6 * 30) == 5 * 6 + 600
    assert quota.daily_limit(0) == 600
    assert quota.daily_limit(29) == (5 * 29) // 30 + 600  # rounded down


def test_the_window_is_the_30_utc_days_before_the_day_not_the_day_itself():
    assert quota.order_window(date(2026, 11, 20)) == (date(2026, 10, 21), date(2026, 11, 20))
    assert quota.quota_day(datetime(2026, 11, 1, 23, 30, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York"))) == date(2026, 11, 1)


def test_policy_and_the_record_read_the_same_settings_keys(monkeypatch):
    monkeypatch.setenv("BSM_DAILY_LIMIT_FACTOR", "7")
    monkeypatch.setenv("BSM_DAILY_LIMIT_BASE", "50")
    assert DailyLimitSettings().daily_limit_factor == 7
    monkeypatch.delenv("BSM_DAILY_LIMIT_FACTOR")
    monkeypatch.setenv("BSM_POLICY_DAILY_LIMIT_FACTOR", "3")  # the older policy key
    settings = DailyLimitSettings()
    assert (settings.daily_limit_factor, settings.daily_limit_base) == (3, 50)
