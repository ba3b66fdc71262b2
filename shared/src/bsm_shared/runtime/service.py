"""What every consuming service does the same way, composed once per service.

A :class:`ServiceRuntime` owns the broker, the pool, the outbox relay, the event consumer and
the deferred-event sweeper of one service. Nothing connects when it is built: connections open
in :meth:`start` (FastStream's ``on_startup`` or FastAPI's ``lifespan``) and close in
:meth:`stop`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from faststream import FastStream

from ..topics import Group, Topic
from .consumer import BatchHooks, EventConsumer, Handler, Outgoing, Record
from .db import check_ident, create_pool, is_transient, migrate, prune
from .kafka import FetchLinger, FetchMode, OffsetCommits, make_broker, subscribe
from .observe import RuntimeMetrics
from .outbox import OutboxRelay, add_to_outbox, stop_task
from .settings import ServiceSettings

log = logging.getLogger("bsm.runtime")


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        settings: ServiceSettings,
        group: Group,
        inputs: Sequence[Topic],
        migrations: Sequence[str],
        handlers: Callable[["ServiceRuntime"], dict[Topic, Handler]],
        background: Sequence[Callable[["ServiceRuntime"], Awaitable[None]]] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_records: int = 500,
        accept_untrusted: bool = False,
        hooks: Callable[["ServiceRuntime"], BatchHooks] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.schema = settings.db_schema or name
        self.topics = settings.topics()
        self.signer = settings.signer(name)
        self.verifier = settings.verifier()
        self.clock = clock
        self.broker = make_broker(settings, client_id=name)
        self._migrations = list(migrations)
        self._make_handlers = handlers
        self._background = list(background)
        self._tasks: list[asyncio.Task[None]] = []
        self._accept_untrusted = accept_untrusted
        self._make_hooks = hooks
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        self.metrics = RuntimeMetrics(name)
        self._group = group
        self.subscriber: Any = None
        #: Called after every transaction that recorded effects (wakes the relay, workers).
        self.committed_callbacks: list[Callable[[], None]] = []
        self.commits = OffsetCommits(group.value)
        if inputs:
            self.subscriber = subscribe(
                self.broker, self, topics=self.topics, inputs=list(inputs), group=group,
                max_records=max_records, linger=FetchLinger(FetchMode(
                    settings.fetch_min_bytes, settings.fetch_max_wait_ms)),
                commits=self.commits,
            )

    async def consume(self, records: list[Record]) -> None:
        assert self.consumer is not None, "consume before start"
        await self.consumer.consume(records)

    async def send(self, topic: str, key: bytes | None, payload: bytes) -> Any:
        """Publish raw bytes; returns the ack future (the relay awaits a batch of them)."""
        return await self.broker.publish(payload, topic=topic, key=key, no_confirm=True)

    async def start(self) -> None:
        """Open the pool and migrate; while PostgreSQL cannot be reached (a restart, a crash
        being recovered), wait for it — up to ``startup_wait_seconds``, saying so — instead
        of exiting at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.startup_wait_seconds
        attempt = 0
        while True:
            try:
                await self._open()
                return
            except Exception as exc:  # noqa: BLE001 - only the database's errors wait
                if not is_transient(exc) or loop.time() >= deadline:
                    raise
                attempt += 1
                log.warning("%s: PostgreSQL unavailable at start (%r); waiting (attempt %d)",
                            self.name, exc, attempt)
                if self.pool is not None:
                    await self.pool.close()
                    self.pool = None
                await asyncio.sleep(min(5.0, 0.5 * attempt))

    async def _open(self) -> None:
        dsn = self.settings.database_url.get_secret_value()
        role = self.settings.db_runtime_role
        if role:
            # Migrations need the owner's rights; the running service gets only the role's.
            owner = await create_pool(dsn, size=1)
            try:
                await migrate(owner, self.schema, self._migrations)
            finally:
                await owner.close()
            self.pool = await create_pool(dsn, size=self.settings.db_pool_size, role=role)
        else:
            self.pool = await create_pool(dsn, size=self.settings.db_pool_size)
            await migrate(self.pool, self.schema, self._migrations)
        self.relay = OutboxRelay(self.pool, self.schema, self.send, metrics=self.metrics)
        self.consumer = EventConsumer(
            name=self.name,
            pool=self.pool,
            schema=self.schema,
            topics=self.topics,
            verifier=self.verifier,
            signer=self.signer,
            handlers=self._make_handlers(self),
            on_committed=self._committed,
            clock=self.clock,
            accept_untrusted=self._accept_untrusted,
            hooks=self._make_hooks(self) if self._make_hooks else None,
            max_event_retries=self.settings.max_event_retries,
            metrics=self.metrics,
        )

    def _committed(self, wrote_outbox: bool) -> None:
        """After a consumed batch committed: the relay when it has rows to publish (a batch
        that only updated tables, most of the gateway's and metrics', does not cost a relay
        transaction), the service's workers always (delivery's jobs are rows of its own)."""
        assert self.relay is not None
        if wrote_outbox:
            self.relay.wake()
        for callback in self.committed_callbacks:
            callback()

    async def record(self, conn: asyncpg.Connection, out: Sequence[Outgoing]) -> None:
        """Put events to publish into the outbox, in the caller's transaction."""
        assert self.consumer is not None
        rows = self.consumer.seal(self.consumer.prepare(out))
        await add_to_outbox(conn, self.schema, [(UUID(e), t, k, p) for e, t, k, p in rows])

    async def start_background(self) -> None:
        """After the broker is connected: the relay, the sweeper and the service's own tasks."""
        assert self.relay is not None and self.consumer is not None
        self.relay.start()
        self.relay.wake()  # publish whatever an earlier run left in the outbox
        self._tasks.append(asyncio.create_task(self.consumer.run_sweeper(), name="sweeper"))
        self._tasks.append(asyncio.create_task(self.run_housekeeping(), name="housekeeping"))
        if self.settings.prometheus_port:
            from prometheus_client import start_http_server

            start_http_server(self.settings.prometheus_port, addr="127.0.0.1",
                              registry=self.metrics.registry)
        for job in self._background:
            self._tasks.append(asyncio.create_task(job(self), name=job.__name__))
        _ready_file(self.name, create=True)
        log.info("%s started", self.name)

    async def stop_background(self) -> None:
        """Before the broker disconnects: stop the service's tasks and flush the outbox."""
        _ready_file(self.name, create=False)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await stop_task(task, grace=5.0)
        self._tasks.clear()
        if self.relay is not None:
            await self.relay.stop()
        try:
            await self.commits.flush()  # what the last batches recorded, before the broker goes
        except Exception as exc:  # noqa: BLE001 - stopping anyway: a redelivery is deduplicated
            log.warning("%s: last offset commit failed: %r", self.name, exc)

    async def stop(self) -> None:
        """After the broker disconnected: close the pool."""
        if self._tasks or (self.relay is not None and self.relay._task is not None):
            await self.stop_background()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # -- housekeeping: what makes a stuck service visible, and what keeps tables bounded ------
    async def run_housekeeping(self, every_seconds: float = 5.0,
                               prune_every_seconds: float = 600.0) -> None:
        """Refresh the gauges every few seconds; prune every ten minutes (and at start)."""
        last_prune = -prune_every_seconds
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.observe()
                if loop.time() - last_prune >= prune_every_seconds:
                    await self.prune()
                    last_prune = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - gauges must not take the service down
                (log.warning if is_transient(exc) else log.error)(
                    "%s: housekeeping failed: %r", self.name, exc)
            await asyncio.sleep(every_seconds)

    async def observe(self) -> dict[str, float]:
        """Update the outbox, deferred and lag gauges; returns the figures (for tests)."""
        assert self.pool is not None
        s = check_ident(self.schema)
        row = await self.pool.fetchrow(
            f"""SELECT count(*) AS pending,
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest
                FROM {s}.outbox WHERE published_at IS NULL AND failed_at IS NULL"""
        )
        deferred = await self.pool.fetchval(f"SELECT count(*) FROM {s}.deferred")
        m = self.metrics
        m.outbox_pending.labels(s).set(row["pending"])
        m.outbox_oldest.labels(s).set(float(row["oldest"]))
        m.deferred.labels(s).set(deferred)
        lag = await self._lag()
        return {"outbox_pending": row["pending"], "outbox_oldest_seconds": float(row["oldest"]),
                "deferred": deferred, "lag": sum(lag.values())}

    async def _lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition: end offset minus the group's committed offset — two requests
        whatever the number of partitions (``committed(tp)`` asks the broker once per partition:
        48 OffsetFetch requests every refresh for the record)."""
        consumer = getattr(self.subscriber, "consumer", None)
        if consumer is None:
            return {}
        parts = list(consumer.assignment())
        if not parts:
            return {}
        ends = await consumer.end_offsets(parts)
        # aiokafka (0.14, pinned) has no public call for several partitions' committed offsets;
        # ``committed`` itself calls this one. tests/integration/test_service_gauges.py uses it.
        committed = await consumer._coordinator.fetch_committed_offsets(parts)
        group = self.topics.group(self._group)
        lag: dict[tuple[str, int], int] = {}
        for tp in parts:
            at = committed[tp].offset if tp in committed else -1
            lag[(tp.topic, tp.partition)] = max(0, ends.get(tp, 0) - max(at, 0))
            self.metrics.lag.labels(group, tp.topic, str(tp.partition)).set(
                lag[(tp.topic, tp.partition)])
        return lag

    async def prune(self) -> dict[str, int]:
        """Delete published outbox rows and processed ids past their retention."""
        assert self.pool is not None
        gone = await prune(self.pool, self.schema,
                           outbox_seconds=self.settings.outbox_retention_hours * 3600,
                           processed_seconds=self.settings.processed_retention_days * 86400)
        for table, n in gone.items():
            if n:
                self.metrics.pruned.labels(self.schema, table).inc(n)
                log.info("%s: pruned %d %s rows past retention", self.name, n, table)
        return gone

    def faststream_app(self) -> FastStream:
        """A FastStream application running this runtime (for services without HTTP)."""
        return FastStream(
            self.broker,
            on_startup=[self.start],
            after_startup=[self.start_background],
            on_shutdown=[self.stop_background],
            after_shutdown=[self.stop],
        )


def _ready_file(name: str, *, create: bool) -> None:
    """``$BSM_STACK_DIR/run/<name>.ready`` tells the local stack the service is up."""
    stack = os.environ.get("BSM_STACK_DIR")
    if not stack:
        return
    path = Path(stack) / "run" / f"{name}.ready"
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(os.getpid()))
    else:
        path.unlink(missing_ok=True)
