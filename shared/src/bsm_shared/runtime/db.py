"""PostgreSQL: the pool, a service's schema, and the tables every consumer needs.

Each service keeps its tables in its own schema; no service reads another's. Two tables are
common to all (the pattern of eventsourcing's tracking table and a transactional outbox):

* ``processed_events`` — the idempotent-consumer table. A consumer inserts the event id in the
  *same transaction* as the effect; a redelivered event then hits the primary key and is a
  no-op by constraint, not by bookkeeping.
* ``outbox`` — what the service will publish, written in that same transaction. The relay
  (:mod:`.outbox`) publishes rows in id order and marks them; a crash between publish and mark
  republishes the same bytes with the same ``event_id``, which consumers drop.

Neither grows forever (:meth:`.service.ServiceRuntime.prune`): published outbox rows are
deleted after ``outbox_retention_hours`` (default 7 days: Kafka keeps the events themselves),
processed ids after ``processed_retention_days`` (default 30 days: far longer than any
redelivery — a crash, a rebalance or a relay republishing — takes; only rewinding a consumer
group further back than that would apply an event twice). Failed outbox rows stay.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

log = logging.getLogger("bsm.db")

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
        # A row Kafka refused for good is marked, not retried forever (see ``outbox``).
        f"ALTER TABLE {s}.outbox ADD COLUMN IF NOT EXISTS failed_at timestamptz",
        f"ALTER TABLE {s}.outbox ADD COLUMN IF NOT EXISTS error text",
        # Retention: published rows and processed ids are pruned by age (``service``).
        f"CREATE INDEX IF NOT EXISTS outbox_published ON {s}.outbox (published_at) "
        f"WHERE published_at IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS processed_events_age ON {s}.processed_events "
        f"(processed_at)",
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


async def keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: nothing but the end of a
    transaction left open (a failure between ``BEGIN`` and ``COMMIT``).

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release: one more round trip per use of the pool (a tenth of delivery's socket time
    under load). None of it applies here: the services take only transaction-scoped advisory
    locks (the owner lock lives on a connection of its own), hold no cursor past a
    transaction, never ``LISTEN``, and set nothing for the session but the role the pool's
    ``init`` sets, which ``RESET ALL`` would undo."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def insert_rows(
    conn: asyncpg.Connection, table: str, columns: Mapping[str, str],
    rows: Sequence[Sequence[Any]], *, on_conflict: str = "ON CONFLICT DO NOTHING",
) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``: name → PostgreSQL type) with one
    statement — an array per column, ``unnest``ed — instead of a statement per row; rows are
    inserted in the order given, so a serial column (the outbox's ``id``, the archive's
    ``position``) follows it. ``table`` is the caller's, already checked."""
    if not rows:
        return
    names = ", ".join(check_ident(c) for c in columns)
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(columns.values(), 1))
    await conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS rows_({names}, ordinal_) ORDER BY ordinal_ {on_conflict}",
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect``, with a server that is down reported the same way however it is
    reached. Over TCP a stopped server refuses the connection (``ConnectionRefusedError``, a
    transient error); over its Unix socket (the local stack's services, a co-located server)
    the socket file is gone while the server is down, and the connect raises
    ``FileNotFoundError`` — which :func:`is_transient` rightly does not retry when an event's
    file is missing. Here it is the outage, raised as ``ConnectionRefusedError``."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except FileNotFoundError as exc:
        raise ConnectionRefusedError(
            errno.ECONNREFUSED, f"PostgreSQL is not there (its Unix socket is missing): {exc}"
        ) from exc


async def create_pool(dsn: str, *, size: int, role: str = "") -> asyncpg.Pool:
    """A pool; with ``role``, every connection works as that role (``SET ROLE``)."""

    async def as_role(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET ROLE {check_ident(role)}")

    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, command_timeout=60, init=as_role if role else None,
        reset=keep_session, connect=connect,
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, schema: str, statements: Sequence[str]) -> None:
    """Create the schema's tables. Idempotent; serialised by an advisory lock so several
    instances starting at once do not race on ``CREATE``.

    Run once per version of the statements: their digest is recorded, and an instance that
    starts beside running siblings finds it and touches nothing. (Running the DDL again took
    ``ALTER TABLE``'s exclusive lock on tables the siblings were writing, in another order
    than theirs: a deadlock killed restarted instances now and then.) When the DDL does run
    (first start, new version) it waits at most ``lock_timeout`` for each lock and is retried
    on a deadlock."""
    s = check_ident(schema)
    everything = [*common_tables(schema), *statements]
    digest = hashlib.sha256("\n;\n".join(everything).encode()).hexdigest()
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                   f"bsm-migrate:{schema}")
                if await conn.fetchval("SELECT to_regclass($1)", f"{s}.schema_migrations") \
                        and await conn.fetchval(
                            f"SELECT true FROM {s}.schema_migrations WHERE digest = $1", digest):
                    return
                await conn.execute("SET LOCAL lock_timeout = '10s'")
                for statement in everything:
                    await conn.execute(statement)
                await conn.execute(
                    f"""CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                        digest     text        PRIMARY KEY,
                        applied_at timestamptz NOT NULL DEFAULT now())""")
                await conn.execute(
                    f"INSERT INTO {s}.schema_migrations (digest) VALUES ($1) "
                    f"ON CONFLICT DO NOTHING", digest)
            return
        except (asyncpg.exceptions.DeadlockDetectedError,
                asyncpg.exceptions.LockNotAvailableError) as exc:
            if attempt == MIGRATE_ATTEMPTS:
                raise
            log.warning("migrating %s: %r; trying again (%d/%d)", schema, exc, attempt,
                        MIGRATE_ATTEMPTS)
            await asyncio.sleep(attempt)


