"""The mail door: an aiosmtpd SMTP server for the marketplace mail domain (adapter).

The dialogue does the refusing (no bounce is ever mailed to an unverified sender):

* ``RCPT TO`` an address that is not an alias → ``550 5.1.1``; a second alias → ``452 4.5.3``;
  an envelope sender that is not the other party of the alias's relationship (registered
  address, or a seller's authorized one) → ``550 5.7.1``; a blocked address → ``550 5.7.1``.
* ``DATA``: the sender's domain must vouch for the mail (DMARC, :func:`mail.authenticate_sender`):
  SPF ``pass`` for the envelope sender (pyspf), or a DKIM signature (dkimpy) aligned with the
  header ``From``'s domain, which must be the envelope sender's; else ``550 5.7.26`` (no
  verdict), ``550 5.7.23`` (SPF ``fail``), ``550 5.7.1`` (a ``From`` at another domain). Both
  checks ask the DNS through one injectable lookup (a zone file in the local stack and tests:
  :mod:`bsm_alias.fixed_dns`).
* Size and shape: more than ``SIZE`` (``MAX_MAIL_BYTES``), a body, attachments or an event
  beyond the contract's limits → ``552 5.3.4``; MIME beyond the door's bounds (parts, nesting,
  header fields) → ``552 5.3.4`` / ``550 5.6.0``; each reply names the limit and the mail's
  figure (:mod:`bsm_alias.mail`, ``docs/mail.md``). Nothing the door accepts can fail a later
  stage for its size or its characters (no U+0000, header values and file names one line).

Bounce reports (D1): ``RCPT TO`` a VERP return path (``bounces+<message id>.<expiry>.<mac>@``,
written by delivery) is accepted from any envelope sender, the null sender ``<>`` included
(the only RCPT it is accepted for), if the MAC verifies with ``BSM_ALIAS_VERP_KEY`` and the
expiry has not passed (else ``550 5.7.1`` not genuine / ``550 5.1.1`` expired). Its DATA is read
as a delivery status report (:mod:`bsm_alias.dsn`) and a ``BounceReportReceived`` goes into the
outbox; nothing is ever mailed back. What the report means for the message is delivery's call.

An accepted mail is parsed and scrubbed (:mod:`bsm_alias.mail`), its attachments stored by
hash, and a ``MessageSubmitted`` (channel ``email``, ``submitted_at`` = when the door received
the DATA, B5) is put into the alias service's outbox; ``250`` is answered only after that
transaction committed, so an accepted mail is never lost. The same mail sent twice (a client
retrying after a lost ``250``) gets the same message id — derived from the sender and the mail's
own Message-ID — and the alias consumer addresses it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import dkim
import dkim.dnsplug
import dkim.util
import spf
from aiosmtpd.smtp import SMTP, Envelope, Session

from bsm_shared.blobs import BlobStore
from bsm_shared.contract import BounceReportReceivedEvent, MessageSubmittedEvent
from bsm_shared.contract.limits import EventTooLarge
from bsm_shared.contract.payloads import AttachmentRef, BounceReportReceived, MessageSubmitted
from bsm_shared.contract.wire import build_event, derived_event_id, unsigned_body
from bsm_shared.runtime import verp
from bsm_shared.runtime.consumer import Outgoing
from bsm_shared.runtime.db import is_transient
from bsm_shared.runtime.grouped import GroupedWrites
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Topic

from . import core, dsn, mail
from .store import AliasStore

log = logging.getLogger("bsm.alias.door")

#: Namespace of message ids derived from (sender, the mail's own Message-ID).
_DOOR_NS = uuid.UUID("0b6f3d52-3c1e-4d8a-9a0e-5d7a1c2e9f41")

SpfCheck = Callable[[str, str, str], Awaitable[str]]
#: ``(raw mail, From domain) -> the d= of each DKIM signature aligned with it that verifies``.
DkimCheck = Callable[[bytes, str], Awaitable[list[str]]]
DnsLookup = Callable[[str, str], list[Any]]


#: A mail up to this size is parsed and scrubbed on the event loop (1.5 KB: ≈ 1 ms; 32 KB:
#: ≈ 3 ms); a larger one in a thread, since a 25 MB mail takes the email package seconds and
#: the service's consumer shares the loop. A thread hop costs ≈ 0.2 ms of CPU here (the
#: hand-off, the wake-ups, the loop's self-pipe write): a fifth of reading a small mail.
INLINE_MAIL_BYTES = 32 * 1024
_T = TypeVar("_T")


async def _off_loop_if_large(size: int, work: Callable[..., _T], *args: Any) -> _T:
    if size <= INLINE_MAIL_BYTES:
        return work(*args)
    return await asyncio.to_thread(work, *args)


def _temporary_failure(what: str, exc: BaseException) -> str:
    """451: the client keeps the mail and tries again. An outage (PostgreSQL restarting, Kafka
    away) is a warning; anything else is our bug, an ERROR with its traceback. Call it from the
    ``except`` block."""
    if is_transient(exc):
        log.warning("%s: %r; the client will try again", what, exc)
    else:
        log.exception(what)
    return "451 4.3.0 Temporary failure, try again later"


class _Query(spf.query):  # type: ignore[misc]
    """pyspf's query with its DNS lookup replaced (offline tests, fixed records)."""

    def __init__(self, lookup: DnsLookup, **kwargs: Any) -> None:
        self._lookup = lookup
        super().__init__(**kwargs)

    def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        return self._lookup(name.lower().rstrip("."), qtype)


