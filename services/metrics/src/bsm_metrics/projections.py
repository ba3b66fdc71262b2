"""The metrics projections, pure: what each event means for response times (F1), quota usage
(F2) and report statistics (F3), and the figures computed from that state.

An event becomes a list of *operations* (:func:`operations`); a store applies them (the live
PostgreSQL store in :mod:`.store`, or the in-memory store here, used by replays and tests —
both pass the same contract tests). All times come from the events (``submitted_at`` of a
message, ``placed_at`` of an order, ``reported_at``…), never from when metrics processed them,
so a replay computes the same numbers.

Which messages count for response times (F1): every buyer message that was delivered to a
seller; it is answered by the seller's first delivered message in the same conversation
submitted at or after it (the clock runs through weekends and holidays); it is late if
answered more than 24 hours after it was submitted, or still unanswered 24 hours after. A
message marked "no response needed" (E2) or reported (E4) does not count.

Quota usage (F2) counts, per seller and UTC day of ``submitted_at``, the seller's messages
that policy approved (what actually went out against the daily limit, C7).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from bsm_shared.contract.payloads import REPORT_REASONS, report_reason
from bsm_shared.quota import quota_day
from bsm_shared.record_api import RESPONSE_WINDOW

LATE_AFTER = RESPONSE_WINDOW
WINDOWS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)  # Python ≥ 3.11 reads a trailing "Z" too


# -- operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuyerMessage:
    """A delivered buyer message that expects the seller's answer."""

    message_id: str
    seller_id: str
    buyer_id: str
    conversation_id: str
    submitted_at: datetime


@dataclass(frozen=True)
class SellerReply:
    """A delivered seller message: answers the open buyer messages of its conversation."""

    message_id: str
    conversation_id: str
    submitted_at: datetime


@dataclass(frozen=True)
class Excluded:
    """A message that needs no answer: marked (E2) or reported (E4)."""

    message_id: str
    reason: str  # "no_response_needed" | "reported"


@dataclass(frozen=True)
class MessageSent:
    """Who sent a delivered message to whom (report statistics need the sender)."""

    message_id: str
    sender_id: str
    recipient_id: str
    sender_role: str


@dataclass(frozen=True)
class Report:
    message_id: str
    reporter_id: str
    reason: str
    reported_at: datetime


@dataclass(frozen=True)
class SellerMessageApproved:
    seller_id: str
    day: date
    message_id: str


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    seller_id: str
    day: date


Operation = (
    BuyerMessage | SellerReply | Excluded | MessageSent | Report | SellerMessageApproved
    | OrderPlaced
)


def operations(event: dict[str, Any]) -> list[Operation]:
    """What one event (raw JSON object) means for the projections."""
    etype, data = event.get("type"), event.get("data") or {}
    if etype == "Delivered":
        sent = MessageSent(data["message_id"], data["sender_party_id"],
                           data["recipient_party_id"], data["sender_role"])
        at = _ts(data["submitted_at"])
        if data["sender_role"] == "buyer":
            return [sent, BuyerMessage(data["message_id"], data["recipient_party_id"],
                                       data["sender_party_id"], data["conversation_id"], at)]
        return [sent, SellerReply(data["message_id"], data["conversation_id"], at)]
    if etype == "ResponseNotNeeded":
        return [Excluded(data["message_id"], "no_response_needed")]
    if etype == "Reported":
        return [Excluded(data["message_id"], "reported"),
                Report(data["message_id"], data["reporter_party_id"], data["reason"],
                       _ts(data["reported_at"]))]
    if etype == "PolicyChecked" and data.get("sender_role") == "seller" and (
        data.get("verdict") == "approved"
    ):
        return [SellerMessageApproved(data["sender_party_id"],
                                      quota_day(_ts(data["submitted_at"])), data["message_id"])]
    if etype == "OrderPlaced":
        return [OrderPlaced(data["order_id"], data["seller_id"],
                            quota_day(_ts(data["placed_at"])))]
    return []


# -- state and figures ------------------------------------------------------------------------


@dataclass
class Tracked:
    """A buyer message as the response-time projection keeps it."""

    message_id: str
    seller_id: str
    buyer_id: str
    conversation_id: str
    submitted_at: datetime
    answered_at: datetime | None = None
    reply_id: str | None = None
    excluded: str | None = None


@dataclass(frozen=True)
class ResponseTimes:
    seller_id: str
    window: str
    as_of: datetime
    buyer_messages: int
    counted: int
    excluded: int
    answered: int
    answered_late: int
    unanswered_late: int
    unanswered_within_24h: int
    late_response_rate: float | None
    average_response_time_seconds: float | None


