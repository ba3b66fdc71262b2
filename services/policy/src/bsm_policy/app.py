"""Composition root and adapter of the policy service.

Consumes ``bsm.parties`` (roles, buyer opt-outs, seller settings, sanctions), ``bsm.orders``
(order facts) and ``bsm.messages.addressed`` (verified: only the alias service may write it);
produces ``bsm.messages.policy-checked`` and, when the sanction ladder moves (C10),
``SellerMessagingRestricted`` on ``bsm.parties``. Consumer group ``bsm.policy``; ack policy in
:func:`bsm_shared.runtime.kafka.subscribe`. A message about an order not seen yet is parked
until the order arrives or ``order_wait_seconds`` pass (then stopped).

The rules themselves are in :mod:`bsm_policy.engine` (pure); this module only gathers the facts
the engine needs from the service's tables, applies the decision's effects (the daily counter,
the violation history) and publishes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from faststream import FastStream

from bsm_shared.contract import PolicyCheckedEvent
from bsm_shared.contract.events import SellerMessagingRestrictedEvent
from bsm_shared.contract.payloads import (
    BuyerPreferencesChanged,
    MessageAddressed,
    OrderPlaced,
    OrderStatusChanged,
    PartyErased,
    PartyRegistered,
    PolicyChecked,
    SellerMessagingRestricted,
    SellerMessagingRestrictionLifted,
    SellerSettingsChanged,
)
from bsm_shared import attachments as file_types
from bsm_shared import quota
from bsm_shared.blobs import BlobNotFound, BlobTooLarge, LocalBlobStore
from bsm_shared.contract.wire import build_event, derived_event_id
from bsm_shared.runtime.consumer import BatchHooks, Defer, Incoming, Outgoing
from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.keyring import Keyring
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from . import content, engine
from .settings import PolicySettings

PRODUCER = "policy"


def migrations(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.orders (
            order_id   text PRIMARY KEY,
            buyer_id   text,
            seller_id  text,
            placed_at  timestamptz,
            fulfilment text,
            items      jsonb,
            status     text NOT NULL DEFAULT 'pending',
            status_changed_at timestamptz
        )""",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS delivered_at timestamptz",
        f"ALTER TABLE {s}.orders ADD COLUMN IF NOT EXISTS completed_at timestamptz",
        f"CREATE INDEX IF NOT EXISTS orders_seller_placed ON {s}.orders (seller_id, placed_at)",
        f"""CREATE TABLE IF NOT EXISTS {s}.parties (
            party_id text PRIMARY KEY,
            role     text NOT NULL,
            locale   text NOT NULL DEFAULT 'en-US'
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.buyers (
            buyer_id  text PRIMARY KEY,
            opted_out boolean NOT NULL DEFAULT false
        )""",
        # A seller's messaging switch (NULL: the fulfilment's default), and the sanction
        # ladder: the step in force, how many steps were taken, since when strikes count.
        f"""CREATE TABLE IF NOT EXISTS {s}.sellers (
            seller_id          text PRIMARY KEY,
            messaging_enabled  boolean,
            fulfilment         text NOT NULL DEFAULT 'merchant',
            restriction_level  text,
            restriction_starts timestamptz,
            restriction_until  timestamptz,
            steps              integer NOT NULL DEFAULT 0,
            strikes_since      timestamptz
        )""",
        # Buyers who already have a conversation with a seller (C8: they may still write
        # while the seller's messaging is off).
        f"""CREATE TABLE IF NOT EXISTS {s}.contacts (
            seller_id text NOT NULL,
            buyer_id  text NOT NULL,
            PRIMARY KEY (seller_id, buyer_id)
        )""",
        # C7: one row per seller and UTC day, incremented with a guarded UPSERT (atomic across
        # any number of policy instances: the row lock serialises concurrent increments, and
        # the WHERE re-checks the count after the lock).
        f"""CREATE TABLE IF NOT EXISTS {s}.daily_counts (
            seller_id text NOT NULL,
            day       date NOT NULL,
            sent      integer NOT NULL,
            PRIMARY KEY (seller_id, day)
        )""",
        # C10: the violation history, one row per rejected seller message (a strike).
        f"""CREATE TABLE IF NOT EXISTS {s}.violations (
            seller_id  text NOT NULL,
            message_id text NOT NULL,
            at         timestamptz NOT NULL,
            rules      text[] NOT NULL,
            codes      text[] NOT NULL,
            PRIMARY KEY (seller_id, message_id)
        )""",
    ]