def spf_checker(lookup: DnsLookup | None = None, timeout: float = 5.0) -> SpfCheck:
    """An SPF check ``(ip, envelope sender, helo) -> result`` with pyspf; ``lookup`` replaces
    DNS: it gets ``(name, qtype)`` and returns what pyspf's ``dns`` returns (TXT: ``[[b"…"]]``)."""

    def check(ip: str, sender: str, helo: str) -> str:
        if lookup is not None:
            query = _Query(lookup, i=ip, s=sender, h=helo or "unknown", timeout=timeout)
        else:
            query = spf.query(i=ip, s=sender, h=helo or "unknown", timeout=timeout)
        result, _code, _text = query.check()
        return str(result)

    async def run(ip: str, sender: str, helo: str) -> str:
        return await asyncio.to_thread(check, ip, sender, helo)

    return run


class _ErrorsAsWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_AS_WARNING = _ErrorsAsWarnings()

#: dkimpy logs why a signature did not verify (a key missing, malformed, too short) at ERROR:
#: hostile or broken mail is normal input, a warning, not an error of the service.
_DKIM_LOG = logging.getLogger("bsm.alias.door.dkim")


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]


def dkim_checker(lookup: DnsLookup | None = None, timeout: float = 5.0) -> DkimCheck:
    """A DKIM check with dkimpy: the ``d=`` of each signature aligned with the From domain
    (:func:`mail.aligned`) that verifies, at most :data:`mail.MAX_DKIM_SIGNATURES` tried.
    A signature with a body length (``l=``) is not counted: whatever follows the signed length
    could have been added by anyone. ``lookup`` replaces DNS as for :func:`spf_checker`."""
    _DKIM_LOG.addFilter(_AS_WARNING)

    def txt(name: bytes, timeout: float = timeout) -> bytes | None:
        assert lookup is not None
        for record in lookup(name.decode("ascii", "replace").lower().rstrip("."), "TXT"):
            return b"".join(record)
        return None

    dnsfunc = txt if lookup is not None else dkim.dnsplug.get_txt

    def check(raw: bytes, from_domain: str) -> list[str]:
        if b"dkim-signature" not in _header_block(raw).lower():
            return []
        try:
            verifier = dkim.DKIM(raw, logger=_DKIM_LOG, timeout=int(timeout) or 1)
        except Exception:  # noqa: BLE001 - a mail dkimpy cannot read has no signature we trust
            return []
        signatures = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
        verified: list[str] = []
        tried = 0
        for idx, value in enumerate(signatures):
            try:
                tags = dkim.util.parse_tag_value(value)
            except Exception:  # noqa: BLE001 - malformed: not a signature
                continue
            domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
            if b"l" in tags or not mail.aligned(domain, from_domain):
                continue
            tried += 1
            if tried > mail.MAX_DKIM_SIGNATURES:
                break
            try:
                if verifier.verify(idx=idx, dnsfunc=dnsfunc):
                    verified.append(domain)
            except Exception:  # noqa: BLE001 - dkimpy raises on malformed signatures and keys
                continue
        return verified

    async def run(raw: bytes, from_domain: str) -> list[str]:
        return await asyncio.to_thread(check, raw, from_domain)

    return run


@dataclass
class _Accepted:
    """What RCPT established, kept on the envelope for DATA."""

    relationship: core.Relationship
    owner: core.Party
    sender_id: str


@dataclass
class _ReportTo:
    """RCPT was a genuine return path: the report is about this message."""

    message_id: str


