"""The idempotent consumer and outbox, against the real PostgreSQL (no Kafka needed)."""

import json
import random

import asyncpg
import pytest

from bsm_shared.contract.signing import Verifier
from bsm_shared.runtime.consumer import Defer, EventConsumer, Record
from bsm_shared.runtime.db import migrate
from bsm_shared.topics import Topic, TopicNames
from tests.factories import submitted, uid
from tests.contract.conftest import message, rec
from tests.stack import platform_event





async def consumer_with(pool: asyncpg.Pool, handlers: dict, schema: str | None = None
                        ) -> EventConsumer:
    schema = schema or "ct_" + uid()
    await migrate(pool, schema, [f"CREATE TABLE {schema}.seen (subject text)"])
    return EventConsumer(name="test", pool=pool, schema=schema, topics=TopicNames(""),
                         verifier=Verifier({}), signer=None, handlers=handlers)


async def outbox(pool: asyncpg.Pool, consumer: EventConsumer) -> list[dict]:
    rows = await pool.fetch(f"SELECT topic, payload FROM {consumer._schema}.outbox ORDER BY id")
    return [{**json.loads(r["payload"]), "outbox_topic": r["topic"]} for r in rows]


async def test_one_failing_event_is_dead_lettered_and_the_rest_of_its_batch_is_applied(
    pool, expect
):
    expect.error("cannot handle this one", logger="bsm.consumer")
    schema = "ct_" + uid()

    async def handle(conn, incoming):
        # The effect is in the database, in the batch's transaction (as in every service).
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1)", incoming.event.data.subject)
        if incoming.event.data.subject == "boom":
            raise RuntimeError("cannot handle this one")
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    batch = [rec(1, message("a")), rec(2, message("boom")), rec(3, message("b"))]
    await consumer.consume(batch)
    seen = [r["subject"] for r in await pool.fetch(f"SELECT subject FROM {schema}.seen")]
    assert sorted(seen) == ["a", "b"], "the failing event's effects are rolled back, not others"
    [dead] = await outbox(pool, consumer)
    assert dead["outbox_topic"] == "bsm.messages.submitted.dlq"
    assert (dead["error_code"], dead["offset"]) == ("handler_error", 2)
    assert "cannot handle this one" in dead["error"]


async def test_a_redelivered_batch_changes_nothing(pool):
    calls: list[str] = []

    async def handle(conn, incoming):
        calls.append(incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle})
    batch = [rec(1, message("a")), rec(2, b"{broken")]
    await consumer.consume(batch)
    await consumer.consume(batch)
    assert calls == ["a"]
    assert consumer.duplicates == 1
    assert len(await outbox(pool, consumer)) == 1, "the dead letter is recorded once"


async def test_the_relay_is_woken_only_after_a_batch_that_wrote_outbox_rows(pool):
    """A batch that only changed tables (most of the gateway's and metrics') does not cost the
    relay a transaction; one that wrote rows to publish (here a dead letter) wakes it."""
    async def handle(conn, incoming):
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle})
    woken: list[bool] = []
    consumer._on_committed = woken.append
    await consumer.consume([rec(1, message("a"))])
    await consumer.consume([rec(2, b"{broken")])
    await consumer.consume([rec(3, message("b"))])
    assert woken == [False, True, False]
    assert len(await outbox(pool, consumer)) == 1


async def test_an_event_waiting_for_a_prerequisite_is_applied_when_it_arrives(pool):
    decided: list[tuple[str, bool]] = []

    async def on_submitted(conn, incoming):
        order = incoming.event.data.order_id
        known = order in arrived
        if not known and not incoming.expired:
            raise Defer(f"order:{order}", 60)
        decided.append((incoming.event.data.subject, known))
        return []

    async def on_orders(conn, incoming):
        arrived.append(incoming.event.data.order_id)
        incoming.released.append(f"order:{incoming.event.data.order_id}")
        return []

    arrived: list[str] = []
    consumer = await consumer_with(pool, {Topic.ORDERS: on_orders, Topic.SUBMITTED: on_submitted})
    order_id = "o-" + uid()
    msg = submitted(subject="early", order_id=order_id)
    await consumer.consume([rec(1, platform_event("MessageSubmitted",
                                                  msg.model_dump(mode="json"), "m"))])
    assert decided == []
    placed = platform_event("OrderPlaced", {"order_id": order_id, "buyer_id": "b",
                                            "seller_id": "s", "placed_at": "2026-11-01T00:00:00Z"},
                            order_id)
    await consumer.consume([Record(Topic.ORDERS.value, 0, 1, b"o", placed)])
    assert decided == [("early", True)]


async def test_an_event_whose_wait_is_over_is_decided_without_its_prerequisite(pool):
    decided: list[bool] = []

    async def on_submitted(conn, incoming):
        if not incoming.expired:
            raise Defer("order:never", 0)
        decided.append(incoming.expired)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: on_submitted})
    await consumer.consume([rec(1, message("late"))])
    assert await consumer.sweep_expired() == 1
    assert decided == [True]
    assert await consumer.sweep_expired() == 0


@pytest.mark.parametrize("seed", range(12))
async def test_however_batches_are_cut_and_redelivered_each_event_is_applied_exactly_once(
    pool, seed: int
):
    """Kafka redelivers from the last committed offset after a crash, with batches cut anew:
    whatever the cuts and the replays (seeded random scenarios), each effect exists once."""
    rng = random.Random(seed)
    schema = "ct_" + uid()

    async def handle(conn, incoming):
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1)", incoming.event.data.subject)
        return []

    consumer = await consumer_with(pool, {Topic.SUBMITTED: handle}, schema)
    records = [rec(i, message(f"s{i}")) for i in range(12)]
    deliveries, i = [], 0
    while i < len(records):  # the first delivery, cut into batches
        size = rng.randint(1, 5)
        deliveries.append(records[i:i + size])
        i += size
    for _ in range(rng.randint(1, 4)):  # redeliveries of arbitrary stretches, in any order
        start = rng.randrange(len(records))
        deliveries.insert(rng.randrange(len(deliveries) + 1),
                          records[start:start + rng.randint(1, 12)])
    for batch in deliveries:
        await consumer.consume(batch)
    seen = [r["subject"] for r in await pool.fetch(f"SELECT subject FROM {schema}.seen")]
    assert sorted(seen) == sorted(f"s{i}" for i in range(12))
