"""Helpers for the mail tests: the corpus of raw messages, SMTP through the door, the sink."""

from __future__ import annotations

import asyncio
import email
import os
import smtplib
import socket
import time
import uuid
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from string import Template

from bsm_devstack.mailsink import name_time

CORPUS = Path(__file__).parent / "e2e" / "mail_corpus"
SIMPLELOGIN = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "simplelogin-emls"
CLIENTS = ("outlook_reply", "gmail_with_inline_image", "apple_mail_with_pdf", "thunderbird_latin1")


def corpus_mail(name: str, **values: str) -> bytes:
    """A corpus message with its placeholders filled (``from``, ``from_name``, ``to``,
    ``to_name``, ``subject``, ``in_reply_to``, ``nonce``), encoded as the client sends it."""
    text = (CORPUS / f"{name}.eml").read_text(encoding="utf-8")
    values.setdefault("nonce", uuid.uuid4().hex)
    values.setdefault("from_domain", values["from"].rpartition("@")[2])
    rendered = Template(text).substitute(values).replace("\r\n", "\n").replace("\n", "\r\n")
    # Thunderbird's message is 8-bit windows-1252, as declared; the others are 7-bit.
    return rendered.encode("cp1252" if "charset=windows-1252" in rendered else "utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_send(host: str, port: int, sender: str, recipients: list[str], raw: bytes) -> tuple[int, str]:
    """Send through the door with smtplib; (code, text) of the first refusal, or of the 250."""
    with smtplib.SMTP(host, port, local_hostname="client.example", timeout=30) as smtp:
        smtp.ehlo()
        code, text = smtp.mail(sender)
        if code != 250:
            return code, text.decode()
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            if code not in (250, 251):
                smtp.rset()
                return code, text.decode()
        code, text = smtp.data(raw)
        return code, text.decode()


async def asmtp_send(host: str, port: int, sender: str, recipients: list[str],
                     raw: bytes) -> tuple[int, str]:
    return await asyncio.to_thread(smtp_send, host, port, sender, recipients, raw)


def simple_mail(sender: str, to: str, *, subject: str = "Hola", body: str = "Hola",
                in_reply_to: str | None = None, from_header: str | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = from_header or sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@client.example>"
    if in_reply_to:
        mail["In-Reply-To"] = mail["References"] = in_reply_to
    mail.set_content(body)
    return mail.as_bytes()


#: Mails older than this when a test starts looking are not its own (a sink that benchmarks
#: filled with tens of thousands of mails must not be parsed whole on every look).
RECENT_SECONDS = 600.0


def recent_paths(sink_dir: str, since: float | None = None) -> list[Path]:
    """The sink's mails stored since ``since`` (default: the last :data:`RECENT_SECONDS`),
    oldest first."""
    since = time.time() - RECENT_SECONDS if since is None else since
    # Names start with the time the sink stored the mail: comparing names needs no stat of each
    # of the hundred thousand files a benchmarked stack holds.
    first = name_time(datetime.fromtimestamp(since, UTC))
    with os.scandir(sink_dir) as entries:
        return sorted(Path(e.path) for e in entries
                      if e.name.endswith(".eml") and e.name >= first)


async def sink_mail(sink_dir: str, match, timeout: float = 30.0) -> EmailMessage:  # noqa: ANN001
    """The first recent mail in the sink for which ``match(mail)`` is true. The sink is read
    in a thread: services running in the test's own event loop keep their heartbeats."""
    deadline = time.monotonic() + timeout
    since = time.time() - RECENT_SECONDS
    rejected: set[Path] = set()  # a stored mail never changes: parse each one once
    while time.monotonic() < deadline:
        for path in await asyncio.to_thread(recent_paths, sink_dir, since):
            if path in rejected:
                continue
            mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if not match(mail):
                rejected.add(path)
            else:
                mail.raw_bytes = path.read_bytes()  # type: ignore[attr-defined]
                return mail  # type: ignore[return-value]
        await asyncio.sleep(0.2)
    raise AssertionError("no matching mail reached the mail sink")


def all_text(raw: bytes) -> str:
    """Everything a recipient could see in a mail, decoded: the raw bytes plus every part's
    decoded content (so an address hidden by base64 or quoted-printable is still found)."""
    mail = email.message_from_bytes(raw, policy=policy.default)
    pieces = [raw.decode("utf-8", "replace")]
    for part in mail.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        pieces.append(payload.decode("utf-8", "replace"))
        pieces.append(payload.decode("latin-1"))
        pieces.append(str(part.get_filename() or ""))
    return "\n".join(pieces).lower()
