"""Leases on work rows that end the moment their holder dies.

A worker that claims rows (delivery's mail jobs) and then works on them *outside* a transaction
(an SMTP conversation must not hold row locks) marks them with its owner id and a lease. Another
instance may take a leased row over when the lease ran out, or at once when the owner is dead.

"Dead" is PostgreSQL's to say: every owner holds a session-level advisory lock on a connection of
its own for as long as it lives. When its process is killed, the server drops the connection and
the lock with it; a claim query then gets the owner's lock with ``pg_try_advisory_xact_lock`` —
that is the proof. A live owner's lock cannot be taken, so its rows are left alone until the
lease ends (the safety net for an owner that lives but is stuck).

An owner whose own lock connection broke (a PostgreSQL restart) takes it again before it claims;
until then its rows may be taken over, which at worst repeats the work in flight at that moment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

import asyncpg

from . import db

log = logging.getLogger("bsm.liveness")

#: The advisory lock's first key: the namespace of every owner lock.
NAMESPACE = "bsm-owner"


def new_owner_id(service: str) -> str:
    """A unique owner id for this process (host, pid and a random part: pids are reused)."""
    return f"{service}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_owner_sql(column: str) -> str:
    """A SQL condition true when the owner in ``column`` holds no lock (its process is gone).

    Only for rows leased by *another* owner: a session may take its own lock again."""
    return (f"pg_try_advisory_xact_lock(hashtext('{NAMESPACE}'), hashtext({column}))")


class Liveness:
    """This process's owner lock, held on a dedicated connection."""

    def __init__(self, dsn: str, owner: str) -> None:
        self._dsn = dsn
        self.owner = owner
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """Hold the owner lock (again, after a lost connection) before claiming anything."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await db.connect(self._dsn)
            await conn.execute("SELECT pg_advisory_lock(hashtext($1), hashtext($2))",
                               NAMESPACE, self.owner)
            self._conn = conn
            log.info("holding the owner lock of %s", self.owner)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
