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
from .db import create_pool, migrate
from .kafka import make_broker, subscribe
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
        #: Called after every transaction that recorded effects (wakes the relay, workers).
        self.committed_callbacks: list[Callable[[], None]] = []
        if inputs:
            subscribe(
                self.broker, self, topics=self.topics, inputs=list(inputs), group=group,
                max_records=max_records,
            )

    async def consume(self, records: list[Record]) -> None:
        assert self.consumer is not None, "consume before start"
        await self.consumer.consume(records)

    async def send(self, topic: str, key: bytes | None, payload: bytes) -> Any:
        """Publish raw bytes; returns the ack future (the relay awaits a batch of them)."""
        return await self.broker.publish(payload, topic=topic, key=key, no_confirm=True)

    async def start(self) -> None:
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
        self.relay = OutboxRelay(self.pool, self.schema, self.send)
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
        )

    def _committed(self) -> None:
        assert self.relay is not None
        self.relay.wake()
        for callback in self.committed_callbacks:
            callback()

    async def record(self, conn: asyncpg.Connection, out: Sequence[Outgoing]) -> None:
        """Put events to publish into the outbox, in the caller's transaction."""
        assert self.consumer is not None
        rows = self.consumer.wire(out)
        await add_to_outbox(conn, self.schema, [(UUID(e), t, k, p) for e, t, k, p in rows])

    async def start_background(self) -> None:
        """After the broker is connected: the relay, the sweeper and the service's own tasks."""
        assert self.relay is not None and self.consumer is not None
        self.relay.start()
        self.relay.wake()  # publish whatever an earlier run left in the outbox
        self._tasks.append(asyncio.create_task(self.consumer.run_sweeper(), name="sweeper"))
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

    async def stop(self) -> None:
        """After the broker disconnected: close the pool."""
        if self._tasks or (self.relay is not None and self.relay._task is not None):
            await self.stop_background()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

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
