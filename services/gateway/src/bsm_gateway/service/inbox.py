"""The inbox (E1, E3): conversations as a caller sees them, a page at a time, and one
conversation with its messages.

Paging is a keyset on (latest message's time, conversation id), newest first: the cursor names
the last conversation of a page, and the next page starts right after it, whatever arrived
meanwhile (no OFFSET: new conversations do not shift the pages, so none is shown twice; one
that gets a new message moves to the first page).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import core
from ..access import REACHED, Principal
from ..errors import ApiError
from ..models import Conversation, ConversationSummary, Notification
from ..names import Name
from ..readmodel import visible_sql

if TYPE_CHECKING:
    from .gateway import Gateway

#: Conversations read per query while filling a page (the view filter is applied after).
CHUNK = 200
MAX_PAGE = 100


def cursor_of(last: datetime, conversation_id: str) -> str:
    raw = json.dumps([last.isoformat(), conversation_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def position(cursor: str) -> tuple[datetime, str]:
    """The (time, id) a cursor names; ``422 invalid_cursor`` for anything this API did not
    give out."""
    try:
        last, conversation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(
            cursor) % 4)))
        at = datetime.fromisoformat(last)
        if at.tzinfo is None or not isinstance(conversation_id, str):
            raise ValueError(cursor)
        return at, conversation_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "The cursor is not one this API gave out; "
                       "start again without `cursor`.") from None


class Inbox:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def page(self, who: Principal, wanted: core.Filter, order_id: str | None,
                   limit: int, cursor: str | None) -> tuple[list[ConversationSummary],
                                                           str | None]:
        """Up to ``limit`` conversations in ``wanted`` after ``cursor``, and the cursor of the
        next page (None: this is the last). ``who`` may read conversations
        (``access``: parties and the dispute team)."""
        s = self.gw.s
        if who.is_party:
            # Only conversations with a message the party may see (its latest is their
            # last-message time): one that merely holds a message stopped on its way to them
            # does not exist for them.
            last = (f"(SELECT max(m.submitted_at) FROM {s}.messages m WHERE m.conversation_id"
                    f" = c.conversation_id AND {visible_sql('m', '$1')})")
            where, args = "(c.buyer_id = $1 OR c.seller_id = $1)", [who.party_id]
        else:
            last = (f"COALESCE((SELECT max(m.submitted_at) FROM {s}.messages m "
                    f"WHERE m.conversation_id = c.conversation_id), c.started_at)")
            where, args = "TRUE", []
        if order_id is not None:
            # E3: search by order id, ignoring case and surrounding spaces; subject and body
            # are never searched.
            args.append(order_id.strip())
            where += f" AND lower(c.order_id) = lower(${len(args)})"
        after = position(cursor) if cursor else None
        found: list[tuple[ConversationSummary, Any]] = []
        while len(found) <= limit:
            keyset = ""
            params = list(args)
            if after is not None:
                params += list(after)
                keyset = (f"AND (x.last_at, x.conversation_id) < "
                          f"(${len(params) - 1}::timestamptz, ${len(params)}::text)")
            convs = await self.gw.pool.fetch(
                f"""SELECT * FROM (SELECT c.*, o.status AS order_status, {last} AS last_at
                        FROM {s}.conversations c
                        LEFT JOIN {s}.orders o ON o.order_id = c.order_id WHERE {where}) x
                    WHERE x.last_at IS NOT NULL {keyset}
                    ORDER BY x.last_at DESC, x.conversation_id DESC LIMIT {CHUNK}""", *params)
            for c, summary in zip(convs, await self.summaries(who, convs), strict=True):
                if core.matches(summary.view, wanted):  # type: ignore[arg-type]
                    found.append((summary, c))
            if len(convs) < CHUNK:
                break
            after = (convs[-1]["last_at"], convs[-1]["conversation_id"])
        shown = found[:limit]
        more = len(found) > limit
        await self.name(s for s, _ in shown)
        return [s for s, _ in shown], (
            cursor_of(shown[-1][1]["last_at"], shown[-1][1]["conversation_id"]) if more
            else None)

    async def summaries(self, who: Principal, convs: list[Any]) -> list[ConversationSummary]:
        if not convs:
            return []
        msgs = await self.gw.pool.fetch(
            f"""SELECT message_id, conversation_id, sender_party_id, recipient_party_id,
                       submitted_at, status, response_not_needed_at, reported_at, read_at,
                       subject
                FROM {self.gw.s}.messages WHERE conversation_id = ANY($1::text[])""",
            [c["conversation_id"] for c in convs])
        by_conv: dict[str, list[Any]] = {}
        for m in msgs:
            if self.gw.visible(who, m):
                by_conv.setdefault(m["conversation_id"], []).append(m)
        return [self.summary(c, by_conv.get(c["conversation_id"], []), who) for c in convs]

    async def name(self, summaries: Any) -> None:
        """Fill in both parties' names (opened for this answer; erased parties as such)."""
        summaries = list(summaries)
        async with self.gw.pool.acquire() as conn:
            names = await self.gw.names.open(
                conn, [p for x in summaries for p in (x.buyer_id, x.seller_id)])
        for x in summaries:
            buyer, seller = names.get(x.buyer_id, Name(None)), names.get(x.seller_id, Name(None))
            x.buyer_name, x.buyer_erased = buyer.name, buyer.erased
            x.seller_name, x.seller_erased = seller.name, seller.erased

    def summary(self, c: Any, rows: list[Any], who: Principal) -> ConversationSummary:
        """A conversation as ``who`` sees it; ``rows``: its messages ``who`` may see (every
        figure — count, unread, last message, view, state, subject, response due — comes from
        them)."""
        # The dispute team sees the inbox as the seller sees it.
        seller = Principal(party_id=c["seller_id"], role="seller")
        viewer = who if who.is_party else seller
        facts = [core.MessageFacts(r["sender_party_id"], r["submitted_at"], r["status"],
                                   r["response_not_needed_at"] is not None,
                                   r["reported_at"] is not None)
                 for r in rows if self.gw.visible(viewer, r)]
        ordered = sorted(rows, key=lambda r: (r["submitted_at"], r["message_id"]))
        last = ordered[-1]["submitted_at"] if ordered else c["started_at"]
        # The conversation's subject is its first message's: for a party, the first message
        # they may see (the one that opened it may be a rejected one, phone number and all).
        subject = c["subject"] if who.reads_everything or not ordered else ordered[0]["subject"]
        due = core.response_due(facts, c["buyer_id"])
        return ConversationSummary(
            conversation_id=c["conversation_id"], order_id=c["order_id"],
            buyer_id=c["buyer_id"], seller_id=c["seller_id"], subject=subject or "",
            view=core.view_of(facts, viewer.party_id),
            state=core.state_of(facts, c["order_status"]),
            last_message_at=last.isoformat(), messages=len(rows),
            unread=sum(1 for r in rows if r["recipient_party_id"] == who.party_id
                       and r["read_at"] is None and r["status"] == REACHED),
            response_due_at=due.isoformat() if due else None,
        )

    async def conversation(self, who: Principal, conversation_id: str) -> Conversation:
        gw = self.gw
        c = await gw.pool.fetchrow(
            f"""SELECT c.*, o.status AS order_status FROM {gw.s}.conversations c
                LEFT JOIN {gw.s}.orders o ON o.order_id = c.order_id
                WHERE c.conversation_id = $1""", conversation_id)
        missing = ApiError(404, "conversation_not_found",
                           f"No conversation {conversation_id} of yours.")
        if c is None or not who.may_read(c["buyer_id"], c["seller_id"]):
            raise missing
        rows = [r for r in await gw.pool.fetch(
            f"""SELECT * FROM {gw.s}.messages WHERE conversation_id = $1
                ORDER BY submitted_at, message_id""", conversation_id) if gw.visible(who, r)]
        if not rows:  # only messages that never reached the caller: none of theirs
            raise missing
        if who.is_party:
            # Read state (E7) is the gateway's own bookkeeping, not a fact other services use.
            await gw.pool.execute(
                f"""UPDATE {gw.s}.messages SET read_at = now() WHERE conversation_id = $1
                    AND recipient_party_id = $2 AND read_at IS NULL AND status = $3""",
                conversation_id, who.party_id, REACHED)
        shown = {r["message_id"]: r for r in rows}
        summary = self.summary(c, rows, who)
        await self.name([summary])
        return Conversation(**summary.model_dump(), message_list=[
            gw.message_view(r, who, shown.get(r["in_reply_to"]) if r["in_reply_to"] else None)
            for r in rows])

    async def notifications(self, who: Principal) -> list[Notification]:
        """Platform notifications of a party: the explanations of its own messages that
        bounced. Platform notices are not messages of the read model (every message there has
        a buyer or seller sender), so *Your messages* keeps sellers' messages in the
        conversations and lists the platform's word here: which rule stopped which of your
        messages, and what you can do. ``who`` is a party."""
        rows = await self.gw.pool.fetch(
            f"""SELECT message_id, conversation_id, order_id, subject, bounce, submitted_at
                FROM {self.gw.s}.messages WHERE sender_party_id = $1 AND bounce IS NOT NULL
                ORDER BY submitted_at DESC LIMIT 200""", who.party_id)
        out = []
        for row in rows:
            bounce = json.loads(row["bounce"]) if row["bounce"] else {}
            out.append(Notification(
                kind="bounce", message_id=row["message_id"],
                conversation_id=row["conversation_id"], order_id=row["order_id"],
                subject=row["subject"] or "", at=bounce.get("bounced_at")
                or row["submitted_at"].isoformat(), rule=bounce.get("rule"),
                stage=bounce.get("stage"),
                explanation=bounce.get("explanation") or "The message was not delivered.",
                remedy=bounce.get("remedy")))
        return out
