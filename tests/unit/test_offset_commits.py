"""Offset commits: only what recorded batches read, at most once an interval, the last batch of
a burst included; revoked partitions before they go; a failed commit retried with the next."""

import asyncio
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from bsm_shared.runtime.consumer import Record
from bsm_shared.runtime.kafka import OffsetCommits

A, B, GONE = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)


class FakeKafka:
    def __init__(self, assigned: set[TopicPartition], fail: int = 0) -> None:
        self.assigned, self.fail, self.commits = assigned, fail, []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            self.fail -= 1
            raise CommitFailedError("rebalancing")
        self.commits.append(dict(offsets))


def records(*at: tuple[TopicPartition, int]) -> list[Record]:
    return [Record(tp.topic, tp.partition, offset, None, b"{}") for tp, offset in at]


def commits_for(kafka: FakeKafka, now: list[float], interval: float = 0.05) -> OffsetCommits:
    c = OffsetCommits("bsm.test", interval=interval, clock=lambda: now[0])
    c.subscriber = type("S", (), {"consumer": kafka})()
    return c


async def test_the_first_batch_is_committed_at_once_and_the_next_ones_together_by_the_timer():
    now = [100.0]
    kafka = FakeKafka({A, B})
    c = commits_for(kafka, now)
    await c.batch_done(records((A, 4), (A, 5)))
    assert kafka.commits == [{A: 6}], "after a quiet interval: committed at once"
    now[0] = 100.01
    await c.batch_done(records((A, 6), (B, 0)))
    await c.batch_done(records((A, 7), (B, 1)))
    assert kafka.commits == [{A: 6}], "within the interval: gathered"
    await asyncio.sleep(0.1)
    assert kafka.commits == [{A: 6}, {A: 8, B: 2}], "the timer commits the last batch too"
    assert c.pending == {}


async def test_a_partition_no_longer_assigned_is_left_to_its_new_owner():
    now = [100.0]
    kafka = FakeKafka({A, B})
    c = commits_for(kafka, now)
    await c.batch_done(records((A, 0)))
    now[0] = 100.01
    kafka.assigned = {A, GONE}
    await c.batch_done(records((A, 1), (B, 9)))  # B went while the batch was recorded
    await c.flush()
    assert kafka.commits == [{A: 1}, {A: 2}]


async def test_partitions_being_revoked_are_committed_before_they_go():
    now = [100.0]
    kafka = FakeKafka({A, B})
    c = commits_for(kafka, now, interval=60)
    await c.batch_done(records((A, 0)))
    now[0] = 100.01
    await c.batch_done(records((B, 3)))
    await c.on_partitions_revoked({A})
    assert kafka.commits == [{A: 1}], "nothing pending for A: no commit"
    await c.on_partitions_revoked({B})
    assert kafka.commits == [{A: 1}, {B: 4}]


async def test_a_failed_commit_is_a_warning_and_is_retried_with_the_next(caplog):
    now = [100.0]
    kafka = FakeKafka({A}, fail=1)
    c = commits_for(kafka, now)
    await c.batch_done(records((A, 0)))
    assert kafka.commits == [] and c.pending == {A: 1}
    assert "offset commit failed" in caplog.text
    now[0] = 101.0
    await c.batch_done(records((A, 1)))
    assert kafka.commits == [{A: 2}]


@pytest.mark.parametrize("subscriber", [None, type("S", (), {"consumer": None})()])
async def test_nothing_is_committed_before_the_consumer_started_or_once_it_is_gone(subscriber):
    c = OffsetCommits("bsm.test")
    c.subscriber = subscriber
    await c.batch_done(records((A, 0)))
    await c.flush()
    assert c.pending == {}


async def test_flush_with_nothing_gathered_asks_the_broker_nothing():
    kafka = FakeKafka({A})
    c = commits_for(kafka, [0.0])
    await c.flush()
    assert kafka.commits == []


def test_offsets_are_the_next_record_to_read():
    c = OffsetCommits("bsm.test")
    c._gather({A: 5})
    c._gather({A: 3, B: 1})
    assert c.pending == {A: 5, B: 1}, "a lower offset never moves a partition back"

