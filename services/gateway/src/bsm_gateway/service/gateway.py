"""The gateway's service layer: every read and write of the HTTP routes.

The routers (:mod:`.routers`) parse a request, ask :mod:`.access` whether the caller may, and
call one method here. :class:`Gateway` owns messages — reading them as a caller may see them,
submitting them, marking and reporting them — and the rule library at the door; the inbox
(:mod:`.inbox`), templates (:mod:`.templates`) and parties' settings (:mod:`.parties`) are
its parts. Every write is an event the gateway signs and publishes: ``MessageSubmitted``
directly (through the outbox, flushed before answering ``202``), the actions through the
outbox in the same transaction as the gateway's own bookkeeping. It never writes another
service's data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import nh3

from bsm_shared import attachments as file_types
from bsm_shared.blobs import BlobNotFound, LocalBlobStore
from bsm_shared.contract import MessageSubmittedEvent, ReportedEvent, ResponseNotNeededEvent
from bsm_shared.contract import payloads as p
from bsm_shared.contract.limits import MAX_EVENT_BYTES, EventTooLarge
from bsm_shared.contract.wire import build_event, derived_event_id
from bsm_shared.quota import quota_day
from bsm_shared.record_api import Quota
from bsm_shared.runtime.consumer import Outgoing
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Topic

from .. import access, core, metrics_client, policy
from ..access import Principal
from ..auth import AuthError, read_token
from ..errors import ApiError
from ..names import Names
from ..models import ActionAccepted, MessageView, Outcome, Report, SendMessage
from ..readmodel import ReadModel, owned_attachments
from ..settings import GatewaySettings
from .files import Files
from .inbox import Inbox
from .parties import Parties
from .templates import Templates

PRODUCER = "gateway"

log = logging.getLogger("bsm.gateway")

#: What message HTML may contain when shown (nh3's allow-list, minus images: a remote image
#: is a read receipt, and the strict CSP would block it anyway).
_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}


def sanitize(html: str | None) -> str | None:
    return None if html is None else nh3.clean(html, tags=_TAGS, link_rel="noopener noreferrer")


class Gateway:
    """The gateway's operations over its runtime and read model (the routes stay thin)."""

    producer = PRODUCER

    def __init__(self, settings: GatewaySettings, rt: ServiceRuntime, rm: ReadModel,
                 new_id: Callable[[], UUID], metrics: metrics_client.MetricsClient,
                 names: Names | None = None) -> None:
        self.settings, self.rt, self.rm, self.new_id = settings, rt, rm, new_id
        self.metrics = metrics
        self.s = rm.s
        self.token_key = settings.token_key_bytes()
        self.files = Files(self, LocalBlobStore(settings.blob_dir))
        self.keyring = rm.keyring
        self.names = names or Names(rm.s, rm.keyring, rm.writes)
        self.inbox = Inbox(self)
        self.templates = Templates(self)
        self.parties = Parties(self)

    @property
    def pool(self) -> Any:
        if self.rt.pool is None:
            raise ApiError(503, "starting", "The gateway is starting; try again in a moment.")
        return self.rt.pool

    # -- authentication ----------------------------------------------------------------------
    def principal(self, token: str | None) -> Principal:
        if not token:
            raise ApiError(401, "unauthenticated", "Send a bearer token "
                           "(`Authorization: Bearer …`).")
        try:
            return read_token(self.token_key, token)
        except AuthError as exc:
            raise ApiError(401, "unauthenticated", str(exc)) from None

    # -- reads -------------------------------------------------------------------------------
    async def message_row(self, message_id: str) -> Any:
        return await self.pool.fetchrow(
            f"SELECT * FROM {self.s}.messages WHERE message_id = $1", message_id)

    @staticmethod
    def visible(who: Principal, row: Any) -> bool:
        """Whether ``who`` may see this message row at all (:meth:`Principal.may_see_message`:
        a message that did not reach its recipient exists for its sender and the dispute
        team only)."""
        return who.may_see_message(row["sender_party_id"], row["recipient_party_id"],
                                   row["status"])

    async def readable_message(self, who: Principal, message_id: str) -> Any:
        row = await self.message_row(message_id)
        # A message the caller may not see — someone else's, or one that never reached them —
        # is answered exactly like one that does not exist.
        if row is None or not self.visible(who, row):
            raise ApiError(404, "message_not_found", f"No message {message_id} of yours.")
        return row

    async def visible_parent(self, who: Principal, row: Any) -> Any:
        """The message ``row`` answers, if ``who`` may see it (else None: neither its id nor
        its text is shown — a reply to a rejected message must not quote it)."""
        if not row["in_reply_to"]:
            return None
        parent = await self.message_row(row["in_reply_to"])
        return parent if parent is not None and self.visible(who, parent) else None

    async def order(self, order_id: str) -> Any:
        return await self.pool.fetchrow(
            f"""SELECT o.*, s.messaging_enabled, s.messaging_set, s.restriction,
                       s.restricted_until, s.restricted_from, s.fulfilment AS seller_fulfilment,
                       b.locale AS buyer_locale, b.unsolicited_opt_out
                FROM {self.s}.orders o
                LEFT JOIN {self.s}.parties s ON s.party_id = o.seller_id
                LEFT JOIN {self.s}.parties b ON b.party_id = o.buyer_id
                WHERE o.order_id = $1""", order_id)

    async def seller_order(self, who: Principal, order_id: str) -> Any:
        """An order of the calling seller, with the facts the rule library needs."""
        access.require(who, "ask_about_order")
        row = await self.order(order_id)
        if row is None or row["seller_id"] != who.party_id:
            raise ApiError(404, "order_not_found", f"No order {order_id} of yours.")
        return row

    async def party(self, party_id: str) -> Any:
        return await self.pool.fetchrow(
            f"SELECT * FROM {self.s}.parties WHERE party_id = $1", party_id)

    def message_view(self, row: Any, who: Principal, parent: Any = None) -> MessageView:
        """One message as ``who`` sees it (``row`` must be visible to them); ``parent``: the
        message it answers, if visible to them — otherwise no reference and no quote."""
        bounce = json.loads(row["bounce"]) if row["bounce"] else None
        atts = row["attachments"]
        return MessageView(
            message_id=row["message_id"], conversation_id=row["conversation_id"],
            order_id=row["order_id"], sender_party_id=row["sender_party_id"],
            recipient_party_id=row["recipient_party_id"], sender_role=row["sender_role"],
            contact_reason=row["contact_reason"], subject=row["subject"], text=row["text"],
            html=sanitize(row["html"]),
            in_reply_to=parent["message_id"] if parent is not None else None,
            quoted=parent["text"] if parent is not None else None,
            attachments=json.loads(atts) if isinstance(atts, str) else list(atts or []),
            submitted_at=row["submitted_at"].isoformat(),
            outcome=Outcome(status=row["status"], bounce=bounce, delivered_at=(
                row["delivered_at"].isoformat() if row["delivered_at"] else None)),
            response_not_needed=row["response_not_needed_at"] is not None,
            reported=row["reported_at"] is not None, read=row["read_at"] is not None,
        )

    # -- the rule library at the door (one path: options, lint, validate, SP-API) -------------
    async def quota(self, seller_id: str) -> Quota | None:
        """C7's facts for today (UTC): the limit and the approved count, from the record (F2)."""
        return await self.metrics.quota_facts(seller_id, quota_day(self.rt.clock()))

    async def contact_options(self, who: Principal, row: Any,
                              locale: str) -> tuple[Any, Quota | None]:
        """The reasons ``who`` (the order's seller) may write for now, judged on the same
        facts policy decides with — C7 included."""
        quota = await self.quota(who.party_id)
        return policy.contact_options(row, now=self.rt.clock(), locale=locale,
                                      quota=quota), quota

    async def violations(self, who: Principal,
                         body: SendMessage) -> tuple[list[dict[str, Any]], Quota | None]:
        """Every violation the rule library finds in ``body`` if ``who`` sent it now (and the
        C7 facts it was judged with). The one path behind ``POST /v1/messages:lint``,
        ``POST /v1/messages?validate=true`` and the SP-API door; it sends nothing."""
        order_id, recipient, started_by = body.order_id, body.recipient_party_id, None
        if body.in_reply_to is not None:
            answered = await self.message_row(body.in_reply_to)
            if answered is None or not self.visible(who, answered):
                raise ApiError(404, "message_not_found",
                               f"No message {body.in_reply_to} of yours to answer.")
            order_id = order_id or answered["order_id"]
            recipient = recipient or (
                answered["recipient_party_id"] if answered["sender_party_id"] == who.party_id
                else answered["sender_party_id"])
            if answered["conversation_id"]:
                started_by = await self.pool.fetchval(
                    f"SELECT started_by FROM {self.s}.conversations WHERE conversation_id = $1",
                    answered["conversation_id"])
        row = None
        if order_id is not None:
            row = await self.order(order_id)
            if row is None or who.party_id not in (row["buyer_id"], row["seller_id"]):
                raise ApiError(404, "order_not_found", f"No order {order_id} of yours.")
            recipient = recipient or (row["buyer_id"] if who.party_id == row["seller_id"]
                                      else row["seller_id"])
        me = await self.party(who.party_id)
        them = await self.party(recipient) if recipient else None
        attachments = await self.files.refs(who, body)
        quota = await self.quota(who.party_id) if who.role == "seller" and row else None
        found = policy.lint(
            body.model_copy(update={"order_id": order_id}), role=who.role,
            party_id=who.party_id, row=row, recipient=recipient,
            recipient_role=them["role"] if them is not None else None, started_by=started_by,
            locale=me["locale"] if me is not None else "en-US", now=self.rt.clock(),
            attachments=attachments, quota=quota)
        return found, quota

    # -- writes ------------------------------------------------------------------------------
    async def submit(self, who: Principal, body: SendMessage) -> str:
        recipient_id, recipient_alias = body.recipient_party_id, body.recipient_alias
        order_id = body.order_id
        if body.text is None and body.html is None and not body.attachments:
            raise ApiError(422, "invalid_request", "A message needs `text`, `html` or an "
                           "attachment.")
        attachments = await self.files.refs(who, body)
        if body.in_reply_to is not None and who.is_party:
            answered = await self.message_row(body.in_reply_to)
            # Only a message the sender may see can be answered (not one stopped on its way
            # to them: it does not exist for them).
            if answered is None or not self.visible(who, answered):
                raise ApiError(404, "message_not_found",
                               f"No message {body.in_reply_to} of yours to answer.")
            other = (answered["recipient_party_id"] if answered["sender_party_id"] == who.party_id
                     else answered["sender_party_id"])
            if recipient_id is None and recipient_alias is None:
                recipient_id = other
            order_id = order_id or answered["order_id"]
        elif order_id is not None and who.is_party and recipient_id is None \
                and recipient_alias is None:
            order = await self.order(order_id)
            if order is None or who.party_id not in (order["buyer_id"], order["seller_id"]):
                raise ApiError(404, "order_not_found", f"No order {order_id} of yours.")
            recipient_id = (order["seller_id"] if who.party_id == order["buyer_id"]
                            else order["buyer_id"])
        if (recipient_id is None) == (recipient_alias is None):
            raise ApiError(422, "invalid_request", "Name the order or the answered message "
                           "(or exactly one of `recipient_party_id` and `recipient_alias`).")
        message_id = str(self.new_id())
        now = self.rt.clock()
        # An attachment-only message has an empty text (the contract wants a body part).
        text = "" if body.text is None and body.html is None else body.text
        data = p.MessageSubmitted(
            message_id=message_id, channel=body.channel, sender=p.PartyRef(party_id=who.party_id),
            recipient=p.PartyRef(party_id=recipient_id, address=recipient_alias),
            order_id=order_id, contact_reason=body.contact_reason, subject=body.subject,
            text=text, html=body.html, in_reply_to=body.in_reply_to,
            attachments=attachments, submitted_at=now,
        )
        event = build_event(MessageSubmittedEvent, data, event_id=self.new_id(), occurred_at=now,
                            producer=PRODUCER, correlation_id=message_id)
        # The sender's *Sent* row (status `submitted`, until it is addressed) and the event go
        # into one transaction (the outbox): a 202 means both are recorded; a failure means
        # neither is, and the answer says so truthfully. The relay publishes right after.
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"""INSERT INTO {self.s}.messages (message_id, order_id, sender_party_id,
                        recipient_party_id, sender_role, channel, contact_reason, subject, text,
                        html, in_reply_to, attachments, submitted_at, status)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                                'submitted')
                        ON CONFLICT DO NOTHING""",
                    message_id, order_id, who.party_id, recipient_id,
                    who.role if who.is_party else None, body.channel, body.contact_reason,
                    data.subject, data.text, data.html, body.in_reply_to,
                    json.dumps([a.model_dump(mode="json") for a in attachments]), now)
                await self.rt.record(conn, [Outgoing(Topic.SUBMITTED, message_id, event)])
        except EventTooLarge as exc:  # a safeguard: within the body limit an event fits
            raise ApiError(413, "message_too_large", f"{exc}. Shorten the text or HTML.",
                           limit=MAX_EVENT_BYTES, size=exc.size) from None
        await self.flush()
        return message_id

    async def record(self, out: list[Outgoing]) -> None:
        """Events through the outbox: stored in one transaction, published by the relay."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.rt.record(conn, out)
        # Publish now, so a 202 normally means "in the log" (as for messages). If Kafka is
        # down the row stays in the outbox and the relay's own loop publishes it later.
        # (Flushing here rather than ``relay.wake()`` also avoids a shutdown race in the
        # relay: a wake-up arriving with the cancel can leave ``OutboxRelay.stop`` waiting.)
        await self.flush()

    async def act_on_message(self, who: Principal, message_id: str, action: str,
                             report: Report | None = None) -> ActionAccepted:
        """E2/E4: only the recipient of a message marks or reports it — a message that never
        reached them does not exist for them (``404``, :meth:`readable_message`)."""
        access.require(who, "mark_or_report")
        row = await self.readable_message(who, message_id)
        access.require_recipient(who, row["recipient_party_id"])
        if row["relationship_id"] is None:
            raise ApiError(409, "not_yet_addressed", "The message is still being processed; "
                           "try again in a moment.")
        now = self.rt.clock()
        # A repeat (double click, link opened twice) gets the same event id: consumers drop it.
        event_id = derived_event_id(message_id, f"gateway:{action}:{who.party_id}")
        if action == "report":
            event: Any = build_event(
                ReportedEvent, p.Reported(message_id=message_id, reporter_party_id=who.party_id,
                                          reason=report.reason if report else "other",
                                          text=report.text if report else None,
                                          reported_at=now),
                event_id=event_id, occurred_at=now, producer=PRODUCER,
                correlation_id=message_id)
            topic = Topic.REPORTED
        else:
            event = build_event(
                ResponseNotNeededEvent, p.ResponseNotNeeded(message_id=message_id,
                                                            party_id=who.party_id, marked_at=now),
                event_id=event_id, occurred_at=now, producer=PRODUCER,
                correlation_id=message_id)
            topic = Topic.RESPONSE_NOT_NEEDED
        await self.record([Outgoing(topic, row["relationship_id"], event)])
        return ActionAccepted(message_id=message_id, status="accepted", event_id=str(event_id))

    async def party_event(self, model: type, data: Any, party_id: str) -> str:
        now = self.rt.clock()
        event_id = self.new_id()
        event = build_event(model, data, event_id=event_id, occurred_at=now, producer=PRODUCER,
                            correlation_id=party_id)
        await self.record([Outgoing(Topic.PARTIES, party_id, event)])
        return str(event_id)

    async def flush(self) -> None:
        """Publish what the outbox holds now (the relay's own loop retries on failure)."""
        assert self.rt.relay is not None
        try:
            await self.rt.relay.flush()
        except Exception:  # noqa: BLE001 - recorded durably; the relay retries
            log.warning("outbox flush failed; the relay will publish later", exc_info=True)
