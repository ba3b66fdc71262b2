"""Parties' public names in the read model: a seller's business name and a buyer's display
name (A6), as the relayed mail's ``From`` shows them, so the inbox can say who wrote.

A name is personal data: the read model keeps it only sealed with the party's keyring key
(``party_names``, created by ``readmodel.migrations``), and it is opened for an answer only.
Erasing the party destroys the key, so an erased party's name can never be shown again — the
inbox says *erased* instead, never a stale name.

Where a name comes from: ``PartyRegistered`` (plaintext or sealed by the platform), and, for a
party registered before the read model kept names, the first ``MessageAddressed`` it sends
(``sender_display_name``, sealed by the alias service). These handlers run after the read
model's own for the same event (:func:`with_names`), in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from bsm_shared.contract import payloads as p
from bsm_shared.runtime.consumer import Handler, Incoming, Outgoing
from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.keyring import Erased, Keyring, is_party_sealed, sealed_party
from bsm_shared.runtime.transit import is_sealed
from bsm_shared.topics import Topic

from .writes import MessageWrites

#: The keyring field names are sealed under (the platform's and the alias service's too).
FIELD = "display_name"


@dataclass(frozen=True)
class Name:
    """A party's name as an answer may show it: ``name`` None when it is not known here or
    the party was erased (``erased`` says which)."""

    name: str | None
    erased: bool = False


class Names:
    def __init__(self, schema: str, keyring: Keyring, writes: MessageWrites) -> None:
        self.s = check_ident(schema)
        self.keyring = keyring
        self.writes = writes  # the read model's batch: a sender's name is written with it

    async def _sealed(self, conn: asyncpg.Connection, party_id: str, value: str) -> str | None:
        """``value`` as kept: sealed with ``party_id``'s own key (a value sealed for another
        party, or with a transit key the gateway does not hold, is not kept)."""
        if is_party_sealed(value):
            return value if sealed_party(value) == party_id else None
        if is_sealed(value) or not value.strip():
            return None
        try:
            return await self.keyring.seal(conn, party_id, FIELD, value.strip())
        except Erased:
            return None

    async def _keep(self, conn: asyncpg.Connection, party_id: str, value: str) -> None:
        """A registration's name: it replaces whatever name the party had."""
        sealed = await self._sealed(conn, party_id, value)
        if sealed is None:
            return
        await conn.execute(
            f"INSERT INTO {self.s}.party_names (party_id, display_name) VALUES ($1, $2) "
            f"ON CONFLICT (party_id) DO UPDATE SET display_name = EXCLUDED.display_name",
            party_id, sealed)

    async def on_party(self, conn: asyncpg.Connection, incoming: Incoming) -> None:
        d = incoming.event.data
        if isinstance(d, p.PartyRegistered):
            await self._keep(conn, d.party_id, d.display_name)
        elif isinstance(d, p.PartyErased):
            await conn.execute(f"DELETE FROM {self.s}.party_names WHERE party_id = $1",
                               d.party_id)

    async def on_addressed(self, conn: asyncpg.Connection, incoming: Incoming) -> None:
        d: p.MessageAddressed = incoming.event.data  # type: ignore[assignment]
        sealed = await self._sealed(conn, d.sender_party_id, d.sender_display_name)
        if sealed is not None:  # kept unless the party has a name already (registration's)
            self.writes.name(d.sender_party_id, sealed)

    def with_names(self, handlers: dict[Topic, Handler]) -> dict[Topic, Handler]:
        """The read model's handlers, each followed by this module's for the same event (the
        order of topics, reference data first, stays as the read model gives it)."""
        extra = {Topic.PARTIES: self.on_party, Topic.ADDRESSED: self.on_addressed}

        def chained(topic: Topic, first: Handler) -> Handler:
            then = extra.get(topic)
            if then is None:
                return first

            async def both(conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
                out = list(await first(conn, incoming))
                await then(conn, incoming)
                return out

            return both

        return {topic: chained(topic, h) for topic, h in handlers.items()}

    async def open(self, conn: Any, party_ids: Iterable[str]) -> dict[str, Name]:
        """Each party's name, opened for one answer (erased parties as such)."""
        ids = sorted(set(party_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"SELECT party_id, display_name FROM {self.s}.party_names "
            f"WHERE party_id = ANY($1::text[])", ids)
        erased = await self.keyring.erased(conn, ids)
        out = {i: Name(None, erased=i in erased) for i in ids}
        for r in rows:
            if r["party_id"] not in erased:
                out[r["party_id"]] = Name(await self.keyring.open(
                    conn, r["display_name"], FIELD, party_id=r["party_id"]))
        return out
