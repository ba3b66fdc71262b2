"""Composition root and adapter of the policy service.

Consumes ``bsm.orders`` (order facts) and ``bsm.messages.addressed`` (verified: only the alias
service may write it); produces ``bsm.messages.policy-checked``. Consumer group ``bsm.policy``;
ack policy in :func:`bsm_shared.runtime.kafka.subscribe`. A message about an order not seen
yet is parked until the order arrives or ``order_wait_seconds`` pass (then stopped).
"""

from __future__ import annotations

import json

import asyncpg
from faststream import FastStream

from bsm_shared.contract import PolicyCheckedEvent
from bsm_shared.contract.payloads import (
    MessageAddressed,
    OrderPlaced,
    OrderStatusChanged,
    PolicyChecked,
)
from bsm_shared.contract.wire import build_event, derived_event_id
from bsm_shared.runtime.consumer import Defer, Incoming, Outgoing
from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from . import core
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
    ]


class PolicyHandlers:
    def __init__(self, rt: ServiceRuntime, settings: PolicySettings) -> None:
        self.rt = rt
        self.settings = settings
        self.s = check_ident(rt.schema)

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
            # Status changes may overtake each other across replays: the latest change wins,
            # judged by the event's own time, never by processing order.
            await conn.execute(
                f"""INSERT INTO {self.s}.orders (order_id, status, status_changed_at)
                    VALUES ($1, $2, $3)
                    ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,
                        status_changed_at = EXCLUDED.status_changed_at
                    WHERE {self.s}.orders.status_changed_at IS NULL
                       OR {self.s}.orders.status_changed_at <= EXCLUDED.status_changed_at""",
                data.order_id, data.status, data.changed_at,
            )
        return []

    async def on_addressed(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        msg: MessageAddressed = incoming.event.data  # type: ignore[assignment]
        order = None
        if msg.order_id is not None:
            row = await conn.fetchrow(
                f"SELECT order_id, buyer_id, seller_id, status FROM {self.s}.orders "
                f"WHERE order_id = $1 AND buyer_id IS NOT NULL",
                msg.order_id,
            )
            order = core.OrderFacts(**dict(row)) if row else None
        wait = self.settings.order_wait_seconds
        try:
            decision = core.decide(msg, order, wait_over=incoming.expired or wait <= 0)
        except core.WaitForOrder:
            raise Defer(f"order:{msg.order_id}", wait) from None
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
        return [Outgoing(Topic.POLICY_CHECKED, msg.relationship_id, event)]


def create_runtime(settings: PolicySettings, **kwargs: object) -> ServiceRuntime:
    def handlers(rt: ServiceRuntime) -> dict:
        h = PolicyHandlers(rt, settings)
        # Order matters: orders are applied before the messages of the same batch.
        return {Topic.ORDERS: h.on_orders, Topic.ADDRESSED: h.on_addressed}

    return ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.POLICY,
        inputs=[Topic.ORDERS, Topic.ADDRESSED],
        migrations=migrations(settings.db_schema or PRODUCER),
        handlers=handlers,
        **kwargs,  # type: ignore[arg-type]
    )


def create_app(settings: PolicySettings, **kwargs: object) -> FastStream:
    """The policy service as a FastStream application."""
    return create_runtime(settings, **kwargs).faststream_app()
