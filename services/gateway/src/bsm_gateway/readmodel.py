"""The gateway's read model: conversations, messages with their outcome, state and read state.

Built from the events (consumer group ``bsm.gateway`` through :class:`ServiceRuntime`:
batch subscriber, offsets committed after the transaction, idempotent by
``processed_events``). Every handler is an upsert that never moves a message backwards
(``delivered``/``bounced`` are final), because events of different topics arrive in no
guaranteed order. The only rows the gateway writes outside a handler are its own: the
``submitted`` row of a message it just published, read state and sellers' templates.
No party's email address or name is kept in plaintext here: a seller's own sender lists and
customer-service address are kept sealed with the seller's keyring key (so the settings page can
show them to the seller, and erasing the seller shreds them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from bsm_policy import engine
from bsm_shared.contract import payloads as p
from bsm_shared.runtime.consumer import BatchHooks, Incoming, Outgoing
from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.keyring import Erased, Keyring, is_party_sealed, sealed_party
from bsm_shared.runtime.transit import is_sealed
from bsm_shared.topics import Topic

from .auth import REACHED
from .writes import MessageWrites, insert_owners, message_row

INPUTS = [
    Topic.PARTIES, Topic.ORDERS, Topic.ADDRESSED, Topic.DELIVERED, Topic.BOUNCED,
    Topic.REPORTED, Topic.RESPONSE_NOT_NEEDED,
]


def migrations(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.parties (
            party_id text PRIMARY KEY, role text, locale text NOT NULL DEFAULT 'en-US',
            marketplace text NOT NULL DEFAULT 'default',
            messaging_enabled boolean NOT NULL DEFAULT true,
            unsolicited_opt_out boolean NOT NULL DEFAULT false,
            restriction text, restricted_until timestamptz, restriction_reason text)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.orders (
            order_id text PRIMARY KEY, buyer_id text, seller_id text, placed_at timestamptz,
            status text NOT NULL DEFAULT 'pending', fulfilment text)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.conversations (
            conversation_id text PRIMARY KEY, relationship_id text NOT NULL,
            buyer_id text NOT NULL, seller_id text NOT NULL, order_id text,
            started_by text NOT NULL, subject text NOT NULL DEFAULT '',
            started_at timestamptz NOT NULL)""",
        # Each side's alias in a relationship (from MessageAddressed): a seller finds the buyer's
        # orders by the alias the buyer writes from (A5). Aliases are not personal data.
        f"""CREATE TABLE IF NOT EXISTS {s}.relationship_aliases (
            relationship_id text PRIMARY KEY, buyer_id text NOT NULL, seller_id text NOT NULL,
            buyer_alias text NOT NULL UNIQUE, seller_alias text NOT NULL UNIQUE)""",
        f"CREATE INDEX IF NOT EXISTS conv_buyer ON {s}.conversations (buyer_id)",
        f"CREATE INDEX IF NOT EXISTS conv_seller ON {s}.conversations (seller_id)",
        f"CREATE INDEX IF NOT EXISTS conv_order ON {s}.conversations (order_id)",
        f"""CREATE TABLE IF NOT EXISTS {s}.messages (
            message_id text PRIMARY KEY, conversation_id text, relationship_id text,
            order_id text, sender_party_id text, recipient_party_id text, sender_role text,
            channel text, contact_reason text, subject text NOT NULL DEFAULT '',
            text text, html text, in_reply_to text, attachments jsonb NOT NULL DEFAULT '[]',
            submitted_at timestamptz NOT NULL, status text NOT NULL,
            delivered_at timestamptz, bounce jsonb,
            response_not_needed_at timestamptz, reported_at timestamptz, report_reason text,
            read_at timestamptz)""",
        f"CREATE INDEX IF NOT EXISTS msg_conv ON {s}.messages (conversation_id)",
        f"""CREATE TABLE IF NOT EXISTS {s}.templates (
            template_id text PRIMARY KEY, seller_id text NOT NULL, name text NOT NULL,
            subject text NOT NULL DEFAULT '', text text NOT NULL,
            created_at timestamptz NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS tpl_seller ON {s}.templates (seller_id)",
        # E5: a template's text per language ({"es": {"subject", "text"}, …}); `language` is
        # the one `subject`/`text` are in (rows from before: English, their only text).
        f"ALTER TABLE {s}.templates ADD COLUMN IF NOT EXISTS language text NOT NULL "
        f"DEFAULT 'en'",
        f"ALTER TABLE {s}.templates ADD COLUMN IF NOT EXISTS texts jsonb",
        # The facts the policy library's eligibility and lint calls need (added columns).
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS categories text[] NOT NULL "
        f"DEFAULT '{{}}'",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS handmade boolean NOT NULL "
        f"DEFAULT false",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS custom boolean NOT NULL DEFAULT false",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS wine boolean NOT NULL DEFAULT false",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS status_changed_at timestamptz",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS delivered_at timestamptz",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS completed_at timestamptz",
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS messaging_set boolean",
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS fulfilment text",
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS restricted_from timestamptz",
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS opt_out_bounce_notices boolean",
        # {"authorized_senders": [...], "blocked_senders": [...], "customer_service_email": …},
        # every value sealed with the seller's keyring key (pii:v1:…).
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS sender_settings jsonb",
        # Who may reference an attachment by its hash in a message of their own: the party
        # that uploaded it, the sender of a message that carried it (from the mail door, the
        # bytes came with the mail), the recipient it reached (who has the bytes). Anyone else
        # knowing a hash is refused exactly like a hash that was never uploaded.
        f"""CREATE TABLE IF NOT EXISTS {s}.attachment_owners (
            sha256 text NOT NULL, party_id text NOT NULL, PRIMARY KEY (sha256, party_id))""",
        # Rows from before the table: what the messages already say (idempotent).
        f"""INSERT INTO {s}.attachment_owners (sha256, party_id)
            SELECT DISTINCT a.value->>'sha256', p.party_id
            FROM (SELECT * FROM {s}.messages WHERE jsonb_typeof(attachments) = 'array'
                  AND attachments <> '[]'::jsonb) m
            CROSS JOIN LATERAL jsonb_array_elements(m.attachments) a
            CROSS JOIN LATERAL (VALUES (m.sender_party_id), (CASE WHEN m.status = '{REACHED}'
                                THEN m.recipient_party_id END)) p(party_id)
            WHERE p.party_id IS NOT NULL AND a.value->>'sha256' IS NOT NULL
            ON CONFLICT DO NOTHING""",
        # Parties' public names (A6), sealed with each party's keyring key (`.names`).
        f"""CREATE TABLE IF NOT EXISTS {s}.party_names (
            party_id text PRIMARY KEY, display_name text NOT NULL)""",
        # The inbox: search by order id ignoring case (`.service.inbox`), and each
        # conversation's latest message for paging (keyset on its time and id).
        f"CREATE INDEX IF NOT EXISTS conv_order_folded ON {s}.conversations (lower(order_id))",
        f"CREATE INDEX IF NOT EXISTS msg_conv_time ON {s}.messages (conversation_id, "
        f"submitted_at)",
    ]

ADDRESS_FIELDS = ("authorized_senders", "blocked_senders", "customer_service_email")


async def own_attachments(conn: Any, schema: str, party_id: str | None,
                          hashes: list[str]) -> None:
    """Record that ``party_id`` may reference these attachments (see ``attachment_owners``)."""
    if party_id:
        await insert_owners(conn, schema, [(h, party_id) for h in sorted(set(hashes))])


async def owned_attachments(conn: Any, schema: str, party_id: str,
                            hashes: list[str]) -> set[str]:
    """Which of ``hashes`` ``party_id`` may reference."""
    if not hashes:
        return set()
    rows = await conn.fetch(
        f"SELECT sha256 FROM {check_ident(schema)}.attachment_owners "
        f"WHERE party_id = $1 AND sha256 = ANY($2::text[])", party_id, list(set(hashes)))
    return {r["sha256"] for r in rows}


def visible_sql(alias: str, param: str) -> str:
    """:meth:`~.auth.Principal.may_see_message` for a buyer or seller ``param``, as a filter
    of the messages table ``alias``: what they sent, and what reached them. (The two are
    checked against each other in ``tests/integration/test_gateway_visibility.py``.)"""
    return (f"({alias}.sender_party_id = {param} OR ({alias}.recipient_party_id = {param} "
            f"AND {alias}.status = '{REACHED}'))")


class ReadModel(BatchHooks):
    """The handlers, and the batch hooks that write what they buffer (:mod:`.writes`)."""

    def __init__(self, schema: str, keyring: Keyring) -> None:
        self.s = check_ident(schema)
        self.keyring = keyring
        self.writes = MessageWrites(self.s)

    def begin(self) -> None:
        self.writes.clear()

    async def preload(self, conn: asyncpg.Connection, topic: Topic,
                      events: Sequence[Incoming]) -> None:
        await self.writes.flush(conn)  # the next topic's handlers see the earlier ones' rows

    async def end(self, conn: asyncpg.Connection) -> None:
        await self.writes.flush(conn)

    async def _sealed(self, conn: asyncpg.Connection, seller_id: str, field: str,
                      value: str) -> str | None:
        """A settings address as the read model keeps it: sealed with the seller's key. Our
        gateway sends it so already; an outside producer's plaintext is sealed here; an old
        transit-sealed value cannot be shown (the gateway holds no transit key)."""
        if is_party_sealed(value):  # ours — but only if sealed with this seller's own key
            return value if sealed_party(value) == seller_id else None
        if is_sealed(value):
            return None
        try:
            return await self.keyring.seal(conn, seller_id, f"SellerSettingsChanged.{field}", value)
        except Erased:
            return None

    async def _sender_settings(self, conn: asyncpg.Connection, d: p.SellerSettingsChanged) -> None:
        """Keep what the event says; a field the read model cannot hold completely (an old
        transit-sealed value) is stored as ``null``: unknown, never shown as empty."""
        changed: dict[str, Any] = {}
        for field in ADDRESS_FIELDS:
            value = getattr(d, field)
            if isinstance(value, list):
                sealed = [await self._sealed(conn, d.seller_id, field, v) for v in value]
                changed[field] = None if None in sealed else sealed
            elif value is not None:
                changed[field] = await self._sealed(conn, d.seller_id, field, value) if value else ""
        await conn.execute(
            f"""UPDATE {self.s}.parties SET
                sender_settings = COALESCE(sender_settings, '{{}}'::jsonb) || $2::jsonb,
                opt_out_bounce_notices = COALESCE($3, opt_out_bounce_notices)
                WHERE party_id = $1""",
            d.seller_id, json.dumps(changed), d.opt_out_bounce_notices)

    def handlers(self) -> dict[Topic, Any]:
        # Order matters: within a batch, reference data (parties, orders) is applied first.
        return {
            Topic.PARTIES: self.on_party, Topic.ORDERS: self.on_order,
            Topic.ADDRESSED: self.on_addressed, Topic.DELIVERED: self.on_delivered,
            Topic.BOUNCED: self.on_bounced, Topic.REPORTED: self.on_reported,
            Topic.RESPONSE_NOT_NEEDED: self.on_response_not_needed,
        }

    async def on_party(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d, s = incoming.event.data, self.s
        if isinstance(d, p.PartyRegistered):
            await conn.execute(
                f"""INSERT INTO {s}.parties (party_id, role, locale, marketplace)
                    VALUES ($1, $2, $3, $4) ON CONFLICT (party_id) DO UPDATE
                    SET role = $2, locale = $3, marketplace = $4""",
                d.party_id, d.role, d.locale, d.marketplace)
        elif isinstance(d, p.SellerSettingsChanged):
            # Only the fields present changed (NULL keeps the value).
            await conn.execute(
                f"""INSERT INTO {s}.parties AS x (party_id, role, messaging_enabled,
                    messaging_set, fulfilment) VALUES ($1, 'seller', COALESCE($2, true), $2, $3)
                    ON CONFLICT (party_id) DO UPDATE SET
                    messaging_enabled = COALESCE($2, x.messaging_enabled),
                    messaging_set = COALESCE($2, x.messaging_set),
                    fulfilment = COALESCE($3, x.fulfilment)""",
                d.seller_id, d.messaging_enabled, d.fulfilment)
            await self._sender_settings(conn, d)
        elif isinstance(d, p.PartyErased):
            await conn.execute(
                f"UPDATE {s}.parties SET sender_settings = NULL WHERE party_id = $1", d.party_id)
            self.keyring.forget(d.party_id)
        elif isinstance(d, p.BuyerPreferencesChanged):
            await conn.execute(
                f"""INSERT INTO {s}.parties (party_id, role, unsolicited_opt_out) VALUES ($1,
                    'buyer', $2) ON CONFLICT (party_id) DO UPDATE SET unsolicited_opt_out = $2""",
                d.buyer_id, d.unsolicited_opt_out)
        elif isinstance(d, p.SellerMessagingRestricted):
            await conn.execute(
                f"""INSERT INTO {s}.parties (party_id, role, restriction, restricted_until,
                    restriction_reason, restricted_from) VALUES ($1, 'seller', $2, $3, $4, $5)
                    ON CONFLICT (party_id) DO UPDATE SET restriction = $2,
                    restricted_until = $3, restriction_reason = $4, restricted_from = $5""",
                d.seller_id, d.level, d.until, d.reason, d.starts_at)
        elif isinstance(d, p.SellerMessagingRestrictionLifted):
            await conn.execute(
                f"""UPDATE {s}.parties SET restriction = NULL, restricted_until = NULL,
                    restriction_reason = NULL WHERE party_id = $1""", d.seller_id)
        return []

    async def on_order(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d, s = incoming.event.data, self.s
        if isinstance(d, p.OrderPlaced):
            await conn.execute(
                f"""INSERT INTO {s}.orders (order_id, buyer_id, seller_id, placed_at, fulfilment,
                    categories, handmade, custom, wine)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (order_id) DO UPDATE
                    SET buyer_id = $2, seller_id = $3, placed_at = $4, fulfilment = $5,
                    categories = $6, handmade = $7, custom = $8, wine = $9""",
                d.order_id, d.buyer_id, d.seller_id, d.placed_at, d.fulfilment,
                sorted({i.category for i in d.items}), any(i.handmade for i in d.items),
                any(i.custom for i in d.items), any(i.wine for i in d.items))
        elif isinstance(d, p.OrderStatusChanged):
            # Folded as policy folds them (``engine.fold_status``: the latest change by its own
            # time sets the status, the first delivery and completion start the windows), so
            # contact options judge the same order policy judges, whatever the arrival order.
            row = await conn.fetchrow(
                f"""SELECT status, status_changed_at, delivered_at, completed_at
                    FROM {s}.orders WHERE order_id = $1 FOR UPDATE""", d.order_id)
            known = engine.OrderFacts(d.order_id, "", "", **dict(row)) if row is not None \
                else engine.OrderFacts(d.order_id, "", "")
            folded = engine.fold_status(known, d.status, d.changed_at)
            await conn.execute(
                f"""INSERT INTO {s}.orders (order_id, status, status_changed_at, delivered_at,
                    completed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO UPDATE
                    SET status = $2, status_changed_at = $3, delivered_at = $4,
                    completed_at = $5""",
                d.order_id, folded.status, folded.status_changed_at, folded.delivered_at,
                folded.completed_at)
        return []

    async def on_addressed(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d: p.MessageAddressed = incoming.event.data  # type: ignore[assignment]
        buyer, seller = ((d.sender_party_id, d.recipient_party_id) if d.sender_role == "buyer"
                         else (d.recipient_party_id, d.sender_party_id))
        self.writes.conversation(d.conversation_id, d.relationship_id, buyer, seller, d.order_id,
                                 d.conversation_started_by, d.subject, d.submitted_at)
        buyer_alias, seller_alias = ((d.sender_alias, d.recipient_alias)
                                     if d.sender_role == "buyer"
                                     else (d.recipient_alias, d.sender_alias))
        self.writes.alias(d.relationship_id, buyer, seller, buyer_alias.lower(),
                          seller_alias.lower())
        await self.writes.message(conn, message_row(d, "addressed"))
        self.writes.own(d.sender_party_id, [a.sha256 for a in d.attachments])
        return []

    async def on_delivered(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d: p.Delivered = incoming.event.data  # type: ignore[assignment]
        await self.writes.message(conn, message_row(d, "delivered"))
        # The recipient has the files now: they may send them on (as they could re-upload).
        self.writes.own(d.recipient_party_id, [a.sha256 for a in d.attachments])
        await self.writes.deliver(conn, d.message_id, d.delivered_at, d.subject, d.text, d.html)
        return []

    async def on_bounced(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d: p.Bounced = incoming.event.data  # type: ignore[assignment]
        bounce = json.dumps({
            "stage": d.stage, "reason_code": d.reason_code, "rule": d.rule,
            "explanation": d.explanation, "remedy": d.remedy,
            "violations": [v.model_dump(mode="json") for v in d.violations],
            "bounced_at": d.bounced_at.isoformat(), "after_delivery": d.after_delivery,
        })
        # A provider's later bounce report (D1, ``after_delivery``) concerns the email copy
        # only: the message reached the recipient's mailbox here and stays delivered (in their
        # inbox, answerable, counted for response times); the bounce is kept beside it.
        status = "delivered" if d.after_delivery else "bounced"
        await conn.execute(
            f"""INSERT INTO {self.s}.messages AS m (message_id, conversation_id, relationship_id,
                order_id, sender_party_id, recipient_party_id, sender_role, submitted_at,
                status, bounce) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9)
                ON CONFLICT (message_id) DO UPDATE SET bounce = $9,
                status = CASE WHEN $10 = 'bounced' OR m.status = 'bounced' THEN 'bounced'
                              ELSE 'delivered' END,
                conversation_id = COALESCE($2, m.conversation_id),
                relationship_id = COALESCE($3, m.relationship_id)""",
            d.message_id, d.conversation_id, d.relationship_id, d.order_id, d.sender_party_id,
            d.recipient_party_id, d.sender_role, d.submitted_at or d.bounced_at, bounce, status)
        return []

    async def on_reported(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        d: p.Reported = incoming.event.data  # type: ignore[assignment]
        await conn.execute(
            f"""UPDATE {self.s}.messages SET reported_at = COALESCE(reported_at, $2),
                report_reason = COALESCE(report_reason, $3) WHERE message_id = $1""",
            d.message_id, d.reported_at, d.reason)
        return []

    async def on_response_not_needed(
        self, conn: asyncpg.Connection, incoming: Incoming
    ) -> list[Outgoing]:
        d: p.ResponseNotNeeded = incoming.event.data  # type: ignore[assignment]
        await conn.execute(
            f"""UPDATE {self.s}.messages SET response_not_needed_at =
                COALESCE(response_not_needed_at, $2) WHERE message_id = $1""",
            d.message_id, d.marked_at)
        return []
