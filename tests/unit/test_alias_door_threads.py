"""The mail door reads a small mail on the event loop and a large one in a thread: a thread
hop costs ≈ 0.2 ms of CPU, but a 25 MB mail would hold the loop (and the consumer on it) for
seconds."""

from __future__ import annotations

import asyncio
import threading

from bsm_alias.door import INLINE_MAIL_BYTES, _off_loop_if_large


def test_a_small_mail_is_read_on_the_loop_and_a_large_one_in_a_thread() -> None:
    async def where(size: int) -> tuple[str, int]:
        return await _off_loop_if_large(size, lambda n: (threading.current_thread().name, n), size)

    async def main() -> None:
        loop_thread = threading.current_thread().name
        assert await where(1500) == (loop_thread, 1500)
        assert await where(INLINE_MAIL_BYTES) == (loop_thread, INLINE_MAIL_BYTES)
        name, _ = await where(INLINE_MAIL_BYTES + 1)
        assert name != loop_thread

    asyncio.run(main())
