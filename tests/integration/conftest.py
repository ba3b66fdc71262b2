"""Integration fixtures: one service at a time, in this process, against the real Kafka and
PostgreSQL of the local stack — isolated by a topic prefix and a schema of its own per test, so
tests share the infrastructure (and the running stack's services) without interfering."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bsm_devstack.kafka import ensure_topics
from bsm_shared.topics import TopicNames
from tests.invariants import check_prefixed_dead_letters


@pytest.fixture
async def prefix(env: dict[str, str], request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh set of topics for one test, deleted afterwards (hundreds of leftover test
    partitions would slow the shared broker down for everyone) — after its dead letters were
    checked against what the test declared (``tests/invariants.py``)."""
    p = f"it{uuid.uuid4().hex[:10]}."
    await ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], p)
    yield p
    await check_prefixed_dead_letters(env["KAFKA_BOOTSTRAP_SERVERS"], p, request.node.nodeid)
    admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        await admin.delete_topics(list(TopicNames(p).all_topics()))
    finally:
        await admin.close()


@pytest.fixture
def settings_for(env: dict[str, str], prefix: str) -> Callable[..., Any]:
    def build(cls: type, name: str, **over: Any) -> Any:
        values: dict[str, Any] = dict(
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            database_url=env["BSM_DATABASE_URL"],
            topic_prefix=prefix,
            mail_domain=env["BSM_MAIL_DOMAIN"],
            trusted_keys=json.loads(env["BSM_TRUSTED_KEYS"]),
            signing_key=env[f"BSM_{name.upper()}_SIGNING_KEY"],
            db_schema=f"{prefix.rstrip('.')}_{name}",
            keyring_key=env.get("BSM_KEYRING_KEY"),
        )
        if f"BSM_{name.upper()}_PII_KEY" in env:
            values["pii_key"] = env[f"BSM_{name.upper()}_PII_KEY"]
        if name == "metrics":  # the service credential its API requires (issue 11)
            values["token"] = env["BSM_METRICS_TOKEN"]
        if name == "delivery":  # this stack's mail sink (a stack with a port offset has its own)
            values["BSM_DELIVERY_SMTP_RELAY"] = env["BSM_SMTP_RELAY"]
        values.update(over)
        return cls(**values)

    return build


@pytest.fixture
def gateway_settings(settings_for: Callable[..., Any], env: dict[str, str], tmp_path: Any) -> Any:
    """The gateway's settings for one test: its own blob folder, a 64 KB attachment limit (so
    the limit is testable without megabytes)."""
    from bsm_gateway.settings import GatewaySettings

    return settings_for(
        GatewaySettings, "gateway", token_key=env["BSM_GATEWAY_TOKEN_KEY"],
        link_key=env["BSM_LINK_KEY"],
        blob_dir=str(tmp_path / "blobs"), max_attachment_bytes=64 * 1024,
    )