#: How often a migration that met a deadlock or a lock it could not get is tried.
MIGRATE_ATTEMPTS = 5


async def prune(
    pool: asyncpg.Pool, schema: str, *, outbox_seconds: float, processed_seconds: float,
    batch: int = 5000,
) -> dict[str, int]:
    """Delete published outbox rows and processed ids older than their retention, in chunks
    (a long backlog never holds a big lock). Unpublished and failed outbox rows stay. Returns
    how many rows went, per table."""
    s = check_ident(schema)
    rules = {
        "outbox": (f"DELETE FROM {s}.outbox WHERE id IN (SELECT id FROM {s}.outbox "
                   f"WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
                   outbox_seconds),
        "processed_events": (
            f"DELETE FROM {s}.processed_events WHERE ctid IN (SELECT ctid FROM "
            f"{s}.processed_events WHERE processed_at < now() - make_interval(secs => $1) "
            f"LIMIT $2)", processed_seconds),
    }
    gone: dict[str, int] = {}
    for table, (sql, seconds) in rules.items():
        total = 0
        while True:
            n = int((await pool.execute(sql, float(seconds), batch)).split()[-1])
            total += n
            if n < batch:
                break
        gone[table] = total
    return gone


#: Errors of the database or the network, not of the event: worth retrying (bounded, see
#: :mod:`.consumer`). Deliberately narrow: a file that is missing (``FileNotFoundError``), a
#: permission, a bad value are ``OSError``\s or ``ValueError``\s of the *event*, and retrying
#: them only wedges the stream behind it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    socket.gaierror,  # a name that did not resolve (DNS down)
    asyncpg.exceptions.PostgresConnectionError,  # 08xxx: connection failures
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,  # connection closed under us
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the server is stopping
    asyncpg.exceptions.CrashShutdownError,  # 57P02: a backend crashed, all reset
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.QueryCanceledError,  # a statement timeout (bounded per event)
    asyncpg.exceptions.LockNotAvailableError,
)

#: ``errno``\s of an ``OSError`` that is the network's, not the event's.
_NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EAGAIN,
})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the infrastructure's (retry) rather than the input's (never retry)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if type(exc) is OSError and exc.errno in _NETWORK_ERRNOS:
        return True
    if (isinstance(exc, asyncpg.exceptions.InternalClientError)
            and "another operation" in str(exc)):
        # asyncpg's protocol state after the server ended the session under a pooled
        # connection (a restart, a failover, pg_terminate_backend): "cannot switch to state
        # 15; another operation (2) is in progress" (MagicStack/asyncpg#784, #1069). The pool
        # replaces the connection; the next attempt works.
        return True
    name = type(exc).__module__
    # aiokafka's retriable errors (a broker away, a leader moving) say so themselves.
    return name.startswith("aiokafka") and bool(getattr(exc, "retriable", False))
