"""Runs a service's main coroutine on the event loop its settings name (``BSM_EVENT_LOOP``).

uvloop by default: the services are I/O-bound chains of small awaits (Kafka, PostgreSQL, SMTP),
and with asyncio's own loop its Python machinery (``_run_once``, handles, transports) was a
visible share of every service's busy time in py-spy. ``asyncio`` stays selectable, so a
problem can be tried without uvloop. The HTTP services pass the same choice to uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

EventLoop = Literal["uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, Any], loop: EventLoop) -> None:
    if loop == "uvloop":
        import uvloop  # imported only when chosen

        uvloop.run(main)
    else:
        asyncio.run(main)
