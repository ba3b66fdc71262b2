"""The transactional outbox relay: publishes what services recorded, in order, at least once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several instances of a service can run
relays on the same table without publishing a row twice concurrently; the producer is
idempotent with ``acks=all``. A crash after publishing but before marking republishes the same
bytes (same ``event_id``); consumers drop the duplicate by their ``processed_events`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from .db import TRANSIENT_ERRORS, check_ident

log = logging.getLogger("bsm.outbox")

#: publish(topic, key, payload) -> a future that resolves when Kafka acknowledged the record.
SendFn = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[object]]]


async def add_to_outbox(
    conn: asyncpg.Connection,
    schema: str,
    rows: list[tuple[str, str, bytes | None, bytes]],
) -> None:
    """Record events to publish (event_id, topic, key, payload) in the caller's transaction.

    A re-emit of the same fact (same derived ``event_id``) is ignored by the unique index.
    """
    if rows:
        await conn.executemany(
            f"INSERT INTO {check_ident(schema)}.outbox (event_id, topic, key, payload) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


class OutboxRelay:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, send: SendFn, *, batch_size: int = 500
    ) -> None:
        self._pool = pool
        self._schema = check_ident(schema)
        self._send = send
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0

    def wake(self) -> None:
        """Called after a transaction that added rows commits: publish soon."""
        self._wake.set()

    async def flush(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        async with self._lock:
            while True:
                n = await self._publish_batch()
                total += n
                if n < self._batch_size:
                    return total

    async def _publish_batch(self) -> int:
        s = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT id, topic, key, payload FROM {s}.outbox WHERE published_at IS NULL "
                f"ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            # Send all, then wait for all acks: the idempotent producer keeps per-partition
            # order, and one round trip per batch instead of per row is what makes it fast.
            futures = [await self._send(r["topic"], r["key"], r["payload"]) for r in rows]
            await asyncio.gather(*futures)
            await conn.execute(
                f"UPDATE {s}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
            self.published += len(rows)
            return len(rows)

    async def run(self, poll_seconds: float = 1.0) -> None:
        backoff = 0.2
        # Stopping is a flag, not only a cancellation: on Python 3.11 `asyncio.wait_for` can
        # swallow a cancel that arrives as the wake-up fires, and the loop would never end.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                log.warning("outbox relay: transient error, retrying in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                self._wake.set()
            except Exception:  # noqa: BLE001 - a relay must not die; it retries with backoff
                log.exception("outbox relay: publish failed, retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        """Stop after a last flush: cancelling while a batch is between "published" and
        "marked" would make the next start publish it again (harmless, but avoidable)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await stop_task(self._task)
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)


async def stop_task(task: asyncio.Task[object], grace: float = 5.0) -> None:
    """Let a task end by itself for ``grace`` seconds, then cancel it until it is done
    (a cancellation lost inside ``asyncio.wait_for`` on Python 3.11 is sent again)."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    while not done:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