def _order_facts(row: Any) -> engine.OrderFacts:
    items = json.loads(row["items"]) if row["items"] else []
    return engine.OrderFacts(
        order_id=row["order_id"], buyer_id=row["buyer_id"], seller_id=row["seller_id"],
        status=row["status"], fulfilment=row["fulfilment"] or "merchant",
        categories=frozenset(i.get("category", "general") for i in items),
        handmade=any(i.get("handmade") for i in items), custom=any(i.get("custom") for i in items),
        wine=any(i.get("wine") for i in items), placed_at=row["placed_at"],
        status_changed_at=row["status_changed_at"], delivered_at=row["delivered_at"],
        completed_at=row["completed_at"],
    )


_MISSING: Any = object()


@dataclass
class Loaded:
    """The facts a batch of messages is decided on, read by ``PolicyHandlers.preload`` with one
    query per table. A key present maps to its row (``None``: known absent); a key not present
    was not loaded and is read when asked. The batch's own writes keep it true: a quota slot
    taken, a contact made, a seller struck (forgotten: read again)."""

    orders: dict[str, Any] = field(default_factory=dict)
    sellers: dict[str, Any] = field(default_factory=dict)
    buyers: dict[str, Any] = field(default_factory=dict)
    contacts: dict[tuple[str, str], bool] = field(default_factory=dict)
    orders_30: dict[tuple[str, date], int] = field(default_factory=dict)
    sent: dict[tuple[str, date], int] = field(default_factory=dict)


def _parties(msg: MessageAddressed) -> tuple[str, str]:
    """(seller, buyer) of a message."""
    if msg.sender_role == "seller":
        return msg.sender_party_id, msg.recipient_party_id
    return msg.recipient_party_id, msg.sender_party_id


