"""Fixtures of the contract tier's store tests (the real PostgreSQL, no Kafka)."""

import pytest

from bsm_shared.runtime.consumer import Record
from bsm_shared.runtime.db import create_pool
from bsm_shared.topics import Topic
from tests.factories import submitted
from tests.stack import platform_event


@pytest.fixture
async def pool(env):
    p = await create_pool(env["BSM_DATABASE_URL"], size=4)
    yield p
    await p.close()


def rec(offset: int, value: bytes, topic: Topic = Topic.SUBMITTED) -> Record:
    """A Kafka record as the consumer gets it."""
    return Record(topic.value, 0, offset, b"k", value)


def message(subject: str, **over) -> bytes:
    """A MessageSubmitted as an outside producer publishes it (unsigned)."""
    msg = submitted(subject=subject, **over)
    return platform_event("MessageSubmitted", msg.model_dump(mode="json"), msg.message_id)
