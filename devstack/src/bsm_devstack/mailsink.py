"""SMTP mail sink: accepts every message and stores it as an ``.eml`` file.

    python -m bsm_devstack.mailsink --host 127.0.0.1 --port 12526 --dir .stack/mailsink

(``up`` passes the port of the stack's topology: 12526 plus ``BSM_STACK_PORT_OFFSET``.)

Each message is written to ``<dir>/<UTC timestamp>-<random hex>.eml`` atomically (``.tmp``
then ``os.replace``): the exact DATA bytes with ``X-Bsm-Sink-Envelope-From:`` and
``X-Bsm-Sink-Envelope-To:`` headers prepended. The log has one line per message with the file
name only: addresses are personal data and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from bsm_shared.runtime import loop as event_loop

log = logging.getLogger("bsm_devstack.mailsink")

ENVELOPE_FROM = b"X-Bsm-Sink-Envelope-From"
ENVELOPE_TO = b"X-Bsm-Sink-Envelope-To"


def _header_value(value: str) -> bytes:
    # Addresses come from the SMTP envelope; never let CR/LF through into the header block.
    return value.replace("\r", "").replace("\n", "").encode("utf-8", "surrogateescape")


def render(envelope: Envelope) -> bytes:
    """The stored file: envelope headers + the DATA bytes exactly as received."""
    data = envelope.original_content or b""
    if isinstance(data, str):  # pragma: no cover - decode_data=False gives bytes
        data = data.encode("utf-8", "surrogateescape")
    mail_from = envelope.mail_from or "<>"  # the null reverse-path (bounces) is "<>"
    rcpt_tos = ", ".join(envelope.rcpt_tos)
    head = (ENVELOPE_FROM + b": " + _header_value(mail_from) + b"\r\n"
            + ENVELOPE_TO + b": " + _header_value(rcpt_tos) + b"\r\n")
    return head + data


def name_time(when: datetime) -> str:
    """How a stored mail's file name starts: the UTC time it was stored, to the second; names
    sort in time order, and a name ``>= name_time(t)`` was stored at or after ``t`` (give or
    take the second)."""
    return f"{when.astimezone(UTC):%Y%m%dT%H%M%S}"


def store(directory: Path, content: bytes) -> Path:
    """Write ``content`` to a new .eml file in ``directory`` atomically; returns its path."""
    now = datetime.now(UTC)
    name = f"{name_time(now)}.{now.microsecond:06d}Z-{secrets.token_hex(8)}.eml"
    final = directory / name
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class SinkHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = render(envelope)
        try:
            path = await asyncio.to_thread(store, self.directory, content)
        except OSError as exc:
            log.error("could not store message: %s", exc.strerror or exc)
            return "451 Requested action aborted: local error in processing"
        log.info("stored %s (%d bytes)", path.name, len(content))
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path, *,
                data_size_limit: int = 64 * 1024 * 1024) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    handler = SinkHandler(directory)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(handler, hostname="bsm-mailsink", ident="bsm mail sink",
                    decode_data=False, enable_SMTPUTF8=True, data_size_limit=data_size_limit)

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d, writing to %s", host, port, directory)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bsm_devstack.mailsink",
                                     description="SMTP sink that stores every message as .eml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None,
                        help="default: the stack's relay port (BSM_STACK_PORT_OFFSET applies)")
    parser.add_argument("--dir", type=Path, required=True, help="directory for .eml files")
    parser.add_argument("--max-size", type=int, default=64 * 1024 * 1024,
                        help="largest accepted message in bytes")
    args = parser.parse_args(argv)
    if args.port is None:
        from bsm_devstack.topology import resolve

        args.port = resolve().smtp_relay_port

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiosmtpd logs envelope addresses and protocol lines at INFO: keep it quiet.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # On uvloop, as the services: the sink stands for a relay on another machine (Postfix, a
    # provider), so the less of the bench's shared cores it takes, the truer the figures.
    event_loop.run(
        serve(args.host, args.port, args.dir.resolve(), data_size_limit=args.max_size), "uvloop")


if __name__ == "__main__":
    main()


def find_by_message_id(directory: str | Path, message_id: str) -> Path | None:
    """The stored mail whose ``Message-ID`` header is ``message_id`` (``<id@domain>``), newest
    files first and without parsing: the sink of a long-lived stack holds thousands (after a
    day of benchmarks 130,000: a ``stat`` of each to sort by time took longer than the tests'
    30 s wait). File names start with the time they were stored (:func:`name_time`), so their
    order is the time order."""
    needle = f"Message-ID: {message_id}".encode().lower()
    with os.scandir(directory) as entries:
        names = sorted((e.name for e in entries if e.name.endswith(".eml")), reverse=True)
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as fh:
                head = fh.read(16384).lower()
        except FileNotFoundError:  # removed meanwhile
            continue
        if needle in head:
            return Path(directory) / name
    return None