class DoorHandler:
    """aiosmtpd handler: ``handle_MAIL`` / ``handle_RCPT`` / ``handle_DATA``."""

    def __init__(
        self, rt: ServiceRuntime, *, store: Callable[[Any], AliasStore], mail_domain: str,
        blobs: BlobStore, spf_check: SpfCheck, clock: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID], verp_key: bytes | None = None,
        dkim_check: DkimCheck | None = None,
    ) -> None:
        self.rt = rt
        self.store = store
        self.domain = mail_domain.lower()
        self.blobs = blobs
        self.spf_check = spf_check
        self.dkim_check = dkim_check or dkim_checker()
        self.clock = clock
        self.new_id = new_id
        self.verp_key = verp_key
        self.reports = 0
        self.accepted = 0
        self.refused: dict[str, int] = {}
        #: Accepted mails recorded together when they come together (the 250 of each still
        #: waits for its own commit): one transaction and one relay wake-up for several.
        self.records: GroupedWrites[Outgoing] = GroupedWrites(self._record, name="door-records")

    def _refuse(self, refusal: mail.Refusal, where: str) -> str:
        self.refused[refusal.reason_code] = self.refused.get(refusal.reason_code, 0) + 1
        # No address in the log line: the reason code and the stage say what happened.
        log.info("door refused at %s: %s", where, refusal.reason_code)
        return refusal.reply()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if envelope.rcpt_tos:
            return self._refuse(mail.ONE_ALIAS, "rcpt")
        if self._is_return_path(address):
            return self._report_rcpt(envelope, address)
        # aiosmtpd keeps the null reverse-path as "<>" (its angle-addr parser's addr_spec).
        if envelope.mail_from in ("", "<>", None):
            return self._refuse(mail.NULL_SENDER, "rcpt")
        local = core.alias_local_part(address, self.domain)
        assert self.rt.pool is not None
        try:
            async with self.rt.pool.acquire() as conn:
                store = self.store(conn)
                found = await store.by_alias(local) if local else None
                if found is None:
                    return self._refuse(mail.UNKNOWN_ALIAS, "rcpt")
                relationship, owner = found
                facts = await store.sender_facts(envelope.mail_from)
        except Exception as exc:  # noqa: BLE001 - a temporary failure: the client retries later
            return _temporary_failure("door lookup failed", exc)
        decided = mail.authorize_sender(relationship, owner.party_id, facts)
        if isinstance(decided, mail.Refusal):
            return self._refuse(decided, "rcpt")
        envelope.rcpt_tos.append(address)
        envelope.bsm = _Accepted(relationship, owner, decided)  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    def _is_return_path(self, address: str) -> bool:
        local, _, domain = address.strip().rpartition("@")
        return domain.lower() == self.domain and local.lower().startswith(verp.PREFIX + "+")

    def _report_rcpt(self, envelope: Envelope, address: str) -> str:
        """A bounce report's RCPT: only a genuine, unexpired return path (any sender)."""
        if self.verp_key is None:
            return self._refuse(mail.RETURN_PATH_FORGED, "rcpt")  # nothing can be verified
        try:
            message_id = verp.read_return_path(self.verp_key, address, domain=self.domain,
                                               now=self.clock())
        except verp.VerpExpired:
            return self._refuse(mail.RETURN_PATH_EXPIRED, "rcpt")
        except verp.VerpError:
            return self._refuse(mail.RETURN_PATH_FORGED, "rcpt")
        envelope.rcpt_tos.append(address)
        envelope.bsm = _ReportTo(message_id)  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received_at = self.clock()  # B5: the platform's clock starts when the door has the mail
        ctx: _Accepted | _ReportTo | None = getattr(envelope, "bsm", None)
        if ctx is None:
            return "554 5.5.1 No valid recipients"
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        if isinstance(ctx, _ReportTo):
            return await self._report(ctx, raw, received_at)
        try:
            parsed = await _off_loop_if_large(len(raw), mail.parse, raw)
        except Exception:  # noqa: BLE001 - parse refuses, never raises: this would be our bug
            log.exception("unparseable mail")
            return self._refuse(mail.UNREADABLE, "data")
        if isinstance(parsed, mail.Refusal):
            return self._refuse(parsed, "data")
        if parsed.defects:
            log.info("door read a mail with MIME defects: %s", ", ".join(parsed.defects))
        header_from = parsed.header_from[0][1] if len(parsed.header_from) == 1 else None
        sender = str(envelope.mail_from)
        ip = session.peer[0] if isinstance(session.peer, tuple) else "127.0.0.1"
        try:
            spf_result = await self.spf_check(ip, sender, session.host_name or "")
        except Exception:  # noqa: BLE001 - pyspf raises on malformed input: treat as no record
            spf_result = "permerror"
        dkim_domains: list[str] = []
        if (spf_result != "pass" and header_from is not None
                and mail.address_domain(header_from) == mail.address_domain(sender)):
            # DKIM only when SPF does not settle it: a mail forwarded on, or sent from a server
            # the domain's SPF does not list, is still the domain's if it signed it.
            dkim_domains = await self.dkim_check(raw, mail.address_domain(header_from))
        refusal = mail.authenticate_sender(sender, header_from, spf_result, dkim_domains)
        if refusal is not None:
            return self._refuse(refusal, "data")
        try:
            submitted = await self._submit(ctx, parsed, sender, received_at)
        except Exception as exc:  # noqa: BLE001 - nothing committed: the client keeps the mail
            return _temporary_failure("door could not record the mail", exc)
        if isinstance(submitted, mail.Refusal):
            return self._refuse(submitted, "data")
        self.accepted += 1
        return f"250 2.0.0 Ok: queued as {submitted}"

    async def _report(self, ctx: _ReportTo, raw: bytes, received_at: datetime) -> str:
        """Record a bounce report as ``BounceReportReceived`` (never answered by mail)."""
        try:
            report = await asyncio.to_thread(dsn.read_report, raw)
        except Exception:  # noqa: BLE001 - read_report refuses, never raises: our bug if it does
            log.exception("unreadable bounce report for message %s", ctx.message_id)
            return self._refuse(mail.UNREADABLE, "data")
        if isinstance(report, mail.Refusal):
            return self._refuse(report, "data")
        if report is None:
            # An out-of-office reply or other stray mail at the return path: taken (a refusal
            # would make its server mail a bounce to someone), recorded nowhere.
            log.info("mail at the return path of %s is no bounce report; ignored", ctx.message_id)
            return "250 2.0.0 Ok: not a delivery status report, nothing recorded"
        data = BounceReportReceived(
            message_id=ctx.message_id, received_at=received_at,
            action=report.action,  # type: ignore[arg-type]  # one of dsn.ACTIONS
            status=report.status, diagnostic=report.diagnostic,
            reporting_mta=report.reporting_mta, standard=report.standard,
        )
        event = build_event(
            BounceReportReceivedEvent, data,
            # The provider retrying the same report (same Message-ID, or same bytes) gives the
            # same event id: consumers drop the copy.
            event_id=derived_event_id(ctx.message_id, f"bounce-report:{report.report_id}"),
            occurred_at=received_at, producer="alias", correlation_id=ctx.message_id,
        )
        try:
            assert self.rt.pool is not None
            async with self.rt.pool.acquire() as conn, conn.transaction():
                await self.rt.record(
                    conn, [Outgoing(Topic.BOUNCE_REPORTS, ctx.message_id, event)]
                )
        except Exception:  # noqa: BLE001 - nothing committed: the reporting MTA retries
            log.exception("door could not record the bounce report")
            return "451 4.3.0 Temporary failure, try again later"
        assert self.rt.relay is not None
        self.rt.relay.wake()
        self.reports += 1
        log.info("bounce report for message %s: %s %s (%s)", ctx.message_id, report.action,
                 report.status, "standard" if report.standard else "non-standard")
        return f"250 2.0.0 Ok: report recorded for {ctx.message_id}"

    async def _submit(
        self, ctx: _Accepted, parsed: mail.ParsedMail, envelope_sender: str, received_at: datetime
    ) -> str | mail.Refusal:
        """The message id of the recorded ``MessageSubmitted``, or why it cannot be one. Every
        input-dependent failure is a refusal (5xx, the sender can act on it); an exception
        here is the infrastructure's (451, the client retries)."""
        rel, domain = ctx.relationship, self.domain
        sender_alias = rel.alias_of(ctx.sender_id, domain)
        owner_alias = rel.alias_of(ctx.owner.party_id, domain)
        assert self.rt.pool is not None
        async with self.rt.pool.acquire() as conn:
            store = self.store(conn)
            await store.load_parties([ctx.sender_id, ctx.owner.party_id])
            sender = await store.party(ctx.sender_id)
            sender_real = await store.registered_email(ctx.sender_id)
            owner_real = await store.registered_email(ctx.owner.party_id)
        addresses, names = mail.identity_map(
            envelope_sender=envelope_sender, header_from=parsed.header_from,
            sender_real=sender_real, recipient_real=owner_real, sender_alias=sender_alias,
            recipient_alias=owner_alias, public_name=sender.display_name if sender else "",
        )
        size = (len(parsed.text or "") + len(parsed.html or "")
                + sum(len(att.content) for att in parsed.attachments))
        scrubbed = await _off_loop_if_large(size, mail.scrub_mail, parsed, addresses, names)
        if isinstance(scrubbed, mail.Refusal):
            return scrubbed
        refs = [
            AttachmentRef(sha256=hashlib.sha256(att.content).hexdigest(), size=len(att.content),
                          content_type=att.content_type, filename=att.filename)
            for att in scrubbed.attachments
        ]
        if parsed.message_id:
            message_id = str(uuid.uuid5(_DOOR_NS, f"{ctx.sender_id}\n{parsed.message_id}"))
        else:
            message_id = str(self.new_id())
        text, html = scrubbed.text, scrubbed.html
        data = MessageSubmitted(
            message_id=message_id, channel="email", sender={"party_id": ctx.sender_id},
            recipient={"address": owner_alias}, subject=scrubbed.subject,
            text=text if text is not None or html is not None else "", html=html,
            attachments=refs, in_reply_to=mail.reply_target(parsed, domain),
            submitted_at=received_at,
        )
        event = build_event(
            MessageSubmittedEvent, data, event_id=derived_event_id(message_id, "door"),
            occurred_at=received_at, producer="alias", correlation_id=message_id,
        )
        try:
            # What the outbox would refuse, refused in the dialogue before any blob is stored.
            # The limits above keep a message well under MAX_EVENT_BYTES; should they ever not
            # (a limit raised, a field added), the sender still gets a 5xx, never a 451 loop.
            unsigned_body(event)
        except EventTooLarge as exc:
            return mail.event_too_large(exc.size)
        for att in scrubbed.attachments:
            await self.blobs.put(att.content)
        await self.records.add(Outgoing(Topic.SUBMITTED, rel.relationship_id, event))
        return message_id

    async def _record(self, submitted: list[Outgoing]) -> None:
        assert self.rt.pool is not None and self.rt.relay is not None
        async with self.rt.pool.acquire() as conn, conn.transaction():
            await self.rt.record(conn, submitted)
        self.rt.relay.wake()


