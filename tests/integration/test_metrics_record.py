"""The record (metrics service) against real Kafka and PostgreSQL."""

import asyncio
import json

import asyncpg
import pytest
from httpx import ASGITransport, AsyncClient

from bsm_metrics.app import create_app
from bsm_metrics.settings import MetricsSettings
from tests.factories import uid
from tests.stack import platform_event


async def test_the_record_keeps_an_orders_events_in_time_order_and_refuses_changes(
    kafka, prefix, settings_for, env
):
    settings = settings_for(MetricsSettings, "metrics")
    app = create_app(settings)
    oid, buyer = "o-" + uid(), "b-" + uid()
    async with app.router.lifespan_context(app):
        client = AsyncClient(transport=ASGITransport(app=app), base_url="http://metrics")
        await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
            "party_id": buyer, "role": "buyer", "email": "ana@private.example",
            "display_name": "Ana"}, buyer), buyer)
        await kafka.publish(prefix + "bsm.orders", platform_event("OrderStatusChanged", {
            "order_id": oid, "status": "shipped", "changed_at": "2026-11-02T10:00:00Z"}, oid,
            "2026-11-02T10:00:00Z"), oid)
        await kafka.publish(prefix + "bsm.orders", platform_event("OrderPlaced", {
            "order_id": oid, "buyer_id": buyer, "seller_id": "s", "placed_at":
            "2026-11-01T10:00:00Z"}, oid, "2026-11-01T10:00:00Z"), oid)
        for _ in range(100):
            response = await client.get(f"/v1/orders/{oid}/timeline")
            if response.status_code == 200 and len(response.json()["events"]) == 2:
                break
            await asyncio.sleep(0.2)
        timeline = response.json()
        missing = await client.get(f"/v1/orders/nope-{uid()}/timeline")
        conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
        try:
            archived = await conn.fetchval(
                f"SELECT event::text FROM {app.state.runtime.schema}.archive "
                f"WHERE correlation_id = $1", buyer)
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(f"UPDATE {app.state.runtime.schema}.archive SET type = 'x'")
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(f"DELETE FROM {app.state.runtime.schema}.archive")
        finally:
            await conn.close()
    # Published second, but it happened first: the timeline follows the events' own times.
    assert [e["type"] for e in timeline["events"]] == ["OrderPlaced", "OrderStatusChanged"]
    assert missing.status_code == 404 and missing.json()["error"] == "order_not_found"
    assert archived is not None and "ana@private.example" not in archived
    assert json.loads(archived)["data"]["email"].startswith("<personal data")
