"""The alias store records a batch's messages in one statement (issue 14): a message id the
preload read as absent is buffered; if another instance records it before the batch's end,
the batch fails (and is applied again event by event) instead of addressing it twice."""

from __future__ import annotations

import os

import pytest

from bsm_alias.store import AliasStore, Loaded, RecordedMeanwhile, migrations
from bsm_shared.runtime.db import migrate
from bsm_shared.runtime.keyring import Keyring
from bsm_shared.runtime.pii import PiiVault
from tests.factories import uid


@pytest.fixture
async def schema(pool):
    name = "as_" + uid()
    await migrate(pool, name, migrations(name))
    return name


def store(conn, schema: str, loaded: Loaded) -> AliasStore:
    return AliasStore(conn, schema, PiiVault(os.urandom(32)), Keyring(os.urandom(32)), loaded)


async def test_a_batch_records_its_messages_at_its_end_and_finds_them_before(pool, schema):
    first, again, old = ("m-" + uid() for _ in range(3))
    async with pool.acquire() as conn:
        await conn.execute(f"INSERT INTO {schema}.messages VALUES ($1, 'c0', 'r0', 'buyer')", old)
    async with pool.acquire() as conn, conn.transaction():
        loaded = Loaded()
        s = store(conn, schema, loaded)
        await s.preload([], [], own=[first, old])
        assert await s.record_message(message_id=first, conversation_id="c1",
                                      relationship_id="r1", started_by="buyer", order_id=None)
        # The same id again in the batch, and an id recorded before it: both duplicates.
        assert not await s.record_message(message_id=first, conversation_id="c1",
                                          relationship_id="r1", started_by="buyer",
                                          order_id=None)
        assert not await s.record_message(message_id=old, conversation_id="c0",
                                          relationship_id="r0", started_by="buyer",
                                          order_id=None)
        assert (await s.prior_message(first)).conversation_id == "c1"  # a reply finds it
        assert await conn.fetchval(
            f"SELECT count(*) FROM {schema}.messages WHERE message_id = $1", first) == 0
        await s.write_recorded()
        assert await conn.fetchval(
            f"SELECT conversation_id FROM {schema}.messages WHERE message_id = $1",
            first) == "c1"
    # Not preloaded (event by event, or the mail door): written at once, as before.
    async with pool.acquire() as conn:
        assert await store(conn, schema, Loaded()).record_message(
            message_id=again, conversation_id="c2", relationship_id="r2", started_by="buyer",
            order_id=None)
        assert await conn.fetchval(
            f"SELECT count(*) FROM {schema}.messages WHERE message_id = $1", again) == 1


async def test_a_message_another_instance_recorded_since_the_preload_fails_the_batch(
    pool, schema
):
    mid = "m-" + uid()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            s = store(conn, schema, Loaded())
            await s.preload([], [], own=[mid])
            assert await s.record_message(message_id=mid, conversation_id="c1",
                                          relationship_id="r1", started_by="buyer",
                                          order_id=None)
            async with pool.acquire() as other:  # another instance, committed meanwhile
                await other.execute(
                    f"INSERT INTO {schema}.messages VALUES ($1, 'c9', 'r9', 'buyer')", mid)
            with pytest.raises(RecordedMeanwhile):
                await s.write_recorded()
        finally:
            await tx.rollback()
