"""The consuming side of every service: parse, verify, dead-letter, apply idempotently.

One batch of Kafka records becomes one PostgreSQL transaction:

1. Each record is decoded, its signature verified (for events that claim to come from one of
   our services, or from an outside producer the deployment holds keys for) and parsed with
   the contract's one parser. A record that fails goes to the topic's dead-letter topic with
   the error — through the outbox, in the same transaction — and the batch goes on.
2. The batch's event ids are inserted into ``processed_events`` in one statement; the ones
   already there (a redelivery) are skipped, by constraint, not by bookkeeping. Each new event's
   handler changes the service's tables and returns the events to publish, which go into the
   outbox; the batch hooks (``BatchHooks.end``: rows the handlers buffered) run last.
3. The transaction commits; only then does the subscriber commit the offsets of the
   partitions the batch read (``AckPolicy.MANUAL``, auto-commit off; ``kafka.subscribe``). If
   the process dies instead, Kafka redelivers from the last committed offset and step 2 drops
   what was already applied.

Isolation — one bad event never stops the stream behind it:

* A handler or hook that fails with an error of the *event* (anything not in
  :func:`.db.is_transient`) rolls the batch back; the batch is applied again with a savepoint
  per event — the hooks then run inside each event's savepoint too — and only the failing
  event is dead-lettered (``handler_error``), with the error.
* A transient failure (the database or the network) retries the batch with capped exponential
  backoff, counted (``bsm_retries_total``) and visible (``bsm_retry_attempt``; an ERROR line
  every ``ALARM_EVERY`` attempts). From the second attempt on the batch is applied with a
  savepoint per event; if one event fails "transiently" while the connection answers, the error
  is the event's (a statement that always times out, say): after ``max_event_retries`` such
  attempts it is dead-lettered (``retries_exhausted``). An outage retries until it ends —
  dead-lettering every event because PostgreSQL is down would be loss by design.
* Deferred events (a prerequisite not there yet) are revived and swept with the same isolation,
  each in a savepoint of its own: a failing one is dead-lettered, never its releaser, and never
  blocks the other expired ones.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from ..contract.deadletter import DeadLetterEntry
from ..contract.events import Envelope, EventParseError, parse_event, read_json
from ..contract.signing import OUR_PRODUCERS, SignatureError, Signer, Verifier
from ..contract.wire import to_wire_batch, unsigned_body
from ..topics import INPUT_TOPICS, PRODUCERS, TYPE_PRODUCERS, Topic, TopicNames
from ..contract.wire import derived_event_id
from .db import check_ident, is_transient
from .observe import RuntimeMetrics
from .outbox import add_to_outbox

log = logging.getLogger("bsm.consumer")

#: An ERROR line every this many consecutive failed attempts of the same work (a stuck
#: service must be visible in the logs too, not only in the metrics).
ALARM_EVERY = 10
#: The longest wait between two attempts (seconds).
MAX_BACKOFF = 30.0

OutboxRow = tuple[str, str, bytes | None, bytes]


@dataclass(frozen=True)
class Prepared:
    """An event to publish, checked but not yet signed (see ``EventConsumer.seal``)."""

    event_id: str
    topic: str
    key: bytes | None
    body: bytes
    """The canonical bytes, unsigned (``contract.wire.unsigned_body``)."""


#: What a handler run yields for the outbox: events to sign, or finished rows (dead letters).
Pending = Prepared | OutboxRow

#: How much of a record's value a dead-letter entry keeps (the entry must fit in a record,
#: JSON escaping included).
DEAD_LETTER_VALUE_BYTES = 128 * 1024


def backoff_delay(attempt: int, *, first: float = 0.2, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (exponential, capped)."""
    return min(cap, first * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Incoming:
    """One verified, parsed event with where it came from."""

    event: Envelope
    raw: dict[str, Any]
    topic: Topic
    partition: int
    offset: int
    verified: bool
    expired: bool = False
    """True when the event was deferred and its wait is over: decide now, do not defer again."""
    trust_error: str | None = None
    """Why the event failed the trust checks (only set for a consumer that accepts those)."""
    released: list[str] = field(default_factory=list, compare=False)
    """Keys this event's effects make available (e.g. an order id): deferred events waiting
    for one of them are applied right after, in the same transaction."""


class Defer(Exception):
    """Raised by a handler when a prerequisite (e.g. the order) has not arrived yet.

    The event is parked in ``deferred`` until an event releases ``key`` or ``seconds`` pass;
    then the handler runs again (with ``expired=True`` after the deadline).
    """

    def __init__(self, key: str, seconds: float) -> None:
        super().__init__(key)
        self.key = key
        self.seconds = seconds


@dataclass(frozen=True)
class Outgoing:
    """An event a handler wants published, with its topic and key."""

    topic: Topic
    key: str
    event: Envelope


@dataclass
class Effects:
    """What a handler returns: events to publish."""

    publish: list[Outgoing] = field(default_factory=list)


Handler = Callable[[asyncpg.Connection, Incoming], Awaitable[Sequence[Outgoing]]]


class BatchHooks:
    """Optional per-batch hooks: ``begin`` before a batch's transaction (reset buffers and
    caches), ``preload`` inside it before the first event of each topic (load what those events
    will read, one query per table instead of one per event), ``end`` inside it after the last
    event (write what the handlers buffered in one go).

    ``preload`` runs only when the batch is applied whole: applied event by event (isolation,
    retries), ``begin`` runs before each event and nothing is preloaded, so handlers must fall
    back to their own queries for whatever a preload did not load. Topics are applied in the
    order of ``handlers`` (reference data first), so a preload of the messages' topic already
    sees the parties and orders the same batch recorded."""

    def begin(self) -> None:
        return None

    async def preload(self, conn: asyncpg.Connection, topic: Topic,
                      events: Sequence[Incoming]) -> None:
        return None

    async def end(self, conn: asyncpg.Connection) -> None:
        return None


@dataclass(frozen=True)
class Record:
    """The part of a Kafka record the pipeline needs (so tests can build one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class EventConsumer:
    """Applies batches of records for one consumer (one service, one purpose)."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        schema: str,
        topics: TopicNames,
        verifier: Verifier,
        signer: Signer,
        handlers: dict[Topic, Handler],
        on_committed: Callable[[bool], None] = lambda wrote_outbox: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        accept_untrusted: bool = False,
        hooks: BatchHooks | None = None,
        max_event_retries: int = 5,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self.name = name
        self._max_event_retries = max_event_retries
        self.metrics = metrics or RuntimeMetrics(name)
        #: Transient failures attributed to one event while the database answered (by id).
        self._strikes: dict[Any, int] = {}
        self._accept_untrusted = accept_untrusted
        self._hooks = hooks or BatchHooks()
        self._pool = pool
        self._schema = check_ident(schema)
        self._topics = topics
        self._by_name = {topics(t): t for t in handlers}
        self._verifier = verifier
        self._signer = signer
        self._handlers = handlers
        #: Called after a batch's (or a sweep's) transaction committed, with whether it wrote
        #: outbox rows (the relay is woken only then; a service's workers every time).
        self._on_committed = on_committed
        self._outbox_rows = 0
        self._clock = clock
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.retries = 0

    # -- step 1 -------------------------------------------------------------------------------
    def check(self, record: Record) -> Incoming:
        """Decode, verify and parse one record, or raise with the reason.

        With ``accept_untrusted`` (the record's archive), an event that parses but fails the
        trust checks is passed on with ``verified=False`` and the reason in ``trust_error``:
        the record keeps forged events too, flagged, so a dispute team sees them for what they
        are. Every other consumer refuses them (dead letter)."""
        topic = self._by_name[record.topic]
        raw, storable = read_json(record.value or b"")
        try:
            verified = self._trust(raw, topic)
            trust_error = None
        except SignatureError as exc:
            if not self._accept_untrusted:
                raise
            verified, trust_error = False, exc.code
        event = parse_event(raw, storable=storable)
        return Incoming(event, raw, topic, record.partition, record.offset, verified,
                        trust_error=trust_error)

    def _trust(self, raw: dict[str, Any], topic: Topic) -> bool:
        verified = self._verifier.verify(raw)
        producer = str(raw.get("producer", ""))
        if not verified and topic not in INPUT_TOPICS:
            # Only our own services write the inner topics; an unsigned event there is forged.
            raise SignatureError(
                "untrusted_producer",
                f"{producer!r} may not publish on {topic.value} (only {sorted(OUR_PRODUCERS)})",
            )
        allowed = PRODUCERS.get(topic)
        if allowed is not None and producer not in allowed:
            raise SignatureError(
                "wrong_producer", f"{producer!r} may not publish on {topic.value} ({sorted(allowed)})"
            )
        by_type = TYPE_PRODUCERS.get(str(raw.get("type")))
        if by_type is not None and (producer not in by_type or not verified):
            raise SignatureError(
                "wrong_producer", f"{raw.get('type')} may only come from {sorted(by_type)}, signed"
            )
        return verified

    def _dead_letter(self, record: Record, code: str, detail: str) -> tuple[str, str, bytes | None, bytes]:
        """A dead-letter entry: the record as received plus the error (kept forever)."""
        topic = self._by_name[record.topic]
        value = record.value or b""
        # A dead letter must itself fit in a Kafka record: a huge value is kept in part, with
        # its size and hash (the original stays at its topic, partition and offset).
        kept = value[:DEAD_LETTER_VALUE_BYTES]
        try:
            shown: Any = value.decode()[:DEAD_LETTER_VALUE_BYTES // 4]
        except UnicodeDecodeError:
            shown = None
        entry = DeadLetterEntry(
            consumer=self.name,
            error_code=code,
            error=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key else None,
            value=shown,
            value_base64=None if shown is not None else base64.b64encode(kept).decode(),
            value_bytes=len(value),
            value_truncated=len(kept) < len(value) or (
                shown is not None and len(shown.encode()) < len(value)),
            value_sha256=hashlib.sha256(value).hexdigest(),
            failed_at=self._clock().isoformat(),
        )
        # A dead letter's id is derived from its position, so a redelivery does not add twice.
        dl_id = derived_event_id(f"{record.topic}:{record.partition}:{record.offset}", f"dlq:{self.name}")
        return (str(dl_id), self._topics.dlq(topic), record.key, entry.model_dump_json().encode())

    # -- steps 2 and 3 ------------------------------------------------------------------------
    async def consume(self, records: Sequence[Record]) -> None:
        """Apply a batch; returns only when its effects are committed (then ack the offsets).

        Never raises for a bad event (it is dead-lettered) nor for an outage (retried here, with
        backoff): raising would make FastStream seek back and re-read the batch at once, in a
        loop without pause."""
        self.metrics.batch_events.labels(self.name).observe(len(records))
        rows_before = self._outbox_rows
        checked: list[Incoming | tuple[Record, str, str]] = []
        for record in records:
            try:
                checked.append(self.check(record))
            except (EventParseError, SignatureError) as exc:
                log.warning(
                    "dead-lettering %s[%d]@%d: %s",
                    record.topic, record.partition, record.offset, exc.code,
                    extra={"topic": record.topic},
                )
                checked.append((record, exc.code, exc.detail))
            except Exception as exc:  # noqa: BLE001 - a record the readers choke on is refused
                log.error("dead-lettering %s[%d]@%d: the reader failed on it: %r",
                          record.topic, record.partition, record.offset, exc,
                          extra={"topic": record.topic})
                checked.append((record, "invalid_event", f"the reader failed: {exc!r}"))
        # Reference data first: within a batch, events of the topics listed first in
        # ``handlers`` (parties, orders) are applied before the messages that may need them.
        rank = {t: i for i, t in enumerate(self._handlers)}
        ordered = sorted(
            checked, key=lambda item: -1 if isinstance(item, tuple) else rank[item.topic]
        )
        attempt = 0
        while True:
            try:
                await self._apply(ordered, isolate=attempt > 0)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted below; never a tight loop
                attempt += 1
                await self._failed_attempt("batch", attempt, exc)
        self.metrics.retry_attempt.labels(self.name, "batch").set(0)
        self._on_committed(self._outbox_rows > rows_before)

    async def _failed_attempt(self, kind: str, attempt: int, exc: BaseException) -> None:
        """Count, show and wait after a failed attempt of ``kind`` work."""
        self.retries += 1
        self.metrics.retries.labels(self.name, kind).inc()
        self.metrics.retry_attempt.labels(self.name, kind).set(attempt)
        delay = backoff_delay(attempt)
        if not is_transient(exc):
            # Not an error of one event (those are isolated and dead-lettered): a fault of the
            # runtime itself. Shown at once; retried like an outage, so it cannot spin.
            log.error("%s: %s attempt %d failed (%r); retrying in %.1fs", self.name, kind,
                      attempt, exc, delay, exc_info=exc)
        elif attempt % ALARM_EVERY == 0:
            log.error("%s: %s still failing after %d attempts (%r); the stream waits, "
                      "retrying every %.0fs", self.name, kind, attempt, exc, delay)
        else:
            log.warning("%s: transient error (%s attempt %d), retrying in %.1fs: %r",
                        self.name, kind, attempt, delay, exc)
        await asyncio.sleep(delay)

    def prepare(self, out: Sequence[Outgoing]) -> list["Prepared"]:
        """Events to publish, checked (storable, small enough) but not signed yet: a batch's
        events are signed together when it is sealed (:meth:`seal`)."""
        return [Prepared(str(o.event.event_id), self._topics(o.topic), o.key.encode(),
                         unsigned_body(o.event)) for o in out]

    def seal(self, pending: Sequence["Pending"]) -> list[OutboxRow]:
        """Outbox rows (event id, topic, key, bytes), in order: every prepared event of the
        batch signed with one signature over their Merkle root; dead letters as they are."""
        events = [p for p in pending if isinstance(p, Prepared)]
        signed = iter(to_wire_batch([p.body for p in events], self._signer))
        return [(p.event_id, p.topic, p.key, next(signed)) if isinstance(p, Prepared) else p
                for p in pending]

    def _record_of(self, incoming: Incoming) -> Record:
        return Record(self._topics(incoming.topic), incoming.partition, incoming.offset, None,
                      json.dumps(incoming.raw).encode())

    def _dead_letter_event(self, incoming: Incoming, code: str, exc: BaseException) -> OutboxRow:
        self._strikes.pop(incoming.event.event_id, None)
        self.dead_lettered += 1
        self.metrics.dead_letters.labels(self.name, incoming.topic.value, code).inc()
        return self._dead_letter(self._record_of(incoming), code, repr(exc))

    async def _isolated(
        self, conn: asyncpg.Connection, incoming: Incoming,
        work: Callable[[], Awaitable[list[Pending]]],
    ) -> list[Pending]:
        """Run one event's work in a savepoint; a failure of the event dead-letters it.

        A transient error re-raises (the caller retries the whole batch) unless the connection
        still answers and the same event has failed so ``max_event_retries`` times: then the
        error is the event's, not the database's."""
        try:
            async with conn.transaction():  # savepoint: this event's effects only
                return await work()
        except Exception as exc:  # noqa: BLE001 - one bad event must not block the log
            if is_transient(exc):
                if not await _answers(conn):
                    raise
                strikes = self._strikes.get(incoming.event.event_id, 0) + 1
                self._strikes[incoming.event.event_id] = strikes
                if strikes < self._max_event_retries:
                    raise
                code = "retries_exhausted"
            else:
                code = "handler_error"
            log.error(
                "%s: %s %s failed (%s: %r); dead-lettered", self.name, incoming.event.type,
                incoming.event.event_id, code, exc, exc_info=exc,
                extra={"event_id": str(incoming.event.event_id),
                       "event_type": incoming.event.type},
            )
            return [self._dead_letter_event(incoming, code, exc)]

    async def _run(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Pending]:
        """Run the handler for one event; park it if it must wait; release what waits on it."""
        s = self._schema
        try:
            out: list[Pending] = list(self.prepare(
                await self._handlers[incoming.topic](conn, incoming)))
        except Defer as wait:
            if incoming.expired:
                raise RuntimeError("a handler deferred an event whose wait is over") from wait
            await conn.execute(
                f"INSERT INTO {s}.deferred (event_id, consumer, waiting_for, topic, partition, "
                f"kafka_offset, raw, deadline) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                f"now() + make_interval(secs => $8)) ON CONFLICT DO NOTHING",
                incoming.event.event_id, self.name, wait.key, incoming.topic.value,
                incoming.partition, incoming.offset, json.dumps(incoming.raw), wait.seconds,
            )
            return []
        for key in incoming.released:
            rows = await conn.fetch(
                f"DELETE FROM {s}.deferred WHERE consumer = $1 AND waiting_for = $2 "
                f"RETURNING topic, partition, kafka_offset, raw",
                self.name, key,
            )
            for row in rows:
                # Each waiting event in a savepoint of its own: if it fails, it is dead-lettered,
                # not the event that released it.
                waiting = self._revive(row, expired=False)
                out.extend(await self._isolated(conn, waiting, _bind(self._run, conn, waiting)))
        return out

    def _revive(self, row: Any, *, expired: bool) -> Incoming:
        raw = json.loads(row["raw"])
        return Incoming(
            parse_event(raw), raw, Topic(row["topic"]), row["partition"], row["kafka_offset"],
            True, expired=expired,
        )

    async def sweep_expired(self, limit: int = 200) -> int:
        """Apply deferred events whose wait is over (the handler then decides, e.g. bounces).
        Returns how many were applied; rows are claimed with SKIP LOCKED (several instances).
        Each row runs in a savepoint of its own: a failing one is dead-lettered and the others
        go on (it used to sort first again and block every expired deferral behind it)."""
        s = self._schema
        attempt = 0
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(
                        f"SELECT event_id, topic, partition, kafka_offset, raw FROM {s}.deferred "
                        f"WHERE consumer = $1 AND deadline <= now() ORDER BY deadline "
                        f"LIMIT $2 FOR UPDATE SKIP LOCKED",
                        self.name, limit,
                    )
                    outbox: list[Pending] = []
                    for row in rows:
                        await conn.execute(
                            f"DELETE FROM {s}.deferred WHERE consumer = $1 AND event_id = $2",
                            self.name, row["event_id"],
                        )
                        try:
                            incoming = self._revive(row, expired=True)
                        except (EventParseError, ValueError) as exc:  # a newer reader's refusal
                            record = Record(self._topics(Topic(row["topic"])), row["partition"],
                                            row["kafka_offset"], None, row["raw"].encode())
                            outbox.append(self._dead_letter(record, "unparseable_deferred",
                                                            repr(exc)))
                            continue
                        outbox.extend(await self._isolated(
                            conn, incoming, _bind(self._run, conn, incoming)))
                    await add_to_outbox(
                        conn, s, [(UUID(e), t, k, p) for e, t, k, p in self.seal(outbox)])
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - counted, shown, retried with backoff
                attempt += 1
                await self._failed_attempt("sweep", attempt, exc)
        self.metrics.retry_attempt.labels(self.name, "sweep").set(0)
        if rows:
            self._on_committed(True)
        return len(rows)

    async def run_sweeper(self, every_seconds: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            await self.sweep_expired()

    async def _apply(
        self, ordered: list[Incoming | tuple[Record, str, str]], *, isolate: bool
    ) -> None:
        if not isolate:
            try:
                # Fast path: the whole batch in one transaction, no savepoints.
                await self._apply_batch(ordered, isolate=False)
                return
            except _HandlerFailed:
                # A handler or hook failed: the transaction was rolled back whole; apply the
                # batch again with a savepoint per event, so only the failing event is
                # dead-lettered.
                pass
        await self._apply_batch(ordered, isolate=True)

    async def _apply_batch(
        self, ordered: list[Incoming | tuple[Record, str, str]], *, isolate: bool
    ) -> None:
        s = self._schema
        outbox: list[Pending] = []
        applied = duplicates = dead = 0
        dead_letters: list[tuple[str, str]] = []
        events = [item for item in ordered if not isinstance(item, tuple)]
        preloaded: set[Topic] = set()
        self._hooks.begin()
        async with self._pool.acquire() as conn, conn.transaction():
            # The idempotency check for the whole batch in one statement: ids already in
            # ``processed_events`` (a redelivery) come back missing and are skipped.
            fresh = {
                r["event_id"]
                for r in await conn.fetch(
                    f"INSERT INTO {s}.processed_events (consumer, event_id) "
                    f"SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
                    self.name,
                    list({i.event.event_id for i in events}),
                )
            }
            for item in ordered:
                if isinstance(item, tuple):
                    outbox.append(self._dead_letter(*item))
                    dead_letters.append((self._by_name[item[0].topic].value, item[1]))
                    dead += 1
                    continue
                incoming = item
                if incoming.event.event_id not in fresh:
                    duplicates += 1
                    continue
                if not isolate and incoming.topic not in preloaded:
                    preloaded.add(incoming.topic)
                    try:
                        await self._hooks.preload(conn, incoming.topic, [
                            i for i in events if i.topic == incoming.topic
                            and i.event.event_id in fresh])
                    except Exception as exc:  # noqa: BLE001 - retried in isolation
                        if is_transient(exc):
                            raise
                        raise _HandlerFailed from exc
                fresh.discard(incoming.event.event_id)  # the same id twice in one batch
                if not isolate:
                    try:
                        outbox.extend(await self._run(conn, incoming))
                    except Exception as exc:  # noqa: BLE001 - retried in isolation
                        if is_transient(exc):
                            raise
                        raise _HandlerFailed from exc
                    applied += 1
                    continue
                before = self.dead_lettered
                outbox.extend(await self._isolated(
                    conn, incoming, _bind(self._run_with_hooks, conn, incoming)))
                if self.dead_lettered == before:
                    applied += 1
            if not isolate:
                try:
                    await self._hooks.end(conn)
                except Exception as exc:  # noqa: BLE001 - a hook is part of the events' work
                    if is_transient(exc):
                        raise
                    raise _HandlerFailed from exc
            # One signature for everything this batch publishes (a Merkle root, see
            # ``contract.signing``), written in the same transaction as its effects.
            await add_to_outbox(conn, s, [(UUID(e), t, k, p) for e, t, k, p in self.seal(outbox)])
            self._outbox_rows += len(outbox)
        for topic, code in dead_letters:
            self.metrics.dead_letters.labels(self.name, topic, code).inc()
        for incoming in events:
            self._strikes.pop(incoming.event.event_id, None)
        self.applied += applied
        self.duplicates += duplicates
        self.dead_lettered += dead
        self.metrics.applied.labels(self.name).inc(applied)
        self.metrics.duplicates.labels(self.name).inc(duplicates)

    async def _run_with_hooks(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Pending]:
        """One event with the batch hooks around it (isolated mode): what the handler buffered
        is written inside the event's own savepoint, so a row the hook cannot write fails this
        event alone."""
        self._hooks.begin()
        out = await self._run(conn, incoming)
        await self._hooks.end(conn)
        return out


def _bind(
    fn: Callable[[asyncpg.Connection, Incoming], Awaitable[list[Pending]]],
    conn: asyncpg.Connection, incoming: Incoming,
) -> Callable[[], Awaitable[list[Pending]]]:
    async def call() -> list[Pending]:
        return await fn(conn, incoming)

    return call


async def _answers(conn: asyncpg.Connection) -> bool:
    """Whether the database still answers on ``conn`` (after a savepoint's rollback)."""
    try:
        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5)
        return True
    except Exception:  # noqa: BLE001 - any failure means: not the event's fault
        return False


class _HandlerFailed(Exception):
    """A handler raised on the fast path; the batch is retried with a savepoint per event."""
