"""A PostgreSQL that is down is an outage (retried, a 503) whichever way it is reached: over
its Unix socket the socket file is gone while the server is stopped, and connecting raises
FileNotFoundError, which the services must not take for an event's missing file."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bsm_shared.runtime.db import create_pool, is_transient


async def test_a_server_whose_unix_socket_is_gone_is_a_transient_connection_refusal(tmp_path):
    dsn = f"postgresql://bsm:bsm@/bsm?host={tmp_path}&port=15432"  # no server there
    with pytest.raises(FileNotFoundError):  # what asyncpg itself raises
        await asyncpg.connect(dsn)
    with pytest.raises(ConnectionRefusedError) as refused:
        await create_pool(dsn, size=1)
    assert is_transient(refused.value)
    assert not is_transient(FileNotFoundError(2, "an attachment's blob"))


def test_asyncpgs_state_error_after_a_terminated_session_is_transient_and_others_are_not():
    assert is_transient(asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"))
    assert not is_transient(asyncpg.exceptions.InternalClientError("a client bug"))


async def test_every_error_of_a_pool_whose_sessions_the_server_ends_is_transient(env):
    """A database restart or failover ends every session under the pools: what the next
    statements raise is retried (a warning), never taken for the event's fault or logged as
    a crash. Seen here: ConnectionDoesNotExistError, and now and then asyncpg's
    InternalClientError."""
    pool = await create_pool(env["BSM_DATABASE_URL"], size=2)
    admin = await asyncpg.connect(env["BSM_DATABASE_URL"])
    errors: list[BaseException] = []
    try:
        for trial in range(20):
            async with pool.acquire() as conn:
                pid = await conn.fetchval("SELECT pg_backend_pid()")
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.05 * (trial % 3))
            for _ in range(3):
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        assert await conn.fetchval("SELECT 1") == 1
                except Exception as exc:  # noqa: BLE001 - collected, judged below
                    errors.append(exc)
    finally:
        await admin.close()
        await pool.close()
    assert errors, "ending sessions under a pool shows in its next statements"
    assert [e for e in errors if not is_transient(e)] == []
