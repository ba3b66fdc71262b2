"""The projections' state in PostgreSQL (the live service), mirroring
:class:`.projections.InMemoryProjections` operation by operation; the contract tests run the
same assertions against both."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from bsm_shared import quota
from bsm_shared.runtime.db import check_ident, insert_rows

from . import projections as p

#: Projection tables and their columns (a replay rebuilds exactly these, in a fresh schema).
TABLES: dict[str, str] = {
    "rt_buyer_messages": """message_id text PRIMARY KEY, seller_id text NOT NULL,
        buyer_id text NOT NULL, conversation_id text NOT NULL,
        submitted_at timestamptz NOT NULL, answered_at timestamptz, reply_id text,
        excluded text""",
    "rt_excluded_early": "message_id text PRIMARY KEY, reason text NOT NULL",
    "message_senders": """message_id text PRIMARY KEY, sender_id text NOT NULL,
        recipient_id text NOT NULL, sender_role text NOT NULL""",
    "reports": """message_id text NOT NULL, reporter_id text NOT NULL, reason text NOT NULL,
        reported_at timestamptz NOT NULL, PRIMARY KEY (message_id, reporter_id)""",
    "seller_daily_approved": """seller_id text NOT NULL, day date NOT NULL,
        message_id text NOT NULL, PRIMARY KEY (seller_id, day, message_id)""",
    "seller_daily_orders": """seller_id text NOT NULL, day date NOT NULL,
        order_id text NOT NULL, PRIMARY KEY (seller_id, day, order_id)""",
}


def projection_tables(schema: str) -> list[str]:
    s = check_ident(schema)
    statements = [f"CREATE TABLE IF NOT EXISTS {s}.{name} ({cols})" for name, cols in TABLES.items()]
    statements.append(
        f"CREATE INDEX IF NOT EXISTS rt_by_conversation ON {s}.rt_buyer_messages "
        f"(conversation_id) WHERE answered_at IS NULL"
    )
    statements.append(
        f"CREATE INDEX IF NOT EXISTS rt_by_seller ON {s}.rt_buyer_messages (seller_id, submitted_at)"
    )
    return statements


#: Operations that only add a row nothing else in the batch reads back: a batch writes them
#: together at its end (:meth:`PgProjections.write_buffered`), one statement per table — their
#: table, and its columns and types (each value read from the operation's field of that name).
_BUFFERED_COLUMNS: dict[type, tuple[str, dict[str, str]]] = {
    p.MessageSent: ("message_senders", {"message_id": "text", "sender_id": "text",
                                        "recipient_id": "text", "sender_role": "text"}),
    p.Report: ("reports", {"message_id": "text", "reporter_id": "text", "reason": "text",
                           "reported_at": "timestamptz"}),
    p.SellerMessageApproved: ("seller_daily_approved", {"seller_id": "text", "day": "date",
                                                        "message_id": "text"}),
    p.OrderPlaced: ("seller_daily_orders", {"seller_id": "text", "day": "date",
                                            "order_id": "text"}),
}
BUFFERED = tuple(_BUFFERED_COLUMNS)


class PgProjections:
    def __init__(self, conn: asyncpg.Connection, schema: str,
                 buffer: list[p.Operation] | None = None) -> None:
        self.c = conn
        self.s = check_ident(schema)
        #: Where :data:`BUFFERED` operations and buyer messages go instead of the database
        #: (None: each written at once).
        self.buffer = buffer

    async def write_buffered(self, ops: list[p.Operation]) -> None:
        """A batch's buffered operations: its buyer messages in one statement, then one
        statement per insert-only table."""
        await self.write_buyer_messages(ops)
        by_table: dict[str, tuple[dict[str, str], list[tuple]]] = {}
        for op in ops:
            table, columns = _BUFFERED_COLUMNS[type(op)]
            by_table.setdefault(table, (columns, []))[1].append(
                tuple(getattr(op, name) for name in columns))
        for table, (columns, rows) in by_table.items():
            await insert_rows(self.c, f"{self.s}.{table}", columns, rows)

    async def write_buyer_messages(self, ops: list[p.Operation]) -> None:
        """Write the buffered buyer messages and take them out of ``ops``: one statement that
        also takes (deletes) the exclusions that arrived before their message, as
        :meth:`apply` does for one."""
        messages = [op for op in ops if isinstance(op, p.BuyerMessage)]
        if not messages:
            return
        ops[:] = [op for op in ops if not isinstance(op, p.BuyerMessage)]
        s = self.s
        await self.c.execute(
            f"""WITH rows_ AS (
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                         $5::timestamptz[]) WITH ORDINALITY
                        AS r(message_id, seller_id, buyer_id, conversation_id, submitted_at,
                             ordinal_)),
                early AS (DELETE FROM {s}.rt_excluded_early e USING rows_
                          WHERE e.message_id = rows_.message_id
                          RETURNING e.message_id, e.reason)
                INSERT INTO {s}.rt_buyer_messages (message_id, seller_id, buyer_id,
                    conversation_id, submitted_at, excluded)
                SELECT r.message_id, r.seller_id, r.buyer_id, r.conversation_id,
                       r.submitted_at, early.reason
                FROM rows_ r LEFT JOIN early USING (message_id) ORDER BY r.ordinal_
                ON CONFLICT (message_id) DO NOTHING""",
            *([getattr(m, name) for m in messages] for name in (
                "message_id", "seller_id", "buyer_id", "conversation_id", "submitted_at")),
        )

    async def apply(self, op: p.Operation) -> None:
        s = self.s
        if self.buffer is not None:
            if isinstance(op, (*BUFFERED, p.BuyerMessage)):
                self.buffer.append(op)
                return
            # A reply or an exclusion reads the buyer messages recorded before it.
            await self.write_buyer_messages(self.buffer)
        if isinstance(op, p.BuyerMessage):
            # An exclusion may have arrived first (another topic): it is kept until then, and
            # taken (deleted) as the message is written — one statement, one round trip.
            await self.c.execute(
                f"""WITH early AS (DELETE FROM {s}.rt_excluded_early WHERE message_id = $1
                                   RETURNING reason)
                    INSERT INTO {s}.rt_buyer_messages (message_id, seller_id, buyer_id,
                        conversation_id, submitted_at, excluded)
                    VALUES ($1, $2, $3, $4, $5, (SELECT reason FROM early))
                    ON CONFLICT (message_id) DO NOTHING""",
                op.message_id, op.seller_id, op.buyer_id, op.conversation_id, op.submitted_at,
            )
        elif isinstance(op, p.SellerReply):
            await self.c.execute(
                f"""UPDATE {s}.rt_buyer_messages SET answered_at = $2, reply_id = $3
                    WHERE conversation_id = $1 AND answered_at IS NULL AND submitted_at <= $2""",
                op.conversation_id, op.submitted_at, op.message_id,
            )
        elif isinstance(op, p.Excluded):
            updated = await self.c.fetchval(
                f"""UPDATE {s}.rt_buyer_messages SET excluded = coalesce(excluded, $2)
                    WHERE message_id = $1 RETURNING true""",
                op.message_id, op.reason,
            )
            if not updated:
                await self.c.execute(
                    f"INSERT INTO {s}.rt_excluded_early VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    op.message_id, op.reason,
                )
        elif isinstance(op, p.MessageSent):
            await self.c.execute(
                f"INSERT INTO {s}.message_senders VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                op.message_id, op.sender_id, op.recipient_id, op.sender_role,
            )
        elif isinstance(op, p.Report):
            await self.c.execute(
                f"INSERT INTO {s}.reports VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                op.message_id, op.reporter_id, op.reason, op.reported_at,
            )
        elif isinstance(op, p.SellerMessageApproved):
            await self.c.execute(
                f"INSERT INTO {s}.seller_daily_approved VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                op.seller_id, op.day, op.message_id,
            )
        elif isinstance(op, p.OrderPlaced):
            await self.c.execute(
                f"INSERT INTO {s}.seller_daily_orders VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                op.seller_id, op.day, op.order_id,
            )

    # -- reads --------------------------------------------------------------------------------
    async def tracked(self, seller_id: str, since: datetime, until: datetime) -> list[p.Tracked]:
        rows = await self.c.fetch(
            f"""SELECT message_id, seller_id, buyer_id, conversation_id, submitted_at,
                       answered_at, reply_id, excluded
                FROM {self.s}.rt_buyer_messages
                WHERE seller_id = $1 AND submitted_at > $2 AND submitted_at <= $3""",
            seller_id, since, until,
        )
        return [p.Tracked(**dict(r)) for r in rows]

    async def all_tracked(self, since: datetime, until: datetime) -> list[p.Tracked]:
        rows = await self.c.fetch(
            f"""SELECT message_id, seller_id, buyer_id, conversation_id, submitted_at,
                       answered_at, reply_id, excluded
                FROM {self.s}.rt_buyer_messages WHERE submitted_at > $1 AND submitted_at <= $2""",
            since, until,
        )
        return [p.Tracked(**dict(r)) for r in rows]

    async def quota(self, seller_id: str, day: date, *,
                    factor: int = quota.DEFAULT_FACTOR,
                    base: int = quota.DEFAULT_BASE) -> tuple[int, int]:
        """(messages used, the limit) of a seller's UTC ``day`` (C7, ``bsm_shared.quota``)."""
        used = await self.c.fetchval(
            f"SELECT count(*) FROM {self.s}.seller_daily_approved WHERE seller_id = $1 AND day = $2",
            seller_id, day,
        )
        first, end = quota.order_window(day)
        orders = await self.c.fetchval(
            f"""SELECT count(*) FROM {self.s}.seller_daily_orders
                WHERE seller_id = $1 AND day >= $2 AND day < $3""",
            seller_id, first, end,
        )
        return used, quota.daily_limit(orders, factor=factor, base=base)

    async def reports(self, since: datetime, until: datetime) -> tuple[
        list[p.Report], dict[str, p.MessageSent]
    ]:
        rows = await self.c.fetch(
            f"""SELECT r.message_id, r.reporter_id, r.reason, r.reported_at,
                       m.sender_id, m.recipient_id, m.sender_role
                FROM {self.s}.reports r LEFT JOIN {self.s}.message_senders m USING (message_id)
                WHERE r.reported_at > $1 AND r.reported_at <= $2""",
            since, until,
        )
        reports = [p.Report(r["message_id"], r["reporter_id"], r["reason"], r["reported_at"])
                   for r in rows]
        senders = {
            r["message_id"]: p.MessageSent(r["message_id"], r["sender_id"], r["recipient_id"],
                                           r["sender_role"])
            for r in rows if r["sender_id"] is not None
        }
        return reports, senders


async def dump(conn: asyncpg.Connection, schema: str) -> dict[str, set[tuple]]:
    """Every row of every projection table (to compare a replay with the live state)."""
    s = check_ident(schema)
    return {
        name: {tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {s}.{name}")}
        for name in TABLES
    }
