"""C7, the daily send limit, in one place: the policy service enforces it, the record reports its
use (F2), and both read the same factor and base from the same settings keys.

A seller may send ``factor × (orders placed in the 30 UTC days before the day) / 30 + base``
messages per UTC day (rounded down); by default 5 × the average daily orders + 600. Every
approved seller message counts, replies included (docs/policy.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings

DEFAULT_FACTOR = 5
DEFAULT_BASE = 600
WINDOW_DAYS = 30


def quota_day(at: datetime) -> date:
    """The UTC day a message (its ``submitted_at``) or an order (``placed_at``) counts on."""
    return at.astimezone(UTC).date()


def order_window(day: date) -> tuple[date, date]:
    """The days whose orders set ``day``'s limit: the 30 before it (``day`` itself excluded)."""
    return day - timedelta(days=WINDOW_DAYS), day


def daily_limit(orders_in_window: int, *, factor: int = DEFAULT_FACTOR,
                base: int = DEFAULT_BASE) -> int:
    """The limit of a day whose window (:func:`order_window`) holds ``orders_in_window``."""
    return (factor * orders_in_window) // WINDOW_DAYS + base


class DailyLimitSettings(BaseSettings):
    """The two settings of C7, shared by every service that applies or reports the limit
    (``BSM_DAILY_LIMIT_FACTOR``, ``BSM_DAILY_LIMIT_BASE``; the policy's older
    ``BSM_POLICY_DAILY_LIMIT_*`` keys are read too)."""

    daily_limit_factor: int = Field(
        default=DEFAULT_FACTOR, ge=0,
        validation_alias=AliasChoices("BSM_DAILY_LIMIT_FACTOR", "BSM_POLICY_DAILY_LIMIT_FACTOR",
                                      "daily_limit_factor"),
        description="C7: messages per average daily order (trailing 30 UTC days).",
    )
    daily_limit_base: int = Field(
        default=DEFAULT_BASE, ge=1,
        validation_alias=AliasChoices("BSM_DAILY_LIMIT_BASE", "BSM_POLICY_DAILY_LIMIT_BASE",
                                      "daily_limit_base"),
        description="C7: messages every seller may send per UTC day.",
    )
