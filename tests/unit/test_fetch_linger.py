"""Consumer linger: while events flow, fetches wait for more; a lone event is not held."""

import asyncio

from aiokafka.consumer.fetcher import Fetcher

from bsm_shared.runtime.kafka import EAGER, FetchLinger, FetchMode, fetch_mode

LINGER = FetchMode(min_bytes=16384, max_wait_ms=100)


def test_batches_following_each_other_closely_make_the_next_fetches_linger():
    assert fetch_mode(0.02, LINGER, busy_gap=0.2) == LINGER
    assert fetch_mode(0.2, LINGER, busy_gap=0.2) == LINGER


def test_a_first_batch_or_one_after_a_pause_keeps_fetches_eager():
    assert fetch_mode(None, LINGER, busy_gap=0.2) == EAGER
    assert fetch_mode(0.75, LINGER, busy_gap=0.2) == EAGER
    assert EAGER.min_bytes == 1, "eager: the broker answers at the first record"


class FakeFetcher:
    def __init__(self) -> None:
        self._fetch_min_bytes, self._fetch_max_wait_ms = EAGER.min_bytes, EAGER.max_wait_ms


class FakeSubscriber:
    def __init__(self) -> None:
        self.consumer = type("C", (), {})()
        self.consumer._fetcher = FakeFetcher()

    @property
    def fetch(self) -> tuple[int, int]:
        f = self.consumer._fetcher
        return f._fetch_min_bytes, f._fetch_max_wait_ms


async def test_the_fetcher_lingers_while_batches_flow_and_is_eager_again_after_a_quiet_spell():
    now = [0.0]
    linger = FetchLinger(LINGER, quiet_seconds=0.05, clock=lambda: now[0])
    sub = FakeSubscriber()
    linger.batch_done(sub)
    assert sub.fetch == (1, 500), "one batch alone: still eager"
    now[0] = 0.03
    linger.batch_done(sub)
    assert sub.fetch == (16384, 100), "two batches 30 ms apart: events are flowing"
    await asyncio.sleep(0.1)
    assert sub.fetch == (1, 500), "quiet for longer than quiet_seconds: eager again"
    now[0] = 5.0
    linger.batch_done(sub)
    assert sub.fetch == (1, 500), "a lone batch after a pause does not start lingering"


async def test_a_subscriber_not_started_or_stopping_is_left_alone():
    linger = FetchLinger(LINGER, clock=lambda: 0.0)
    sub = type("S", (), {"consumer": None})()
    linger.batch_done(sub)
    linger.batch_done(sub)
    assert linger.mode == EAGER


def test_aiokafka_still_reads_the_linger_from_its_fetcher_for_every_request():
    """FetchLinger sets two private attributes of aiokafka's fetcher (no public setter): an
    aiokafka that renamed them would leave every fetch eager without a word."""
    import inspect

    source = inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_max_wait_ms" in source and "self._fetch_min_bytes" in source
    assert "self._fetch_min_bytes = fetch_min_bytes" in inspect.getsource(Fetcher.__init__)


def test_a_batch_commits_per_partition_it_read_the_offset_after_its_last_record() -> None:
    """Only the partitions a batch read are committed (``commit()`` without offsets would
    send every assigned partition — 48 for the record — on every batch), each at the offset
    of the next record, whatever order the batch lists them in."""
    from aiokafka import TopicPartition

    from bsm_shared.runtime.consumer import Record
    from bsm_shared.runtime.kafka import batch_offsets

    records = [Record("a", 0, 7, None, b""), Record("b", 2, 3, None, b""),
               Record("a", 0, 9, None, b""), Record("a", 0, 8, None, b""),
               Record("a", 1, 0, None, b"")]
    assigned = {TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 2),
                TopicPartition("c", 0)}
    assert batch_offsets(records, assigned) == {
        TopicPartition("a", 0): 10, TopicPartition("a", 1): 1, TopicPartition("b", 2): 4}
    assert batch_offsets([], assigned) == {}


def test_a_partition_a_rebalance_took_away_during_the_batch_is_not_committed() -> None:
    from aiokafka import TopicPartition

    from bsm_shared.runtime.consumer import Record
    from bsm_shared.runtime.kafka import batch_offsets

    records = [Record("a", 0, 7, None, b""), Record("a", 1, 3, None, b"")]
    assert batch_offsets(records, {TopicPartition("a", 1)}) == {TopicPartition("a", 1): 4}
    assert batch_offsets(records, set()) == {}
