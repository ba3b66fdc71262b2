"""The gateway's pure decisions: which inbox view a conversation belongs to and its state;
the Selling Partner API message types and the bsm contact reasons they stand for (which of
them an order allows is the policy library's answer, see :mod:`.policy`); whether a message
fits the shared limits, and file names as readers see them."""

from __future__ import annotations

import email.policy
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import encode_rfc2231
from typing import Literal

from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES, MAX_BODY_BYTES, body_bytes, clean_filename,
)
from bsm_shared.record_api import RESPONSE_WINDOW

View = Literal["response_needed", "sent", "no_response_needed"]
Filter = Literal["response_needed", "sent", "no_response_needed", "all"]
State = Literal["open", "resolved", "closed"]


@dataclass(frozen=True)
class MessageFacts:
    """What the inbox needs to know about one message of a conversation."""

    sender_party_id: str | None
    submitted_at: datetime
    status: str  # submitted | addressed | delivered | bounced
    response_not_needed: bool = False
    reported: bool = False


def view_of(messages: Sequence[MessageFacts], viewer: str) -> View | None:
    """The inbox view (E1) a conversation is in for ``viewer``.

    Only messages that reached (or are on their way to) the other side count: a bounced
    message asks nothing of anyone. The latest such message decides: sent by the viewer →
    *Sent*; received and marked (no response needed, or reported — E4: a reported message needs
    no marking) → *No response needed*; otherwise → *Response needed*.
    """
    live = sorted((m for m in messages if m.status != "bounced"), key=lambda m: m.submitted_at)
    if not live:
        return "sent" if any(m.sender_party_id == viewer for m in messages) else None
    last = live[-1]
    if last.sender_party_id == viewer:
        return "sent"
    if last.response_not_needed or last.reported:
        return "no_response_needed"
    return "response_needed"


def matches(view: View | None, wanted: Filter) -> bool:
    return view is not None and (wanted == "all" or view == wanted)


CLOSED_ORDER = frozenset({"cancelled", "returned", "completed"})


def state_of(messages: Sequence[MessageFacts], order_status: str | None) -> State:
    """*closed* once the order is over, *resolved* when the latest message needs no answer,
    otherwise *open*."""
    if order_status in CLOSED_ORDER:
        return "closed"
    live = sorted((m for m in messages if m.status != "bounced"), key=lambda m: m.submitted_at)
    if live and (live[-1].response_not_needed or live[-1].reported):
        return "resolved"
    return "open"


def response_due(messages: Sequence[MessageFacts], buyer_id: str) -> datetime | None:
    """When the seller's answer is due (E1, F1): ``RESPONSE_WINDOW`` (24 hours) after the
    oldest buyer message still unanswered; None when nothing is owed.

    As F1 counts (the metrics service's projections): a buyer message that reached the seller
    is answered by any seller message that reached the buyer, submitted at or after it; one
    marked *no response needed* or reported is owed nothing. So the buyer messages owed an
    answer are those after the seller's latest delivered message."""
    reached = [m for m in messages if m.status == "delivered"]
    last_reply = max((m.submitted_at for m in reached if m.sender_party_id != buyer_id),
                     default=None)
    owed = [m.submitted_at for m in reached if m.sender_party_id == buyer_id
            and not (m.response_not_needed or m.reported)
            and (last_reply is None or m.submitted_at > last_reply)]
    return min(owed) + RESPONSE_WINDOW if owed else None


# -- Selling Partner API Messaging v1 ---------------------------------------------------------

#: SP-API message type → bsm contact reason (the typed message goes through the normal
#: pipeline as a seller-started conversation with this reason).
SP_TYPES: dict[str, str] = {
    "confirmCustomizationDetails": "confirm_customization",
    "confirmDeliveryDetails": "schedule_delivery",
    "legalDisclosure": "legal_disclosure",
    "confirmOrderDetails": "confirm_order_details",
    "confirmServiceDetails": "schedule_service",
    "warranty": "warranty",
    "digitalAccessKey": "digital_access_key",
    "unexpectedProblem": "unexpected_problem",
    "invoice": "invoice",
}


@dataclass(frozen=True)
class Refusal:
    """Why no message type is available: the rule and the reason, named (where Amazon answers
    an empty list or a bare 403)."""

    rule: str
    code: str
    message: str


# -- Limits of one message at the door ----------------------------------------------------------


@dataclass(frozen=True)
class TooLarge:
    """A message over one of the shared limits (:mod:`bsm_shared.contract.limits`): which one,
    its value and the message's size, for a ``413`` that says what to shorten."""

    code: str
    message: str
    limit: int
    size: int


def size_refusal(text: str | None, html: str | None,
                 attachment_sizes: Sequence[int]) -> TooLarge | None:
    """Why a message is too large to travel (its body, or its attachments together), or None.
    (How many attachments it may reference is part of the request's shape.)"""
    body = body_bytes(text, html)
    if body > MAX_BODY_BYTES:
        return TooLarge("body_too_large",
                        f"The text and HTML together are {body:,} bytes (UTF-8, as an event "
                        f"spells them: a control character takes six); a message "
                        f"may have at most {MAX_BODY_BYTES:,}. Shorten it, or send the rest "
                        "as an attachment.", MAX_BODY_BYTES, body)
    total = sum(attachment_sizes)
    if total > MAX_ATTACHMENT_BYTES:
        return TooLarge("attachments_too_large",
                        f"The attachments together are {total:,} bytes; one message may "
                        f"carry at most {MAX_ATTACHMENT_BYTES:,} ({MAX_ATTACHMENT_BYTES // 2**20}"
                        " MB). Send them in several messages.", MAX_ATTACHMENT_BYTES, total)
    return None


def readable_filename(name: str | None) -> str:
    """A file name as a reader will see it, made safe for a mail header and a download.

    RFC 2047 encoded words (``=?utf-8?q?…?=``) are decoded first — mail clients show them
    decoded, and a decoded CR/LF must not survive — with the email package's lenient header
    parser (an unknown charset or bad encoding never raises); then
    :func:`~bsm_shared.contract.limits.clean_filename` (one line, no path, at most
    ``MAX_FILENAME_CHARS`` characters keeping the extension)."""
    if name and "=?" in name:
        name = str(email.policy.default.header_factory("X-Filename", name))
    return clean_filename(name)


#: Characters of a file name kept as they are in the quoted ASCII ``filename`` of a download
#: (RFC 6266 §4.3: the fallback for user agents that do not read ``filename*``).
_PLAIN_NAME = re.compile(r"[^A-Za-z0-9 !#$&'()+,.=@^_`{}~-]")


def content_disposition(name: str | None) -> str:
    """``Content-Disposition`` of a download (RFC 6266): ``attachment``, an ASCII
    ``filename`` fallback, and the exact name as ``filename*`` (RFC 5987 ``UTF-8''…``,
    percent-encoded by :func:`email.utils.encode_rfc2231`). No CR, LF, quote or backslash can
    reach the header, whatever the stored name."""
    clean = readable_filename(name)
    ascii_name = unicodedata.normalize("NFKD", clean).encode("ascii", "ignore").decode()
    fallback = _PLAIN_NAME.sub("_", ascii_name).strip() or "attachment"
    return f'attachment; filename="{fallback}"; filename*={encode_rfc2231(clean, "utf-8")}'