def response_times(
    tracked: list[Tracked], *, seller_id: str, window: str, as_of: datetime
) -> ResponseTimes:
    """F1 for one seller: buyer messages submitted in ``(as_of - window, as_of]``.

    A message still unanswered but less than 24 hours old is neither late nor on time yet:
    it is not counted in the rate (it would flatter the seller) and is reported separately.
    """
    start = as_of - WINDOWS[window]
    mine = [t for t in tracked if t.seller_id == seller_id and start < t.submitted_at <= as_of]
    excluded = [t for t in mine if t.excluded]
    live = [t for t in mine if not t.excluded]
    answered = [t for t in live if t.answered_at is not None and t.answered_at <= as_of]
    late_answered = [t for t in answered if t.answered_at - t.submitted_at > LATE_AFTER]
    unanswered = [t for t in live if t not in answered]
    late_unanswered = [t for t in unanswered if as_of - t.submitted_at > LATE_AFTER]
    counted = len(answered) + len(late_unanswered)
    durations = [(t.answered_at - t.submitted_at).total_seconds() for t in answered]
    return ResponseTimes(
        seller_id=seller_id, window=window, as_of=as_of, buyer_messages=len(mine),
        counted=counted, excluded=len(excluded), answered=len(answered),
        answered_late=len(late_answered), unanswered_late=len(late_unanswered),
        unanswered_within_24h=len(unanswered) - len(late_unanswered),
        late_response_rate=(len(late_answered) + len(late_unanswered)) / counted
        if counted else None,
        average_response_time_seconds=sum(durations) / len(durations) if durations else None,
    )


@dataclass
class InMemoryProjections:
    """The projections' state in memory (replays, tests). Mirrors :mod:`.store`."""

    tracked: dict[str, Tracked] = field(default_factory=dict)
    excluded_early: dict[str, str] = field(default_factory=dict)
    senders: dict[str, MessageSent] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    approved: dict[tuple[str, date], set[str]] = field(default_factory=lambda: defaultdict(set))
    orders: dict[tuple[str, date], set[str]] = field(default_factory=lambda: defaultdict(set))
    #: Unanswered buyer messages by conversation (a reply looks only at its own).
    open_by_conversation: dict[str, list[Tracked]] = field(
        default_factory=lambda: defaultdict(list))
    #: (message, reporter) pairs already in ``reports``: one report per reporter and message,
    #: checked in O(1) (a scan of ``reports`` made replays quadratic in the number of reports).
    report_keys: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, op: Operation) -> None:
        if isinstance(op, BuyerMessage):
            if op.message_id not in self.tracked:
                t = self.tracked[op.message_id] = Tracked(
                    op.message_id, op.seller_id, op.buyer_id, op.conversation_id,
                    op.submitted_at, excluded=self.excluded_early.pop(op.message_id, None))
                self.open_by_conversation[op.conversation_id].append(t)
        elif isinstance(op, SellerReply):
            still_open = []
            for t in self.open_by_conversation.pop(op.conversation_id, []):
                if t.submitted_at <= op.submitted_at:
                    t.answered_at, t.reply_id = op.submitted_at, op.message_id
                else:
                    still_open.append(t)
            if still_open:
                self.open_by_conversation[op.conversation_id] = still_open
        elif isinstance(op, Excluded):
            if op.message_id in self.tracked:
                self.tracked[op.message_id].excluded = (
                    self.tracked[op.message_id].excluded or op.reason)
            else:
                self.excluded_early.setdefault(op.message_id, op.reason)
        elif isinstance(op, MessageSent):
            self.senders.setdefault(op.message_id, op)
        elif isinstance(op, Report):
            key = (op.message_id, op.reporter_id)
            if key not in self.report_keys:
                self.report_keys.add(key)
                self.reports.append(op)
        elif isinstance(op, SellerMessageApproved):
            self.approved[(op.seller_id, op.day)].add(op.message_id)
        elif isinstance(op, OrderPlaced):
            self.orders[(op.seller_id, op.day)].add(op.order_id)


@dataclass(frozen=True)
class ReportStats:
    since: datetime
    until: datetime
    total: int
    by_reason: dict[str, int]
    by_sender: dict[str, int]
    flagged_senders: list[dict[str, Any]]


def report_stats(
    reports: list[Report], senders: dict[str, MessageSent], *, since: datetime, until: datetime,
    min_reporters: int = 3,
) -> ReportStats:
    """F3: reports by reason and by sender, and the senders reported by many different
    recipients (a pattern of abuse trust & safety should look at). Counted by the fixed list
    of reasons (every one present, zero or not); a report from before the list carries free
    text and counts as ``other`` (:func:`~bsm_shared.contract.payloads.report_reason`)."""
    chosen = [r for r in reports if since < r.reported_at <= until]
    by_reason: dict[str, int] = dict.fromkeys(REPORT_REASONS, 0)
    by_sender: dict[str, int] = defaultdict(int)
    reporters: dict[str, set[str]] = defaultdict(set)
    for r in chosen:
        by_reason[report_reason(r.reason)] += 1
        sender = senders[r.message_id].sender_id if r.message_id in senders else "unknown"
        by_sender[sender] += 1
        reporters[sender].add(r.reporter_id)
    flagged = [
        {"sender_party_id": s, "distinct_reporters": len(who), "reports": by_sender[s]}
        for s, who in sorted(reporters.items(), key=lambda kv: -len(kv[1]))
        if len(who) >= min_reporters and s != "unknown"
    ]
    return ReportStats(since, until, len(chosen), by_reason, dict(by_sender), flagged)
