"""Kafka wiring: the broker (idempotent producer, ``acks=all``) and batch subscribers.

Subscribers read raw records (a decoder that returns the ConsumerRecords themselves), because
the pipeline must see the exact bytes to verify signatures and to dead-letter what it cannot
parse; pydantic parsing happens right after, in :class:`.consumer.EventConsumer`.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from ..topics import Group, Topic, TopicNames
from .consumer import EventConsumer, Record
from .settings import ServiceSettings


def make_broker(settings: ServiceSettings, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        # A list: FastStream wraps a string in one, and aiokafka would read "a:1,b:2" as one
        # host (every service failed to start against a cluster).
        bootstrap_servers(settings.kafka_bootstrap_servers),
        client_id=client_id,
        enable_idempotence=True,  # implies acks=all: no duplicates, no loss on retry
        acks="all",
        linger_ms=2,
        logger=logging.getLogger(f"bsm.{client_id}.faststream"),
        log_level=logging.DEBUG,
    )


def bootstrap_servers(value: str) -> list[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` (``host:port[,host:port…]``) as the list clients take."""
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    if not hosts:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS names no broker")
    return hosts


async def _raw_records(msg: Any) -> list[Record]:
    raw = msg.raw_message
    records = raw if isinstance(raw, tuple) else (raw,)
    return [Record(r.topic, r.partition, r.offset, r.key, r.value) for r in records]


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    *,
    topics: TopicNames,
    inputs: list[Topic],
    group: Group,
    max_records: int = 500,
) -> Any:
    """One batch subscriber for a service's inputs (returned: its ``consumer`` is the
    AIOKafkaConsumer once started, read for the lag gauges).

    Consumer group: ``group`` (one per service; instances share the partitions).
    Ack policy: NACK_ON_ERROR with auto-commit off — the offset is committed only after
    ``consume`` returned, i.e. after the batch's transaction committed; an exception seeks
    back so the batch is read again (``consume`` already retries transient errors itself).
    New groups start at the earliest offset: a service that starts late still sees every
    party and order.
    """

    subscriber = broker.subscriber(*[topics(t) for t in inputs], group_id=topics.group(group),
        batch=True,
        max_records=max_records,
        batch_timeout_ms=20,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_records,
        title=f"{group.value}: " + ", ".join(t.value for t in inputs),
    )

    @subscriber
    async def on_records(records: list[Any]) -> None:
        await consumer.consume(records)

    return subscriber
