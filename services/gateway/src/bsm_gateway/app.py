"""Composition root of the gateway: the HTTP door for people and integrators.

* Authentication: bearer JWTs (:mod:`.auth`); every route asks :class:`~.auth.Principal`.
* Reads come from the gateway's own read model (:mod:`.readmodel`), fed by its consumer.
* Every write is an event the gateway signs and publishes: ``MessageSubmitted`` directly
  (published before answering ``202``, so a ``202`` means it is in the log), the actions
  (``ResponseNotNeeded``, ``Reported``, settings, lifting a sanction) through the outbox in the
  same transaction as the gateway's own bookkeeping. It never writes another service's data.
* The Selling Partner API Messaging v1 door (:mod:`.spapi`) and the web message center
  (:mod:`.web`) sit on the same pieces.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError
import nh3
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from uuid6 import uuid7

from bsm_shared import attachments as file_types
from bsm_shared.blobs import BlobNotFound, LocalBlobStore
from bsm_shared.contract import (
    MessageSubmittedEvent, ReportedEvent, ResponseNotNeededEvent,
)
from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from bsm_shared.contract.limits import MAX_EVENT_BYTES, EventTooLarge
from bsm_shared.contract.wire import build_event, derived_event_id
from bsm_shared.quota import quota_day
from bsm_shared.record_api import Quota
from bsm_shared.runtime import links
from bsm_shared.runtime.consumer import Outgoing
from bsm_shared.runtime.keyring import Erased
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from . import core, door, i18n, metrics_client, notifications, policy, web
from .auth import REACHED, AuthError, Principal, read_token
from .errors import ApiError, install
from .models import (
    Accepted, ActionAccepted, BuyerPreferencesIn, Conversation, ConversationList,
    ConversationSummary, LiftRestriction, Me, MessageView, Outcome, Report, SellerSettingsIn,
    SendMessage, StoredAttachment, Template, TemplateIn,
)
from .readmodel import (
    INPUTS, ReadModel, migrations, own_attachments, owned_attachments, visible_sql,
)
from .settings import GatewaySettings

PRODUCER = "gateway"
#: Where files are uploaded: the one route whose body may be larger than a message (`.door`).
UPLOAD_PATH = "/v1/attachments"


class SellerSettingsOut(BaseModel):
    seller_id: str
    messaging_enabled: bool = Field(description="Messaging on (off: vacation, C8).")
    opt_out_bounce_notices: bool = Field(description="No bounce notices for opted-out buyers.")
    authorized_senders: list[str] | None = Field(
        description="Addresses accepted as the seller (A4); `null`: not known to the message "
        "center (set before it kept them, or unreadable) — sending a list replaces it.")
    blocked_senders: list[str] | None = Field(
        description="Addresses refused as the seller (A4); `null` as above.")
    customer_service_email: str | None = Field(
        description="Where bounce notices go (D1); `null`: none set, or not known.")


class ErasureIn(BaseModel):
    reason: str = Field(default="", max_length=500,
                        description="Why (e.g. the data-subject request's id); kept in the event.")


class ErasureOut(BaseModel):
    party_id: str
    status: Literal["erased", "already_erased"]
    erased_at: datetime = Field(description="When the party's key was destroyed.")
    event_id: str | None = Field(default=None, description="The `PartyErased` event, if new.")


log = logging.getLogger("bsm.gateway")

bearer = HTTPBearer(auto_error=False, description="`bsm token PARTY_ID --role …` prints one.")
amz_token = APIKeyHeader(name="x-amz-access-token", auto_error=False,
                         description="SP-API clients: the same token in Amazon's header.")

#: What message HTML may contain when shown (nh3's allow-list, minus images: a remote image
#: is a read receipt, and the strict CSP would block it anyway).
_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}

def sanitize(html: str | None) -> str | None:
    return None if html is None else nh3.clean(html, tags=_TAGS, link_rel="noopener noreferrer")


class Gateway:
    """The gateway's operations over its runtime and read model (the routes stay thin)."""

    def __init__(self, settings: GatewaySettings, rt: ServiceRuntime, rm: ReadModel,
                 new_id: Callable[[], UUID], metrics: metrics_client.MetricsClient) -> None:
        self.settings, self.rt, self.rm, self.new_id = settings, rt, rm, new_id
        self.metrics = metrics
        self.s = rm.s
        self.token_key = settings.token_key_bytes()
        self.blobs = LocalBlobStore(settings.blob_dir)

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
        if who.role != "seller":
            raise ApiError(403, "role_cannot_write", "Only the order's seller asks this.")
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

    async def conversations(self, who: Principal, wanted: core.Filter,
                            order_id: str | None) -> list[ConversationSummary]:
        if who.is_party:
            # Only conversations with a message the party may see: one that merely holds a
            # message stopped on its way to them does not exist for them.
            where = (f"(c.buyer_id = $1 OR c.seller_id = $1) AND EXISTS (SELECT 1 FROM "
                     f"{self.s}.messages m WHERE m.conversation_id = c.conversation_id AND "
                     f"{visible_sql('m', '$1')})")
            args: list[Any] = [who.party_id]
        elif who.reads_everything:
            where, args = "TRUE", []
        else:
            raise ApiError(403, "role_cannot_read", f"The {who.role} role does not read "
                           "conversations.")
        if order_id is not None:
            # E3: search is by order id, exactly; subject and body are never searched.
            args.append(order_id)
            where += f" AND c.order_id = ${len(args)}"
        convs = await self.pool.fetch(
            f"""SELECT c.*, o.status AS order_status FROM {self.s}.conversations c
                LEFT JOIN {self.s}.orders o ON o.order_id = c.order_id
                WHERE {where} ORDER BY c.started_at DESC LIMIT 500""", *args)
        if not convs:
            return []
        msgs = await self.pool.fetch(
            f"""SELECT message_id, conversation_id, sender_party_id, recipient_party_id,
                       submitted_at, status, response_not_needed_at, reported_at, read_at,
                       subject
                FROM {self.s}.messages WHERE conversation_id = ANY($1::text[])""",
            [c["conversation_id"] for c in convs])
        by_conv: dict[str, list[Any]] = {}
        for m in msgs:
            if self.visible(who, m):
                by_conv.setdefault(m["conversation_id"], []).append(m)
        out = []
        for c in convs:
            rows = by_conv.get(c["conversation_id"], [])
            summary = self.summary(c, rows, who)
            if core.matches(summary.view, wanted):  # type: ignore[arg-type]
                out.append(summary)
        out.sort(key=lambda s: s.last_message_at, reverse=True)
        return out

    def summary(self, c: Any, rows: list[Any], who: Principal) -> ConversationSummary:
        """A conversation as ``who`` sees it; ``rows``: its messages ``who`` may see (every
        figure — count, unread, last message, view, state, subject — comes from them)."""
        # The dispute team sees the inbox as the seller sees it.
        seller = Principal(party_id=c["seller_id"], role="seller")
        viewer = who if who.is_party else seller
        facts = [core.MessageFacts(r["sender_party_id"], r["submitted_at"], r["status"],
                                   r["response_not_needed_at"] is not None,
                                   r["reported_at"] is not None)
                 for r in rows if self.visible(viewer, r)]
        ordered = sorted(rows, key=lambda r: (r["submitted_at"], r["message_id"]))
        last = ordered[-1]["submitted_at"] if ordered else c["started_at"]
        # The conversation's subject is its first message's: for a party, the first message
        # they may see (the one that opened it may be a rejected one, phone number and all).
        subject = c["subject"] if who.reads_everything or not ordered else ordered[0]["subject"]
        return ConversationSummary(
            conversation_id=c["conversation_id"], order_id=c["order_id"],
            buyer_id=c["buyer_id"], seller_id=c["seller_id"], subject=subject or "",
            view=core.view_of(facts, viewer.party_id),
            state=core.state_of(facts, c["order_status"]),
            last_message_at=last.isoformat(), messages=len(rows),
            unread=sum(1 for r in rows if r["recipient_party_id"] == who.party_id
                       and r["read_at"] is None and r["status"] == REACHED),
        )

    async def conversation(self, who: Principal, conversation_id: str) -> Conversation:
        c = await self.pool.fetchrow(
            f"""SELECT c.*, o.status AS order_status FROM {self.s}.conversations c
                LEFT JOIN {self.s}.orders o ON o.order_id = c.order_id
                WHERE c.conversation_id = $1""", conversation_id)
        missing = ApiError(404, "conversation_not_found",
                           f"No conversation {conversation_id} of yours.")
        if c is None or not who.may_read(c["buyer_id"], c["seller_id"]):
            raise missing
        rows = [r for r in await self.pool.fetch(
            f"""SELECT * FROM {self.s}.messages WHERE conversation_id = $1
                ORDER BY submitted_at, message_id""", conversation_id) if self.visible(who, r)]
        if not rows:  # only messages that never reached the caller: none of theirs
            raise missing
        if who.is_party:
            # Read state (E7) is the gateway's own bookkeeping, not a fact other services use.
            await self.pool.execute(
                f"""UPDATE {self.s}.messages SET read_at = now() WHERE conversation_id = $1
                    AND recipient_party_id = $2 AND read_at IS NULL AND status = $3""",
                conversation_id, who.party_id, REACHED)
        shown = {r["message_id"]: r for r in rows}
        summary = self.summary(c, rows, who)
        return Conversation(**summary.model_dump(), message_list=[
            self.message_view(r, who, shown.get(r["in_reply_to"]) if r["in_reply_to"] else None)
            for r in rows])

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
        attachments = await self.attachments(who, body)
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
        attachments = await self.attachments(who, body)
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
        if not who.is_party:
            raise ApiError(403, "role_cannot_write", f"The {who.role} role cannot mark or "
                           "report messages.")
        row = await self.readable_message(who, message_id)
        if row["recipient_party_id"] != who.party_id:
            raise ApiError(403, "not_the_recipient",
                           "Only the recipient of a message can mark or report it.")
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

    # -- attachments -------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path | None:
        """Where the blob store keeps ``sha256`` (None: not a hash)."""
        try:
            return self.blobs.path(sha256)
        except BlobNotFound:
            return None

    async def attachments(self, who: Principal, body: SendMessage) -> list[p.AttachmentRef]:
        """The message's attachments as references — each one ``who`` may use (uploaded by
        them, or come to them with a message: ``readmodel.attachment_owners``) — once they fit
        the shared limits (and the body with them): ``413`` naming the limit and the size
        otherwise."""
        hashes = [a.sha256 for a in body.attachments]
        owned = await owned_attachments(self.pool, self.s, who.party_id, hashes)
        refs = [await self.attachment_ref(a.sha256, a.filename, owned) for a in body.attachments]
        too_large = core.size_refusal(body.text, body.html, [a.size for a in refs])
        if too_large is not None:
            raise ApiError(413, too_large.code, too_large.message, limit=too_large.limit,
                           size=too_large.size)
        return refs

    async def attachment_ref(self, sha256: str, filename: str,
                             owned: set[str]) -> p.AttachmentRef:
        """The reference of a stored file, its type judged from its content by B4's list
        (``bsm_shared.attachments``; a file that came with a message in another type keeps
        that type, and policy refuses it, C4)."""
        # Someone else's file and a hash nobody uploaded get the same answer, decided before
        # the blob store is asked: a hash is not an oracle of what others uploaded.
        try:
            if sha256 not in owned:
                raise BlobNotFound(sha256)
            found = await self.blobs.head(sha256, file_types.HEAD_BYTES)
        except BlobNotFound:
            raise ApiError(422, "unknown_attachment", f"No attachment {sha256} of yours; upload "
                           "it with `POST /v1/attachments` first.") from None
        judged = file_types.judge(found.head, filename)
        return p.AttachmentRef(sha256=sha256, size=found.size, filename=filename,
                               content_type=file_types.content_type(judged))


