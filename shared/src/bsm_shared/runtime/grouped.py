"""Group commit one level above PostgreSQL's: callers that each need one small write made
durable before they answer share statements and transactions.

A write made while another is in flight waits for the next one, which takes every item added
meanwhile; a lone item is written at once. Each caller returns only once its own item is
committed (or gets the error), exactly as with a statement of its own — what a caller promises
after it returns (a ``250`` to an SMTP client, a mail counted as sent) is as durable as before,
and under load, when callers pile up, the groups grow by themselves.

A group whose write fails is written again item by item, so an item that fails by its own fault
fails only its caller; under an outage every item fails on its own and every caller learns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupedWrites(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, name: str) -> None:
        self._write = write
        self._name = name
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Writes made and items written (a group's size is their ratio).
        self.writes = 0
        self.items = 0

    async def add(self, item: T) -> None:
        """Return once ``item`` is written (raise the write's error if it is not)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups(), name=self._name)
        await done

    async def _write_groups(self) -> None:
        group: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    await self._write_counted([item for item, _ in group])
                except Exception as exc:  # noqa: BLE001 - the callers' error: handed to them
                    if len(group) == 1:
                        _settle(group[0][1], exc)
                    else:
                        for item, done in group:
                            try:
                                await self._write_counted([item])
                            except Exception as alone:  # noqa: BLE001 - this caller's
                                _settle(done, alone)
                            else:
                                _settle(done, None)
                else:
                    for _, done in group:
                        _settle(done, None)
        finally:
            self._writer = None
            for _, done in group + self._waiting:  # cancelled (stopping): nobody waits forever
                done.cancel()
            self._waiting = []

    async def _write_counted(self, items: list[T]) -> None:
        await self._write(items)
        self.writes += 1
        self.items += len(items)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its caller was cancelled meanwhile
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
