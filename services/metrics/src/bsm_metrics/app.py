"""Composition root and adapters of the metrics service: the record and its read API.

Consumes every ``bsm.*`` topic (consumer group ``bsm.metrics``; ack policy in
:func:`bsm_shared.runtime.kafka.subscribe`), verifies each event's signature once, and
appends it to the archive. Serves ``GET /health`` and ``GET /v1/orders/{order_id}/timeline``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bsm_shared.runtime.consumer import Incoming, Outgoing
from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from . import record
from .settings import MetricsSettings

PRODUCER = "metrics"


class TimelineEntry(BaseModel):
    position: int = Field(description="Position in the archive (arrival order).")
    event_id: str = Field(description="The event's id.")
    type: str = Field(description="Event name.")
    producer: str = Field(description="Who wrote it.")
    occurred_at: str = Field(description="When it happened (RFC 3339).")
    topic: str = Field(description="Topic it was read from.")
    message_id: str | None = Field(default=None, description="The message it concerns.")
    signed: bool = Field(description="Whether it carried a signature.")
    verified: bool = Field(description="Whether a trusted key's signature verified.")
    redacted: bool = Field(description="Personal data was removed before archiving.")
    event: dict[str, Any] = Field(description="The event as received (minus personal data).")


class Timeline(BaseModel):
    order_id: str = Field(description="The order.")
    events: list[TimelineEntry] = Field(description="Every event of the order, in time order.")


class Archiver:
    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt
        self.s = check_ident(rt.schema)

    async def on_event(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        raw = incoming.raw
        event, redacted = record.redact(raw)
        message_id = record.message_id_of(raw)
        order_id = record.order_id_of(raw)
        if message_id and order_id:
            await conn.execute(
                f"INSERT INTO {self.s}.message_orders (message_id, order_id) VALUES ($1, $2) "
                f"ON CONFLICT DO NOTHING",
                message_id, order_id,
            )
        elif message_id:
            order_id = await conn.fetchval(
                f"SELECT order_id FROM {self.s}.message_orders WHERE message_id = $1", message_id
            )
        e = incoming.event
        await conn.execute(
            f"""INSERT INTO {self.s}.archive (event_id, topic, partition, kafka_offset, type,
                    version, producer, occurred_at, correlation_id, causation_id, order_id,
                    message_id, signed, verified, redacted, event)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (event_id) DO NOTHING""",
            e.event_id, incoming.topic.value, incoming.partition, incoming.offset, e.type,
            e.version, e.producer, e.occurred_at, e.correlation_id, e.causation_id, order_id,
            message_id, raw.get("signature") is not None, incoming.verified, redacted,
            json.dumps(event),
        )
        return []

    async def timeline(self, order_id: str) -> Timeline:
        assert self.rt.pool is not None
        rows = await self.rt.pool.fetch(
            f"""SELECT position, event_id, type, producer, occurred_at, topic, message_id,
                       signed, verified, redacted, event
                FROM {self.s}.archive WHERE order_id = $1 ORDER BY occurred_at, position""",
            order_id,
        )
        return Timeline(
            order_id=order_id,
            events=[
                TimelineEntry(
                    position=r["position"], event_id=str(r["event_id"]), type=r["type"],
                    producer=r["producer"], occurred_at=r["occurred_at"].isoformat(),
                    topic=r["topic"], message_id=r["message_id"], signed=r["signed"],
                    verified=r["verified"], redacted=r["redacted"], event=json.loads(r["event"]),
                )
                for r in rows
            ],
        )


def create_app(settings: MetricsSettings, **kwargs: object) -> FastAPI:
    holder: dict[str, Archiver] = {}

    def handlers(rt: ServiceRuntime) -> dict:
        a = holder["a"] = Archiver(rt)
        return {t: a.on_event for t in Topic}

    rt = ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.METRICS,
        inputs=list(Topic),
        migrations=record.migrations(settings.db_schema or PRODUCER),
        handlers=handlers,
        **kwargs,  # type: ignore[arg-type]
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        await rt.broker.start()
        await rt.start_background()
        try:
            yield
        finally:
            await rt.stop_background()
            await rt.broker.stop()
            await rt.stop()

    app = FastAPI(
        title="bsm metrics",
        version="0.1.0",
        description="The record of every bsm event and the projections over it.",
        lifespan=lifespan,
    )
    app.state.runtime = rt

    @app.get("/health", summary="Liveness and readiness")
    async def health() -> dict[str, Any]:
        ok = rt.pool is not None
        return {"status": "ok" if ok else "starting", "service": PRODUCER}

    @app.get(
        "/v1/orders/{order_id}/timeline",
        response_model=Timeline,
        summary="Every event of an order, in time order (G1)",
        responses={404: {"description": "No event concerns this order."}},
    )
    async def timeline(order_id: str) -> Any:
        result = await holder["a"].timeline(order_id)
        if not result.events:
            return JSONResponse(
                status_code=404,
                content={
                    "error": "order_not_found",
                    "detail": f"No event in the record concerns order {order_id!r}.",
                    "hint": "Check the order id; events appear here within seconds of being "
                    "published.",
                },
            )
        return result

    return app