def create_app(
    settings: GatewaySettings, *, new_id: Callable[[], UUID] = uuid7,
    metrics: metrics_client.MetricsClient | None = None, **kwargs: object
) -> FastAPI:
    keyring = settings.keyring()
    rm = ReadModel(settings.db_schema or PRODUCER, keyring)
    rt = ServiceRuntime(
        name=PRODUCER, settings=settings, group=Group.GATEWAY, inputs=INPUTS,
        migrations=[*migrations(rm.s), *keyring.migrations()], handlers=lambda _rt: rm.handlers(),
        **kwargs,  # type: ignore[arg-type]
    )
    metrics = metrics or metrics_client.MetricsClient.from_environment()
    gw = Gateway(settings, rt, rm, new_id, metrics)
    catalogs = i18n.Catalogs.load()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        await rt.broker.start()
        await rt.start_background()
        try:
            yield
        finally:
            await _stop_background(rt)
            await metrics.aclose()
            await rt.broker.stop()
            await rt.stop()

    app = FastAPI(
        title="bsm gateway",
        version="0.2.0",
        description="Buyer–seller messaging: send, read and answer messages, as a party "
        "(seller or buyer), the dispute team (read-only) or an operator. Authenticate with "
        "`Authorization: Bearer <token>`. Errors are `{\"error\", \"detail\", …}`; under "
        "`/messaging/v1` (Selling Partner API compatibility) `{\"errors\": [{\"code\", "
        "\"message\", \"details\"}]}`.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local files by `web.mount` (no CDN)
        # The door (`.door`): no text that no stage can store gets past routing.
        dependencies=[Depends(door.refuse_unstorable)],
    )
    app.state.runtime = rt
    app.state.gateway = gw
    install(app)
    upload_limit = settings.max_attachment_bytes
    # ... and no body larger than any valid request of its route is read.
    app.add_middleware(door.Door, larger_bodies={
        UPLOAD_PATH: upload_limit + door.MULTIPART_OVERHEAD_BYTES})

    async def caller(
        request: Request,
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        amz: Annotated[str | None, Depends(amz_token)],
    ) -> Principal:
        return gw.principal(cred.credentials if cred else amz)

    Caller = Annotated[Principal, Depends(caller)]

    async def optional_caller(
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal | None:
        return gw.principal(cred.credentials) if cred else None

    @app.get("/health", summary="Liveness and readiness", tags=["service"])
    async def health() -> dict[str, str]:
        return {"status": "ok" if rt.pool is not None else "starting", "service": PRODUCER}

    @app.get("/v1/me", response_model=Me, summary="Who the token names", tags=["account"])
    async def me(who: Caller) -> Me:
        row = await gw.party(who.party_id)
        return Me(party_id=who.party_id, role=who.role,
                  locale=row["locale"] if row else None,
                  messaging_enabled=row["messaging_enabled"] if row and who.role == "seller"
                  else None,
                  restriction=row["restriction"] if row and who.role == "seller" else None,
                  unsolicited_opt_out=row["unsolicited_opt_out"] if row and who.role == "buyer"
                  else None)

    send_responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "No valid token."},
        403: {"description": "The role cannot send."},
        404: {"description": "The order or answered message is not yours."},
        413: {"description": "Over a size limit (`body_too_large`, `attachments_too_large`, "
              "`message_too_large`, `request_too_large`), with `limit` and `size`; nothing "
              "was sent."},
        422: {"description": "Invalid request, with each problem named (`unstorable_text`: "
              "U+0000 or a lone surrogate, with the field and the character)."},
        503: {"description": "The event log is unavailable; nothing was sent."},
    }

    validate_responses = {**send_responses, 422: {"description": (
        send_responses[422]["description"] + " With `?validate=true` (or `Prefer: "
        "handling=strict`): `policy_violations` with every violation the rules find "
        "(`violations`: rule, code, span, detail — the explanation — and remedy); nothing was "
        "sent.")}}

    @app.post("/v1/messages", status_code=202, response_model=Accepted, tags=["messages"],
              summary="Send a message (new conversation or reply)", responses=validate_responses,
              description="Without validation the message is accepted and checked on its way "
              "(its outcome follows at `GET /v1/messages/{id}`). With `?validate=true`, or the "
              "header `Prefer: handling=strict` (RFC 7240), the gateway first runs the policy "
              "library's checks — the same as `POST /v1/messages:lint` — and refuses at once "
              "with `422 policy_violations` and every violation, sending nothing. The policy "
              "service still decides on the message that is sent.")
    async def send(body: SendMessage, who: Annotated[Principal | None,
                                                     Depends(optional_caller)],
                   validate: Annotated[bool, Query(
                       description="Refuse at once (422, every violation) what the rules "
                       "would stop; send nothing then.")] = False,
                   prefer: Annotated[str | None, Header(
                       description="`handling=strict` (RFC 7240): as `validate=true`.")] = None,
                   ) -> Any:
        if who is None:
            if not (settings.dev_unauthenticated and body.sender_party_id):
                raise ApiError(401, "unauthenticated",
                               "Send a bearer token (`Authorization: Bearer …`).")
            # Local stack only (BSM_GATEWAY_DEV_UNAUTHENTICATED): the body names the sender.
            who = _DevPrincipal(body.sender_party_id)
        elif not who.is_party:
            raise ApiError(403, "role_cannot_write", f"The {who.role} role cannot send messages.")
        elif body.sender_party_id not in (None, who.party_id):
            raise ApiError(403, "not_the_sender", "The token names another sender.")
        if validate or _strict(prefer):
            found, _ = await gw.violations(who, body)
            if found:
                raise policy.refusal(found, status=422)
        message_id = await gw.submit(who, body)
        return Accepted(message_id=message_id, status="accepted",
                        detail="The message is being checked and delivered; its outcome "
                        f"(Delivered or Bounced) follows at GET /v1/messages/{message_id}.")

    @app.get("/v1/messages/{message_id}", response_model=MessageView, tags=["messages"],
             summary="One message with its outcome")
    async def get_message(message_id: str, who: Caller) -> MessageView:
        row = await gw.readable_message(who, message_id)
        return gw.message_view(row, who, await gw.visible_parent(who, row))

    @app.get("/v1/conversations", response_model=ConversationList, tags=["conversations"],
             summary="The inbox: conversations by view, or by order id")
    async def list_conversations(
        who: Caller,
        filter: Annotated[core.Filter, Query(
            description="`response_needed` (default), `sent`, `no_response_needed` or `all`."
        )] = "response_needed",
        order_id: Annotated[str | None, Query(
            max_length=128, description="Search by order id (exact; subject and body are "
            "never searched).")] = None,
    ) -> ConversationList:
        return ConversationList(filter=filter, order_id=order_id,
                                conversations=await gw.conversations(who, filter, order_id))

    @app.get("/v1/conversations/{conversation_id}", response_model=Conversation,
             tags=["conversations"], summary="A conversation with every message and outcome")
    async def get_conversation(conversation_id: str, who: Caller) -> Conversation:
        return await gw.conversation(who, conversation_id)

    @app.post("/v1/messages/{message_id}/no-response-needed", status_code=202,
              response_model=ActionAccepted, tags=["messages"],
              summary="Mark a received message: no response needed (E2)")
    async def no_response_needed(message_id: str, who: Caller) -> ActionAccepted:
        return await gw.act_on_message(who, message_id, "no-response-needed")

    @app.post("/v1/messages/{message_id}/reports", status_code=202,
              response_model=ActionAccepted, tags=["messages"],
              summary="Report a received message with a reason (E4)",
              description="The reason is one of " + ", ".join(
                  f"`{r}` ({p.REPORT_REASON_LABELS[r]})" for r in p.REPORT_REASONS)
              + "; `other` needs `text`. Only a message that reached you can be reported: "
              "any other answers `404`, as if it did not exist.")
    async def report(message_id: str, body: Report, who: Caller) -> ActionAccepted:
        return await gw.act_on_message(who, message_id, "report", body)

    @app.get("/v1/report-reasons", tags=["messages"],
             summary="The reasons a report may give (E4): the one fixed list")
    async def report_reasons() -> dict[str, Any]:
        return {"reasons": [{"reason": r, "label": p.REPORT_REASON_LABELS[r],
                             "needs_text": r == "other"} for r in p.REPORT_REASONS]}

    # -- signed links from notification mail ---------------------------------------------
    def link_token(token: str) -> links.ActionToken:
        try:
            return links.read_token(settings.link_key_bytes(), token, now=rt.clock())
        except links.LinkError as exc:
            raise ApiError(400, "invalid_link", str(exc)) from None

    @app.get("/v1/links/{token}", response_class=HTMLResponse, tags=["links"],
             summary="Confirm an action from a mail link (no change on GET)")
    async def link_page(token: str) -> HTMLResponse:
        action = link_token(token)
        return HTMLResponse(web.link_page(action.action, token))

    @app.post("/v1/links/{token}", response_class=HTMLResponse, tags=["links"],
              summary="Carry out the action a mail link names",
              description="Reports take the form fields `reason` (one of the fixed list) and "
              "`text` (required with `other`); a form without them is shown again, saying "
              "what is missing (`422`).")
    async def link_do(token: str,
                      reason: Annotated[str | None, Form(max_length=64)] = None,
                      text: Annotated[str | None, Form(max_length=1000)] = None) -> HTMLResponse:
        action = link_token(token)
        report = None
        if action.action == "report":
            try:
                report = Report.model_validate({"reason": reason, "text": text})
            except ValidationError:
                return HTMLResponse(web.link_page(action.action, token, invalid=True),
                                    status_code=422)
        row = await gw.message_row(action.message_id)
        role = (row["sender_role"] and ("buyer" if row["sender_role"] == "seller" else "seller")
                if row is not None else "buyer")
        who = Principal(party_id=action.party_id, role=role)  # type: ignore[arg-type]
        await gw.act_on_message(who, action.message_id, action.action, report)
        return HTMLResponse(web.link_done(action.action))

    # -- orders by a buyer's alias (A5) -------------------------------------------------
    @app.get("/v1/orders", tags=["orders"],
             summary="A buyer's orders with you, found by the alias the buyer writes from (A5)")
    async def orders_by_alias(
        who: Caller,
        buyer_alias: Annotated[str, Query(min_length=3, max_length=320, description=(
            "The buyer's alias address (or its local part), as it appears in their mail."))],
    ) -> dict[str, Any]:
        if who.role != "seller":
            raise ApiError(403, "role_cannot_read", "Only sellers look up their buyers' orders.")
        alias = buyer_alias.strip().lower()
        if "@" not in alias:
            alias = f"{alias}@{settings.mail_domain}"
        local, _, domain = alias.partition("@")
        well_formed = (domain == settings.mail_domain.lower() and 15 <= len(local) <= 16
                       and local.isascii() and local.isalnum())
        rel = await gw.pool.fetchrow(
            f"SELECT relationship_id, buyer_id FROM {gw.s}.relationship_aliases "
            f"WHERE buyer_alias = $1 AND seller_id = $2", alias, who.party_id,
        ) if well_formed else None
        if rel is None:  # unknown, or another seller's buyer: the same answer (no enumeration)
            raise ApiError(404, "alias_not_found",
                           f"No buyer of yours writes from {alias}. Check the address in the "
                           "buyer's message.")
        rows = await gw.pool.fetch(
            f"SELECT order_id, placed_at, status FROM {gw.s}.orders "
            f"WHERE buyer_id = $1 AND seller_id = $2 ORDER BY placed_at DESC NULLS LAST",
            rel["buyer_id"], who.party_id)
        return {"buyer_alias": alias, "relationship_id": rel["relationship_id"],
                "orders": [{"order_id": r["order_id"], "status": r["status"],
                            "placed_at": r["placed_at"].isoformat() if r["placed_at"] else None}
                           for r in rows]}

    # -- eligibility and lint (the policy service's pure rule library) ------------------
    @app.get("/v1/orders/{order_id}/contact-options", tags=["policy"],
             summary="Contact reasons available now, and whether the buyer opted out",
             description="Judged by the policy library on the facts policy decides with: the "
             "order, the seller's restrictions, the buyer's opt-out, and the daily limit (C7: "
             "`daily_limit` from the record, F2). `not_judged` lists rules the gateway could "
             "not judge just now (`C7` while the record cannot be reached).")
    async def contact_options(order_id: str, who: Caller) -> dict[str, Any]:
        row = await gw.seller_order(who, order_id)
        locale = (await gw.party(who.party_id) or {"locale": "en-US"})["locale"]
        return policy.options_json(*await gw.contact_options(who, row, locale))

    @app.post("/v1/messages:lint", tags=["policy"],
              summary="The violations a draft would get, sending nothing")
    async def lint(body: SendMessage, who: Caller) -> dict[str, Any]:
        if not who.is_party:
            raise ApiError(403, "role_cannot_write", f"The {who.role} role does not send.")
        violations, quota = await gw.violations(who, body)
        return {"ok": not violations, "violations": violations,
                "not_judged": policy.not_judged(quota) if who.role == "seller" else []}

    # -- templates (E5) ------------------------------------------------------------------
    def own_template(r: Any, locale: str | None) -> Template:
        """A seller's template in the buyer's language (E5): the text in ``locale``'s language,
        else English, else the template's own — and the answer says which, and whether it fell
        back. Without a locale: the template's own language."""
        raw = r["texts"]
        texts = (json.loads(raw) if isinstance(raw, str) else raw) or {}
        own = r["language"] or "en"
        texts.setdefault(own, {"subject": r["subject"], "text": r["text"]})
        choice = i18n.choose(texts, locale or own, own)
        chosen = texts[choice.language]
        return Template(template_id=r["template_id"], kind="own", name=r["name"],
                        locale=choice.language,
                        requested_language=choice.requested if locale else None,
                        fell_back=choice.fell_back if locale else False,
                        languages=sorted(texts), subject=chosen["subject"], text=chosen["text"])

    @app.get("/v1/templates", response_model=list[Template], tags=["templates"],
             summary="Your templates and the platform's, in the buyer's language",
             description="With `order_id` (the order's buyer's marketplace language) or "
             "`locale`, every template comes in that language when it has it; otherwise in "
             "English, else the language it was written in, with `fell_back: true` and "
             "`requested_language` saying so.")
    async def templates(who: Caller, order_id: Annotated[str | None, Query(
            max_length=128, description="Render templates in this order's buyer's "
            "language.")] = None, locale: Annotated[str | None, Query(
            max_length=35, description="…or in this locale.")] = None) -> list[Template]:
        if who.role != "seller":
            raise ApiError(403, "role_cannot_use_templates", "Templates are for sellers.")
        if order_id is not None:
            order = await gw.order(order_id)
            if order is None or order["seller_id"] != who.party_id:
                raise ApiError(404, "order_not_found", f"No order {order_id} of yours.")
            locale = order["buyer_locale"] or "en-US"
        rows = await gw.pool.fetch(
            f"SELECT * FROM {gw.s}.templates WHERE seller_id = $1 ORDER BY created_at",
            who.party_id)
        own = [own_template(r, locale) for r in rows]
        return own + [Template(template_id=f"platform:{t.name}", kind="platform", name=t.name,
                               locale=t.locale, subject=t.subject, text=t.text,
                               requested_language=t.requested if locale else None,
                               fell_back=t.fell_back if locale else False,
                               languages=catalogs.languages())
                      for t in catalogs.render_all(locale or "en-US")]

    @app.post("/v1/templates", response_model=Template, status_code=201, tags=["templates"],
              summary="Save one of your templates (one text per language)")
    async def save_template(body: TemplateIn, who: Caller) -> Template:
        if who.role != "seller":
            raise ApiError(403, "role_cannot_use_templates", "Templates are for sellers.")
        tid = str(new_id())
        texts = {lang: t.model_dump() for lang, t in body.texts().items()}
        # A seller's own templates are the gateway's own data (no other service needs them).
        row = await gw.pool.fetchrow(
            f"""INSERT INTO {gw.s}.templates (template_id, seller_id, name, subject, text,
                created_at, language, texts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                RETURNING *""",
            tid, who.party_id, body.name, body.subject, body.text, rt.clock(), body.language,
            json.dumps(texts))
        return own_template(row, None)

    @app.delete("/v1/templates/{template_id}", status_code=204, tags=["templates"],
                summary="Delete one of your templates")
    async def delete_template(template_id: str, who: Caller) -> None:
        done = await gw.pool.execute(
            f"DELETE FROM {gw.s}.templates WHERE template_id = $1 AND seller_id = $2",
            template_id, who.party_id)
        if done == "DELETE 0":
            raise ApiError(404, "template_not_found", f"No template {template_id} of yours.")

    # -- attachments ---------------------------------------------------------------------
    @app.post(UPLOAD_PATH, response_model=StoredAttachment, status_code=201,
              tags=["attachments"],
              summary=f"Upload an attachment (≤ {upload_limit:,} bytes)",
              description="Multipart, one part `file`. The type is judged from the content; "
              "the file name is made one safe line (RFC 2047 encoded words decoded, control "
              "characters as spaces, no path, at most 255 characters) and answered as stored. "
              "A request body larger than the limit (plus multipart overhead) is refused from "
              "its `Content-Length`, before it is read.",
              responses={413: {"description": "Too large (`attachment_too_large`, "
                               "`request_too_large`): the limit and the size are named."},
                         415: {"description": "Type not on B4's list "
                               f"({file_types.ACCEPTED}), judged from the content "
                               "(`attachment_type_refused`)."},
                         422: {"description": "U+0000 in the file name (`unstorable_text`)."}})
    async def upload(who: Caller, file: Annotated[UploadFile, File()]) -> StoredAttachment:
        if not who.is_party:
            raise ApiError(403, "role_cannot_write", f"The {who.role} role cannot upload.")
        chunks, size = [], 0
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > upload_limit:
                raise ApiError(413, "attachment_too_large",
                               f"The file is larger than {upload_limit:,} bytes, the most one "
                               "attachment may be.", limit=upload_limit, size=file.size)
            chunks.append(chunk)
        data = b"".join(chunks)
        filename = core.readable_filename(file.filename)
        # B4's list, judged from the content (bsm_shared.attachments), as policy judges it.
        judged = file_types.judge(data[:file_types.HEAD_BYTES], filename)
        if isinstance(judged, file_types.Refused):
            raise ApiError(415, "attachment_type_refused", judged.message, rule="B4",
                           detected=judged.detected, accepted=file_types.ACCEPTED)
        sha = await gw.blobs.put(data)  # atomic: a reader never sees half a blob
        # The uploader may now reference it (whoever else uploaded the same bytes before: the
        # answer is the same either way, so an upload tells nothing about others' files).
        await own_attachments(gw.pool, gw.s, who.party_id, [sha])
        return StoredAttachment(sha256=sha, size=size, content_type=judged.mime,
                                filename=filename)

    @app.get("/v1/messages/{message_id}/attachments/{sha256}", tags=["attachments"],
             response_class=Response, summary="Download an attachment of a message",
             description="For the message's sender, its recipient once it was delivered (before, "
             "and if it never is, the message does not exist for them), and the dispute team. "
             "Served as a download (`Content-Disposition: attachment`, "
             "`nosniff`) with the type judged from the content when it was stored.",
             responses={200: {"content": {"application/octet-stream": {}},
                              "description": "The file."},
                        404: {"description": "No such message of yours, or no such attachment "
                              "on it (yet)."}})
    async def download(message_id: str, sha256: str, who: Caller) -> Response:
        row = await gw.readable_message(who, message_id)
        atts = row["attachments"]
        refs = {a["sha256"]: a for a in (json.loads(atts) if isinstance(atts, str) else atts or [])}
        ref = refs.get(sha256)
        # `readable_message` answered: a recipient reaches a message's files only once it
        # reached them (a stopped message's files were never theirs to see).
        path = gw.blob_path(sha256) if ref is not None and len(sha256) == 64 else None
        if ref is None or path is None or not path.is_file():
            raise ApiError(404, "attachment_not_found",
                           f"Message {message_id} has no attachment {sha256} you can open.")
        return Response(
            content=await asyncio.to_thread(path.read_bytes),
            media_type=str(ref.get("content_type") or "application/octet-stream"),
            # The name is cleaned again here: rows stored before names were cleaned at the
            # door hold them as they came.
            headers={"Content-Disposition": core.content_disposition(ref.get("filename")),
                     "X-Content-Type-Options": "nosniff"})

    # -- settings and sanctions ----------------------------------------------------------
    @app.get("/v1/sellers/{seller_id}/settings", response_model=SellerSettingsOut,
             tags=["settings"], summary="A seller's messaging settings (the seller or an operator)",
             description="As the gateway's read model has them from `SellerSettingsChanged` "
             "(seconds behind a change). The addresses are kept sealed with the seller's key "
             "and opened for this answer only.")
    async def get_seller_settings(seller_id: str, who: Caller) -> SellerSettingsOut:
        if not ((who.role == "seller" and who.party_id == seller_id) or who.role == "operator"):
            raise ApiError(403, "not_allowed", "Only the seller or an operator reads these.")
        async with gw.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT messaging_enabled, opt_out_bounce_notices, sender_settings "
                f"FROM {rm.s}.parties WHERE party_id = $1", seller_id)
            raw = row["sender_settings"] if row else None
            kept = (json.loads(raw) if isinstance(raw, str) else raw) or {}

            async def opened(field: str, value: str | None) -> str | None:
                if not value:
                    return None
                return await keyring.open(conn, value, f"SellerSettingsChanged.{field}",
                                          party_id=seller_id)

            lists: dict[str, list[str] | None] = {}
            for field in ("authorized_senders", "blocked_senders"):
                if kept.get(field) is None:  # not known here (never set, or unreadable): say so
                    lists[field] = None
                    continue
                values = [await opened(field, v) for v in kept[field]]
                lists[field] = None if None in values else values  # type: ignore[assignment]
            service = await opened("customer_service_email", kept.get("customer_service_email"))
        return SellerSettingsOut(
            seller_id=seller_id,
            messaging_enabled=row["messaging_enabled"] is not False if row else True,
            opt_out_bounce_notices=bool(row and row["opt_out_bounce_notices"]),
            customer_service_email=service, **lists)

    @app.put("/v1/sellers/{seller_id}/settings", status_code=202, tags=["settings"],
             summary="Change a seller's messaging settings (the seller or an operator)")
    async def seller_settings(seller_id: str, body: SellerSettingsIn,
                              who: Caller) -> dict[str, str]:
        if not ((who.role == "seller" and who.party_id == seller_id) or who.role == "operator"):
            raise ApiError(403, "not_allowed", "Only the seller or an operator changes these.")
        # Addresses travel sealed with the seller's own keyring key: readable by our services
        # now, by nobody once the seller is erased.
        async with gw.pool.acquire() as conn:

            async def sealed(field: str, value: str) -> str:
                return await keyring.seal(conn, seller_id, f"SellerSettingsChanged.{field}",
                                          value.strip())

            try:
                data = p.SellerSettingsChanged(
                    seller_id=seller_id, messaging_enabled=body.messaging_enabled,
                    opt_out_bounce_notices=body.opt_out_bounce_notices,
                    authorized_senders=None if body.authorized_senders is None else
                    [await sealed("authorized_senders", a) for a in body.authorized_senders],
                    blocked_senders=None if body.blocked_senders is None else
                    [await sealed("blocked_senders", a) for a in body.blocked_senders],
                    customer_service_email=None if body.customer_service_email is None else
                    await sealed("customer_service_email", body.customer_service_email),
                )
            except Erased:
                raise ApiError(410, "party_erased", "This seller's personal data was erased; "
                               "its settings can no longer change.") from None
        event_id = await gw.party_event(ev.SellerSettingsChangedEvent, data, seller_id)
        return {"status": "accepted", "event_id": event_id}

    @app.put("/v1/buyers/{buyer_id}/preferences", status_code=202, tags=["settings"],
             summary="A buyer's opt-out from unsolicited seller messages (C6)")
    async def buyer_preferences(buyer_id: str, body: BuyerPreferencesIn,
                                who: Caller) -> dict[str, str]:
        if not ((who.role == "buyer" and who.party_id == buyer_id) or who.role == "operator"):
            raise ApiError(403, "not_allowed", "Only the buyer or an operator changes these.")
        data = p.BuyerPreferencesChanged(buyer_id=buyer_id,
                                         unsolicited_opt_out=body.unsolicited_opt_out)
        event_id = await gw.party_event(ev.BuyerPreferencesChangedEvent, data, buyer_id)
        return {"status": "accepted", "event_id": event_id}

    @app.post("/v1/parties/{party_id}/erasure", status_code=202, response_model=ErasureOut,
              tags=["erasure"], summary="Erase a party's personal data (operators)",
              description="Crypto-shredding: destroys the party's data key in the keyring and "
              "publishes `PartyErased` (signed) on `bsm.parties`, in one transaction. Every "
              "value sealed for the party in any event becomes unreadable; the events, their "
              "signatures and replays stay intact; services drop the party's stored addresses "
              "and refuse messages to or from it. Idempotent: erasing again changes nothing "
              "(`already_erased`). Cannot be undone.")
    async def erase(party_id: Annotated[str, FastApiPath(min_length=1, max_length=128)],
                    body: ErasureIn, who: Caller) -> ErasureOut:
        if who.role != "operator":
            raise ApiError(403, "not_allowed", "Only operators erase a party's data.")
        now = rt.clock()
        event_id = gw.new_id()
        data = p.PartyErased(party_id=party_id, erased_at=now, requested_by=who.party_id,
                             reason=body.reason)
        event = build_event(ev.PartyErasedEvent, data, event_id=event_id, occurred_at=now,
                            producer=PRODUCER, correlation_id=party_id)
        async with gw.pool.acquire() as conn, conn.transaction():
            first = await keyring.erase(conn, party_id, at=now, requested_by=who.party_id)
            if first:
                await rt.record(conn, [Outgoing(Topic.PARTIES, party_id, event)])
            else:
                row = await conn.fetchrow(
                    f"SELECT erased_at FROM {keyring.s}.erased WHERE party_id = $1", party_id)
                now = row["erased_at"]
        if not first:
            return ErasureOut(party_id=party_id, status="already_erased", erased_at=now)
        await gw.flush()
        with contextlib.suppress(Exception):  # best effort: reclaim the deleted key's tuple
            async with gw.pool.acquire() as conn:
                await conn.execute(f"VACUUM {keyring.s}.party_keys")
        return ErasureOut(party_id=party_id, status="erased", erased_at=now,
                          event_id=str(event_id))

    @app.post("/v1/sellers/{seller_id}/restriction/lift", status_code=202, tags=["sanctions"],
              summary="Lift a seller's messaging restriction (operators)")
    async def lift(seller_id: str, body: LiftRestriction, who: Caller) -> dict[str, str]:
        if who.role != "operator":
            raise ApiError(403, "not_allowed", "Only operators lift sanctions.")
        data = p.SellerMessagingRestrictionLifted(seller_id=seller_id, lifted_by=who.party_id,
                                                  lifted_at=rt.clock(), reason=body.reason)
        event_id = await gw.party_event(ev.SellerMessagingRestrictionLiftedEvent, data,
                                        seller_id)
        return {"status": "accepted", "event_id": event_id}

    from . import spapi  # noqa: PLC0415 - the SP-API door shares this composition root

    app.include_router(spapi.router(gw, caller))
    app.include_router(metrics_client.router(metrics, caller))
    app.include_router(notifications.router(gw, caller))
    web.mount(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")

    return app


async def _stop_background(rt: ServiceRuntime) -> None:
    """``rt.stop_background()``, guarded against a race in the shared outbox relay: on
    Python 3.11, ``asyncio.wait_for`` swallows a cancel that arrives together with the relay's
    wake-up (fixed in 3.12), so ``OutboxRelay.stop`` can wait for ever. Cancel again then.
    (Reported to the owner; remove once ``bsm_shared.runtime.outbox`` handles it.)"""
    stopping = asyncio.ensure_future(rt.stop_background())
    while True:
        done, _ = await asyncio.wait({stopping}, timeout=2.0)
        if done:
            return
        task = getattr(rt.relay, "_task", None)
        if task is not None:
            task.cancel()


def _strict(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``handling=strict``."""
    return any(part.strip().lower().replace(" ", "") == "handling=strict"
               for part in (prefer or "").replace(";", ",").split(","))


class _DevPrincipal(Principal):
    """The walking skeleton's unauthenticated sender (local stack only): any role."""

    def __init__(self, party_id: str) -> None:
        object.__setattr__(self, "party_id", party_id)
        object.__setattr__(self, "role", "seller")

    @property
    def is_party(self) -> bool:
        return False
