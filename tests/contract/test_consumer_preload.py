"""Set-based loading (issue 14, item 2): ``BatchHooks.preload`` gives a handler object, once per
topic and batch, the events it is about to handle, so it can load what they need with one
query per table; applied event by event (isolation), nothing is preloaded and handlers load
for themselves."""

import asyncio

from bsm_shared.contract.signing import Verifier
from bsm_shared.runtime.consumer import BatchHooks, EventConsumer
from bsm_shared.runtime.db import migrate
from bsm_shared.topics import Topic, TopicNames
from tests.contract.conftest import message, rec
from tests.factories import uid

BOUND = 20.0


class Preloading(BatchHooks):
    """Loads every subject of the batch at once; handlers read from it, or query on a miss."""

    def __init__(self, schema: str) -> None:
        self.schema, self.cache, self.calls, self.misses = schema, {}, [], 0

    def begin(self) -> None:
        self.cache = {}

    async def preload(self, conn, topic, events) -> None:
        subjects = [e.event.data.subject for e in events]
        self.calls.append((topic, subjects))
        rows = await conn.fetch(f"SELECT subject, n FROM {self.schema}.known "
                                f"WHERE subject = ANY($1::text[])", subjects)
        self.cache = {s: None for s in subjects} | {r["subject"]: r["n"] for r in rows}

    async def lookup(self, conn, subject: str):
        if subject in self.cache:
            return self.cache[subject]
        self.misses += 1
        return await conn.fetchval(f"SELECT n FROM {self.schema}.known WHERE subject = $1",
                                   subject)


async def consumer(pool, schema: str, hooks: Preloading, fail_on: str | None = None):
    await migrate(pool, schema, [
        f"CREATE TABLE {schema}.known (subject text PRIMARY KEY, n int)",
        f"CREATE TABLE {schema}.seen (subject text, n int)",
    ])
    await pool.execute(f"INSERT INTO {schema}.known VALUES ('a', 1), ('c', 3)")

    async def handle(conn, incoming):
        subject = incoming.event.data.subject
        if subject == fail_on:
            raise ValueError("this event's own fault")
        n = await hooks.lookup(conn, subject)
        await conn.execute(f"INSERT INTO {schema}.seen VALUES ($1, $2)", subject, n)
        return []

    return EventConsumer(name="test", pool=pool, schema=schema, topics=TopicNames(""),
                         verifier=Verifier({}), signer=None,
                         handlers={Topic.SUBMITTED: handle}, hooks=hooks)


async def seen(pool, schema):
    return sorted((r["subject"], r["n"]) for r in await pool.fetch(
        f"SELECT subject, n FROM {schema}.seen"))


async def test_a_whole_batch_is_preloaded_once_per_topic_and_redeliveries_are_left_out(pool):
    schema = "ct_" + uid()
    hooks = Preloading(schema)
    c = await consumer(pool, schema, hooks)
    first = [rec(1, message("a")), rec(2, message("b")), rec(3, message("c"))]
    await asyncio.wait_for(c.consume(first), BOUND)
    assert hooks.calls == [(Topic.SUBMITTED, ["a", "b", "c"])] and hooks.misses == 0
    assert await seen(pool, schema) == [("a", 1), ("b", None), ("c", 3)]
    # The same records again (a redelivery) and one new: only the new one is preloaded.
    await asyncio.wait_for(c.consume([*first, rec(4, message("d"))]), BOUND)
    assert hooks.calls[-1] == (Topic.SUBMITTED, ["d"])


async def test_a_batch_applied_event_by_event_is_not_preloaded_and_still_correct(pool, expect):
    expect.error("handler_error", logger="bsm.consumer")
    schema = "ct_" + uid()
    hooks = Preloading(schema)
    c = await consumer(pool, schema, hooks, fail_on="b")
    await asyncio.wait_for(
        c.consume([rec(1, message("a")), rec(2, message("b")), rec(3, message("c"))]), BOUND)
    # The whole batch was preloaded once, failed on "b", and was applied again event by event
    # (isolation): no preload then, the handler read for itself.
    assert hooks.calls == [(Topic.SUBMITTED, ["a", "b", "c"])]
    assert hooks.misses == 2
    assert await seen(pool, schema) == [("a", 1), ("c", 3)]
