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

Mail goes out at most as often as SMTP forces: a job is claimed with a lease (no transaction is
open during the SMTP conversation) and marked ``mailed_at`` right after the relay's ``250``; a
crash can only resend the mails in flight at that instant — at most one per SMTP lane — with the
same ``Message-ID`` (recipients' clients collapse the copy). A dead worker's leases end at once
(``bsm_shared.runtime.liveness``), so another instance or the restarted one goes on without
waiting. Bounce notices work the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
import asyncpg
from faststream import FastStream

from bsm_shared.blobs import BlobNotFound, BlobTooLarge, LocalBlobStore
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
from bsm_shared.runtime import links, verp
from bsm_shared.runtime.consumer import BatchHooks, Incoming, Outgoing
from bsm_shared.runtime.db import TRANSIENT_ERRORS, check_ident, is_transient
from bsm_shared.runtime.grouped import GroupedWrites
from bsm_shared.runtime.keyring import Keyring, is_party_sealed
from bsm_shared.runtime.liveness import Liveness, dead_owner_sql, new_owner_id
from bsm_shared.runtime.pii import PiiVault
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.runtime.transit import is_sealed, unseal
from bsm_shared.topics import Group, Topic

from . import core, dkim_sign, notices, reports
from .settings import DeliverySettings

log = logging.getLogger("bsm.delivery")
PRODUCER = "delivery"
BOUNCE_ADDRESS_LOCAL = "bounces"
#: How long a claimed job or notice stays with its worker if that worker lives but is stuck
#: (a dead worker's rows are taken over at once, see ``bsm_shared.runtime.liveness``).
LEASE_SECONDS = 600.0
#: How often the worker applies the retention of finished jobs and notices.
PRUNE_EVERY_SECONDS = 3600.0


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
        # Work leases (``_claim``) and the moment the relay accepted each mail (``_mailed``).
        f"ALTER TABLE {s}.jobs ADD COLUMN IF NOT EXISTS lease_owner text",
        f"ALTER TABLE {s}.jobs ADD COLUMN IF NOT EXISTS lease_until timestamptz",
        f"ALTER TABLE {s}.jobs ADD COLUMN IF NOT EXISTS mailed_at timestamptz",
        f"ALTER TABLE {s}.notices ADD COLUMN IF NOT EXISTS lease_owner text",
        f"ALTER TABLE {s}.notices ADD COLUMN IF NOT EXISTS lease_until timestamptz",
        f"CREATE INDEX IF NOT EXISTS notices_due ON {s}.notices (next_attempt_at) "
        f"WHERE state = 'pending'",
    ]


#: An SMTP connection unused for this long is closed rather than reused: relays drop idle
#: clients (Postfix after 300 s; some much sooner), and a dropped one would fail a mail.
SMTP_IDLE_SECONDS = 15.0


