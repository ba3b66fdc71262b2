"""Shared fixtures: the running stack (integration, e2e) — unit tests need none of this."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stack import Kafka, stack_env

# The run's invariants (no undeclared ERROR or dead letter, every consumer caught up) and the
# `expect` fixture tests declare with.
pytest_plugins = ["tests.invariants"]


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return stack_env()


@pytest.fixture(scope="session")
async def kafka(env: dict[str, str]) -> AsyncIterator[Kafka]:
    async with Kafka(env["KAFKA_BOOTSTRAP_SERVERS"]) as k:
        yield k
