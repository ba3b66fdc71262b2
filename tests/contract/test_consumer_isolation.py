"""Isolation in the consumer, the sweeper and the outbox, against the real PostgreSQL (issue 10,
findings 2 and 5): one bad event, deferred row or outbox row never stops what comes after it,
retries are bounded, and the tables that would grow forever are pruned."""

import asyncio
import contextlib
import json

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from bsm_shared.contract.signing import Verifier
from bsm_shared.runtime.consumer import BatchHooks, Defer, EventConsumer
from bsm_shared.runtime.db import migrate, prune
from bsm_shared.runtime.outbox import OutboxRelay, add_to_outbox
from bsm_shared.topics import Topic, TopicNames
from tests.factories import uid
from tests.contract.conftest import message, rec
from tests.stack import platform_event

BOUND = 20.0  # seconds: a wedge shows as a timeout, never as a hung test run





async def consumer_with(pool: asyncpg.Pool, handlers: dict, schema: str, **kw) -> EventConsumer:
    await migrate(pool, schema, [
        f"CREATE TABLE {schema}.seen (subject text)",
        f"CREATE TABLE {schema}.archive (subject text CHECK (subject <> 'poison'))",
    ])
    return EventConsumer(name="test", pool=pool, schema=schema, topics=TopicNames(""),
                         verifier=Verifier({}), signer=None, handlers=handlers, **kw)


async def dead_letters(pool: asyncpg.Pool, schema: str) -> list[dict]:
    rows = await pool.fetch(f"SELECT topic, payload FROM {schema}.outbox ORDER BY id")
    return [json.loads(r["payload"]) for r in rows if r["topic"].endswith(".dlq")]


async def seen(pool: asyncpg.Pool, schema: str, table: str = "seen") -> list[str]:
    return sorted(r["subject"] for r in await pool.fetch(f"SELECT subject FROM {schema}.{table}"))


class Archive(BatchHooks):
    """A hook like the record's: rows buffered by the handlers, written at the batch's end."""

    def __init__(self, schema: str) -> None:
        self.schema, self.rows = schema, []

    def begin(self) -> None:
        self.rows = []

    async def end(self, conn) -> None:
        await conn.executemany(f"INSERT INTO {self.schema}.archive VALUES ($1)", self.rows)


async def test_a_batch_hook_failing_on_one_event_dead_letters_that_event_and_archives_the_rest(
    pool, expect
):
    """Finding 2: the record's batch hook ran outside the per-event isolation; one event it
    could not write made the batch fail again and again, and nothing after it was archived."""
    expect.error("handler_error: CheckViolation", logger="bsm.consumer")
    schema = "ct_" + uid()
    archive = Archive(schema)

    async def handle(conn, incoming):
        archive.rows.append((incoming.event.data.subject,))
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema, hooks=archive)
    batch = [rec(1, message("a")), rec(2, message("poison")), rec(3, message("b"))]
    await asyncio.wait_for(consumer.consume(batch), BOUND)
    assert await seen(pool, schema, "archive") == ["a", "b"]
    [dead] = await dead_letters(pool, schema)
    assert (dead["error_code"], dead["offset"]) == ("handler_error", 2)
    assert "CheckViolation" in dead["error"]


async def test_an_event_with_a_nul_character_is_dead_lettered_as_unstorable_and_the_rest_applied(
    pool,
):
    """Finding 2: U+0000 cannot be stored by PostgreSQL; the contract refuses it at parse time,
    so no handler or hook of any service ever tries."""
    schema = "ct_" + uid()

    async def handle(conn, incoming):
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1)", incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    batch = [rec(1, message("a")), rec(2, message("b", html="<p>x\u0000y</p>")),
             rec(3, message("c"))]
    await asyncio.wait_for(consumer.consume(batch), BOUND)
    assert await seen(pool, schema) == ["a", "c"]
    [dead] = await dead_letters(pool, schema)
    assert dead["error_code"] == "unstorable_text"
    assert "data.html" in dead["error"] and "U+0000" in dead["error"]


