"""The alias service's tables (schema ``alias`` by default) and queries.

Aliases are a fact of the schema: ``aliases.local_part`` is the primary key (no two sides of
any relationships share an alias) and ``relationships (buyer_id, seller_id)`` is unique (one
pair, one relationship, forever).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bsm_shared.runtime.db import check_ident
from bsm_shared.runtime.keyring import Erased, Keyring
from bsm_shared.runtime.pii import PiiVault

from .core import Party, PriorMessage, Relationship
from .mail import SenderFacts

ALIAS_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ALIAS_LENGTH = 16  # 16 × log2(36) ≈ 82.7 bits from the CSPRNG (A2 asks for ≥ 75)


def random_alias_local() -> str:
    """A fresh alias local part: CSPRNG, never derived from an address, [a-z0-9]{16}."""
    return "".join(secrets.choice(ALIAS_ALPHABET) for _ in range(ALIAS_LENGTH))


def migrations(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.parties (
            party_id     text PRIMARY KEY,
            role         text NOT NULL CHECK (role IN ('buyer', 'seller')),
            display_name text NOT NULL,
            locale       text NOT NULL,
            marketplace  text NOT NULL,
            data_key     bytea NOT NULL,      -- the party's AES-GCM data key, wrapped
            email_enc    bytea NOT NULL,      -- the real address, encrypted with the data key
            email_index  bytea NOT NULL,      -- keyed blind index for lookups by address
            registered_at timestamptz NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS parties_email_index ON {s}.parties (email_index)",
        f"""CREATE TABLE IF NOT EXISTS {s}.relationships (
            relationship_id text PRIMARY KEY,
            buyer_id     text NOT NULL,
            seller_id    text NOT NULL,
            buyer_alias  text NOT NULL UNIQUE,
            seller_alias text NOT NULL UNIQUE,
            created_at   timestamptz NOT NULL DEFAULT now(),
            UNIQUE (buyer_id, seller_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.aliases (
            local_part      text PRIMARY KEY CHECK (local_part ~ '^[a-z0-9]{{15,16}}$'),
            relationship_id text NOT NULL REFERENCES {s}.relationships,
            party_id        text NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.messages (
            message_id      text PRIMARY KEY,
            conversation_id text NOT NULL,
            relationship_id text NOT NULL,
            conversation_started_by text NOT NULL,
            order_id        text
        )""",
        # A seller's authorized and blocked sender addresses (A4), as blind indexes only: the
        # door needs equality, never the address itself.
        f"""CREATE TABLE IF NOT EXISTS {s}.seller_senders (
            seller_id   text NOT NULL,
            email_index bytea NOT NULL,
            state       text NOT NULL CHECK (state IN ('approved', 'blocked')),
            PRIMARY KEY (seller_id, state, email_index)
        )""",
        f"CREATE INDEX IF NOT EXISTS seller_senders_index ON {s}.seller_senders (email_index)",
        # Erasure: the row stays (an erased party must not come back on a replay of its
        # registration), everything personal in it is emptied. ``display_name`` holds the
        # name sealed with the party's keyring key (pii:v1:…), which erasure shreds.
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS erased_at timestamptz",
    ]


_MISSING = object()


@dataclass
class Loaded:
    """What a batch's preload read (``AliasStore.preload``), one query per table: a key present
    maps to its row or ``None`` (known absent); a key not present was not loaded and is read
    when asked. Writes of the same batch keep it true (a relationship created, a message
    recorded); a party write forgets the party."""

    parties: dict[str, Any] = field(default_factory=dict)
    relationships: dict[tuple[str, str], Relationship | None] = field(default_factory=dict)
    messages: dict[str, PriorMessage | None] = field(default_factory=dict)
    #: Alias local part → its relationship and the party it stands for.
    aliases: dict[str, tuple[Relationship, str] | None] = field(default_factory=dict)
    #: Messages the batch records, written at its end in one statement (:meth:`AliasStore.
    #: write_recorded`); only for ids the preload read as absent.
    recorded: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)


def _relationship_of(row: Any) -> Relationship:
    return Relationship(row["relationship_id"], row["buyer_id"], row["seller_id"],
                        row["buyer_alias"], row["seller_alias"])


class RecordedMeanwhile(Exception):
    """Messages of a batch that another instance recorded after the batch's preload."""


class AliasStore:
    def __init__(
        self, conn: asyncpg.Connection, schema: str, vault: PiiVault, keyring: Keyring,
        loaded: Loaded | None = None,
    ) -> None:
        self.c = conn
        self.s = check_ident(schema)
        self.vault = vault
        self.keyring = keyring
        self.loaded = loaded or Loaded()

    def _party_sql(self, where: str) -> str:
        # The keyring's own record of erasures is asked too: it is final the moment the
        # erasure commits, while our ``PartyErased`` copy (and a cached key) may lag a batch.
        return f"""SELECT p.party_id, p.role, p.display_name, p.locale,
                          COALESCE(p.erased_at, e.erased_at) AS erased_at, p.data_key,
                          p.email_enc
                   FROM {self.s}.parties p LEFT JOIN {self.keyring.s}.erased e USING (party_id)
                   WHERE {where}"""

    _RELATIONSHIP = "relationship_id, buyer_id, seller_id, buyer_alias, seller_alias"
    _MESSAGE = "message_id, conversation_id, relationship_id, conversation_started_by"

    async def preload(self, party_ids: list[str], replies_to: list[str],
                      own: Sequence[str] = (), aliases: Sequence[str] = ()) -> None:
        """Read, for a batch of messages, the aliases they are addressed to, their parties,
        the relationships between them and the messages they answer or are (``own``: whether
        each was addressed before): four queries at most, whatever the batch's size."""
        if aliases:
            wanted_aliases = sorted(set(aliases))
            found_aliases = await self.c.fetch(
                f"{self._BY_ALIAS.format(s=self.s)} WHERE a.local_part = ANY($1::text[])",
                wanted_aliases)
            self.loaded.aliases.update(dict.fromkeys(wanted_aliases))
            for r in found_aliases:
                self.loaded.aliases[r["local_part"]] = (_relationship_of(r), r["party_id"])
            party_ids = [*party_ids, *(r["party_id"] for r in found_aliases)]
        ids = sorted(set(party_ids))
        rows = await self.load_parties(ids)
        roles = {r["party_id"]: r["role"] for r in rows}
        buyers = [i for i in ids if roles.get(i) == "buyer"]
        sellers = [i for i in ids if roles.get(i) == "seller"]
        if buyers and sellers:
            found = await self.c.fetch(
                f"SELECT {self._RELATIONSHIP} FROM {self.s}.relationships "
                f"WHERE buyer_id = ANY($1::text[]) AND seller_id = ANY($2::text[])",
                buyers, sellers)
            self.loaded.relationships.update(
                {(r["buyer_id"], r["seller_id"]): Relationship(**dict(r)) for r in found})
        if replies_to or own:
            wanted = sorted({*replies_to, *own})
            found = await self.c.fetch(
                f"SELECT {self._MESSAGE} FROM {self.s}.messages "
                f"WHERE message_id = ANY($1::text[])", wanted)
            self.loaded.messages.update(dict.fromkeys(wanted))
            self.loaded.messages.update({r["message_id"]: PriorMessage(**dict(r))
                                         for r in found})

    async def load_parties(self, party_ids: Sequence[str]) -> list[asyncpg.Record]:
        """Read parties in one query, for :meth:`party` and :meth:`registered_email`."""
        ids = sorted(set(party_ids))
        rows = await self.c.fetch(self._party_sql("p.party_id = ANY($1::text[])"), ids)
        self.loaded.parties.update(dict.fromkeys(ids))
        self.loaded.parties.update({r["party_id"]: r for r in rows})
        return rows

    async def upsert_party(
        self, *, party_id: str, role: str, display_name: str, locale: str, marketplace: str,
        email: str, registered_at: object,
    ) -> bool:
        """Store (or update) a registration; ``False`` for an erased party (a replay of its
        registration must not bring its data back)."""
        self.loaded.parties.pop(party_id, None)
        existing = await self.c.fetchrow(
            f"SELECT data_key, erased_at FROM {self.s}.parties WHERE party_id = $1", party_id
        )
        if existing is not None and existing["erased_at"] is not None:
            return False
        try:
            sealed_name = await self.keyring.seal(self.c, party_id, "display_name", display_name)
        except Erased:
            return False
        data_key = existing["data_key"] if existing else self.vault.new_data_key(party_id)
        await self.c.execute(
            f"""INSERT INTO {self.s}.parties AS p (party_id, role, display_name, locale,
                    marketplace, data_key, email_enc, email_index, registered_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (party_id) DO UPDATE SET role = EXCLUDED.role,
                    display_name = EXCLUDED.display_name, locale = EXCLUDED.locale,
                    marketplace = EXCLUDED.marketplace, email_enc = EXCLUDED.email_enc,
                    email_index = EXCLUDED.email_index""",
            party_id, role, sealed_name, locale, marketplace, data_key,
            self.vault.encrypt(party_id, data_key, "email", email),
            self.vault.blind_index(email), registered_at,
        )
        return True

    async def erase_party(self, party_id: str, at: object) -> None:
        """Forget everything personal about a party (its keyring key is already destroyed):
        the data key of its stored address, the address, its index, its sender lists."""
        self.loaded.parties.pop(party_id, None)
        await self.c.execute(
            f"""INSERT INTO {self.s}.parties AS p (party_id, role, display_name, locale,
                    marketplace, data_key, email_enc, email_index, registered_at, erased_at)
                VALUES ($1, 'buyer', '', '', '', '', '', '', $2, $2)
                ON CONFLICT (party_id) DO UPDATE SET display_name = '', data_key = '',
                    email_enc = '', email_index = '', erased_at = $2""",
            party_id, at,
        )
        await self.c.execute(f"DELETE FROM {self.s}.seller_senders WHERE seller_id = $1", party_id)
        self.keyring.forget(party_id)

    async def party(self, party_id: str) -> Party | None:
        row = self.loaded.parties.get(party_id, _MISSING)
        if row is _MISSING:
            row = await self.c.fetchrow(self._party_sql("p.party_id = $1"), party_id)
        if row is None:
            return None
        if row["erased_at"] is not None:
            return Party(row["party_id"], row["role"], "", row["locale"], erased=True)
        sealed = row["display_name"]
        name = await self.keyring.open(self.c, sealed, "display_name", party_id=row["party_id"])
        if name is None:  # shredded (erased a moment ago, in another service's transaction)
            return Party(row["party_id"], row["role"], "", row["locale"], erased=True)
        if sealed == name:  # a row from before the keyring: seal it now, for the events
            sealed = await self.keyring.seal(self.c, row["party_id"], "display_name", name)
        return Party(row["party_id"], row["role"], name, row["locale"], sealed_name=sealed)

    #: An alias with its relationship (one join; ``local_part`` to filter on).
    _BY_ALIAS = (
        "SELECT a.local_part, a.party_id, r.relationship_id, r.buyer_id, r.seller_id, "
        "r.buyer_alias, r.seller_alias FROM {s}.aliases a "
        "JOIN {s}.relationships r ON r.relationship_id = a.relationship_id"
    )

    async def by_alias(self, local_part: str) -> tuple[Relationship, Party] | None:
        known = self.loaded.aliases.get(local_part, _MISSING)
        if known is _MISSING:
            row = await self.c.fetchrow(
                f"{self._BY_ALIAS.format(s=self.s)} WHERE a.local_part = $1", local_part)
            known = (_relationship_of(row), row["party_id"]) if row else None
        if known is None:
            return None
        rel, party_id = known  # type: ignore[misc]
        party = await self.party(party_id)
        if party is None:
            return None
        return rel, party

    async def relationship(self, buyer_id: str, seller_id: str, new_id: str) -> Relationship:
        """The pair's relationship, created with two fresh random aliases the first time.

        Two instances may meet the same new pair at once: ``ON CONFLICT`` makes the second
        wait for the first's commit and then read the winner's row, so a pair never gets two
        relationships (and never a unique-violation error)."""
        known = self.loaded.relationships.get((buyer_id, seller_id))
        if known is not None:
            return known
        relationship = await self._relationship(buyer_id, seller_id, new_id)
        self.loaded.relationships[(buyer_id, seller_id)] = relationship
        return relationship

    async def _relationship(self, buyer_id: str, seller_id: str, new_id: str) -> Relationship:
        select = (
            f"SELECT {self._RELATIONSHIP} "
            f"FROM {self.s}.relationships WHERE buyer_id = $1 AND seller_id = $2"
        )
        row = await self.c.fetchrow(select, buyer_id, seller_id)
        if row:
            return Relationship(**dict(row))
        while True:
            buyer_alias, seller_alias = random_alias_local(), random_alias_local()
            taken = await self.c.fetchval(
                f"SELECT count(*) FROM {self.s}.aliases WHERE local_part = ANY($1::text[])",
                [buyer_alias, seller_alias],
            )
            if not taken and buyer_alias != seller_alias:  # 2^-82 per draw; loop for form
                break
        created = await self.c.fetchval(
            f"INSERT INTO {self.s}.relationships (relationship_id, buyer_id, seller_id, "
            f"buyer_alias, seller_alias) VALUES ($1, $2, $3, $4, $5) "
            f"ON CONFLICT (buyer_id, seller_id) DO NOTHING RETURNING true",
            new_id, buyer_id, seller_id, buyer_alias, seller_alias,
        )
        if not created:
            row = await self.c.fetchrow(select, buyer_id, seller_id)
            assert row is not None
            return Relationship(**dict(row))
        await self.c.executemany(
            f"INSERT INTO {self.s}.aliases (local_part, relationship_id, party_id) "
            f"VALUES ($1, $2, $3)",
            [(buyer_alias, new_id, buyer_id), (seller_alias, new_id, seller_id)],
        )
        created_rel = Relationship(new_id, buyer_id, seller_id, buyer_alias, seller_alias)
        for local, party_id in ((buyer_alias, buyer_id), (seller_alias, seller_id)):
            if local in self.loaded.aliases:  # the batch's preload read it as absent
                self.loaded.aliases[local] = (created_rel, party_id)
        return created_rel

    async def prior_message(self, message_id: str) -> PriorMessage | None:
        known = self.loaded.messages.get(message_id, _MISSING)
        if known is not _MISSING:
            return known  # type: ignore[return-value]
        row = await self.c.fetchrow(
            f"SELECT message_id, conversation_id, relationship_id, conversation_started_by "
            f"FROM {self.s}.messages WHERE message_id = $1",
            message_id,
        )
        return PriorMessage(**dict(row)) if row else None

    async def record_message(
        self, *, message_id: str, conversation_id: str, relationship_id: str, started_by: str,
        order_id: str | None,
    ) -> bool:
        """Remember a message for threading; False if the message id was already addressed.

        In a batch whose preload read the id as absent, the row is buffered and written with
        the batch's others at its end (:meth:`write_recorded`); a second message of the batch
        with the same id then finds the first, as it would find the row."""
        if self.loaded.messages.get(message_id, _MISSING) is None:  # preloaded: not there
            self.loaded.recorded.append(
                (message_id, conversation_id, relationship_id, started_by, order_id))
            self.loaded.messages[message_id] = PriorMessage(
                message_id, conversation_id, relationship_id, started_by)  # type: ignore[arg-type]
            return True
        if self.loaded.messages.get(message_id) is not None:  # preloaded, or earlier in the batch
            return False
        recorded = bool(
            await self.c.fetchval(
                f"INSERT INTO {self.s}.messages (message_id, conversation_id, relationship_id, "
                f"conversation_started_by, order_id) VALUES ($1, $2, $3, $4, $5) "
                f"ON CONFLICT DO NOTHING RETURNING true",
                message_id, conversation_id, relationship_id, started_by, order_id,
            )
        )
        if recorded and message_id in self.loaded.messages:
            # A reply later in the same batch finds it, as it would in the table.
            self.loaded.messages[message_id] = PriorMessage(
                message_id, conversation_id, relationship_id, started_by)  # type: ignore[arg-type]
        return recorded

    async def write_recorded(self) -> None:
        """The batch's recorded messages, in one statement. A row another instance wrote since
        the preload (the same message id submitted twice at once, to two instances) fails the
        batch: applied again event by event, each message then records itself and the later
        one is ignored as a duplicate."""
        rows = self.loaded.recorded
        if not rows:
            return
        written = await self.c.fetch(
            f"""INSERT INTO {self.s}.messages (message_id, conversation_id, relationship_id,
                    conversation_started_by, order_id)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                ON CONFLICT DO NOTHING RETURNING message_id""",
            *[list(column) for column in zip(*rows, strict=True)])
        if len(written) != len(rows):
            raise RecordedMeanwhile(sorted({r[0] for r in rows} - {w[0] for w in written}))
        rows.clear()

    # -- the mail door ------------------------------------------------------------------------
    async def replace_senders(self, seller_id: str, state: str, addresses: list[str]) -> None:
        """The seller's whole list of approved (or blocked) addresses, replacing the old one."""
        await self.c.execute(
            f"DELETE FROM {self.s}.seller_senders WHERE seller_id = $1 AND state = $2",
            seller_id, state,
        )
        indexes = sorted({self.vault.blind_index(a) for a in addresses if a.strip()})
        await self.c.executemany(
            f"INSERT INTO {self.s}.seller_senders (seller_id, email_index, state) "
            f"VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(seller_id, i, state) for i in indexes],
        )

    async def sender_facts(self, address: str) -> SenderFacts:
        index = self.vault.blind_index(address)
        rows = await self.c.fetch(  # both tables in one round trip
            f"""SELECT party_id AS id, 'registered' AS state FROM {self.s}.parties
                WHERE email_index = $1
                UNION ALL
                SELECT seller_id, state FROM {self.s}.seller_senders WHERE email_index = $1""",
            index,
        )
        return SenderFacts(
            registered_party_ids=frozenset(r["id"] for r in rows if r["state"] == "registered"),
            authorized_for=frozenset(r["id"] for r in rows if r["state"] == "approved"),
            blocked_for=frozenset(r["id"] for r in rows if r["state"] == "blocked"),
        )

    async def registered_email(self, party_id: str) -> str | None:
        """A party's real address, decrypted (the door needs it to scrub it out of mail)."""
        row = self.loaded.parties.get(party_id, _MISSING)
        if row is _MISSING:
            row = await self.c.fetchrow(self._party_sql("p.party_id = $1"), party_id)
        if row is None or not row["data_key"]:
            return None
        return self.vault.decrypt(party_id, row["data_key"], "email", row["email_enc"])
