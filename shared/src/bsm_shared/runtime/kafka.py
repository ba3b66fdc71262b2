"""Kafka wiring: the broker (idempotent producer, ``acks=all``) and batch subscribers.

Subscribers read raw records (a decoder that returns the ConsumerRecords themselves), because
the pipeline must see the exact bytes to verify signatures and to dead-letter what it cannot
parse; pydantic parsing happens right after, in :class:`.consumer.EventConsumer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from itertools import chain
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker

from ..topics import Group, Topic, TopicNames
from .consumer import EventConsumer, Record
from .settings import ServiceSettings

log = logging.getLogger("bsm.kafka")


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
    linger: FetchLinger | None = None,
    commits: OffsetCommits | None = None,
) -> Any:
    """One batch subscriber for a service's inputs (returned: its ``consumer`` is the
    AIOKafkaConsumer once started, read for the lag gauges).

    Consumer group: ``group`` (one per service; instances share the partitions).
    Ack policy: MANUAL with auto-commit off — the offsets are handed to ``commits``
    (:class:`OffsetCommits`) only after ``consume`` returned, i.e. after the batch's
    transaction committed, and only for the partitions the batch read (FastStream's ``ack``
    commits every assigned partition on every batch: 48 for the record); an exception seeks
    back so the batch is read again (``consume`` already retries transient errors itself, so
    that is a shutdown).
    Linger (:class:`FetchLinger`): while events flow, a fetch waits a little for more, so a
    moderate load arrives in batches rather than one event at a time; after a quiet second a
    lone event is answered at once.
    New groups start at the earliest offset: a service that starts late still sees every
    party and order.
    """

    subscriber = broker.subscriber(*[topics(t) for t in inputs], group_id=topics.group(group),
        batch=True,
        max_records=max_records,
        batch_timeout_ms=IDLE_POLL_MS,
        fetch_max_wait_ms=EAGER.max_wait_ms,
        fetch_min_bytes=EAGER.min_bytes,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        listener=commits,
        decoder=_raw_records,
        title=f"{group.value}: " + ", ".join(t.value for t in inputs),
    )

    async def next_batch(kafka: Any) -> tuple[Any, ...]:
        records = await kafka.getmany(timeout_ms=IDLE_POLL_MS, max_records=max_records)
        return tuple(chain.from_iterable(records.values()))

    # FastStream's batch loop (0.7, pinned) sleeps ``batch_timeout_ms`` more after a getmany
    # that waited as long and found nothing: either a lone event waits out the sleep, or, with
    # the 20 ms the services had, an idle service woke 25 times a second (≈ 20 ms of CPU a
    # second each). getmany returns at the first record, so without the sleep its wait only
    # bounds how often an idle loop goes round. ``tests/unit/test_kafka_subscriber.py`` pins it.
    subscriber.get_msg = next_batch
    if commits is not None:
        commits.subscriber = subscriber

    @subscriber
    async def on_records(records: list[Any], message: Any = Context("message")) -> None:
        try:
            await consumer.consume(records)
        except BaseException:
            await message.nack()  # seek back: the batch is read again
            raise
        if commits is not None:
            await commits.batch_done(records)
        if linger is not None:
            linger.batch_done(subscriber)

    return subscriber


class OffsetCommits(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the offsets of recorded batches, at most once every ``interval`` seconds.

    A batch's offsets come here only after its transaction committed. The first batch after a
    quiet ``interval`` is committed at once; later ones are gathered and committed together
    when the interval has passed (a timer, so the last batch of a burst is committed too). At
    a moderate load a service recorded a batch every ~100 ms and committed each: an
    OffsetCommit costs the broker about as much CPU as a fetch (``make bench`` at 60 msg/s: 44
    commits a second, a third of the requests the broker served). What the gathering defers
    is only redelivery: after a crash, a new owner reads at most ``interval`` seconds of
    recorded events again, and ``processed_events`` drops them as duplicates.

    Partitions being revoked are committed before they go (the rebalance listener); a
    partition already gone is left to its new owner. A failed commit is a warning and is
    retried with the next one. ``flush`` commits what is gathered (the service calls it when
    it stops).
    """

    def __init__(self, group: str, *, interval: float = 1.0,
                 clock: Any = time.monotonic) -> None:
        self.group = group
        self.interval = interval
        self.subscriber: Any = None
        self.pending: dict[TopicPartition, int] = {}
        self._clock = clock
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def _kafka(self) -> Any:
        return getattr(self.subscriber, "consumer", None)

    async def batch_done(self, records: Any) -> None:
        kafka = self._kafka()
        if kafka is None:
            return
        self._gather(batch_offsets(records, kafka.assignment()))
        due = self._last + self.interval - self._clock()
        if due <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(due, self._on_timer)

    def _gather(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if offset > self.pending.get(tp, -1):
                self.pending[tp] = offset

    def _on_timer(self) -> None:
        self._timer = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later(), name=f"{self.group} commit")

    async def _flush_later(self) -> None:
        try:
            await self.flush()
        except Exception:  # not a Kafka error (flush handles those): a fault, shown as one
            log.exception("%s: offset commit failed", self.group)

    async def flush(self) -> None:
        """Commit what is gathered, for the partitions still assigned."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            kafka = self._kafka()
            if kafka is None or not self.pending:
                return
            assigned = kafka.assignment()
            offsets = {tp: o for tp, o in self.pending.items() if tp in assigned}
            self.pending = {}
            self._last = self._clock()
            if not offsets:
                return
            try:
                await kafka.commit(offsets)
            except KafkaError as exc:  # a rebalance, the broker away: the effects are recorded
                log.warning("%s: offset commit failed (retried with the next one; a "
                            "redelivery is dropped as a duplicate): %r", self.group, exc)
                self._gather(offsets)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if any(tp in revoked for tp in self.pending):
            await self.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


#: How long one poll of the consume loop waits for records (it returns at the first one).
IDLE_POLL_MS = 500


def batch_offsets(
    records: Any, assigned: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """The offsets to commit after a batch: per partition it read, the next record's offset;
    a partition a rebalance took away meanwhile (not in ``assigned``) is its new owner's."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if tp in assigned and r.offset + 1 > offsets.get(tp, -1):
            offsets[tp] = r.offset + 1
    return offsets


