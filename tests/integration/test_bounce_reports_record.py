"""Bounce reports on the record: the metrics service archives every topic, the new one too
(real Kafka and PostgreSQL). That its projections ignore the type: tests/unit/test_alias_dsn.py."""

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from bsm_metrics.app import create_app
from bsm_metrics.settings import MetricsSettings
from bsm_shared.contract import BounceReportReceivedEvent
from bsm_shared.contract.payloads import BounceReportReceived
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from tests.factories import uid


async def test_a_bounce_report_is_archived_with_its_signature_verified(
    kafka, prefix, settings_for, env
):
    settings = settings_for(MetricsSettings, "metrics")
    app = create_app(settings)
    mid = "m-" + uid()
    data = BounceReportReceived(
        message_id=mid, received_at=datetime.now(UTC), action="failed", status="5.1.1",
        diagnostic="550 5.1.1 <[address]>: User unknown", reporting_mta="mx.example.com",
        standard=True)
    event = build_event(BounceReportReceivedEvent, data, event_id=uuid.uuid4(),
                        occurred_at=data.received_at, producer="alias", correlation_id=mid)
    value = to_wire(event, Signer("alias", load_private_key(env["BSM_ALIAS_SIGNING_KEY"])))
    async with app.router.lifespan_context(app):
        await kafka.publish(prefix + "bsm.messages.bounce-reports", value, mid)
        conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
        try:
            row = None
            for _ in range(100):
                row = await conn.fetchrow(
                    f"SELECT type, topic, verified, trust_error FROM "
                    f"{app.state.runtime.schema}.archive WHERE message_id = $1", mid)
                if row is not None:
                    break
                await asyncio.sleep(0.2)
            processed = await conn.fetchval(
                f"SELECT count(*) FROM {app.state.runtime.schema}.processed_events "
                f"WHERE event_id = $1", event.event_id)
        finally:
            await conn.close()
    assert row is not None, "the report never reached the archive"
    assert (row["type"], row["topic"], row["verified"], row["trust_error"]) == (
        "BounceReportReceived", "bsm.messages.bounce-reports", True, None)
    assert processed == 1