async def test_an_event_that_keeps_timing_out_is_dead_lettered_after_the_retry_limit(pool, expect):
    """Finding 5: transient retries had no limit. A statement that always times out is the
    event's problem once the database answers otherwise: bounded, then a dead letter."""
    expect.error("retries_exhausted", logger="bsm.consumer")
    schema = "ct_" + uid()
    attempts = {"slow": 0}

    async def handle(conn, incoming):
        if incoming.event.data.subject == "slow":
            attempts["slow"] += 1
            await conn.execute("SET LOCAL statement_timeout = 50")
            await conn.execute("SELECT pg_sleep(1)")
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1)", incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema, max_event_retries=3)
    batch = [rec(1, message("a")), rec(2, message("slow")), rec(3, message("b"))]
    await asyncio.wait_for(consumer.consume(batch), BOUND)
    assert await seen(pool, schema) == ["a", "b"]
    [dead] = await dead_letters(pool, schema)
    assert dead["error_code"] == "retries_exhausted" and "QueryCanceled" in dead["error"]
    assert attempts["slow"] == 1 + 3  # the fast path, then the bounded isolated attempts
    assert consumer.retries == 3


async def test_a_missing_file_is_the_events_error_and_is_not_retried(pool, expect):
    """Finding 5: OSError counted as transient, so a FileNotFoundError was retried forever."""
    expect.error("FileNotFoundError", logger="bsm.consumer")
    schema = "ct_" + uid()
    calls = []

    async def handle(conn, incoming):
        calls.append(incoming.event.data.subject)
        if incoming.event.data.subject == "file":
            open(f"/nonexistent/{uid()}")  # noqa: SIM115 - raises FileNotFoundError
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    await asyncio.wait_for(consumer.consume([rec(1, message("file")), rec(2, message("b"))]),
                           BOUND)
    [dead] = await dead_letters(pool, schema)
    assert dead["error_code"] == "handler_error" and "FileNotFoundError" in dead["error"]
    assert consumer.retries == 0 and calls == ["file", "file", "b"]


async def test_one_failing_expired_deferral_does_not_block_the_others(pool, expect):
    """Finding 5: the sweeper had no isolation and sorted the same failing row first again, so
    every expired deferral of the consumer waited behind it."""
    expect.error("cannot decide this one", logger="bsm.consumer")
    schema = "ct_" + uid()

    async def handle(conn, incoming):
        if not incoming.expired:
            raise Defer("order:never", 0)
        if incoming.event.data.subject == "bad":
            raise RuntimeError("cannot decide this one")
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1)", incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    await consumer.consume([rec(1, message("bad"))])
    await consumer.consume([rec(2, message("a")), rec(3, message("b"))])
    assert await asyncio.wait_for(consumer.sweep_expired(), BOUND) == 3
    assert await seen(pool, schema) == ["a", "b"]
    [dead] = await dead_letters(pool, schema)
    assert dead["error_code"] == "handler_error" and "cannot decide" in dead["error"]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.deferred") == 0


async def test_a_released_event_that_fails_is_dead_lettered_not_the_event_that_released_it(
    pool, expect
):
    expect.error("the waiting message cannot be decided", logger="bsm.consumer")
    schema = "ct_" + uid()
    order_id = "o-" + uid()

    async def on_submitted(conn, incoming):
        if not incoming.expired and incoming.topic is Topic.SUBMITTED and not released:
            raise Defer(f"order:{order_id}", 60)
        raise RuntimeError("the waiting message cannot be decided")

    async def on_orders(conn, incoming):
        released.append(order_id)
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ('order applied')")
        incoming.released.append(f"order:{order_id}")
        return []

    released: list[str] = []
    consumer = await consumer_with(
        pool, {Topic.ORDERS: on_orders, Topic.SUBMITTED: on_submitted}, schema)
    await consumer.consume([rec(1, message("early", order_id=order_id))])
    placed = platform_event("OrderPlaced", {"order_id": order_id, "buyer_id": "b",
                                            "seller_id": "s", "placed_at": "2026-11-01T00:00:00Z"},
                            order_id)
    await asyncio.wait_for(consumer.consume([rec(1, placed, Topic.ORDERS)]), BOUND)
    assert await seen(pool, schema) == ["order applied"]
    [dead] = await dead_letters(pool, schema)
    assert dead["topic"] == "bsm.messages.submitted" and dead["error_code"] == "handler_error"