# --------------------------------------------------------------------------------------------
# consumer linger
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchMode:
    """What a fetch asks the broker: answer once ``min_bytes`` are there, or after
    ``max_wait_ms`` with what there is."""

    min_bytes: int
    max_wait_ms: int


#: Kafka's defaults: a long poll answered at the first record (a lone event is not held).
EAGER = FetchMode(min_bytes=1, max_wait_ms=500)


def fetch_mode(gap_seconds: float | None, lingering: FetchMode, *, busy_gap: float) -> FetchMode:
    """The mode for the next fetches, from the time between the end of the previous batch and
    the end of this one (None: quiet for a while). Batches following each other closely mean
    events are flowing: the next fetches wait for more (``lingering``), since per-batch work (a
    transaction, a publish, an offset commit, a fetch over every assigned partition) costs the
    same for one event as for fifty. Otherwise each event is answered as it comes."""
    if gap_seconds is not None and gap_seconds <= busy_gap:
        return lingering
    return EAGER


class FetchLinger:
    """Switches a subscriber's fetches between :data:`EAGER` and lingering (the service's
    ``fetch_min_bytes``/``fetch_max_wait_ms``) by :func:`fetch_mode`; a second without a batch
    goes back to eager (a lingering fetch on an idle stream is answered every
    ``fetch_max_wait_ms``: ten empty fetches a second, each over every assigned partition).

    aiokafka reads the two values from its fetcher for every request it builds (aiokafka 0.14,
    pinned; ``tests/unit/test_fetch_linger.py`` checks the attributes are still there), and
    has no public setter: this is the one place that reaches into it.
    """

    def __init__(self, lingering: FetchMode, *, quiet_seconds: float = 1.0,
                 clock: Any = time.monotonic) -> None:
        self.lingering = lingering
        self.busy_gap = max(2 * lingering.max_wait_ms / 1000, 0.05)
        self.quiet_seconds = quiet_seconds
        self.mode = EAGER
        self._clock = clock
        self._last: float | None = None
        self._quiet: asyncio.TimerHandle | None = None

    def batch_done(self, subscriber: Any) -> None:
        now = self._clock()
        gap = None if self._last is None else now - self._last
        self._last = now
        self._apply(subscriber, fetch_mode(gap, self.lingering, busy_gap=self.busy_gap))
        if self._quiet is not None:
            self._quiet.cancel()
        if self.mode is not EAGER:
            self._quiet = asyncio.get_running_loop().call_later(
                self.quiet_seconds, self._went_quiet, subscriber)

    def _went_quiet(self, subscriber: Any) -> None:
        self._quiet = None
        self._apply(subscriber, EAGER)

    def _apply(self, subscriber: Any, mode: FetchMode) -> None:
        if mode == self.mode:
            return
        fetcher = getattr(getattr(subscriber, "consumer", None), "_fetcher", None)
        if fetcher is None:
            return  # stopping, or not started: nothing to tune
        fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms = mode.min_bytes, mode.max_wait_ms
        self.mode = mode
