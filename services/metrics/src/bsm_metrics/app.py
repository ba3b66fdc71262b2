"""Composition root and adapters of the metrics service: the record, the projections, the
read API.

Consumes every ``bsm.*`` topic (consumer group ``bsm.metrics``; ack policy in
:func:`bsm_shared.runtime.kafka.subscribe`). Each event's signature is verified once, here;
the event is appended to the archive — forged or unverifiable ones too, flagged, so the record
shows them for what they are — and, when trusted, applied to the projections (response times,
quota usage, report statistics) in the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from bsm_shared.contract.limits import unstorable
from bsm_shared.record_api import Quota, ReportStats, ResponseTimes, Timeline, TimelineEntry
from bsm_shared.contract.signing import SignatureError
from bsm_shared.runtime.consumer import BatchHooks, Incoming, Outgoing
from bsm_shared.runtime.db import check_ident, insert_rows
from bsm_shared.runtime.http import UNAVAILABLE, answer_outages
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from . import projections as proj
from . import record
from .access import RequireServiceToken
from .settings import MetricsSettings
from .store import TABLES, PgProjections, projection_tables

PRODUCER = "metrics"
log = logging.getLogger("bsm.metrics")
Window = Literal["7d", "30d", "90d"]


class _Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail})


#: The archive's columns as the record writes them (the order of the rows it buffers).
ARCHIVE_COLUMNS = {
    "event_id": "uuid", "topic": "text", "partition": "int", "kafka_offset": "bigint",
    "type": "text", "version": "int", "producer": "text", "occurred_at": "timestamptz",
    "correlation_id": "text", "causation_id": "text", "order_id": "text", "message_id": "text",
    "signed": "bool", "verified": "bool", "redacted": "bool", "event": "jsonb",
    "trust_error": "text",
}


class Archiver(BatchHooks):
    """Archives events and applies them to the projections.

    Archive rows are buffered during a batch and written with one statement at its end
    (inside the batch's transaction): the record is the busiest writer of the system, five
    events a message. So are the projections' buyer messages and insert-only rows; a reply or
    an exclusion, which must find the buyer messages recorded before it in the same batch,
    writes the buffered buyer messages first (:meth:`.store.PgProjections.apply`).
    """

    def __init__(self, rt: ServiceRuntime, registry: CollectorRegistry) -> None:
        self.rt = rt
        self.s = check_ident(rt.schema)
        self.archived = Counter("bsm_events_archived", "Events appended to the record",
                                ["type", "trusted"], registry=registry)
        self._rows: list[tuple[Any, ...]] = []
        self._orders: dict[str, str] = {}
        self._ops: list[proj.Operation] = []

    def begin(self) -> None:
        self._rows, self._orders, self._ops = [], {}, []

    async def end(self, conn: asyncpg.Connection) -> None:
        if self._ops:
            await PgProjections(conn, self.s).write_buffered(self._ops)
        await insert_rows(conn, f"{self.s}.message_orders",
                          {"message_id": "text", "order_id": "text"}, list(self._orders.items()))
        await insert_rows(conn, f"{self.s}.archive", ARCHIVE_COLUMNS, self._rows,
                          on_conflict="ON CONFLICT (event_id) DO NOTHING")
        for row in self._rows:
            self.archived.labels(row[4], str(row[16] is None).lower()).inc()

    async def on_event(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        raw = incoming.raw
        event, redacted = record.redact(raw)
        message_id = record.message_id_of(raw)
        order_id = record.order_id_of(raw)
        if message_id and order_id:
            self._orders.setdefault(message_id, order_id)
        elif message_id:
            order_id = self._orders.get(message_id) or await conn.fetchval(
                f"SELECT order_id FROM {self.s}.message_orders WHERE message_id = $1", message_id
            )
        e = incoming.event
        self._rows.append((
            e.event_id, incoming.topic.value, incoming.partition, incoming.offset, e.type,
            e.version, e.producer, e.occurred_at, e.correlation_id, e.causation_id, order_id,
            message_id, raw.get("signature") is not None, incoming.verified, redacted,
            json.dumps(event), incoming.trust_error,
        ))
        if incoming.trust_error is None and e.type == "PartyErased":
            await conn.execute(
                f"INSERT INTO {self.s}.erased_parties (party_id, erased_at) VALUES ($1, $2) "
                f"ON CONFLICT DO NOTHING", e.data.party_id, e.data.erased_at,  # type: ignore[union-attr]
            )
        if incoming.trust_error is None:  # a forged event is on the record, flagged, but
            store = PgProjections(conn, self.s, self._ops)  # counts for nothing
            for op in proj.operations(raw):
                await store.apply(op)
        return []

    def check_signature(self, event: dict[str, Any], signed: bool) -> bool | None:
        if not signed:
            return None
        try:
            return self.rt.verifier.verify(event)
        except SignatureError:
            return False

    async def timeline(self, order_id: str, as_of: datetime | None) -> Timeline:
        assert self.rt.pool is not None
        rows = await self.rt.pool.fetch(
            # An event that names no order (a report, a "no response needed") belongs to its
            # message's order; when it was archived before the message's order was known (it
            # came on another topic, in an earlier batch), the link is made here, at read time
            # — the archive itself never changes.
            f"""SELECT position, event_id, type, producer, occurred_at, topic, message_id,
                       signed, verified, redacted, event, trust_error
                FROM {self.s}.archive
                WHERE (order_id = $1 OR (order_id IS NULL AND message_id IN (
                        SELECT message_id FROM {self.s}.message_orders WHERE order_id = $1)))
                  AND ($2::timestamptz IS NULL OR occurred_at <= $2)
                ORDER BY occurred_at, position""",
            order_id, as_of,
        )
        events = [json.loads(r["event"]) for r in rows]
        involved = {pid for event in events for pid in record.parties_of(event)}
        erased = {
            r["party_id"] for r in await self.rt.pool.fetch(
                f"SELECT party_id FROM {self.s}.erased_parties WHERE party_id = ANY($1::text[])",
                sorted(involved),
            )
        }
        entries = []
        for r, event in zip(rows, events, strict=True):
            valid = self.check_signature(event, r["signed"]) if not r["redacted"] else None
            flag = None
            if r["trust_error"]:
                flag = f"forged:{r['trust_error']}"
            elif r["verified"] and valid is False:
                flag = "altered"  # verified on arrival, no longer matches its signature
            entries.append(TimelineEntry(
                position=r["position"], event_id=str(r["event_id"]), type=r["type"],
                producer=r["producer"], occurred_at=r["occurred_at"].isoformat(),
                topic=r["topic"], message_id=r["message_id"], signed=r["signed"],
                signature_valid=valid, flag=flag, redacted=r["redacted"], event=event,
                erased_parties=sorted(erased & record.parties_of(event)),
            ))
        return Timeline(order_id=order_id, as_of=as_of.isoformat() if as_of else None,
                        events=entries, erased_parties=sorted(erased))


def create_app(settings: MetricsSettings, **kwargs: object) -> FastAPI:
    holder: dict[str, Archiver] = {}
    schema = settings.db_schema or PRODUCER

    def handlers(rt: ServiceRuntime) -> dict:
        a = holder["a"] = Archiver(rt, rt.metrics.registry)  # beside the runtime's own
        return {t: a.on_event for t in Topic}

    rt = ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.METRICS,
        inputs=list(Topic),
        migrations=[
            *record.migrations(schema), *projection_tables(schema),
            *(record.grants(schema, settings.db_runtime_role,
                            ["message_orders", "erased_parties", "processed_events", "outbox",
                             "deferred",
                             *TABLES]) if settings.db_runtime_role else []),
        ],
        handlers=handlers,
        hooks=lambda _rt: holder["a"],  # the same Archiver: built by `handlers` just before
        accept_untrusted=True,
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

    async def refuse_unstorable(request: Request) -> None:
        """U+0000 or a lone surrogate in a path or query value can match nothing stored (and
        PostgreSQL cannot take it as a parameter): ``422 unstorable_text`` naming it."""
        for where, items in (("path", request.path_params.items()),
                             ("query", request.query_params.multi_items())):
            for name, value in items:
                reason = unstorable(name) or unstorable(value)
                if reason is not None:
                    raise _Refusal(422, "unstorable_text",
                                   f"{where} parameter {name!r} contains {reason}")

    app = FastAPI(
        title="bsm metrics",
        version="0.2.0",
        description="The record of every bsm event (G1) and the projections over it: seller "
        "response times (F1), daily quota usage (F2), report statistics (F3).",
        lifespan=lifespan,
        dependencies=[Depends(refuse_unstorable)],
    )

    @app.exception_handler(_Refusal)
    async def refused(_: Request, exc: _Refusal) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    answer_outages(app, lambda _: _error(503, "unavailable", UNAVAILABLE), log)
    app.state.runtime = rt
    # Every path but /health needs the service credential (`.access`): the outermost layer,
    # so a caller without it learns nothing, not even which paths exist.
    app.add_middleware(
        RequireServiceToken, service_token=settings.token.get_secret_value(),
        scrape_token=settings.scrape_token.get_secret_value() if settings.scrape_token else None)

    def now() -> datetime:
        return rt.clock()

    @app.get("/health", summary="Liveness and readiness")
    async def health() -> dict[str, Any]:
        return {"status": "ok" if rt.pool is not None else "starting", "service": PRODUCER}

    @app.get(
        "/v1/orders/{order_id}/timeline",
        response_model=Timeline,
        summary="Every event of an order, in time order, each signature re-checked (G1)",
        responses={404: {"description": "No event concerns this order (as of that time)."}},
    )
    async def timeline(
        order_id: str,
        as_of: datetime | None = Query(
            default=None, description="Show the order as it stood at this instant (RFC 3339)."
        ),
    ) -> Any:
        if as_of is not None and as_of.tzinfo is None:
            return _error(422, "invalid_request", "`as_of` needs a time zone, e.g. 2026-11-01T10:00:00Z.")
        result = await holder["a"].timeline(order_id, as_of)
        if not result.events:
            return _error(404, "order_not_found",
                          f"No event in the record concerns order {order_id!r}"
                          + (f" up to {as_of.isoformat()}." if as_of else ".")
                          + " Check the order id; events appear here within seconds.")
        return result

    @app.get(
        "/v1/sellers/{seller_id}/response-times",
        response_model=ResponseTimes,
        summary="How fast a seller answers buyers (F1), from event times",
    )
    async def response_times(
        seller_id: str,
        window: Window = Query(default="30d", description="7d, 30d or 90d."),
        as_of: datetime | None = Query(default=None, description="End of the window; now."),
    ) -> Any:
        end = as_of or now()
        if end.tzinfo is None:
            return _error(422, "invalid_request", "`as_of` needs a time zone.")
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            tracked = await PgProjections(conn, rt.schema).tracked(
                seller_id, end - proj.WINDOWS[window], end)
        r = proj.response_times(tracked, seller_id=seller_id, window=window, as_of=end)
        return ResponseTimes(**{**r.__dict__, "as_of": r.as_of.isoformat()})

    @app.get("/v1/sellers/{seller_id}/quota", response_model=Quota,
             summary="A seller's daily message quota and its use (F2, C7)")
    async def quota(
        seller_id: str,
        day: date | None = Query(default=None, description="UTC day (default today)."),
    ) -> Any:
        d = day or now().astimezone(UTC).date()
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            used, limit = await PgProjections(conn, rt.schema).quota(
                seller_id, d, factor=settings.daily_limit_factor, base=settings.daily_limit_base)
        return Quota(seller_id=seller_id, day=d.isoformat(), used=used, limit=limit)

    @app.get("/v1/reports/stats", response_model=ReportStats,
             summary="Reported messages by reason and sender, and abuse patterns (F3)")
    async def report_stats(
        window: Window = Query(default="30d"),
        as_of: datetime | None = Query(default=None),
    ) -> Any:
        end = as_of or now()
        since = end - proj.WINDOWS[window]
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            reports, senders = await PgProjections(conn, rt.schema).reports(since, end)
        s = proj.report_stats(reports, senders, since=since, until=end)
        return ReportStats(since=s.since.isoformat(), until=s.until.isoformat(),
                              total=s.total, by_reason=s.by_reason, by_sender=s.by_sender,
                              flagged_senders=s.flagged_senders)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        """Counters of the record and of the runtime (consumer lag, outbox age, dead letters,
        retries: ``bsm_shared.runtime.observe``), plus F1 per seller over the last 30 days,
        computed at scrape time from the projection (for sellers with buyer messages in the
        window)."""
        end = now()
        assert rt.pool is not None
        async with rt.pool.acquire() as conn:
            tracked = await PgProjections(conn, rt.schema).all_tracked(
                end - proj.WINDOWS["30d"], end)
        by_seller: dict[str, list[proj.Tracked]] = {}
        for t in tracked:
            by_seller.setdefault(t.seller_id, []).append(t)
        scrape = CollectorRegistry()
        late = Gauge("bsm_seller_late_response_rate", "Late responses / counted buyer "
                     "messages, last 30 days (F1)", ["seller_id"], registry=scrape)
        average = Gauge("bsm_seller_average_response_seconds", "Average time to the first "
                        "reply, last 30 days (F1)", ["seller_id"], registry=scrape)
        for seller, items in by_seller.items():
            r = proj.response_times(items, seller_id=seller, window="30d", as_of=end)
            if r.late_response_rate is not None:
                late.labels(seller).set(r.late_response_rate)
            if r.average_response_time_seconds is not None:
                average.labels(seller).set(r.average_response_time_seconds)
        return Response(generate_latest(rt.metrics.registry) + generate_latest(scrape),
                        media_type=CONTENT_TYPE_LATEST)

    return app