# -- the outbox --------------------------------------------------------------------------------


async def outbox_schema(pool: asyncpg.Pool) -> str:
    schema = "ob_" + uid()
    await migrate(pool, schema, [])
    return schema


async def fill(pool: asyncpg.Pool, schema: str, payloads: list[bytes], topic: str = "t") -> None:
    import uuid

    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, schema, [(uuid.uuid4(), topic, b"k", p) for p in payloads])


class FakeKafka:
    """Records what was sent, in order; refuses what it is told to (as aiokafka does)."""

    def __init__(self, refuse: dict[bytes, BaseException] | None = None) -> None:
        self.sent: list[bytes] = []
        self.refuse = refuse or {}

    async def send(self, topic: str, key: bytes | None, payload: bytes):
        if payload in self.refuse:
            raise self.refuse[payload]
        self.sent.append(payload)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_an_outbox_row_kafka_refuses_for_good_is_marked_failed_and_the_rest_published(
    pool, expect
):
    """Finding 4: one event larger than Kafka's maximum was retried forever and every later
    event of the service waited behind it."""
    expect.error("refused for good, marked failed: MessageSizeTooLarge", logger="bsm.outbox")
    schema = await outbox_schema(pool)
    await fill(pool, schema, [b"1", b"huge", b"3"])
    kafka = FakeKafka({b"huge": MessageSizeTooLargeError("1,048,577 bytes")})
    relay = OutboxRelay(pool, schema, kafka.send)
    assert await asyncio.wait_for(relay.flush(), BOUND) == 2
    assert kafka.sent == [b"1", b"3"]
    failed = await pool.fetch(f"SELECT payload, error FROM {schema}.outbox WHERE failed_at "
                              f"IS NOT NULL")
    assert [(r["payload"], "MessageSizeTooLarge" in r["error"]) for r in failed] == [
        (b"huge", True)]
    assert await relay.flush() == 0  # nothing left to retry


async def test_a_row_that_fails_transiently_while_others_pass_fails_for_good_after_the_limit(
    pool, expect
):
    expect.error("refused for good, marked failed: 3 attempts", logger="bsm.outbox")
    schema = await outbox_schema(pool)
    await fill(pool, schema, [b"1", b"to-nowhere"])
    kafka = FakeKafka({b"to-nowhere": KafkaConnectionError("unknown topic")})
    relay = OutboxRelay(pool, schema, kafka.send, max_row_attempts=3)
    for _ in range(3):  # alone in its batch it looks like an outage (raises), but Kafka took
        with contextlib.suppress(KafkaConnectionError):  # another row since its first failure
            await relay.flush()
    assert kafka.sent == [b"1"]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE failed_at IS NOT "
                               f"NULL") == 1


async def test_when_kafka_is_away_nothing_is_marked_and_the_relay_retries(pool):
    schema = await outbox_schema(pool)
    await fill(pool, schema, [b"1", b"2"])
    down = KafkaConnectionError("broker away")
    kafka = FakeKafka({b"1": down, b"2": down})
    relay = OutboxRelay(pool, schema, kafka.send, max_row_attempts=1)
    with pytest.raises(KafkaConnectionError):
        await relay.flush()
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS "
                               f"NULL AND failed_at IS NULL") == 2


async def test_two_relays_on_one_outbox_publish_in_order_one_at_a_time(pool):
    """The order guarantee holds with several instances: one relay per schema publishes at a
    time, in row order."""
    schema = await outbox_schema(pool)
    payloads = [str(i).encode() for i in range(300)]
    await fill(pool, schema, payloads)
    sent: list[bytes] = []

    async def slow_send(topic, key, payload):
        await asyncio.sleep(0)
        sent.append(payload)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    a = OutboxRelay(pool, schema, slow_send, batch_size=50)
    b = OutboxRelay(pool, schema, slow_send, batch_size=50)
    for _ in range(10):
        await asyncio.gather(a.flush(), b.flush())
    assert sent == payloads


