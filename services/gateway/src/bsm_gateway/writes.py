"""The read model's set-based writes (issue 14, item 2): what a batch's ``MessageAddressed`` and
``Delivered`` events change, buffered by the handlers and written with one statement per table
instead of four to six statements per message.

The consumer applies a batch topic by topic (reference data first, see
``bsm_shared.runtime.consumer.BatchHooks``); the buffers are written before the next topic's
first event (``preload``) and at the batch's end (``end``), so every handler of a later topic
sees the rows of the earlier ones, exactly as if each event had written its own. Applied event
by event (isolation), the consumer calls ``begin``/``end`` around each event: the buffers then
hold one event's rows and are written inside its savepoint.

Rows that meet twice in one buffer are resolved as statements in event order would resolve
them: ``ON CONFLICT DO NOTHING`` keeps the first (as it does within one statement); a second
upsert or update of the same message writes the buffer first, so no statement touches a row
twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from bsm_shared.runtime.db import check_ident

#: A message's status only moves forward (events of different topics arrive in any order).
STATUS_FORWARD = """CASE WHEN m.status IN ('delivered', 'bounced') THEN m.status ELSE {new} END"""

_MESSAGE_COLUMNS = ("message_id", "conversation_id", "relationship_id", "order_id",
                    "sender_party_id", "recipient_party_id", "sender_role", "channel",
                    "contact_reason", "subject", "text", "html", "in_reply_to", "attachments",
                    "submitted_at", "status")
_MESSAGE_TYPES = ("text",) * 13 + ("jsonb", "timestamptz", "text")


def message_row(d: Any, status: str) -> tuple:
    """The messages row an addressed or delivered message gives (``_MESSAGE_COLUMNS``)."""
    return (d.message_id, d.conversation_id, d.relationship_id, d.order_id, d.sender_party_id,
            d.recipient_party_id, d.sender_role, getattr(d, "channel", None),
            getattr(d, "contact_reason", None), d.subject, d.text, d.html, d.in_reply_to,
            json.dumps([a.model_dump(mode="json") for a in d.attachments]), d.submitted_at,
            status)


@dataclass
class MessageWrites:
    schema: str
    conversations: list[tuple] = field(default_factory=list)
    aliases: list[tuple] = field(default_factory=list)
    names: list[tuple[str, str]] = field(default_factory=list)
    messages: dict[str, tuple] = field(default_factory=dict)
    delivered: dict[str, tuple] = field(default_factory=dict)
    owners: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.schema = check_ident(self.schema)

    def clear(self) -> None:
        self.conversations.clear()
        self.aliases.clear()
        self.names.clear()
        self.messages.clear()
        self.delivered.clear()
        self.owners.clear()

    def __bool__(self) -> bool:
        return bool(self.conversations or self.aliases or self.names or self.messages
                    or self.delivered or self.owners)

    # -- what the handlers add ------------------------------------------------------------------
    def conversation(self, *row: Any) -> None:
        self.conversations.append(row)

    def alias(self, *row: Any) -> None:
        self.aliases.append(row)

    def name(self, party_id: str, sealed: str) -> None:
        self.names.append((party_id, sealed))

    def own(self, party_id: str | None, hashes: list[str]) -> None:
        if party_id:
            self.owners.update((h, party_id) for h in hashes)

    async def message(self, conn: asyncpg.Connection, row: tuple) -> None:
        if row[0] in self.messages or row[0] in self.delivered:
            await self.flush(conn)
        self.messages[row[0]] = row

    async def deliver(self, conn: asyncpg.Connection, message_id: str, delivered_at: datetime,
                      subject: str, text: str, html: str | None) -> None:
        if message_id in self.delivered:
            await self.flush(conn)
        self.delivered[message_id] = (message_id, delivered_at, subject, text, html)

    # -- one statement per table ------------------------------------------------------------------
    async def flush(self, conn: asyncpg.Connection) -> None:
        if not self:
            return
        s = self.schema
        if self.conversations:
            await conn.execute(
                f"""INSERT INTO {s}.conversations (conversation_id, relationship_id, buyer_id,
                    seller_id, order_id, started_by, subject, started_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::text[], $6::text[], $7::text[], $8::timestamptz[])
                    ON CONFLICT DO NOTHING""", *_columns(self.conversations, 8))
        if self.aliases:
            await conn.execute(
                f"""INSERT INTO {s}.relationship_aliases
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::text[]) ON CONFLICT DO NOTHING""", *_columns(self.aliases, 5))
        if self.names:
            await conn.execute(
                f"""INSERT INTO {s}.party_names (party_id, display_name)
                    SELECT * FROM unnest($1::text[], $2::text[])
                    ON CONFLICT (party_id) DO NOTHING""", *_columns(self.names, 2))
        if self.messages:
            unnest = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_MESSAGE_TYPES, start=1))
            await conn.execute(
                f"""INSERT INTO {s}.messages AS m ({', '.join(_MESSAGE_COLUMNS)})
                    SELECT * FROM unnest({unnest})
                    ON CONFLICT (message_id) DO UPDATE SET
                    conversation_id = EXCLUDED.conversation_id,
                    relationship_id = EXCLUDED.relationship_id,
                    order_id = COALESCE(EXCLUDED.order_id, m.order_id),
                    sender_party_id = EXCLUDED.sender_party_id,
                    recipient_party_id = EXCLUDED.recipient_party_id,
                    sender_role = EXCLUDED.sender_role,
                    in_reply_to = COALESCE(EXCLUDED.in_reply_to, m.in_reply_to),
                    status = {STATUS_FORWARD.format(new="EXCLUDED.status")}""",
                *_columns(list(self.messages.values()), len(_MESSAGE_COLUMNS)))
        if self.delivered:
            # The delivered text is what the recipient saw (delivery sanitizes HTML). A message
            # that bounced before delivery is never delivered after: the status stays final
            # whatever order the topics are read in.
            await conn.execute(
                f"""UPDATE {s}.messages AS m SET delivered_at = u.delivered_at,
                    status = CASE WHEN m.status = 'bounced' THEN m.status ELSE 'delivered' END,
                    subject = u.subject, text = u.text, html = u.html
                    FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[],
                                $5::text[]) AS u(message_id, delivered_at, subject, text, html)
                    WHERE m.message_id = u.message_id""",
                *_columns(list(self.delivered.values()), 5))
        if self.owners:
            await insert_owners(conn, s, sorted(self.owners))
        self.clear()


async def insert_owners(conn: Any, schema: str, pairs: list[tuple[str, str]]) -> None:
    """Record who may reference which attachments: ``(sha256, party_id)`` pairs, one
    statement (see ``attachment_owners``)."""
    if pairs:
        await conn.execute(
            f"""INSERT INTO {check_ident(schema)}.attachment_owners (sha256, party_id)
                SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING""",
            *_columns(pairs, 2))


def _columns(rows: list[tuple], width: int) -> list[list[Any]]:
    """Rows as the column arrays ``unnest`` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width
