"""The batch subscriber's poll: it waits for records at most IDLE_POLL_MS, returns at the first
ones, and does not sleep after an empty poll (FastStream's own loop sleeps as long again, so a
lone event waited out the sleep, or an idle service woke 25 times a second)."""

from typing import Any

import anyio
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker

from bsm_shared.runtime.kafka import IDLE_POLL_MS, subscribe
from bsm_shared.topics import Group, Topic, TopicNames


class FakeConsumer:
    """Answers getmany from a script of batches; records how it was asked."""

    def __init__(self, script: list[dict[TopicPartition, list[Any]]], subscriber: Any = None):
        self.script, self.calls, self.subscriber = script, [], subscriber

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self.calls.append((timeout_ms, max_records))
        if not self.script:
            self.subscriber.running = False  # end FastStream's loop
            return {}
        return self.script.pop(0)


def _subscriber(max_records: int = 7) -> Any:
    return subscribe(KafkaBroker(), None, topics=TopicNames(""),  # type: ignore[arg-type]
                     inputs=[Topic.ADDRESSED], group=Group.POLICY, max_records=max_records)


async def test_a_poll_returns_every_partitions_records_and_asks_for_at_most_max_records():
    sub = _subscriber(max_records=7)
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    fake = FakeConsumer([{a: ["a1", "a2"], b: ["b1"]}])
    assert await sub.get_msg(fake) == ("a1", "a2", "b1")
    assert fake.calls == [(IDLE_POLL_MS, 7)]


async def test_an_empty_poll_goes_round_again_without_sleeping(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)
    sub = _subscriber()
    fake = FakeConsumer([{}, {}, {}], subscriber=sub)
    consumed: list[Any] = []

    async def consume_one(msg: Any) -> None:
        consumed.append(msg)

    sub.consume_one = consume_one
    sub.running = True
    await sub._run_consume_loop(fake)  # FastStream's loop, with this subscriber's poll
    assert len(fake.calls) == 4 and {c[0] for c in fake.calls} == {IDLE_POLL_MS}
    assert slept == [] and consumed == []
