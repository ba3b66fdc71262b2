"""PostgreSQL: the pool, a service's schema, and the tables every consumer needs.

Each service keeps its tables in its own schema; no service reads another's. Two tables are
common to all (the pattern of eventsourcing's tracking table and a transactional outbox):

* ``processed_events`` — the idempotent-consumer table. A consumer inserts the event id in the
  *same transaction* as the effect; a redelivered event then hits the primary key and is a
  no-op by constraint, not by bookkeeping.
* ``outbox`` — what the service will publish, written in that same transaction. The relay
  (:mod:`.outbox`) publishes rows in id order and marks them; a crash between publish and mark
  republishes the same bytes with the same ``event_id``, which consumers drop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_ident(name: str) -> str:
    """A schema or table name safe to format into SQL (we never format values)."""
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def common_tables(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.processed_events (
            consumer     text        NOT NULL,
            event_id     uuid        NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.outbox (
            id           bigserial   PRIMARY KEY,
            event_id     uuid        NOT NULL UNIQUE,
            topic        text        NOT NULL,
            key          bytea,
            payload      bytea       NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )""",
        f"CREATE INDEX IF NOT EXISTS outbox_pending ON {s}.outbox (id) WHERE published_at IS NULL",
        # Events parked until a prerequisite arrives (e.g. a message before its order), with
        # a deadline after which the handler decides without it.
        f"""CREATE TABLE IF NOT EXISTS {s}.deferred (
            event_id     uuid        NOT NULL,
            consumer     text        NOT NULL,
            waiting_for  text        NOT NULL,
            topic        text        NOT NULL,
            partition    integer     NOT NULL,
            kafka_offset bigint      NOT NULL,
            raw          text        NOT NULL,
            deadline     timestamptz NOT NULL,
            PRIMARY KEY (consumer, event_id)
        )""",
        f"CREATE INDEX IF NOT EXISTS deferred_waiting ON {s}.deferred (consumer, waiting_for)",
        f"CREATE INDEX IF NOT EXISTS deferred_deadline ON {s}.deferred (deadline)",
    ]


async def create_pool(dsn: str, *, size: int, role: str = "") -> asyncpg.Pool:
    """A pool; with ``role``, every connection works as that role (``SET ROLE``)."""

    async def as_role(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET ROLE {check_ident(role)}")

    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, command_timeout=60, init=as_role if role else None
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, schema: str, statements: Sequence[str]) -> None:
    """Create the schema's tables. Idempotent; serialised by an advisory lock so several
    instances starting at once do not race on ``CREATE``."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"bsm-migrate:{schema}")
        for statement in [*common_tables(schema), *statements]:
            await conn.execute(statement)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.QueryCanceledError,
    TimeoutError,
)
"""Errors worth retrying: the database or network, not the event."""