class PolicyHandlers(BatchHooks):
    def __init__(self, rt: ServiceRuntime, settings: PolicySettings, keyring: Keyring) -> None:
        self.rt = rt
        self.settings = settings
        self.s = check_ident(rt.schema)
        self.keyring = keyring
        #: Where attachments can be read (None: not from this instance).
        self.blobs = LocalBlobStore(settings.blob_dir) if settings.blob_dir else None
        self.loaded = Loaded()

    # -- set-based loading (BatchHooks) --------------------------------------------------------
    def begin(self) -> None:
        self.loaded = Loaded()

    async def preload(self, conn: asyncpg.Connection, topic: Topic,
                      events: Sequence[Incoming]) -> None:
        """A batch of addressed messages: their orders, sellers, buyers, known contacts, and
        each seller's quota facts (C7) — six queries, instead of up to six per message."""
        if topic != Topic.ADDRESSED:
            self.loaded = Loaded()  # reference data changes: read again what follows
            return
        s, loaded = self.s, self.loaded
        msgs = [e.event.data for e in events]
        pairs = sorted({_parties(m) for m in msgs})
        order_ids = sorted({m.order_id for m in msgs if m.order_id is not None})
        rows = await conn.fetch(f"SELECT * FROM {s}.orders WHERE order_id = ANY($1::text[]) "
                                f"AND buyer_id IS NOT NULL", order_ids)
        loaded.orders.update(dict.fromkeys(order_ids))
        loaded.orders.update({r["order_id"]: r for r in rows})
        sellers = sorted({p[0] for p in pairs})
        rows = await conn.fetch(f"SELECT * FROM {s}.sellers WHERE seller_id = ANY($1::text[])",
                                sellers)
        loaded.sellers.update(dict.fromkeys(sellers))
        loaded.sellers.update({r["seller_id"]: r for r in rows})
        buyers = sorted({p[1] for p in pairs})
        rows = await conn.fetch(
            f"""SELECT q.id, b.opted_out, p.locale FROM unnest($1::text[]) AS q(id)
                LEFT JOIN {s}.buyers b ON b.buyer_id = q.id
                LEFT JOIN {s}.parties p ON p.party_id = q.id""", buyers)
        loaded.buyers.update({r["id"]: r for r in rows})
        rows = await conn.fetch(
            f"""SELECT c.seller_id, c.buyer_id FROM {s}.contacts c
                JOIN unnest($1::text[], $2::text[]) AS q(seller_id, buyer_id)
                  USING (seller_id, buyer_id)""",
            [p[0] for p in pairs], [p[1] for p in pairs])
        loaded.contacts.update(dict.fromkeys(pairs, False))
        loaded.contacts.update({(r["seller_id"], r["buyer_id"]): True for r in rows})
        days = sorted({(m.sender_party_id, quota.quota_day(m.submitted_at))
                       for m in msgs if m.sender_role == "seller"})
        if days:
            windows = [self._window(day) for _, day in days]
            rows = await conn.fetch(
                f"""SELECT q.seller_id, q.day, count(o.order_id) AS n
                    FROM unnest($1::text[], $2::date[], $3::timestamptz[], $4::timestamptz[])
                         AS q(seller_id, day, first, ends)
                    LEFT JOIN {s}.orders o ON o.seller_id = q.seller_id
                         AND o.placed_at >= q.first AND o.placed_at < q.ends
                    GROUP BY q.seller_id, q.day""",
                [d[0] for d in days], [d[1] for d in days], [w[0] for w in windows],
                [w[1] for w in windows])
            loaded.orders_30.update({(r["seller_id"], r["day"]): int(r["n"]) for r in rows})
            rows = await conn.fetch(
                f"""SELECT d.seller_id, d.day, d.sent FROM {s}.daily_counts d
                    JOIN unnest($1::text[], $2::date[]) AS q(seller_id, day)
                      USING (seller_id, day)""",
                [d[0] for d in days], [d[1] for d in days])
            loaded.sent.update(dict.fromkeys(days, 0))
            loaded.sent.update({(r["seller_id"], r["day"]): r["sent"] for r in rows})

    @staticmethod
    def _window(day: date) -> tuple[datetime, datetime]:
        """The 30 UTC days of orders C7's limit is computed from, as instants."""
        first, end = (datetime(d.year, d.month, d.day, tzinfo=UTC)
                      for d in quota.order_window(day))
        return first, end

    async def _loaded(self, table: dict[Any, Any], key: Any,
                      read: Callable[[], Awaitable[Any]]) -> Any:
        """``table[key]`` if the batch preloaded it, else ``read()``."""
        value = table.get(key, _MISSING)
        return await read() if value is _MISSING else value

    # -- bsm.parties -------------------------------------------------------------------------
    async def on_parties(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        data = incoming.event.data
        s = self.s
        if isinstance(data, PartyRegistered):
            await conn.execute(
                f"""INSERT INTO {s}.parties (party_id, role, locale) VALUES ($1, $2, $3)
                    ON CONFLICT (party_id) DO UPDATE SET role = EXCLUDED.role,
                        locale = EXCLUDED.locale""",
                data.party_id, data.role, data.locale,
            )
        elif isinstance(data, PartyErased):
            self.keyring.forget(data.party_id)  # its name can no longer be opened here
        elif isinstance(data, BuyerPreferencesChanged):
            await conn.execute(
                f"""INSERT INTO {s}.buyers (buyer_id, opted_out) VALUES ($1, $2)
                    ON CONFLICT (buyer_id) DO UPDATE SET opted_out = EXCLUDED.opted_out""",
                data.buyer_id, data.unsolicited_opt_out,
            )
        elif isinstance(data, SellerSettingsChanged):
            # Only the fields present changed: NULL keeps the stored value.
            await conn.execute(
                f"""INSERT INTO {s}.sellers (seller_id, messaging_enabled, fulfilment)
                    VALUES ($1, $2, COALESCE($3, 'merchant'))
                    ON CONFLICT (seller_id) DO UPDATE SET
                        messaging_enabled = COALESCE($2, {s}.sellers.messaging_enabled),
                        fulfilment = COALESCE($3, {s}.sellers.fulfilment)""",
                data.seller_id, data.messaging_enabled, data.fulfilment,
            )
        elif isinstance(data, SellerMessagingRestricted):
            # Our own event coming back (we already applied it when we decided it), or one
            # replayed from the log: applying it again leaves the same state.
            await conn.execute(
                f"""INSERT INTO {s}.sellers (seller_id, restriction_level, restriction_starts,
                        restriction_until, steps, strikes_since)
                    VALUES ($1, $2, $3, $4, 1, $3)
                    ON CONFLICT (seller_id) DO UPDATE SET restriction_level = $2,
                        restriction_starts = $3, restriction_until = $4,
                        strikes_since = GREATEST({s}.sellers.strikes_since, $3)
                    WHERE {s}.sellers.restriction_starts IS DISTINCT FROM $3""",
                data.seller_id, data.level, data.starts_at, data.until,
            )
        elif isinstance(data, SellerMessagingRestrictionLifted):
            # Lifted: nothing in force, and only violations after the lift count again.
            await conn.execute(
                f"""INSERT INTO {s}.sellers (seller_id, strikes_since) VALUES ($1, $2)
                    ON CONFLICT (seller_id) DO UPDATE SET restriction_level = NULL,
                        restriction_starts = NULL, restriction_until = NULL,
                        strikes_since = $2""",
                data.seller_id, data.lifted_at,
            )
        return []

    # -- bsm.orders --------------------------------------------------------------------------
    async def on_orders(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        data = incoming.event.data
        if isinstance(data, OrderPlaced):
            await conn.execute(
                f"""INSERT INTO {self.s}.orders (order_id, buyer_id, seller_id, placed_at,
                        fulfilment, items) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (order_id) DO UPDATE SET buyer_id = EXCLUDED.buyer_id,
                        seller_id = EXCLUDED.seller_id, placed_at = EXCLUDED.placed_at,
                        fulfilment = EXCLUDED.fulfilment, items = EXCLUDED.items""",
                data.order_id, data.buyer_id, data.seller_id, data.placed_at, data.fulfilment,
                json.dumps([i.model_dump() for i in data.items]),
            )
            incoming.released.append(f"order:{data.order_id}")
        elif isinstance(data, OrderStatusChanged):
            # Status changes may overtake each other across replays and partitions' timing: the
            # core folds them (engine.fold_status: the latest by its own time sets the status,
            # the first delivery and completion start the windows); here only load and store.
            row = await conn.fetchrow(
                f"SELECT * FROM {self.s}.orders WHERE order_id = $1 FOR UPDATE", data.order_id)
            known = (_order_facts(row) if row is not None
                     else engine.OrderFacts(data.order_id, "", ""))  # status before the order
            folded = engine.fold_status(known, data.status, data.changed_at)
            await conn.execute(
                f"""INSERT INTO {self.s}.orders (order_id, status, status_changed_at,
                        delivered_at, completed_at) VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                        status_changed_at = EXCLUDED.status_changed_at,
                        delivered_at = EXCLUDED.delivered_at,
                        completed_at = EXCLUDED.completed_at""",
                data.order_id, folded.status, folded.status_changed_at, folded.delivered_at,
                folded.completed_at,
            )
        return []

    # -- bsm.messages.addressed --------------------------------------------------------------
    async def _context(self, conn: asyncpg.Connection, msg: MessageAddressed) -> engine.Context:
        s, loaded = self.s, self.loaded
        order = None
        if msg.order_id is not None:
            row = await self._loaded(loaded.orders, msg.order_id, lambda: conn.fetchrow(
                f"SELECT * FROM {s}.orders WHERE order_id = $1 AND buyer_id IS NOT NULL",
                msg.order_id))
            order = _order_facts(row) if row else None
        seller_id, buyer_id = _parties(msg)
        srow = await self._loaded(loaded.sellers, seller_id, lambda: conn.fetchrow(
            f"SELECT * FROM {s}.sellers WHERE seller_id = $1", seller_id))
        brow = await self._loaded(loaded.buyers, buyer_id, lambda: conn.fetchrow(
            f"""SELECT b.opted_out, p.locale FROM (SELECT $1::text AS id) q
                LEFT JOIN {s}.buyers b ON b.buyer_id = q.id
                LEFT JOIN {s}.parties p ON p.party_id = q.id""",
            buyer_id))
        known = await self._loaded(
            loaded.contacts, (seller_id, buyer_id), lambda: conn.fetchval(
                f"SELECT true FROM {s}.contacts WHERE seller_id = $1 AND buyer_id = $2",
                seller_id, buyer_id))
        restriction = None
        if srow is not None and srow["restriction_level"]:
            restriction = engine.Restriction(
                srow["restriction_level"], srow["restriction_starts"], srow["restriction_until"]
            )
        limit = sent = None
        if msg.sender_role == "seller":
            day = quota.quota_day(msg.submitted_at)
            first, end = self._window(day)
            orders_30 = await self._loaded(
                loaded.orders_30, (seller_id, day), lambda: conn.fetchval(
                    f"""SELECT count(*) FROM {s}.orders WHERE seller_id = $1
                        AND placed_at >= $2 AND placed_at < $3""",
                    seller_id, first, end))
            limit = quota.daily_limit(int(orders_30), factor=self.settings.daily_limit_factor,
                                      base=self.settings.daily_limit_base)
            sent = await self._loaded(loaded.sent, (seller_id, day), lambda: conn.fetchval(
                f"SELECT sent FROM {s}.daily_counts WHERE seller_id = $1 AND day = $2",
                seller_id, day,
            )) or 0
        seller = engine.SellerFacts(
            seller_id=seller_id,
            messaging_enabled=srow["messaging_enabled"] if srow else None,
            fulfilment=srow["fulfilment"] if srow else "merchant",
            restriction=restriction, daily_limit=limit, sent_today=sent or 0,
        )
        buyer = engine.BuyerFacts(
            buyer_id=buyer_id, opted_out=bool(brow and brow["opted_out"]),
            region=engine.region_of((brow and brow["locale"]) or msg.recipient_locale
                                    if msg.sender_role == "seller" else msg.sender_locale),
        )
        return engine.Context(
            order=order, seller=seller, buyer=buyer, recipient_role=msg.recipient_role,
            known_buyer=bool(known), mail_domain=self.settings.mail_domain,
        )

    async def _files(self, msg: MessageAddressed) -> tuple[dict[str, str], dict[str, int]]:
        """What the attachments are, read from the blob store where this instance can see it:
        per sha256 the type judged from the content (B4's list, ``bsm_shared.attachments``,
        as the doors judge it: a reference's declared type is not taken on trust) and, for a
        GIF, its frame count (the reference alone cannot tell an animated GIF, C4)."""
        types: dict[str, str] = {}
        frames: dict[str, int] = {}
        if self.blobs is None:
            return types, frames
        for att in msg.attachments:
            try:
                found = await self.blobs.head(att.sha256, file_types.HEAD_BYTES)
                types[att.sha256] = file_types.content_type(
                    file_types.judge(found.head, att.filename))
                if types[att.sha256] == "image/gif":
                    frames[att.sha256] = content.gif_frame_count(
                        await self.blobs.get(att.sha256))
            except (BlobNotFound, BlobTooLarge, OSError):
                continue  # not readable here: the declared type is judged
        return types, frames

    async def on_addressed(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        msg: MessageAddressed = incoming.event.data  # type: ignore[assignment]
        s = self.s
        wait = self.settings.order_wait_seconds
        ctx = await self._context(conn, msg)
        ctx = replace(ctx, wait_over=incoming.expired or wait <= 0)
        name = await self.keyring.open(conn, msg.sender_display_name, "display_name",
                                       party_id=msg.sender_party_id) or ""
        try:
            types, frames = await self._files(msg)
            decision = engine.decide(msg, ctx, gif_frames=frames, content_types=types,
                                     sender_name=name)
        except engine.WaitForOrder:
            raise Defer(f"order:{msg.order_id}", wait) from None
        out: list[Outgoing] = []
        seller = ctx.seller
        assert seller is not None and ctx.buyer is not None
        if decision.verdict == "approved" and decision.counts_towards_limit:
            day = quota.quota_day(msg.submitted_at)
            taken = await conn.fetchval(
                f"""INSERT INTO {s}.daily_counts (seller_id, day, sent) VALUES ($1, $2, 1)
                    ON CONFLICT (seller_id, day) DO UPDATE SET sent = {s}.daily_counts.sent + 1
                    WHERE {s}.daily_counts.sent < $3
                    RETURNING sent""",
                seller.seller_id, day, seller.daily_limit,
            )
            self.loaded.sent[(seller.seller_id, day)] = (
                taken if taken is not None else seller.daily_limit or 0)
            if taken is None:
                # Another instance took the last slot between our read and our increment.
                full = replace(seller, sent_today=seller.daily_limit or 0)
                decision = engine.decide(msg, replace(ctx, seller=full), sender_name=name)
        if decision.verdict == "approved" and not ctx.known_buyer:
            # The first approved message of a pair makes the contact; later ones find it (read
            # in this transaction, or preloaded and kept true by the batch) and write nothing.
            await conn.execute(
                f"INSERT INTO {s}.contacts (seller_id, buyer_id) VALUES ($1, $2) "
                f"ON CONFLICT DO NOTHING",
                seller.seller_id, ctx.buyer.buyer_id,
            )
            self.loaded.contacts[(seller.seller_id, ctx.buyer.buyer_id)] = True
        elif decision.sanctionable:
            self.loaded.sellers.pop(seller.seller_id, None)  # a strike may restrict the seller
            out += await self._strike(conn, incoming, msg, decision)
        now = self.rt.clock()
        data = PolicyChecked.model_validate(
            {
                **msg.model_dump(),
                "html": decision.html,
                "verdict": decision.verdict,
                "essential": decision.essential,
                "violations": list(decision.violations),
                "checked_at": now,
            }
        )
        event = build_event(
            PolicyCheckedEvent, data,
            event_id=derived_event_id(incoming.event.event_id, PRODUCER),
            occurred_at=now, producer=PRODUCER,
            correlation_id=msg.message_id, causation_id=incoming.event.event_id,
        )
        return [Outgoing(Topic.POLICY_CHECKED, msg.relationship_id, event), *out]

    async def _strike(self, conn: asyncpg.Connection, incoming: Incoming, msg: MessageAddressed,
                      decision: engine.Decision) -> list[Outgoing]:
        """C10: record the violation; enough strikes in the window move the seller a step up
        the ladder (restricted for the first steps' days, then suspended)."""
        s, st = self.s, self.settings
        seller_id = msg.sender_party_id
        at = msg.submitted_at
        await conn.execute(
            f"""INSERT INTO {s}.violations (seller_id, message_id, at, rules, codes)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            seller_id, msg.message_id, at,
            sorted({v.rule for v in decision.violations}),
            [v.code for v in decision.violations],
        )
        # Lock the seller's row: two instances striking the same seller at once take one step.
        row = await conn.fetchrow(
            f"""INSERT INTO {s}.sellers (seller_id) VALUES ($1)
                ON CONFLICT (seller_id) DO UPDATE SET seller_id = EXCLUDED.seller_id
                RETURNING restriction_level, restriction_starts, restriction_until, steps,
                    strikes_since""",
            seller_id,
        )
        current = (
            engine.Restriction(row["restriction_level"], row["restriction_starts"],
                               row["restriction_until"])
            if row["restriction_level"] else None
        )
        ladder = engine.Ladder(st.sanction_strikes, timedelta(days=st.sanction_window_days),
                               tuple(st.sanction_restriction_days))
        if current is not None and current.active(at):
            return []  # the ladder decides nothing while a step is in force: no count needed
        strikes = await conn.fetchval(
            f"SELECT count(*) FROM {s}.violations WHERE seller_id = $1 AND at > $2 AND at <= $3",
            seller_id, engine.strikes_since(row["strikes_since"], at, ladder), at,
        )
        sanction = engine.next_sanction(current, row["steps"], int(strikes), at, ladder)
        if sanction is None:
            return []
        level, until = sanction.restriction.level, sanction.restriction.until
        await conn.execute(
            f"""UPDATE {s}.sellers SET restriction_level = $2, restriction_starts = $3,
                    restriction_until = $4, steps = $5, strikes_since = $3
                WHERE seller_id = $1""",
            seller_id, level, at, until, sanction.step,
        )
        payload = SellerMessagingRestricted(
            seller_id=seller_id, level=level, starts_at=at, until=until,
            violation_count=int(strikes),
            reason=f"{strikes} messages broke the messaging rules within "
            f"{st.sanction_window_days} days (last: {msg.message_id}: "
            f"{', '.join(sorted({v.code for v in decision.violations}))}).",
        )
        event = build_event(
            SellerMessagingRestrictedEvent, payload,
            event_id=derived_event_id(incoming.event.event_id, f"{PRODUCER}:sanction"),
            occurred_at=self.rt.clock(), producer=PRODUCER, correlation_id=seller_id,
            causation_id=incoming.event.event_id,
        )
        return [Outgoing(Topic.PARTIES, seller_id, event)]


def create_runtime(settings: PolicySettings, **kwargs: object) -> ServiceRuntime:
    holder: dict[str, PolicyHandlers] = {}

    def handlers(rt: ServiceRuntime) -> dict:
        h = holder["h"] = PolicyHandlers(rt, settings, keyring)
        # Order matters: reference data (parties, then orders) is applied before the messages
        # of the same batch.
        return {Topic.PARTIES: h.on_parties, Topic.ORDERS: h.on_orders,
                Topic.ADDRESSED: h.on_addressed}

    keyring = settings.keyring()
    return ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.POLICY,
        inputs=[Topic.PARTIES, Topic.ORDERS, Topic.ADDRESSED],
        migrations=[*migrations(settings.db_schema or PRODUCER), *keyring.migrations()],
        handlers=handlers,
        hooks=lambda _rt: holder["h"],
        **kwargs,  # type: ignore[arg-type]
    )


def create_app(settings: PolicySettings, **kwargs: object) -> FastStream:
    """The policy service as a FastStream application."""
    return create_runtime(settings, **kwargs).faststream_app()
