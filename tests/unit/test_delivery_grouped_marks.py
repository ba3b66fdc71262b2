"""Delivery's grouped ``mailed_at`` marks (issue 14): the lanes' marks share statements, and
each lane still returns only once its own mark is written."""

import asyncio

import pytest

from bsm_delivery.app import GroupedMarks


class Store:
    """A write that blocks until released, recording each group it was given."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.written: set[str] = set()
        self.gate = asyncio.Event()
        self.fail_next = False

    async def write(self, keys: list[str]) -> None:
        self.groups.append(list(keys))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("the database went away")
        self.written.update(keys)


async def test_marks_made_while_a_write_is_in_flight_go_together_in_the_next_one():
    store = Store()
    marks = GroupedMarks(store.write)
    first = asyncio.create_task(marks.mark("m1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert store.groups == [["m1"]], "a lone mark is written at once"
    later = [asyncio.create_task(marks.mark(f"m{i}")) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in [first, *later]), "nobody returns before its write"
    store.gate.set()
    await asyncio.gather(first, *later)
    assert store.groups == [["m1"], ["m2", "m3", "m4"]]
    assert store.written == {"m1", "m2", "m3", "m4"}


async def test_a_lane_returns_only_once_its_own_mark_is_written():
    store = Store()
    marks = GroupedMarks(store.write)
    first = asyncio.create_task(marks.mark("m1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(marks.mark("m2"))
    store.gate.set()
    await first
    assert "m1" in store.written
    await second
    assert "m2" in store.written


async def test_a_failed_write_fails_every_mark_of_its_group_and_the_next_group_is_written():
    store = Store()
    marks = GroupedMarks(store.write)
    store.fail_next = True
    failing = [asyncio.create_task(marks.mark(k)) for k in ("m1", "m2")]
    await asyncio.sleep(0)
    store.gate.set()
    for task in failing:
        with pytest.raises(ConnectionResetError):
            await task
    await marks.mark("m3")
    assert store.written == {"m3"}


async def test_a_stopped_writer_leaves_nobody_waiting_forever():
    store = Store()
    marks = GroupedMarks(store.write)
    waiting = [asyncio.create_task(marks.mark(k)) for k in ("m1", "m2")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert marks._writer is not None
    marks._writer.cancel()
    done, pending = await asyncio.wait(waiting, timeout=1)
    assert not pending and all(t.cancelled() for t in done)
