"""The answers of the metrics service's read API (G1, F1, F2, F3), defined once: the metrics
service answers with these models and the gateway, which proxies them to people, reads and
documents them with the same ones (it only adds its own verdict per timeline entry).

Not events: these are HTTP response shapes, so they live beside the contract, not in it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

#: F1 and E1: a buyer's message is answered in time when the seller answers within this (the
#: metrics service counts later answers as late; the inbox shows the time left).
RESPONSE_WINDOW = timedelta(hours=24)


class TimelineEntry(BaseModel):
    """One event of the record, as the metrics service re-checked it."""

    position: int = Field(description="Position in the record (arrival order).")
    event_id: str = Field(description="The event's id.")
    type: str = Field(description="Event name.")
    producer: str = Field(description="Who wrote it.")
    occurred_at: str = Field(description="When it happened (RFC 3339).")
    topic: str = Field(description="Topic it was read from.")
    message_id: str | None = Field(default=None, description="The message it concerns.")
    signed: bool = Field(description="Whether it carried a signature.")
    signature_valid: bool | None = Field(
        default=None, description="Re-checked now against the trusted keys: true = a trusted "
        "key's signature verifies the archived event as it is; false = forged, or the archived "
        "row was altered; null = unsigned event of an outside producer (nothing to check).")
    flag: str | None = Field(default=None, description="Why this entry must not be trusted "
                             "(`forged:<reason>`, `altered`), if so.")
    redacted: bool = Field(default=False,
                           description="Personal data was removed before archiving.")
    event: dict[str, Any] = Field(default_factory=dict,
                                  description="The event as received (minus personal data).")
    erased_parties: list[str] = Field(
        default_factory=list, description="Parties of this event whose personal data was "
        "erased: their sealed values (`pii:v1:…`) in the event can no longer be opened; the "
        "signature still verifies.")


class Timeline(BaseModel):
    order_id: str = Field(description="The order.")
    as_of: str | None = Field(default=None, description="Only events up to this instant.")
    events: list[TimelineEntry] = Field(description="Every event of the order, in time order.")
    erased_parties: list[str] = Field(
        default_factory=list, description="Parties of the order whose personal data was erased.")


class ResponseTimes(BaseModel):
    """F1, from the metrics projection over event times."""

    seller_id: str = Field(description="The seller.")
    window: str = Field(description="`7d`, `30d` or `90d`.")
    as_of: str = Field(description="End of the window (default: now).")
    late_response_rate: float | None = Field(
        default=None, description="(answered late + unanswered after 24 h) / counted.")
    average_response_time_seconds: float | None = Field(default=None,
                                                        description="Over answered messages.")
    buyer_messages: int = Field(description="Buyer messages submitted in the window.")
    counted: int = Field(description="Answered, or unanswered for more than 24 hours.")
    excluded: int = Field(description="Marked no-response-needed or reported.")
    answered: int = Field(description="Answered.")
    answered_late: int = Field(description="Answered after 24 hours.")
    unanswered_late: int = Field(description="Unanswered after 24 hours.")
    unanswered_within_24h: int = Field(description="Not late yet; not counted.")


class Quota(BaseModel):
    """F2: a seller's daily limit (C7) and its use."""

    seller_id: str = Field(description="The seller.")
    day: str = Field(description="The UTC day (ISO 8601).")
    used: int = Field(description="The seller's messages policy approved that UTC day.")
    limit: int = Field(description="C7: factor × average daily orders over the 30 UTC days "
                       "before + base (`bsm_shared.quota`, with the configured settings).")


class ReportStats(BaseModel):
    """F3: reports (E4) in a window, by reason and by sender, and abuse patterns."""

    since: str = Field(description="Start of the window (exclusive).")
    until: str = Field(description="End of the window (inclusive).")
    total: int = Field(description="Reports in the window.")
    by_reason: dict[str, int] = Field(
        description="Reports per reason, every reason of the fixed list (`spam`, "
        "`inappropriate`, `essential_misuse`, `other`) present; reports from before the list "
        "(free text) count as `other`.")
    by_sender: dict[str, int] = Field(description="Reports per reported sender.")
    flagged_senders: list[dict[str, Any]] = Field(
        description="Senders reported by at least 3 different recipients.")