async def test_published_outbox_rows_and_old_processed_ids_are_pruned_by_age(pool):
    schema = await outbox_schema(pool)
    await fill(pool, schema, [b"old", b"new", b"pending", b"failed"])
    await pool.execute(f"UPDATE {schema}.outbox SET published_at = now() - interval '8 days' "
                       f"WHERE payload = 'old'")
    await pool.execute(f"UPDATE {schema}.outbox SET published_at = now() WHERE payload = 'new'")
    await pool.execute(f"UPDATE {schema}.outbox SET failed_at = now() - interval '90 days' "
                       f"WHERE payload = 'failed'")
    await pool.execute(
        f"INSERT INTO {schema}.processed_events (consumer, event_id, processed_at) VALUES "
        f"('c', gen_random_uuid(), now() - interval '31 days'), ('c', gen_random_uuid(), now())")
    gone = await prune(pool, schema, outbox_seconds=7 * 86400, processed_seconds=30 * 86400,
                       batch=1)
    assert gone == {"outbox": 1, "processed_events": 1}
    left = sorted(r["payload"] for r in await pool.fetch(f"SELECT payload FROM {schema}.outbox"))
    assert left == [b"failed", b"new", b"pending"]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.processed_events") == 1


async def test_an_instance_starting_beside_busy_siblings_does_not_lock_their_tables(pool):
    """Chaos found it: a restarted instance ran its DDL again (ALTER TABLE takes an exclusive
    lock) while siblings wrote the same tables, and now and then died in a deadlock. The DDL of
    a version runs once; later starts touch nothing."""
    schema = "ob_" + uid()
    await migrate(pool, schema, [f"CREATE TABLE {schema}.seen (subject text)"])
    async with pool.acquire() as sibling, sibling.transaction():
        # A sibling's batch in flight, holding its row-exclusive locks.
        await sibling.execute(f"INSERT INTO {schema}.seen VALUES ('busy')")
        await sibling.execute(f"LOCK TABLE {schema}.outbox IN ROW EXCLUSIVE MODE")
        await asyncio.wait_for(
            migrate(pool, schema, [f"CREATE TABLE {schema}.seen (subject text)"]), 5)


async def test_json_nested_too_deeply_to_read_is_dead_lettered_not_redelivered_forever(
    pool, expect
):
    """Python's JSON reader raises RecursionError (not a JSON error) on deep nesting: it escaped
    the parser and would have made the consumer re-read the batch without end."""
    expect.error("the reader failed on it", logger="bsm.consumer")
    schema = "ct_" + uid()
    seen_subjects: list[str] = []

    async def handle(conn, incoming):
        seen_subjects.append(incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = b'{"type": "MessageSubmitted", "version": 1, "data": ' + b'{"a": ' * 900 + b'"x"' \
        + b"}" * 900 + b"}"
    await asyncio.wait_for(consumer.consume(
        [rec(1, deep), rec(2, nested), rec(3, message("after"))]), BOUND)
    assert seen_subjects == ["after"]
    codes = [d["error_code"] for d in await dead_letters(pool, schema)]
    assert codes[0] == "malformed_json" and len(codes) == 2


async def test_one_outbox_insert_keeps_the_given_order_and_ignores_a_fact_recorded_twice(pool):
    """``add_to_outbox`` writes a batch in one statement: the rows' ids (the publishing order)
    follow the order given, an event id already there or repeated in the batch is skipped, and
    a row without a key keeps none."""
    import uuid

    schema = await outbox_schema(pool)
    ids = [uuid.uuid4() for _ in range(400)]
    first = [(e, "t", str(i).encode(), str(i).encode()) for i, e in enumerate(ids[:200])]
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, schema, first)
    again = [(ids[5], "t", b"k", b"re-emit"), (ids[300], "t", None, b"300"),
             (ids[300], "t", None, b"300 again")]
    rest = [(e, "t", str(i).encode(), str(i).encode()) for i, e in enumerate(ids[200:], 200)]
    async with pool.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, schema, again + rest[:100] + rest[101:])
    rows = await pool.fetch(f"SELECT event_id, key, payload FROM {schema}.outbox ORDER BY id")
    assert [r["payload"] for r in rows] == (
        [str(i).encode() for i in range(200)] + [b"300"]
        + [str(i).encode() for i in range(200, 400) if i != 300])
    assert [r["event_id"] for r in rows][200] == ids[300] and rows[200]["key"] is None
