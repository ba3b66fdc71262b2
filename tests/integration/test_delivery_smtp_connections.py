"""The delivery worker's relay connections (issue 14, mail leg): kept open from one batch to
the next, never reused once idle too long or after a failure."""

from __future__ import annotations

import asyncio
import socket

from aiosmtpd.controller import Controller

from bsm_delivery import app as delivery_app
from bsm_delivery.app import SmtpConnections


class Counting:
    def __init__(self) -> None:
        self.mails = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd
        self.mails += 1
        return "250 OK"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def send(smtp) -> None:  # noqa: ANN001
    await smtp.sendmail("a@x.example", ["b@x.example"], b"Subject: t\r\n\r\nhi\r\n")


async def test_a_connection_is_reused_across_batches_and_renewed_when_idle_or_broken():
    handler = Counting()
    with socket.socket() as probe:  # a free port for the relay
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = Clock()
        pool = SmtpConnections(lambda: ("127.0.0.1", port), clock=clock)
        first = await pool.take()
        await send(first)
        await pool.give_back(first, healthy=True)
        again = await pool.take()  # the next batch: the same open connection
        assert again is first and pool.opened == 1
        await send(again)
        await pool.give_back(again, healthy=True)
        clock.now += delivery_app.SMTP_IDLE_SECONDS + 1  # idle too long: closed, a new one
        fresh = await pool.take()
        assert fresh is not first and pool.opened == 2 and not first.is_connected
        await send(fresh)
        await pool.give_back(fresh, healthy=False)  # a failed conversation: never reused
        assert not fresh.is_connected
        last = await pool.take()
        assert last is not fresh and pool.opened == 3
        await send(last)
        await pool.give_back(last, healthy=True)
        await pool.close()
        assert not last.is_connected
        await asyncio.sleep(0.05)
        assert handler.mails == 4
    finally:
        controller.stop()
