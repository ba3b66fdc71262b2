"""The party keyring against the real PostgreSQL: sealing, opening, crypto-shredding."""

import os

import pytest

from bsm_shared.runtime.db import create_pool
from bsm_shared.runtime.keyring import Erased, Keyring, is_party_sealed, sealed_party
from tests.factories import T0, uid


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(env):
    """A pool and a keyring in a schema of the test's own (same KEK for every instance)."""
    pool = await create_pool(env["BSM_DATABASE_URL"], size=2)
    schema, kek = "kr_" + uid(), os.urandom(32)
    first = Keyring(kek, schema=schema)
    async with pool.acquire() as conn, conn.transaction():
        for statement in first.migrations():
            await conn.execute(statement)

    def keyring(**kw) -> Keyring:
        return Keyring(kek, schema=schema, **kw)

    yield pool, keyring
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await pool.close()


async def test_a_sealed_name_opens_for_its_party_and_field_only(db):
    pool, keyring = db
    kr = keyring()
    async with pool.acquire() as conn:
        token = await kr.seal(conn, "buyer-1", "display_name", "Ana García")
        assert is_party_sealed(token) and sealed_party(token) == "buyer-1"
        assert "Ana" not in token
        assert await keyring().open(conn, token, "display_name") == "Ana García"  # another process
        assert await kr.open(conn, token, "email") is None  # bound to its field
        assert await kr.open(conn, token, "display_name", party_id="buyer-1") == "Ana García"
        assert await kr.open(conn, token, "display_name", party_id="seller-9") is None
        moved = token.replace("pii:v1:buyer-1:", "pii:v1:buyer-2:")
        await kr.seal(conn, "buyer-2", "display_name", "Otro")
        assert await kr.open(conn, moved, "display_name") is None  # and to its party
        assert await kr.open(conn, "Ana", "display_name") == "Ana"  # plaintext passes through


async def test_one_party_gets_one_key_even_when_two_processes_seal_at_once(db):
    import asyncio

    pool, keyring = db
    a, b = keyring(), keyring()

    async def seal(kr: Keyring, value: str) -> str:
        async with pool.acquire() as conn, conn.transaction():
            return await kr.seal(conn, "seller-1", "display_name", value)

    ta, tb = await asyncio.gather(seal(a, "Muebles Sol"), seal(b, "Muebles Sol"))
    async with pool.acquire() as conn:
        assert await keyring().open(conn, ta, "display_name") == "Muebles Sol"
        assert await keyring().open(conn, tb, "display_name") == "Muebles Sol"


async def test_erasure_shreds_every_sealed_value_and_no_new_key_is_ever_made(db):
    pool, keyring = db
    kr = keyring()
    async with pool.acquire() as conn:
        name = await kr.seal(conn, "buyer-1", "display_name", "Ana García")
        address = await kr.seal(conn, "buyer-1", "SellerSettingsChanged.customer_service_email",
                                "ana@example.com")
        async with conn.transaction():
            assert await kr.erase(conn, "buyer-1", at=T0, requested_by="op-1") is True
        assert await kr.open(conn, name, "display_name") is None
        assert await keyring().open(conn, address,
                                    "SellerSettingsChanged.customer_service_email") is None
        with pytest.raises(Erased):
            await kr.seal(conn, "buyer-1", "display_name", "Ana García")
        assert await kr.erase(conn, "buyer-1", at=T0, requested_by="op-2") is False
        assert await kr.erased(conn, ["buyer-1", "buyer-2"]) == {"buyer-1"}
        assert await conn.fetchval(
            f"SELECT count(*) FROM {kr.s}.party_keys WHERE party_id = 'buyer-1'") == 0


async def test_a_process_that_cached_the_key_loses_it_within_the_ttl(db):
    pool, keyring = db
    clock = Clock()
    elsewhere = keyring(ttl=30.0, clock=clock)  # e.g. delivery, which never saw PartyErased
    async with pool.acquire() as conn:
        token = await elsewhere.seal(conn, "buyer-1", "display_name", "Ana")
        await keyring().erase(conn, "buyer-1", at=T0, requested_by="op-1")
        assert await elsewhere.open(conn, token, "display_name") == "Ana"  # still cached
        clock.now = 31.0
        assert await elsewhere.open(conn, token, "display_name") is None


async def test_the_key_cache_forgets_expired_parties_that_are_never_looked_up_again(db):
    """Finding 5 of issue 10: an opened key stayed in memory until the same party was looked
    up again; a long-running service held every key it ever opened."""
    pool, keyring = db
    clock = Clock()
    ring = keyring(ttl=30.0, clock=clock, max_cached=3)
    async with pool.acquire() as conn:
        for i in range(5):
            await ring.seal(conn, f"buyer-{i}", "display_name", "Ana")
        assert ring.cached_keys() == 3  # bounded
        clock.now = 31.0
        assert ring.cached_keys() == 0  # expired entries go without being asked for


async def test_a_key_made_in_a_transaction_that_rolled_back_is_not_used_again(db):
    """A batch's transaction made a party's key, then failed (a deadlock, retried): the key
    never reached the table. The retry must make the key anew, not seal with the one this
    process remembered: a name sealed with it would open nowhere, read as an erased party."""
    pool, keyring = db
    kr = keyring()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await kr.seal(conn, "buyer-rb", "display_name", "Ana")
        await tx.rollback()
        async with conn.transaction():  # the retry
            token = await kr.seal(conn, "buyer-rb", "display_name", "Ana García")
        assert await keyring().open(conn, token, "display_name") == "Ana García"  # elsewhere
        assert await kr.open(conn, token, "display_name") == "Ana García"  # and here


async def test_a_remembered_key_that_no_longer_opens_a_value_is_read_again(db):
    """Another process made the party's key after this one remembered a key that was rolled
    back: opening that process's value reads the key again instead of calling it erased."""
    pool, keyring = db
    here, there = keyring(), keyring()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await here.seal(conn, "buyer-2p", "display_name", "x")  # remembered, then rolled back
        await tx.rollback()
        token = await there.seal(conn, "buyer-2p", "display_name", "Ana García")
        assert await here.open(conn, token, "display_name") == "Ana García"
