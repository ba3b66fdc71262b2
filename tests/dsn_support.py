"""Helpers for the bounce-report tests: the DSN corpus (tests/unit/data/dsn) filled in."""

from __future__ import annotations

import uuid
from pathlib import Path
from string import Template

DSN_CORPUS = Path(__file__).parent / "unit" / "data" / "dsn"
#: Provider shapes of a permanent failure (RFC 3464), and the others.
FAILED_SHAPES = ("postfix", "exchange_ndr", "gmail")


def dsn_mail(name: str, *, return_path: str, recipient: str, msgid: str,
             nonce: str | None = None) -> bytes:
    """A corpus report about the mail ``msgid`` sent to ``recipient`` with envelope sender
    ``return_path``, CRLF line ends as on the wire. ``nonce`` makes the report's own
    Message-ID (the same nonce: the same report, as a provider's retry sends it)."""
    text = (DSN_CORPUS / f"{name}.eml").read_text(encoding="utf-8")
    rendered = Template(text).substitute(
        return_path=return_path, recipient=recipient, msgid=msgid,
        nonce=nonce or uuid.uuid4().hex)
    return rendered.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


async def sink_by_message_id(sink_dir: str, header: str, timeout: float = 60.0):  # noqa: ANN201
    """The mail in the stack's sink whose Message-ID is ``header`` (``<id@domain>``), found
    without parsing every stored mail (the sink of a long-lived stack holds thousands)."""
    import asyncio
    import email
    import time
    from email import policy

    from bsm_devstack.mailsink import find_by_message_id

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = find_by_message_id(sink_dir, header)
        if path is not None:
            raw = path.read_bytes()
            mail = email.message_from_bytes(raw, policy=policy.default)
            mail.raw_bytes = raw  # type: ignore[attr-defined]
            return mail
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mail with Message-ID {header} reached the mail sink")
