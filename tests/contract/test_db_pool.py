"""The services' connection pool (``bsm_shared.runtime.db.create_pool``): a connection goes back
without asyncpg's reset round trip, keeps its session (the role the pool's ``init`` set), and
never carries a transaction someone left open into its next use."""

from __future__ import annotations

from bsm_shared.runtime.db import create_pool


async def test_a_released_connection_keeps_its_session_and_loses_an_open_transaction(env):
    pool = await create_pool(env["BSM_DATABASE_URL"], size=1)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.execute("SET application_name = 'kept-across-uses'")
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO left_open VALUES (1)")
            # released here in the middle of a transaction (a failure between BEGIN and COMMIT)
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection, not a new one
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM left_open") == 0
            assert await conn.fetchval("SHOW application_name") == "kept-across-uses"
    finally:
        await pool.close()
