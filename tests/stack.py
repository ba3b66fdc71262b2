"""Access to the running local stack for integration and end-to-end tests.

The stack is started by `make up` (``make test`` does it first). Tests read where things are
from ``.stack/env`` (and the dev keys from ``.stack/secrets.env``); if the stack is not up they
fail with what to do — they never skip, since a skipped integration test proves nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bsm_devstack.envfile import read_env_file

ROOT = Path(__file__).resolve().parents[1]


def stack_env() -> dict[str, str]:
    env_file, secrets = ROOT / ".stack" / "env", ROOT / ".stack" / "secrets.env"
    if not env_file.exists() or not secrets.exists():
        pytest.fail("The local stack is not up (no .stack/env). Run `make up`, or `make test`, "
                    "which brings it up first.")
    return {**read_env_file(env_file), **read_env_file(secrets)}


def metrics_headers(env: dict[str, str]) -> dict[str, str]:
    """The service credential the metrics service requires of every caller (issue 11)."""
    return {"Authorization": f"Bearer {env['BSM_METRICS_TOKEN']}"}


def platform_event(
    etype: str, data: dict[str, Any], correlation_id: str, occurred_at: str | None = None
) -> bytes:
    """An event as another platform service publishes it: unsigned, producer `platform`."""
    return json.dumps({
        "event_id": str(uuid.uuid4()), "type": etype, "version": 1,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(), "producer": "platform",
        "correlation_id": correlation_id, "causation_id": None, "data": data,
    }).encode()


class Kafka:
    """A producer, and readers that scan a topic from the beginning for matching events."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=True)

    async def __aenter__(self) -> "Kafka":
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def publish(self, topic: str, value: bytes, key: str) -> None:
        await self.producer.send_and_wait(topic, value, key=key.encode())

    async def collect(
        self, topic: str, match: Callable[[dict[str, Any]], bool], *, count: int = 1,
        timeout: float = 30.0, settle: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Events on ``topic`` matching ``match``: waits until ``count`` are there (or fails),
        then, if ``settle`` > 0, keeps reading that long to catch unwanted extras."""
        # No group: the consumer is assigned every partition and reads from the beginning.
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            assert consumer.assignment(), f"topic {topic} does not exist"
            # Everything already on the topic is read before an answer (a topic that other
            # runs filled, e.g. benchmarks on the same stack, must not hide an event).
            ends = await consumer.end_offsets(list(consumer.assignment()))
            found: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            settle_until: float | None = None
            while True:
                now = time.monotonic()
                if settle_until is None and len(found) >= count:
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(at >= end for at, end in zip(positions, ends.values(), strict=True)):
                        settle_until = now + settle
                if settle_until is not None and now >= settle_until:
                    return found
                if now > deadline:
                    raise AssertionError(
                        f"waited {timeout:.0f}s for {count} matching event(s) on {topic}; "
                        f"found {len(found)}"
                    )
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        try:
                            event = json.loads(r.value)
                        except (TypeError, ValueError):
                            continue
                        if match(event):
                            found.append(event)
        finally:
            await consumer.stop()


@asynccontextmanager
async def running(rt: Any) -> AsyncIterator[Any]:
    """Run a ServiceRuntime in this process (connect, consume, publish), then stop it — each
    stop step bounded, so a hang fails the test naming the step instead of stalling the run."""
    await rt.start()
    await rt.broker.start()
    await rt.start_background()
    try:
        yield rt
    finally:
        for step in (rt.stop_background, rt.broker.stop, rt.stop):
            try:
                await asyncio.wait_for(step(), 30)
            except TimeoutError:
                raise AssertionError(f"{step.__qualname__} did not finish in 30 s") from None