class DoorSMTP(SMTP):
    """aiosmtpd's server, with its own size refusals (``SIZE=`` above the limit at ``MAIL``,
    more data than the limit at ``DATA``) replaced by the door's, which name the limit."""

    async def push(self, status: Any) -> None:
        handler = self.event_handler
        if (isinstance(status, str) and status.startswith("552 Error:")
                and isinstance(handler, DoorHandler) and self.data_size_limit):
            status = handler._refuse(mail.mail_too_large(self.data_size_limit), "size")
        await super().push(status)


async def serve(handler: DoorHandler, host: str, port: int, *, hostname: str,
                data_size_limit: int) -> None:
    """Listen until cancelled (a ``ServiceRuntime`` background job)."""
    # aiosmtpd logs every envelope sender and recipient at INFO ("mail.log"): real addresses
    # must not reach a log line, and our own refusal log says what happened without them.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # flufl.bounce logs each detector it runs at INFO, and a detector's crash on a malformed
    # report at ERROR before raising it; dsn.read_report catches that and reads on. Hostile
    # input is normal input: a warning, not an error of the service.
    bounce_log = logging.getLogger("flufl.bounce")
    bounce_log.setLevel(logging.WARNING)
    bounce_log.addFilter(_AS_WARNING)
    loop = asyncio.get_running_loop()
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def session() -> SMTP:
        protocol = DoorSMTP(handler, hostname=hostname, ident="bsm mail door",
                        data_size_limit=data_size_limit, enable_SMTPUTF8=True)
        sessions.add(protocol)
        return protocol

    server = await loop.create_server(session, host, port)
    log.info("mail door listening on %s:%d", host, port)
    try:
        await server.serve_forever()
    finally:
        server.close()
        # Open client sessions would keep the service from stopping (Python 3.11.7+ waits for
        # them in wait_closed, and each holds its handler task): a stopping door drops them;
        # a client whose DATA was not answered with 250 keeps its mail and retries.
        for protocol in list(sessions):
            if protocol.transport is not None:
                protocol.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)
