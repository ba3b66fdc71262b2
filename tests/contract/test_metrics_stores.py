"""One suite over both projection stores: in memory (replays) and PostgreSQL (live)."""

from datetime import timedelta

import pytest

from bsm_metrics import projections as p
from bsm_metrics.store import PgProjections, dump, projection_tables
from bsm_shared.runtime.db import create_pool, migrate
from tests.factories import T0, uid
from tests.metrics_support import issue_scenario, reported


@pytest.fixture
async def conn(env):
    pool = await create_pool(env["BSM_DATABASE_URL"], size=1)
    schema = "mt_" + uid()
    await migrate(pool, schema, projection_tables(schema))
    async with pool.acquire() as c:
        yield c, schema
    await pool.close()


async def test_both_stores_compute_the_same_response_times(conn):
    c, schema = conn
    events, as_of = issue_scenario()
    events.append(reported("q1", T0 + timedelta(hours=1), reporter="b-9"))
    memory, pg = p.InMemoryProjections(), PgProjections(c, schema)
    for e in events:
        for op in p.operations(e):
            memory.apply(op)
            await pg.apply(op)
    since = as_of - timedelta(days=7)
    from_pg = await pg.tracked("s-1", since, as_of)
    assert sorted(from_pg, key=lambda t: t.message_id) == sorted(
        memory.tracked.values(), key=lambda t: t.message_id)
    assert p.response_times(from_pg, seller_id="s-1", window="7d", as_of=as_of) == (
        p.response_times(list(memory.tracked.values()), seller_id="s-1", window="7d",
                         as_of=as_of))


async def test_applying_the_same_events_twice_changes_nothing_in_postgres(conn):
    c, schema = conn
    events, _ = issue_scenario()
    pg = PgProjections(c, schema)
    for _ in range(2):
        for e in events:
            for op in p.operations(e):
                await pg.apply(op)
    rows = await dump(c, schema)
    assert len(rows["rt_buyer_messages"]) == 4
    assert len(rows["message_senders"]) == 6


async def test_quota_counts_approved_seller_messages_per_utc_day(conn):
    c, schema = conn
    pg = PgProjections(c, schema)
    day = T0.date()
    for i in range(3):
        await pg.apply(p.SellerMessageApproved("s-1", day, f"m{i}"))
    for d in range(1, 31):
        await pg.apply(p.OrderPlaced(f"o{d}", "s-1", day - timedelta(days=d)))
    assert await pg.quota("s-1", day) == (3, 5 * 1 + 600)
    # The next day's 30-day window has lost the oldest order: 29 orders / 30 days.
    assert await pg.quota("s-1", day + timedelta(days=1)) == (0, int(5 * 29 / 30) + 600)


async def test_a_batch_that_buffers_its_buyer_messages_and_insert_rows_leaves_the_same_tables(env):
    """Set-based writes (issue 14): the record's batch buffers its buyer messages and the
    operations nothing in the batch reads back, and writes them at its end (the buyer messages
    also before a reply or an exclusion); the tables come out as with one statement per
    operation."""
    pool = await create_pool(env["BSM_DATABASE_URL"], size=1)
    try:
        from tests.metrics_support import delivered, marked

        events, _ = issue_scenario()
        events.append(reported("q1", T0 + timedelta(hours=1), reporter="b-9"))
        h = timedelta(hours=1)
        # Exclusions before their messages, a message twice, a reply between two messages of
        # one conversation (it answers the first only), a message after an exclusion of its own.
        events += [marked("q-early", T0, party="s-1"), reported("q-rep", T0, reporter="b-1"),
                   delivered("q-early", conversation="c9", sender_role="buyer", at=T0,
                             seller="s-1"),
                   delivered("q-rep", conversation="c8", sender_role="buyer", at=T0,
                             seller="s-1"),
                   delivered("q-rep", conversation="c8", sender_role="buyer", at=T0,
                             seller="s-1"),
                   delivered("q-a", conversation="c7", sender_role="buyer", at=T0, seller="s-1"),
                   delivered("r-a", conversation="c7", sender_role="seller", at=T0 + h,
                             seller="s-1"),
                   delivered("q-b", conversation="c7", sender_role="buyer", at=T0 + 2 * h,
                             seller="s-1")]
        tables = []
        for buffered in (False, True):
            schema = "mt_" + uid()
            await migrate(pool, schema, projection_tables(schema))
            async with pool.acquire() as c:
                ops: list = []
                pg = PgProjections(c, schema, ops if buffered else None)
                for e in events:
                    for op in p.operations(e):
                        await pg.apply(op)
                if buffered:
                    assert ops, "the scenario has insert-only operations to buffer"
                    await pg.write_buffered(ops)
                tables.append(await dump(c, schema))
        assert tables[0] == tables[1]
        assert {r[0] for r in tables[1]["rt_excluded_early"]} == set(), "every one taken"
        buyer = {r[0]: r for r in tables[1]["rt_buyer_messages"]}
        assert buyer["q-early"][-1] == "no_response_needed" and buyer["q-rep"][-1] == "reported"
        assert buyer["q-a"][6] == "r-a" and buyer["q-b"][6] is None, "the reply answers q-a"
    finally:
        await pool.close()


async def test_an_exclusion_that_comes_before_its_message_is_taken_when_the_message_arrives(conn):
    from tests.metrics_support import delivered, marked

    c, schema = conn
    early = [marked("q-early", T0, party="s-1"),
             reported("q-reported", T0, reporter="b-1")]
    messages = [delivered(m, conversation="c-" + m, sender_role="buyer", at=T0, seller="s-1")
                for m in ("q-early", "q-reported", "q-plain")]
    memory, pg = p.InMemoryProjections(), PgProjections(c, schema)
    for e in [*early, *messages]:
        for op in p.operations(e):
            memory.apply(op)
            await pg.apply(op)
    rows = {r["message_id"]: r["excluded"] for r in await c.fetch(
        f"SELECT message_id, excluded FROM {schema}.rt_buyer_messages")}
    assert rows == {"q-early": "no_response_needed", "q-reported": "reported", "q-plain": None}
    assert rows == {m: t.excluded for m, t in memory.tracked.items()}
    assert await c.fetchval(f"SELECT count(*) FROM {schema}.rt_excluded_early") == 0
    assert memory.excluded_early == {}
