"""The transactional outbox relay: publishes what services recorded, in order, at least once.

Order: rows are published in ``id`` order (the order their transactions wrote them) through an
idempotent producer (``acks=all``), which keeps the order within each partition — so events with
the same key (a relationship, a party, an order) reach consumers in the order they were
recorded. That per-key order is what consumers rely on, and it holds with several instances:
a relay publishes only while it holds the schema's outbox lock (``pg_try_advisory_xact_lock``),
so at any moment one relay per schema is publishing; the others wait for their turn. (Several
relays publishing disjoint rows at once could put a later event of a key before an earlier one.)

Never blocked behind one row: a row Kafka refuses for good (too large, an invalid topic) is
marked ``failed_at`` with the error, counted (``bsm_outbox_failed_total``), logged as an ERROR,
and the rows behind it go on. A row that fails "transiently" again and again while the other
rows of its batch are published (a topic that does not exist and never will, say) is failed the
same way after ``max_row_attempts``. An outage (every row failing) is retried with capped
backoff until it ends, visible as ``bsm_outbox_oldest_unpublished_seconds``.

A crash after publishing but before marking republishes the same bytes (same ``event_id``);
consumers drop the duplicate by their ``processed_events`` table.

Retention: published rows are deleted after ``outbox_retention_hours`` (they are only a
delivery buffer: Kafka keeps the events); failed rows stay until someone looks at them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from .db import check_ident, insert_rows, is_transient
from .observe import RuntimeMetrics

log = logging.getLogger("bsm.outbox")

#: publish(topic, key, payload) -> a future that resolves when Kafka acknowledged the record.
SendFn = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[object]]]


_OUTBOX_COLUMNS = {"event_id": "uuid", "topic": "text", "key": "bytea", "payload": "bytea"}


async def add_to_outbox(
    conn: asyncpg.Connection,
    schema: str,
    rows: list[tuple[str, str, bytes | None, bytes]],
) -> None:
    """Record events to publish (event_id, topic, key, payload) in the caller's transaction.

    A re-emit of the same fact (same derived ``event_id``) is ignored by the unique index.
    One statement for the batch, whose rows take their ``id`` (the publishing order) in the
    order given.
    """
    await insert_rows(conn, f"{check_ident(schema)}.outbox", _OUTBOX_COLUMNS, rows,
                      on_conflict="ON CONFLICT (event_id) DO NOTHING")



class OutboxRelay:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, send: SendFn, *, batch_size: int = 500,
        max_row_attempts: int = 5, metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._schema = check_ident(schema)
        self._send = send
        self._batch_size = batch_size
        self._max_row_attempts = max_row_attempts
        self.metrics = metrics or RuntimeMetrics(schema)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Transient failures per row id, and how many rows were published before the first.
        self._row_failures: dict[int, tuple[int, int]] = {}
        self.published = 0
        self.failed = 0

    def wake(self) -> None:
        """Called after a transaction that added rows commits: publish soon."""
        self._wake.set()

    async def flush(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        async with self._lock:
            while True:
                n, more = await self._publish_batch()
                total += n
                if not more:
                    return total

    async def _publish_batch(self) -> tuple[int, bool]:
        """One batch: (rows published, whether more may be waiting)."""
        s = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            # One relay per schema at a time (see the module's docstring): per-key order.
            mine = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"bsm-outbox:{s}"
            )
            if not mine:
                return 0, False  # another instance's relay is publishing; it takes these rows
            rows = await conn.fetch(
                f"SELECT id, topic, key, payload FROM {s}.outbox "
                f"WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0, False
            # Send all, then wait for all acks: the idempotent producer keeps per-partition
            # order, and one round trip per batch instead of per row is what makes it fast.
            pending: list[tuple[asyncpg.Record, Awaitable[object]]] = []
            failed: list[tuple[int, str]] = []
            transient: list[tuple[asyncpg.Record, BaseException]] = []
            for r in rows:
                try:
                    pending.append((r, await self._send(r["topic"], r["key"], r["payload"])))
                except Exception as exc:  # noqa: BLE001 - sorted: the row's fault or Kafka's
                    (transient.append((r, exc)) if is_transient(exc)
                     else failed.append((r["id"], repr(exc))))
            results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
            done: list[int] = []
            for (r, _), result in zip(pending, results, strict=True):
                if not isinstance(result, BaseException):
                    done.append(r["id"])
                elif is_transient(result):
                    transient.append((r, result))
                else:
                    failed.append((r["id"], repr(result)))
            for r, exc in transient:
                # Counted against the row; failed for good only if Kafka took other rows since
                # its first failure (then Kafka is up and the row is the problem).
                n, published_then = self._row_failures.get(r["id"], (0, self.published))
                self._row_failures[r["id"]] = (n + 1, published_then)
                if n + 1 >= self._max_row_attempts and self.published + len(done) > published_then:
                    failed.append((r["id"], f"{n + 1} attempts: {exc!r}"))
            if transient and not done and not failed:
                # Nothing got through: Kafka is away. Retry the batch (caller's backoff).
                raise transient[0][1]
            if done:
                await conn.execute(
                    f"UPDATE {s}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    done,
                )
            if failed:
                await conn.executemany(
                    f"UPDATE {s}.outbox SET failed_at = now(), error = $2 WHERE id = $1", failed
                )
                for row_id, error in failed:
                    self._row_failures.pop(row_id, None)
                    log.error("outbox %s: row %d refused for good, marked failed: %s", s,
                              row_id, error)
                self.failed += len(failed)
                self.metrics.outbox_failed.labels(s).inc(len(failed))
            self.published += len(done)
            self.metrics.outbox_published.labels(s).inc(len(done))
            more = len(rows) == self._batch_size or bool(failed)
            return len(done), more

    async def run(self, poll_seconds: float = 1.0) -> None:
        attempt = 0
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
                attempt = 0
                self.metrics.retry_attempt.labels(self._schema, "outbox").set(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a relay must not die; it retries
                attempt += 1
                delay = min(30.0, 0.2 * 2 ** (attempt - 1))
                self.metrics.retries.labels(self._schema, "outbox").inc()
                self.metrics.retry_attempt.labels(self._schema, "outbox").set(attempt)
                if is_transient(exc) and attempt % 10:
                    log.warning("outbox relay %s: transient error, retrying in %.1fs: %r",
                                self._schema, delay, exc)
                else:
                    log.error("outbox relay %s: publishing failed %d times, retrying in %.1fs: "
                              "%r", self._schema, attempt, delay, exc)
                await asyncio.sleep(delay)
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
