"""Grouped writes (issue 14; delivery's ``mailed_at`` marks, the mail door's records): callers
share statements, and each still returns only once its own item is written."""

import asyncio

import pytest

from bsm_shared.runtime.grouped import GroupedWrites


class Store:
    """A write that blocks until released, recording each group it was given."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.written: set[str] = set()
        self.gate = asyncio.Event()
        self.fail_next = False
        self.poison: set[str] = set()

    async def write(self, keys: list[str]) -> None:
        self.groups.append(list(keys))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("the database went away")
        if self.poison & set(keys):
            raise ValueError("an item the database refuses")
        self.written.update(keys)


async def test_marks_made_while_a_write_is_in_flight_go_together_in_the_next_one():
    store = Store()
    marks = GroupedWrites(store.write, name="test")
    first = asyncio.create_task(marks.add("m1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert store.groups == [["m1"]], "a lone mark is written at once"
    later = [asyncio.create_task(marks.add(f"m{i}")) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in [first, *later]), "nobody returns before its write"
    store.gate.set()
    await asyncio.gather(first, *later)
    assert store.groups == [["m1"], ["m2", "m3", "m4"]]
    assert store.written == {"m1", "m2", "m3", "m4"}


async def test_a_lane_returns_only_once_its_own_mark_is_written():
    store = Store()
    marks = GroupedWrites(store.write, name="test")
    first = asyncio.create_task(marks.add("m1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(marks.add("m2"))
    store.gate.set()
    await first
    assert "m1" in store.written
    await second
    assert "m2" in store.written


async def test_an_outage_fails_every_item_of_its_group_and_the_next_group_is_written():
    store = Store()
    marks = GroupedWrites(store.write, name="test")
    store.gate.set()
    store.fail_next = True
    failing = asyncio.create_task(marks.add("m1"))
    with pytest.raises(ConnectionResetError):
        await failing
    await marks.add("m3")
    assert store.written == {"m3"}


async def test_an_item_that_fails_by_its_own_fault_fails_only_its_caller():
    store = Store()
    marks = GroupedWrites(store.write, name="test")
    store.poison = {"bad"}
    first = asyncio.create_task(marks.add("m1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    group = [asyncio.create_task(marks.add(k)) for k in ("m2", "bad", "m3")]
    store.gate.set()
    await first
    results = await asyncio.gather(*group, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert store.written == {"m1", "m2", "m3"}
    assert store.groups == [["m1"], ["m2", "bad", "m3"], ["m2"], ["bad"], ["m3"]]
    assert (marks.writes, marks.items) == (3, 3), "only the writes that went through count"


async def test_a_stopped_writer_leaves_nobody_waiting_forever():
    store = Store()
    marks = GroupedWrites(store.write, name="test")
    waiting = [asyncio.create_task(marks.add(k)) for k in ("m1", "m2")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert marks._writer is not None
    marks._writer.cancel()
    done, pending = await asyncio.wait(waiting, timeout=1)
    assert not pending and all(t.cancelled() for t in done)
