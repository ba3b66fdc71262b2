"""The party keyring: one data key per party for personal data that travels in events.

Kafka keeps our events forever and cannot forget one of them, so personal data that has to
travel between services (a buyer's display name, a seller's business name, a seller's
authorized sender addresses) travels *sealed with the party's own data key*
(``pii:v1:<party id>:<base64(nonce ‖ AES-GCM ciphertext)>``, the party id and the field name as
associated data). The data keys live in one place, the ``keyring`` schema of the platform's
PostgreSQL (in production: a KMS), wrapped by the deployment's key-encryption key
``BSM_KEYRING_KEY``, and every service that seals or opens such a value asks the keyring.

Erasure is crypto-shredding: :meth:`Keyring.erase` deletes the party's data key and records the
party as erased, in the caller's transaction (the gateway writes the ``PartyErased`` event into
its outbox in the same one). From then on every sealed value of that party, in every event on
every topic and in every archive row, is ciphertext nobody can open — while the events
themselves, their signatures (computed over the sealed form) and every replay stay intact.
A party once erased never gets a new key, so a replay of its registration cannot bring it back.

Opened keys are cached per process for ``ttl`` seconds (a hot path: every addressed message
seals its sender's name). A service that sees ``PartyErased`` calls :meth:`Keyring.forget`;
in any case no process can use an erased key longer than ``ttl`` after the erasure.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable

import asyncpg
from cachetools import TTLCache
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .db import check_ident

PREFIX = "pii:v1:"


class Erased(Exception):
    """The party was erased: its personal data can no longer be sealed or opened."""


def is_party_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def sealed_party(value: str) -> str | None:
    """The party id a sealed value belongs to (``None`` for anything else)."""
    if not is_party_sealed(value):
        return None
    party, sep, _blob = value[len(PREFIX):].rpartition(":")
    return party if sep and party else None


class Keyring:
    def __init__(
        self, kek: bytes, *, schema: str = "keyring", ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic, max_cached: int = 10_000,
    ) -> None:
        if len(kek) != 32:
            raise ValueError("BSM_KEYRING_KEY must be 32 bytes (base64)")
        self._kek = AESGCM(kek)
        self.s = check_ident(schema)
        # Bounded, and expired entries go on every access (cachetools expires the whole cache
        # as it is touched), not only when the same party is looked up again.
        self._cache: TTLCache[str, AESGCM] = TTLCache(maxsize=max_cached, ttl=ttl, timer=clock)

    def migrations(self) -> list[str]:
        """DDL for the keyring, to append to a service's migrations (several services run it:
        its own advisory lock serialises them, always taken after the service's own)."""
        s = self.s
        return [
            f"SELECT pg_advisory_xact_lock(hashtext('bsm-migrate:{s}'))",
            f"CREATE SCHEMA IF NOT EXISTS {s}",
            f"""CREATE TABLE IF NOT EXISTS {s}.party_keys (
                party_id    text PRIMARY KEY,
                wrapped_key bytea NOT NULL,          -- AES-256 data key, wrapped by the KEK
                created_at  timestamptz NOT NULL DEFAULT now()
            )""",
            f"""CREATE TABLE IF NOT EXISTS {s}.erased (
                party_id     text PRIMARY KEY,
                erased_at    timestamptz NOT NULL,
                requested_by text NOT NULL
            )""",
        ]

    # -- keys ------------------------------------------------------------------------------

    def _wrap(self, party_id: str, dek: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._kek.encrypt(nonce, dek, b"keyring:" + party_id.encode())

    def _unwrap(self, party_id: str, wrapped: bytes) -> AESGCM:
        return AESGCM(self._kek.decrypt(wrapped[:12], wrapped[12:], b"keyring:" + party_id.encode()))

    def _cached(self, party_id: str) -> AESGCM | None:
        return self._cache.get(party_id)

    def cached_keys(self) -> int:
        """How many opened keys this process holds now (expired ones already gone)."""
        self._cache.expire()
        return len(self._cache)

    async def _key(self, conn: asyncpg.Connection, party_id: str, *, create: bool,
                   fresh: bool = False) -> AESGCM | None:
        """The party's key. Sealing (``create``) never trusts the memory: a key this process
        made or read inside a transaction that then rolled back (a batch retried after a
        deadlock) is remembered but is in no table, and a value sealed with it would open
        nowhere. So ``seal`` reads the row in the caller's transaction, making it if missing;
        reads take the remembered key (``open`` reads again, ``fresh``, when it fails)."""
        key = None if create or fresh else self._cached(party_id)
        if key is not None:
            return key
        wrapped = await conn.fetchval(
            f"SELECT wrapped_key FROM {self.s}.party_keys WHERE party_id = $1", party_id
        )
        if wrapped is None and create:
            # Serialised with erase() per party, so an erasure and a first seal never interleave
            # (a party erased a moment ago must not get a fresh key). The lock lives as long as
            # a transaction: in the caller's (a savepoint here) or in one of its own.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                   f"keyring:{party_id}")
                await conn.execute(
                    f"""INSERT INTO {self.s}.party_keys (party_id, wrapped_key)
                        SELECT $1, $2 WHERE NOT EXISTS
                            (SELECT 1 FROM {self.s}.erased WHERE party_id = $1)
                        ON CONFLICT (party_id) DO NOTHING""",
                    party_id, self._wrap(party_id, AESGCM.generate_key(bit_length=256)),
                )
                wrapped = await conn.fetchval(
                    f"SELECT wrapped_key FROM {self.s}.party_keys WHERE party_id = $1", party_id
                )
        if wrapped is None:
            return None
        key = self._unwrap(party_id, wrapped)
        self._cache[party_id] = key
        return key

    def forget(self, party_id: str) -> None:
        """Drop a cached key (on ``PartyErased``)."""
        self._cache.pop(party_id, None)

    # -- values ----------------------------------------------------------------------------

    async def seal(self, conn: asyncpg.Connection, party_id: str, field: str, value: str) -> str:
        """``value`` sealed with the party's data key (created on first use). Raises
        :class:`Erased` for an erased party: its data must not be written anywhere again."""
        key = await self._key(conn, party_id, create=True)
        if key is None:
            raise Erased(party_id)
        nonce = os.urandom(12)
        blob = nonce + key.encrypt(nonce, value.encode(), f"{party_id}:{field}".encode())
        return f"{PREFIX}{party_id}:{base64.b64encode(blob).decode()}"

    async def open(
        self, conn: asyncpg.Connection, value: str, field: str, *, party_id: str | None = None
    ) -> str | None:
        """The plaintext of a sealed value; ``None`` once its party is erased (or for a value
        that was not sealed for ``field``, or — with ``party_id`` — for another party: a value
        in one party's event that only another party's key opens would survive the first
        party's erasure). A value that is not party-sealed is returned as is (outside
        producers send plaintext)."""
        owner = sealed_party(value)
        if owner is None:
            return None if is_party_sealed(value) else value
        if party_id is not None and owner != party_id:
            return None
        party_id = owner
        try:
            blob = base64.b64decode(value.rpartition(":")[2], validate=True)
        except ValueError:
            return None
        for fresh in (False, True):
            key = await self._key(conn, party_id, create=False, fresh=fresh)
            if key is None:
                return None
            try:
                return key.decrypt(blob[:12], blob[12:], f"{party_id}:{field}".encode()).decode()
            except (ValueError, InvalidTag):
                continue  # perhaps a remembered key that was rolled back: read it again
        return None

    # -- erasure ---------------------------------------------------------------------------

    async def erase(
        self, conn: asyncpg.Connection, party_id: str, *, at: object, requested_by: str
    ) -> bool:
        """Destroy the party's data key; ``True`` if the party was not erased before. Run it
        in the transaction that records the ``PartyErased`` event."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"keyring:{party_id}")
        first = await conn.fetchval(
            f"""INSERT INTO {self.s}.erased (party_id, erased_at, requested_by)
                VALUES ($1, $2, $3) ON CONFLICT (party_id) DO NOTHING RETURNING true""",
            party_id, at, requested_by,
        )
        await conn.execute(f"DELETE FROM {self.s}.party_keys WHERE party_id = $1", party_id)
        self.forget(party_id)
        return bool(first)

    async def erased(self, conn: asyncpg.Connection, party_ids: Iterable[str]) -> set[str]:
        rows = await conn.fetch(
            f"SELECT party_id FROM {self.s}.erased WHERE party_id = ANY($1::text[])",
            list(set(party_ids)),
        )
        return {r["party_id"] for r in rows}