class SmtpConnections:
    """The worker's SMTP connections to the relay, kept open from one batch to the next (a
    connection and its greeting cost a round trip or two, and the relay a process, per batch
    otherwise). A connection that failed in any way is closed, never reused."""

    def __init__(self, address: Callable[[], tuple[str, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._address = address
        self._clock = clock
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self.opened = 0

    async def take(self) -> aiosmtplib.SMTP:
        """A connected client: an idle one still fresh, or a new one (raises what connecting
        raises)."""
        while self._idle:
            smtp, since = self._idle.pop()
            if smtp.is_connected and self._clock() - since < SMTP_IDLE_SECONDS:
                return smtp
            await self._close(smtp)
        host, port = self._address()
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
        await smtp.connect()
        self.opened += 1
        return smtp

    async def give_back(self, smtp: aiosmtplib.SMTP, healthy: bool) -> None:
        if healthy and smtp.is_connected:
            self._idle.append((smtp, self._clock()))
        else:
            await self._close(smtp)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            await self._close(smtp)

    @staticmethod
    async def _close(smtp: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            if smtp.is_connected:
                await asyncio.wait_for(smtp.quit(), timeout=5)
        with contextlib.suppress(Exception):
            smtp.close()


class Delivery(BatchHooks):
    def __init__(self, rt: ServiceRuntime, settings: DeliverySettings,
                 on_mailed: Callable[[str], None] | None = None,
                 link_issuer: links.LinkIssuer | None = None) -> None:
        self.rt = rt
        #: Signs the "no response needed" / "report" links of each mail (E2, E4); None: none.
        self.link_issuer = link_issuer
        self.liveness = Liveness(settings.database_url.get_secret_value(),
                                 new_owner_id(PRODUCER))
        #: Called right after a mail was marked sent (tests stop a worker there).
        self.on_mailed = on_mailed
        self.settings = settings
        self.s = check_ident(rt.schema)
        self.vault = PiiVault(settings.pii_key_bytes())
        self.keyring: Keyring = rt.keyring  # type: ignore[attr-defined]
        self.wake = asyncio.Event()
        #: The relay connections the worker's lanes reuse from batch to batch.
        self.smtp = SmtpConnections(settings.relay_address)
        #: The lanes' mailed_at marks, several in one statement when they come together.
        self.marks: GroupedWrites[str] = GroupedWrites(self._write_marks, name="mailed-marks")
        rt.committed_callbacks.append(self.wake.set)
        self.sent = 0
        #: Jobs of the batch being applied: (message_id, cause event id, PolicyChecked).
        self._new_jobs: list[tuple[str, Any, str]] = []
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
        """Send due notices once; returns how many were attempted. Claimed with a lease (no
        transaction stays open during SMTP) and marked sent right after the relay's ``250``."""
        assert self.rt.pool is not None
        domain = self.settings.mail_domain
        rows = await self._claim("notices", "message_id, bounced, attempts")
        if not rows:
            return 0
        now = self.rt.clock()
        host, port = self.settings.relay_address()
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("SMTP relay unreachable for notices: %s", exc)
            await self._release("notices", [r["message_id"] for r in rows])
            return 0
        try:
            for row in rows:
                bounce = Bounced.model_validate_json(row["bounced"])
                async with self.rt.pool.acquire() as conn:
                    target = await self._notice_address(conn, bounce.sender_party_id or "")
                error = "sender_unknown" if target is None else None
                if target is not None:
                    try:
                        mail = notices.notice_mail(bounce, to=target[0], locale=target[1],
                                                   domain=domain, now=now)
                        await smtp.send_message(
                            mail, sender=f"{BOUNCE_ADDRESS_LOCAL}@{domain}",
                            recipients=[target[0]],
                        )
                    except (aiosmtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
                        error = f"smtp_error:{type(exc).__name__}"
                    except Exception as exc:  # noqa: BLE001 - this notice's own fault: final
                        log.error("notice for %s cannot be composed: %r", bounce.message_id, exc)
                        error = f"{core.UNSENDABLE}:{type(exc).__name__}"
                attempts = row["attempts"] + 1
                final = error is not None and (error.startswith(core.UNSENDABLE)
                                               or attempts >= self.settings.max_attempts)
                state = "sent" if error is None else ("failed" if final else "pending")
                # Right after the relay's answer: a crash now cannot mail it again.
                await self.rt.pool.execute(
                    f"UPDATE {self.s}.notices SET state = $2, attempts = $3, last_error = $4, "
                    f"next_attempt_at = $5, lease_owner = NULL, lease_until = NULL "
                    f"WHERE message_id = $1 AND lease_owner = $6",
                    row["message_id"], state, attempts, error,
                    core.next_attempt(now, attempts, self.settings.first_retry_seconds),
                    self.liveness.owner,
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
        # Written with the batch's other jobs in one statement (``end``).
        self._new_jobs.append((pc.message_id, incoming.event.event_id, pc.model_dump_json()))
        return []

    def begin(self) -> None:
        self._new_jobs = []

    async def end(self, conn: asyncpg.Connection) -> None:
        """The batch's approved messages become jobs, in one statement."""
        if self._new_jobs:
            await conn.execute(
                f"""INSERT INTO {self.s}.jobs (message_id, cause_event_id, policy_checked)
                    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])
                    ON CONFLICT (message_id) DO NOTHING""",
                *map(list, zip(*self._new_jobs, strict=True)),
            )

    def _outcome(self, model, topic: Topic, data, cause, now: datetime) -> Outgoing:  # noqa: ANN001
        event = build_event(
            model, data, event_id=derived_event_id(cause, PRODUCER), occurred_at=now,
            producer=PRODUCER, correlation_id=data.message_id, causation_id=cause,
        )
        return Outgoing(topic, data.relationship_id or data.message_id, event)

    # -- worker side --------------------------------------------------------------------------
    async def prune_finished(self) -> dict[str, int]:
        """Retention: finished jobs and notices go after twice the time a return path accepts
        bounce reports (``verp_valid_days``) — nothing can refer to them any more. The mailbox
        (the recipients' messages) and the record are kept."""
        assert self.rt.pool is not None
        seconds = 2 * self.settings.verp_valid_days * 86400
        gone = {}
        for table, column in (("jobs", "created_at"), ("notices", "next_attempt_at")):
            status = await self.rt.pool.execute(
                f"DELETE FROM {self.s}.{table} WHERE state <> 'pending' "
                f"AND {column} < now() - make_interval(secs => $1)", seconds)
            gone[table] = int(status.split()[-1])
            if gone[table]:
                self.rt.metrics.pruned.labels(self.s, table).inc(gone[table])
        return gone

    async def run_worker(self, _rt: ServiceRuntime | None = None) -> None:
        try:
            await self._work()
        finally:
            await self.smtp.close()

    async def _work(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        last_prune = -PRUNE_EVERY_SECONDS
        while True:
            try:
                await self.liveness.ensure()
                if loop.time() - last_prune >= PRUNE_EVERY_SECONDS:
                    await self.prune_finished()
                    last_prune = loop.time()
                claimed = (await self.deliver_due(), await self.send_notices())
                if not core.more_due(claimed, self.settings.batch_size):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=0.5)
                    self.wake.clear()
                attempt = 0
                self.rt.metrics.retry_attempt.labels(PRODUCER, "worker").set(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must not die; jobs stay pending
                attempt += 1
                delay = min(30.0, 0.2 * 2 ** (attempt - 1))
                self.rt.metrics.retries.labels(PRODUCER, "worker").inc()
                self.rt.metrics.retry_attempt.labels(PRODUCER, "worker").set(attempt)
                if is_transient(exc) and attempt % 10:
                    log.warning("delivery worker: transient error, retrying in %.1fs: %r",
                                delay, exc)
                else:
                    log.error("delivery worker failed %d times; retrying in %.1fs", attempt,
                              delay, exc_info=exc)
                await asyncio.sleep(delay)

    async def _claim(self, table: str, columns: str) -> list[asyncpg.Record]:
        """Lease due rows of ``table`` to this instance (``bsm_shared.runtime.liveness``): rows
        nobody holds, whose lease ran out, or whose owner died — and rows this worker holds
        itself: its rounds run one at a time, so at a claim none of its rows is in flight, and
        any it holds are from a round that failed before settling them (the database went away
        between claim and settle: they waited out the whole lease before, ten minutes). A short
        transaction: the rows are worked on outside any transaction."""
        assert self.rt.pool is not None
        t = f"{self.s}.{check_ident(table)}"
        return await self.rt.pool.fetch(
            f"""WITH due AS (
                    SELECT message_id FROM {t}
                    WHERE state = 'pending' AND next_attempt_at <= now()
                      AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < now()
                           OR (lease_owner <> $1 AND {dead_owner_sql('lease_owner')}))
                    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                UPDATE {t} AS j SET lease_owner = $1,
                    lease_until = now() + make_interval(secs => $3)
                FROM due WHERE j.message_id = due.message_id
                RETURNING {', '.join('j.' + c.strip() for c in columns.split(','))}""",
            self.liveness.owner, self.settings.batch_size, LEASE_SECONDS,
        )

    async def _release(self, table: str, ids: list[str]) -> None:
        assert self.rt.pool is not None
        await self.rt.pool.execute(
            f"UPDATE {self.s}.{check_ident(table)} SET lease_owner = NULL, lease_until = NULL "
            f"WHERE message_id = ANY($1::text[]) AND lease_owner = $2", ids, self.liveness.owner,
        )

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
        """Attempt every due job once; returns how many jobs were attempted.

        1. claim (lease) a batch in a short transaction;
        2. send each mail not sent yet, outside any transaction, and mark it ``mailed_at``
           right after the relay's ``250`` — a crash can then only send again the mails in
           flight at that instant (at most one per SMTP lane), with the same Message-ID;
        3. settle the batch in one transaction: mailbox entries, job states and the outcome
           events, for the jobs this instance still holds.
        """
        assert self.rt.pool is not None
        domain = self.settings.mail_domain
        rows = await self._claim("jobs", "message_id, cause_event_id, policy_checked, attempts, "
                                         "mailed_at")
        if not rows:
            return 0
        jobs: list[tuple[asyncpg.Record, PolicyChecked]] = []
        async with self.rt.pool.acquire() as conn:
            for row in rows:
                jobs.append((row, PolicyChecked.model_validate_json(row["policy_checked"])))
            addresses = await self._recipient_addresses(
                conn, sorted({pc.recipient_party_id for _, pc in jobs})
            )
            # The sender's name travels sealed; open it for the From header only (empty once
            # the sender is erased). The opened copy never leaves this process.
            for_mail = [
                (pc.model_copy(update={"sender_display_name": await self.keyring.open(
                    conn, pc.sender_display_name, "display_name",
                    party_id=pc.sender_party_id) or ""}),
                 addresses.get(pc.recipient_party_id, ""), row["mailed_at"] is not None)
                for row, pc in jobs
            ]
        now = self.rt.clock()
        results = await self._send_all(for_mail, domain, now)
        out: list[Outgoing] = []
        async with self.rt.pool.acquire() as conn, conn.transaction():
            mine = {r["message_id"] for r in await conn.fetch(
                f"SELECT message_id FROM {self.s}.jobs WHERE message_id = ANY($1::text[]) "
                f"AND lease_owner = $2 AND state = 'pending' FOR UPDATE",
                [row["message_id"] for row, _ in jobs], self.liveness.owner)}
            settled = []
            for (row, pc), (error, permanent) in zip(jobs, results, strict=True):
                if row["message_id"] not in mine:
                    log.warning("job %s was taken over by another instance before it was "
                                "settled here", row["message_id"])
                    continue
                settled.append((row, pc, error, permanent))
            out.extend(await self._settle(conn, settled, now, domain))
            await self.rt.record(conn, out)
        self.rt.relay.wake()  # type: ignore[union-attr]
        return len(rows)

    async def _send_all(
        self, jobs: list[tuple[PolicyChecked, str | None, bool]], domain: str, now: datetime
    ) -> list[tuple[str | None, bool]]:
        """Send over ``smtp_connections`` connections at once; per job (error or None,
        permanent). A job already mailed (before a crash) is not mailed again."""
        results: list[tuple[str | None, bool]] = [("not_attempted", False)] * len(jobs)
        todo = [i for i, (_, _, mailed) in enumerate(jobs) if not mailed]
        for i, (_, _, mailed) in enumerate(jobs):
            if mailed:
                results[i] = (None, False)
        lanes = max(1, min(self.settings.smtp_connections, len(todo)))

        async def lane(index: int) -> None:
            mine = todo[index::lanes]
            if not mine:
                return
            try:
                smtp = await self.smtp.take()
            except (aiosmtplib.SMTPException, OSError) as exc:
                host, port = self.settings.relay_address()
                log.warning("SMTP relay %s:%d unreachable: %s", host, port, exc)
                for i in mine:
                    results[i] = ("relay_unreachable", False)
                return
            healthy = False
            try:
                for i in mine:
                    pc, address, _ = jobs[i]
                    results[i] = await self._send_one(smtp, pc, address, domain, now)
                    if results[i][0] is None:
                        await self._mailed(pc.message_id)
                    elif results[i][0].startswith("smtp_error"):
                        # The conversation broke (not a refusal): the connection is not
                        # trusted with the lane's other mails; they wait for the next round.
                        return
                healthy = True
            finally:
                await self.smtp.give_back(smtp, healthy)

        await asyncio.gather(*(lane(i) for i in range(lanes)))
        return results

    async def _mailed(self, message_id: str) -> None:
        """Mark one mail accepted by the relay, at once (a tiny transaction, shared with the
        marks other lanes made meanwhile: ``bsm_shared.runtime.grouped``)."""
        await self.marks.add(message_id)
        if self.on_mailed is not None:
            self.on_mailed(message_id)

    async def _write_marks(self, message_ids: list[str]) -> None:
        assert self.rt.pool is not None
        await self.rt.pool.execute(
            f"UPDATE {self.s}.jobs SET mailed_at = now() WHERE message_id = ANY($1::text[])",
            message_ids,
        )

    async def _files(self, pc: PolicyChecked) -> list[tuple[AttachmentRef, bytes]]:
        """The message's attachments from the blob store, read one mail at a time (up to
        10 MB each: never a whole batch's in memory). A missing blob is left out and logged:
        the message is still in the recipient's message center."""
        store = LocalBlobStore(self.settings.blob_dir)
        files = []
        for ref in pc.attachments:
            try:
                files.append((ref, await store.get(ref.sha256)))
            except (BlobNotFound, BlobTooLarge, OSError):
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
        try:
            offered = {} if self.link_issuer is None else self.link_issuer.urls(
                pc.message_id, pc.recipient_party_id, core.link_actions(pc), now=now)
            raw = core.compose_bytes(pc, sender_name=pc.sender_display_name, domain=domain,
                                     now=now, files=await self._files(pc), links=offered)
            if self.dkim_key is not None:
                raw = dkim_sign.sign(raw, domain=domain, selector=self.settings.dkim_selector,
                                     private_key_pem=self.dkim_key,
                                     timestamp=int(now.timestamp()))
        except Exception as exc:  # noqa: BLE001 - this message's own fault: bounce it, go on
            log.error("message %s cannot be composed as mail: %r", pc.message_id, exc)
            return f"{core.UNSENDABLE}:{type(exc).__name__}: {exc}"[:300], True
        try:
            await smtp.sendmail(self.return_path(pc.message_id, domain, now), [address], raw)
            return None, False
        except aiosmtplib.SMTPResponseException as exc:
            return f"smtp_{exc.code}", core.is_permanent(exc.code)
        except (aiosmtplib.SMTPException, *TRANSIENT_ERRORS) as exc:
            return f"smtp_error:{type(exc).__name__}", False

    async def _settle(
        self, conn: asyncpg.Connection, settled: list[tuple[asyncpg.Record, PolicyChecked,
                                                              str | None, bool]],
        now: datetime, domain: str,
    ) -> list[Outgoing]:
        """Record each attempt's result (decided by ``core.settle``: delivered, rescheduled or
        bounced; the job's lease ends) — the whole batch in two statements, whatever its
        size: the mailbox entries of the delivered, and every job's new state."""
        out: list[Outgoing] = []
        mailbox: list[tuple] = []
        jobs: list[tuple[str, str, int, str | None, datetime | None]] = []
        for row, pc, error, permanent in settled:
            cause = row["cause_event_id"]
            result = core.settle(
                pc, error=error, permanent=permanent, attempts_before=row["attempts"],
                max_attempts=self.settings.max_attempts,
                first_retry_seconds=self.settings.first_retry_seconds, now=now, domain=domain)
            if result.delivered is not None:
                mailbox.append((pc.message_id, pc.recipient_party_id, pc.sender_party_id,
                                pc.conversation_id, pc.order_id, pc.sender_alias, pc.subject,
                                pc.text, pc.html))
                jobs.append((pc.message_id, "delivered", result.attempts, None, None))
                out.append(self._outcome(DeliveredEvent, Topic.DELIVERED, result.delivered,
                                         cause, now))
            elif result.retry_at is not None:
                jobs.append((pc.message_id, "pending", result.attempts, error, result.retry_at))
            else:
                assert result.bounce is not None
                jobs.append((pc.message_id, "bounced", result.attempts, error, None))
                out.append(self._outcome(BouncedEvent, Topic.BOUNCED, result.bounce, cause,
                                         now))
        if mailbox:
            await conn.execute(
                f"""INSERT INTO {self.s}.mailbox (message_id, recipient_party_id,
                        sender_party_id, conversation_id, order_id, sender_alias, subject,
                        text_body, html_body, delivered_at)
                    SELECT *, $10::timestamptz FROM unnest($1::text[], $2::text[], $3::text[],
                        $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                    ON CONFLICT (message_id) DO NOTHING""",
                *map(list, zip(*mailbox, strict=True)), now,
            )
        if jobs:
            # A retry keeps its last error and moves its next attempt; a delivered or bounced
            # job keeps its next_attempt_at (it is no longer due: its state says so).
            await conn.execute(
                f"""UPDATE {self.s}.jobs AS j SET state = u.state, attempts = u.attempts,
                        last_error = CASE WHEN u.state = 'delivered' THEN j.last_error
                                          ELSE u.error END,
                        next_attempt_at = COALESCE(u.next_at, j.next_attempt_at),
                        lease_owner = NULL, lease_until = NULL
                    FROM unnest($1::text[], $2::text[], $3::int[], $4::text[],
                                $5::timestamptz[]) AS u(message_id, state, attempts, error,
                                                        next_at)
                    WHERE j.message_id = u.message_id""",
                *map(list, zip(*jobs, strict=True)),
            )
        self.sent += len(mailbox)
        return out


_FROM_ENVIRONMENT: Any = object()


def create_runtime(
    settings: DeliverySettings, *, on_mailed: Callable[[str], None] | None = None,
    link_issuer: links.LinkIssuer | None = _FROM_ENVIRONMENT, **kwargs: object,
) -> ServiceRuntime:
    """``link_issuer``: by default from ``BSM_LINK_KEY`` and ``BSM_LINK_BASE_URL`` (or
    ``BSM_GATEWAY_URL``, as the local stack has it); None sends mail without action links."""
    holder: dict[str, Delivery] = {}
    if link_issuer is _FROM_ENVIRONMENT:
        link_issuer = links.LinkIssuer.from_environment()

    def handlers(rt: ServiceRuntime) -> dict:
        d = holder["d"] = Delivery(rt, settings, on_mailed, link_issuer)
        rt.delivery = d  # type: ignore[attr-defined]  # tests reach the worker through it
        # Order matters: parties are applied before the decisions of the same batch.
        return {Topic.PARTIES: d.on_parties, Topic.POLICY_CHECKED: d.on_policy_checked,
                Topic.BOUNCED: d.on_bounced, Topic.BOUNCE_REPORTS: d.on_bounce_report}

    async def worker(rt: ServiceRuntime) -> None:
        try:
            await holder["d"].run_worker()
        finally:
            await holder["d"].liveness.close()

    keyring = settings.keyring()
    rt = ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.DELIVERY,
        inputs=[Topic.PARTIES, Topic.POLICY_CHECKED, Topic.BOUNCED, Topic.BOUNCE_REPORTS],
        migrations=[*migrations(settings.db_schema or PRODUCER), *keyring.migrations()],
        handlers=handlers,
        hooks=lambda _rt: holder["d"],
        background=[worker],
        **kwargs,  # type: ignore[arg-type]
    )
    rt.keyring = keyring  # type: ignore[attr-defined]  # read by Delivery when handlers are made
    return rt


def create_app(settings: DeliverySettings, **kwargs: object) -> FastStream:
    """The delivery service as a FastStream application."""
    return create_runtime(settings, **kwargs).faststream_app()


