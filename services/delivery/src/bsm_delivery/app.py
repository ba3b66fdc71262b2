"""Composition root and adapter of the delivery service.

Consumes ``bsm.parties`` (recipients' real addresses, stored encrypted),
``bsm.messages.policy-checked`` (verified: only the policy service may write it),
``bsm.messages.bounced`` (bounce notices) and ``bsm.messages.bounce-reports`` (reports the mail
door received at a VERP return path: a ``failed`` one for a delivered message becomes
``Bounced`` with ``after_delivery``, once). Consumer
group ``bsm.delivery``; ack policy in :func:`bsm_shared.runtime.kafka.subscribe`.

Exactly one outcome per message:

* a rejection becomes ``Bounced`` (stage ``policy``) in the same transaction that records the
  input event as processed;
* an approval becomes a row in ``jobs`` in that transaction. The worker claims due jobs
  (``FOR UPDATE SKIP LOCKED``: several instances never send the same job concurrently), sends
  them over one SMTP connection, and in the same transaction stores the mailbox entry, closes
  the job and puts ``Delivered`` (or ``Bounced`` stage ``delivery``) in the outbox. Temporary
  failures reschedule the job with exponential backoff, in the table, so the schedule survives
  a restart. Both outcome events have an id derived from the ``PolicyChecked`` id: whatever
  is retried, a message never gets two;
* the one later event a message can get: a provider's ``failed`` bounce report for its email
  copy adds one ``Bounced`` with ``after_delivery`` after its ``Delivered`` (at most one: the
  job row records it). The message stays delivered in the message center.

SMTP is at-least-once: a crash after the relay accepted a mail but before the commit sends it
again on restart, with the same ``Message-ID`` (recipients' clients collapse the copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import logging
from datetime import datetime, timedelta
from pathlib import Path

import aiosmtplib
import asyncpg
from faststream import FastStream

from bsm_shared.contract import BouncedEvent, DeliveredEvent
from bsm_shared.contract.payloads import (
    AttachmentRef,
    BounceReportReceived,
    Bounced,
    PartyErased,
    PartyRegistered,
    PolicyChecked,
    SellerSettingsChanged,
)
from bsm_shared.contract.wire import build_event, derived_event_id
from bsm_shared.runtime import verp
from bsm_shared.runtime.consumer import Incoming, Outgoing
from bsm_shared.runtime.db import TRANSIENT_ERRORS, check_ident
from bsm_shared.runtime.keyring import Keyring, is_party_sealed
from bsm_shared.runtime.pii import PiiVault
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.runtime.transit import is_sealed, unseal
from bsm_shared.topics import Group, Topic

from . import core, dkim_sign, notices, reports
from .settings import DeliverySettings

log = logging.getLogger("bsm.delivery")
PRODUCER = "delivery"
BOUNCE_ADDRESS_LOCAL = "bounces"


def migrations(schema: str) -> list[str]:
    s = check_ident(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.parties (
            party_id     text PRIMARY KEY,
            role         text NOT NULL,
            display_name text NOT NULL,
            locale       text NOT NULL,
            data_key     bytea NOT NULL,
            email_enc    bytea NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.jobs (
            message_id      text PRIMARY KEY,
            cause_event_id  uuid NOT NULL,
            policy_checked  text NOT NULL,
            state           text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'delivered', 'bounced')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error      text,
            created_at      timestamptz NOT NULL DEFAULT now()
        )""",
        f"CREATE INDEX IF NOT EXISTS jobs_due ON {s}.jobs (next_attempt_at) WHERE state = 'pending'",
        f"""CREATE TABLE IF NOT EXISTS {s}.mailbox (
            message_id      text PRIMARY KEY,
            recipient_party_id text NOT NULL,
            sender_party_id text NOT NULL,
            conversation_id text NOT NULL,
            order_id        text,
            sender_alias    text NOT NULL,
            subject         text NOT NULL,
            text_body       text,
            html_body       text,
            delivered_at    timestamptz NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS mailbox_recipient ON {s}.mailbox (recipient_party_id)",
        # Seller settings delivery needs for bounce notices (D1, D1b); the customer-service
        # address encrypted under a data key of its own (settings may precede the party).
        f"""CREATE TABLE IF NOT EXISTS {s}.seller_settings (
            seller_id    text PRIMARY KEY,
            data_key     bytea NOT NULL,
            cs_email_enc bytea,
            opt_out_bounce_notices boolean NOT NULL DEFAULT false
        )""",
        # Erasure: the party row stays, emptied, so a replayed registration cannot restore it.
        f"ALTER TABLE {s}.parties ADD COLUMN IF NOT EXISTS erased_at timestamptz",
        # A bounce report after delivery (D1) stops a delivered message once: this marks it.
        f"ALTER TABLE {s}.jobs ADD COLUMN IF NOT EXISTS reported_failed_at timestamptz",
        # One notice per bounced message at most (the message id is the key).
        f"""CREATE TABLE IF NOT EXISTS {s}.notices (
            message_id      text PRIMARY KEY,
            bounced         text NOT NULL,
            state           text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sent', 'failed')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error      text
        )""",
    ]


class Delivery:
    def __init__(self, rt: ServiceRuntime, settings: DeliverySettings) -> None:
        self.rt = rt
        self.settings = settings
        self.s = check_ident(rt.schema)
        self.vault = PiiVault(settings.pii_key_bytes())
        self.keyring: Keyring = rt.keyring  # type: ignore[attr-defined]
        self.wake = asyncio.Event()
        rt.committed_callbacks.append(self.wake.set)
        self.sent = 0
        self.verp_key = settings.verp_key_bytes()
        self.dkim_key = settings.dkim_key_pem()

    def return_path(self, message_id: str, domain: str, now: datetime) -> str:
        """The signed VERP envelope sender of one message (plain ``bounces@`` without a key,
        or for a message id that cannot stand in a local part)."""
        if self.verp_key is not None:
            expires = now + timedelta(days=self.settings.verp_valid_days)
            with contextlib.suppress(verp.VerpError):
                return verp.return_path(self.verp_key, message_id, expires, domain)
        return f"{BOUNCE_ADDRESS_LOCAL}@{domain}"

    # -- consumer side ------------------------------------------------------------------------
    async def on_parties(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        data = incoming.event.data
        if isinstance(data, PartyErased):
            await self._erase(conn, data)
        elif isinstance(data, PartyRegistered):
            row = await conn.fetchrow(
                f"SELECT data_key, erased_at FROM {self.s}.parties WHERE party_id = $1",
                data.party_id,
            )
            email = await self.keyring.open(conn, data.email, "email",  # may come sealed
                                            party_id=data.party_id)
            if email is None or (row is not None and row["erased_at"] is not None):
                return []  # a replayed registration of an erased party
            key = (row["data_key"] if row else None) or self.vault.new_data_key(data.party_id)
            await conn.execute(
                f"""INSERT INTO {self.s}.parties (party_id, role, display_name, locale, data_key,
                        email_enc) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (party_id) DO UPDATE SET role = EXCLUDED.role,
                        display_name = EXCLUDED.display_name, locale = EXCLUDED.locale,
                        email_enc = EXCLUDED.email_enc""",
                data.party_id, data.role, "", data.locale, key,
                self.vault.encrypt(data.party_id, key, "email", email),
            )
        elif isinstance(data, SellerSettingsChanged):
            await self._seller_settings(conn, data)
        return []

    async def _erase(self, conn: asyncpg.Connection, data: PartyErased) -> None:
        """Forget the party's address and customer-service address (their data keys go)."""
        await conn.execute(
            f"""INSERT INTO {self.s}.parties (party_id, role, display_name, locale, data_key,
                    email_enc, erased_at) VALUES ($1, 'buyer', '', '', '', '', $2)
                ON CONFLICT (party_id) DO UPDATE SET display_name = '', data_key = '',
                    email_enc = '', erased_at = $2""",
            data.party_id, data.erased_at,
        )
        await conn.execute(
            f"UPDATE {self.s}.seller_settings SET cs_email_enc = NULL, data_key = '' "
            f"WHERE seller_id = $1", data.party_id,
        )
        self.keyring.forget(data.party_id)

    async def _seller_settings(self, conn: asyncpg.Connection, data: SellerSettingsChanged) -> None:
        row = await conn.fetchrow(
            f"SELECT data_key FROM {self.s}.seller_settings WHERE seller_id = $1", data.seller_id
        )
        key = row["data_key"] if row else self.vault.new_data_key(data.seller_id)
        await conn.execute(
            f"INSERT INTO {self.s}.seller_settings (seller_id, data_key) VALUES ($1, $2) "
            f"ON CONFLICT (seller_id) DO NOTHING", data.seller_id, key,
        )
        if not key:  # the seller was erased
            return
        if data.customer_service_email is not None:
            value = data.customer_service_email
            if is_party_sealed(value):
                value = await self.keyring.open(
                    conn, value, "SellerSettingsChanged.customer_service_email",
                    party_id=data.seller_id) or ""
            elif is_sealed(value):
                transit = self.settings.transit_key_bytes()
                if transit is None:
                    log.warning("a sealed customer_service_email arrived without "
                                "BSM_TRANSIT_KEY; ignored")
                    value = ""
                else:
                    value = unseal(transit, value, "SellerSettingsChanged.customer_service_email")
            await conn.execute(
                f"UPDATE {self.s}.seller_settings SET cs_email_enc = $2 WHERE seller_id = $1",
                data.seller_id,
                self.vault.encrypt(data.seller_id, key, "cs_email", value) if value else None,
            )
        if data.opt_out_bounce_notices is not None:
            await conn.execute(
                f"UPDATE {self.s}.seller_settings SET opt_out_bounce_notices = $2 "
                f"WHERE seller_id = $1", data.seller_id, data.opt_out_bounce_notices,
            )

    async def on_bounced(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        """Every outcome ``Bounced`` (alias's and ours) may owe its sender a notice (D1)."""
        bounce: Bounced = incoming.event.data  # type: ignore[assignment]
        sender = await conn.fetchrow(
            f"SELECT role FROM {self.s}.parties WHERE party_id = $1", bounce.sender_party_id or ""
        )
        opted_out = bool(await conn.fetchval(
            f"SELECT opt_out_bounce_notices FROM {self.s}.seller_settings WHERE seller_id = $1",
            bounce.sender_party_id or "",
        ))
        if notices.wants_notice(bounce, sender_registered=sender is not None,
                                sender_role=sender["role"] if sender else None,
                                seller_opted_out=opted_out):
            await conn.execute(
                f"INSERT INTO {self.s}.notices (message_id, bounced) VALUES ($1, $2) "
                f"ON CONFLICT (message_id) DO NOTHING",
                bounce.message_id, bounce.model_dump_json(),
            )
        return []

    async def on_bounce_report(
        self, conn: asyncpg.Connection, incoming: Incoming
    ) -> list[Outgoing]:
        """A ``failed`` report at the VERP address of a message we delivered: ``Bounced`` once
        (D1), with ``after_delivery``; its notice follows through :meth:`on_bounced`."""
        report: BounceReportReceived = incoming.event.data  # type: ignore[assignment]
        if not reports.acts_on(report):
            log.info("bounce report %s %s for message %s: nothing to do", report.action,
                     report.status, report.message_id)
            return []
        # Only a delivered job, only once: a second report (or a report for a message that
        # bounced before delivery, or is unknown here) changes nothing.
        row = await conn.fetchrow(
            f"UPDATE {self.s}.jobs SET reported_failed_at = $2 WHERE message_id = $1 "
            f"AND state = 'delivered' AND reported_failed_at IS NULL "
            f"RETURNING cause_event_id, policy_checked",
            report.message_id, report.received_at,
        )
        if row is None:
            log.info("failed bounce report for message %s ignored: not a delivered message "
                     "without an earlier report", report.message_id)
            return []
        pc = PolicyChecked.model_validate_json(row["policy_checked"])
        bounce = reports.bounce_after_delivery(pc, report)
        event = build_event(
            BouncedEvent, bounce,
            event_id=derived_event_id(row["cause_event_id"], f"{PRODUCER}:bounce-report"),
            occurred_at=report.received_at, producer=PRODUCER,
            correlation_id=pc.message_id, causation_id=incoming.event.event_id,
        )
        return [Outgoing(Topic.BOUNCED, pc.relationship_id or pc.message_id, event)]

    # -- bounce notices -----------------------------------------------------------------------
    async def _notice_address(self, conn: asyncpg.Connection, party_id: str) -> tuple[str, str] | None:
        """(address, locale) a notice goes to: a seller's customer-service address if set,
        else the registered address."""
        party = await conn.fetchrow(
            f"SELECT role, locale, data_key, email_enc FROM {self.s}.parties WHERE party_id = $1",
            party_id,
        )
        if party is None or not party["data_key"]:  # unknown, or erased: nobody to tell
            return None
        if party["role"] == "seller":
            cs = await conn.fetchrow(
                f"SELECT data_key, cs_email_enc FROM {self.s}.seller_settings "
                f"WHERE seller_id = $1", party_id,
            )
            if cs is not None and cs["cs_email_enc"] is not None:
                return self.vault.decrypt(party_id, cs["data_key"], "cs_email",
                                          cs["cs_email_enc"]), party["locale"]
        return self.vault.decrypt(party_id, party["data_key"], "email",
                                  party["email_enc"]), party["locale"]

    async def send_notices(self) -> int:
        """Send due notices once (own transaction); returns how many were attempted."""
        assert self.rt.pool is not None
        domain = self.settings.mail_domain
        async with self.rt.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT message_id, bounced, attempts FROM {self.s}.notices "
                f"WHERE state = 'pending' AND next_attempt_at <= now() "
                f"ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.settings.batch_size,
            )
            if not rows:
                return 0
            now = self.rt.clock()
            host, port = self.settings.relay_address()
            smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.warning("SMTP relay unreachable for notices: %s", exc)
                return 0
            try:
                for row in rows:
                    bounce = Bounced.model_validate_json(row["bounced"])
                    target = await self._notice_address(conn, bounce.sender_party_id or "")
                    error = "sender_unknown" if target is None else None
                    if target is not None:
                        mail = notices.notice_mail(bounce, to=target[0], locale=target[1],
                                                   domain=domain, now=now)
                        try:
                            await smtp.send_message(
                                mail, sender=f"{BOUNCE_ADDRESS_LOCAL}@{domain}",
                                recipients=[target[0]],
                            )
                        except (aiosmtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
                            error = f"smtp_error:{type(exc).__name__}"
                    attempts = row["attempts"] + 1
                    state = "sent" if error is None else (
                        "failed" if attempts >= self.settings.max_attempts else "pending")
                    await conn.execute(
                        f"UPDATE {self.s}.notices SET state = $2, attempts = $3, "
                        f"last_error = $4, next_attempt_at = $5 WHERE message_id = $1",
                        row["message_id"], state, attempts, error,
                        core.next_attempt(now, attempts, self.settings.first_retry_seconds),
                    )
            finally:
                with contextlib.suppress(Exception):
                    await smtp.quit()
        return len(rows)

    async def on_policy_checked(
        self, conn: asyncpg.Connection, incoming: Incoming
    ) -> list[Outgoing]:
        pc: PolicyChecked = incoming.event.data  # type: ignore[assignment]
        if pc.verdict == "rejected":
            now = self.rt.clock()
            return [self._outcome(BouncedEvent, Topic.BOUNCED, core.rejection(pc, now=now),
                                  incoming.event.event_id, now)]
        await conn.execute(
            f"INSERT INTO {self.s}.jobs (message_id, cause_event_id, policy_checked) "
            f"VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING",
            pc.message_id, incoming.event.event_id, pc.model_dump_json(),
        )
        return []

    def _outcome(self, model, topic: Topic, data, cause, now: datetime) -> Outgoing:  # noqa: ANN001
        event = build_event(
            model, data, event_id=derived_event_id(cause, PRODUCER), occurred_at=now,
            producer=PRODUCER, correlation_id=data.message_id, causation_id=cause,
        )
        return Outgoing(topic, data.relationship_id or data.message_id, event)

    # -- worker side --------------------------------------------------------------------------
    async def run_worker(self, _rt: ServiceRuntime | None = None) -> None:
        backoff = 0.2
        while True:
            try:
                if await self.deliver_due() + await self.send_notices() == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=0.5)
                    self.wake.clear()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the worker must not die; jobs stay pending
                log.exception("delivery worker failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _recipient_addresses(
        self, conn: asyncpg.Connection, party_ids: list[str]
    ) -> dict[str, str | None]:
        """Each known recipient's address; ``None`` for an erased one (nobody to send to)."""
        rows = await conn.fetch(
            f"SELECT party_id, data_key, email_enc FROM {self.s}.parties "
            f"WHERE party_id = ANY($1::text[])",
            party_ids,
        )
        return {
            r["party_id"]: self.vault.decrypt(r["party_id"], r["data_key"], "email", r["email_enc"])
            if r["data_key"] else None
            for r in rows
        }

    async def deliver_due(self) -> int:
        """Send every due job once; returns how many jobs were attempted."""
        assert self.rt.pool is not None
        domain = self.settings.mail_domain
        async with self.rt.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT message_id, cause_event_id, policy_checked, attempts FROM {self.s}.jobs "
                f"WHERE state = 'pending' AND next_attempt_at <= now() "
                f"ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.settings.batch_size,
            )
            if not rows:
                return 0
            jobs = [(row, PolicyChecked.model_validate_json(row["policy_checked"])) for row in rows]
            addresses = await self._recipient_addresses(
                conn, sorted({pc.recipient_party_id for _, pc in jobs})
            )
            now = self.rt.clock()
            # The sender's name travels sealed; open it for the From header only (empty once
            # the sender is erased). The opened copy never leaves this process.
            for_mail = [
                (pc.model_copy(update={"sender_display_name": await self.keyring.open(
                    conn, pc.sender_display_name, "display_name",
                    party_id=pc.sender_party_id) or ""}),
                 addresses.get(pc.recipient_party_id, ""))
                for _, pc in jobs
            ]
            results = await self._send_all(for_mail, domain, now)
            out: list[Outgoing] = []
            for (row, pc), (error, permanent) in zip(jobs, results, strict=True):
                out.extend(await self._settle(conn, row, pc, error, permanent, now, domain))
            await self.rt.record(conn, out)
        self.rt.relay.wake()  # type: ignore[union-attr]
        return len(rows)

    async def _send_all(
        self, jobs: list[tuple[PolicyChecked, str | None]], domain: str, now: datetime
    ) -> list[tuple[str | None, bool]]:
        """Send over ``smtp_connections`` connections at once; per job (error or None,
        permanent). The jobs stay locked by the caller's transaction meanwhile."""
        results: list[tuple[str | None, bool]] = [("not_attempted", False)] * len(jobs)
        lanes = max(1, min(self.settings.smtp_connections, len(jobs)))

        async def lane(index: int) -> None:
            host, port = self.settings.relay_address()
            smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
            try:
                await smtp.connect()
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.warning("SMTP relay %s:%d unreachable: %s", host, port, exc)
                for i in range(index, len(jobs), lanes):
                    results[i] = ("relay_unreachable", False)
                return
            try:
                for i in range(index, len(jobs), lanes):
                    pc, address = jobs[i]
                    results[i] = await self._send_one(smtp, pc, address, domain, now)
            finally:
                with contextlib.suppress(Exception):
                    await smtp.quit()

        await asyncio.gather(*(lane(i) for i in range(lanes)))
        return results

    async def _files(self, pc: PolicyChecked) -> list[tuple[AttachmentRef, bytes]]:
        """The message's attachments from the blob store, read one mail at a time (up to
        10 MB each: never a whole batch's in memory). A missing blob is left out and logged:
        the message is still in the recipient's message center."""
        root = Path(self.settings.blob_dir)
        files = []
        for ref in pc.attachments:
            path = root / ref.sha256[:2] / ref.sha256
            try:
                files.append((ref, await asyncio.to_thread(path.read_bytes)))
            except OSError:
                log.warning("attachment %s of message %s is not in the blob store; mailed "
                            "without it", ref.sha256, pc.message_id)
        return files

    async def _send_one(
        self, smtp: aiosmtplib.SMTP, pc: PolicyChecked, address: str | None, domain: str,
        now: datetime,
    ) -> tuple[str | None, bool]:
        if address is None:  # known, but erased since the message was approved: final
            return "party_erased", True
        if address == "":
            return "recipient_address_unknown", False
        raw = core.compose(pc, sender_name=pc.sender_display_name, domain=domain, now=now,
                           files=await self._files(pc)).as_bytes(policy=email.policy.SMTP)
        if self.dkim_key is not None:
            raw = dkim_sign.sign(raw, domain=domain, selector=self.settings.dkim_selector,
                                 private_key_pem=self.dkim_key)
        try:
            await smtp.sendmail(self.return_path(pc.message_id, domain, now), [address], raw)
            return None, False
        except aiosmtplib.SMTPResponseException as exc:
            return f"smtp_{exc.code}", core.is_permanent(exc.code)
        except (aiosmtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
            return f"smtp_error:{type(exc).__name__}", False

    async def _settle(
        self, conn: asyncpg.Connection, row: asyncpg.Record, pc: PolicyChecked,
        error: str | None, permanent: bool, now: datetime, domain: str,
    ) -> list[Outgoing]:
        """Record one attempt's result: delivered, rescheduled, or bounced."""
        cause = row["cause_event_id"]
        if error is None:
            await self._delivered(conn, pc, now)
            self.sent += 1
            return [self._outcome(DeliveredEvent, Topic.DELIVERED,
                                  core.delivered(pc, now=now, domain=domain), cause, now)]
        attempts = row["attempts"] + 1
        if permanent or attempts >= self.settings.max_attempts:
            await conn.execute(
                f"UPDATE {self.s}.jobs SET state = 'bounced', attempts = $2, last_error = $3 "
                f"WHERE message_id = $1",
                pc.message_id, attempts, error,
            )
            if error == "party_erased":
                bounce = core.failure(
                    pc, code="party_erased", explanation="The recipient's account was closed and "
                    "its personal data erased before the message reached them.",
                    remedy="Nothing can reach this party any more; the conversation has ended.",
                    now=now)
            else:
                bounce = core.failure(
                    pc, code="permanent_failure" if permanent else "delivery_timeout",
                    explanation=f"The recipient's mail system refused the message ({error})."
                    if permanent else f"The message could not be delivered after {attempts} "
                    f"attempts ({error}).",
                    remedy="Check the message in the message center; the recipient can still "
                    "read it there once delivered, or write to them again later.",
                    now=now,
                )
            return [self._outcome(BouncedEvent, Topic.BOUNCED, bounce, cause, now)]
        await conn.execute(
            f"UPDATE {self.s}.jobs SET attempts = $2, last_error = $3, next_attempt_at = $4 "
            f"WHERE message_id = $1",
            pc.message_id, attempts, error,
            core.next_attempt(now, attempts, self.settings.first_retry_seconds),
        )
        return []

    async def _delivered(self, conn: asyncpg.Connection, pc: PolicyChecked, now: datetime) -> None:
        await conn.execute(
            f"""INSERT INTO {self.s}.mailbox (message_id, recipient_party_id, sender_party_id,
                    conversation_id, order_id, sender_alias, subject, text_body, html_body,
                    delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (message_id) DO NOTHING""",
            pc.message_id, pc.recipient_party_id, pc.sender_party_id, pc.conversation_id,
            pc.order_id, pc.sender_alias, pc.subject, pc.text, pc.html, now,
        )
        await conn.execute(
            f"UPDATE {self.s}.jobs SET state = 'delivered', attempts = attempts + 1 "
            f"WHERE message_id = $1",
            pc.message_id,
        )


def create_runtime(settings: DeliverySettings, **kwargs: object) -> ServiceRuntime:
    dkim_sign.use_openssl_rsa()  # same DKIM signatures, computed by OpenSSL
    holder: dict[str, Delivery] = {}

    def handlers(rt: ServiceRuntime) -> dict:
        d = holder["d"] = Delivery(rt, settings)
        # Order matters: parties are applied before the decisions of the same batch.
        return {Topic.PARTIES: d.on_parties, Topic.POLICY_CHECKED: d.on_policy_checked,
                Topic.BOUNCED: d.on_bounced, Topic.BOUNCE_REPORTS: d.on_bounce_report}

    async def worker(rt: ServiceRuntime) -> None:
        await holder["d"].run_worker()

    keyring = settings.keyring()
    rt = ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.DELIVERY,
        inputs=[Topic.PARTIES, Topic.POLICY_CHECKED, Topic.BOUNCED, Topic.BOUNCE_REPORTS],
        migrations=[*migrations(settings.db_schema or PRODUCER), *keyring.migrations()],
        handlers=handlers,
        background=[worker],
        **kwargs,  # type: ignore[arg-type]
    )
    rt.keyring = keyring  # type: ignore[attr-defined]  # read by Delivery when handlers are made
    return rt


def create_app(settings: DeliverySettings, **kwargs: object) -> FastStream:
    """The delivery service as a FastStream application."""
    return create_runtime(settings, **kwargs).faststream_app()


