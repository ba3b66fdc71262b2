"""Delivery's retries, settled as a set (issue 14): a relay that is away leaves the job pending
with its error and a later attempt; once the relay is back the job is delivered once, with the
attempts counted."""

import asyncio
import socket

import asyncpg

from bsm_delivery.app import create_runtime
from bsm_delivery.settings import DeliverySettings
from tests.factories import uid
from tests.integration.test_delivery_service import decision, recipient, sink_mail
from tests.stack import running


async def job(env, schema: str, message_id: str):
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:
        return await conn.fetchrow(
            f"SELECT state, attempts, last_error, next_attempt_at, lease_owner, created_at "
            f"FROM {schema}.jobs WHERE message_id = $1", message_id)
    finally:
        await conn.close()


async def test_a_relay_away_leaves_the_job_pending_with_its_error_then_it_is_delivered_once(
    kafka, prefix, settings_for, env
):
    with socket.socket() as probe:  # a port nobody listens on: the relay is away
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    settings = settings_for(DeliverySettings, "delivery", BSM_DELIVERY_SMTP_RELAY=closed,
                            first_retry_seconds=0.5)
    seller = "s-" + uid()
    mid, value = decision(env, recipient_party_id=seller)
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"),
                            seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        for _ in range(200):
            row = await job(env, settings.db_schema, mid)
            if row is not None and row["attempts"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert row is not None
        assert (row["state"], row["last_error"], row["lease_owner"]) == (
            "pending", "relay_unreachable", None)
        assert row["next_attempt_at"] > row["created_at"]
        settings.smtp_relay = env["BSM_SMTP_RELAY"]  # the relay is back
        delivered = await kafka.collect(prefix + "bsm.messages.delivered",
                                        lambda e: e["data"]["message_id"] == mid, settle=1.0)
    assert len(delivered) == 1
    assert sink_mail(env, mid) is not None
    row = await job(env, settings.db_schema, mid)
    assert row["state"] == "delivered" and row["attempts"] >= 2 and row["lease_owner"] is None
