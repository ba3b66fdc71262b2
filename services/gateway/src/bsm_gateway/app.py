"""Composition root of the gateway: the HTTP door for web and API submissions.

``POST /v1/messages`` turns a request into a signed ``MessageSubmitted`` and publishes it
(idempotent producer, ``acks=all``) before answering ``202``: the request's only effect is the
event, so there is no local state to keep consistent with it and no outbox is needed here.
The outcome (``Delivered`` or ``Bounced``) follows as events.

Authentication is not there yet (walking skeleton): the sender is named in the request. It
comes with bearer tokens and roles (issue 6); do not expose this gateway beyond loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from uuid6 import uuid7

from bsm_shared.contract import MessageSubmittedEvent
from bsm_shared.contract.payloads import ContactReason, MessageSubmitted, PartyRef
from bsm_shared.contract.wire import build_event, to_wire
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group, Topic

from .settings import GatewaySettings

PRODUCER = "gateway"


class SendMessage(BaseModel):
    """A message to send: a new conversation (sellers give a contact reason) or a reply."""

    model_config = ConfigDict(extra="forbid")

    sender_party_id: str = Field(min_length=1, max_length=128, description="Who sends it.")
    recipient_party_id: str | None = Field(
        default=None, max_length=128, description="To whom (a party id)…"
    )
    recipient_alias: str | None = Field(
        default=None, max_length=320, description="…or to an alias address."
    )
    order_id: str | None = Field(default=None, max_length=128, description="The order.")
    contact_reason: ContactReason | None = Field(
        default=None, description="Required for a seller starting a conversation."
    )
    subject: str = Field(default="", max_length=998, description="Subject.")
    text: str | None = Field(default=None, max_length=100_000, description="Plain text.")
    html: str | None = Field(default=None, max_length=500_000, description="HTML body.")
    in_reply_to: str | None = Field(default=None, max_length=128, description="Answered id.")
    channel: Literal["web", "api"] = Field(default="web", description="`web` or `api`.")


class Accepted(BaseModel):
    message_id: str = Field(description="The new message's id.")
    status: Literal["accepted"] = Field(description="Accepted for processing.")
    detail: str = Field(description="What happens next.")


def error(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail, **extra})


def create_app(
    settings: GatewaySettings, *, new_id: Callable[[], UUID] = uuid7, **kwargs: object
) -> FastAPI:
    rt = ServiceRuntime(
        name=PRODUCER, settings=settings, group=Group.GATEWAY, inputs=[], migrations=[],
        handlers=lambda _rt: {}, **kwargs,  # type: ignore[arg-type]
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        await rt.broker.start()
        await rt.start_background()
        try:
            yield
        finally:
            await rt.stop_background()
            await rt.broker.stop()
            await rt.stop()

    app = FastAPI(
        title="bsm gateway",
        version="0.1.0",
        description="Send buyer–seller messages. Authentication comes later: until then, run "
        "the gateway on loopback only.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(x) for x in e["loc"] if x != "body"), "problem": e["msg"]}
            for e in exc.errors()
        ]
        return error(422, "invalid_request", "The request does not have the expected shape.",
                     problems=problems)

    @app.get("/health", summary="Liveness and readiness")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": PRODUCER}

    @app.post(
        "/v1/messages",
        status_code=202,
        response_model=Accepted,
        summary="Send a message",
        responses={
            422: {"description": "Invalid request, with each problem named."},
            503: {"description": "The event log is unavailable; nothing was sent."},
        },
    )
    async def send(body: SendMessage) -> Any:
        if (body.recipient_party_id is None) == (body.recipient_alias is None):
            return error(422, "invalid_request",
                         "Give exactly one of `recipient_party_id` and `recipient_alias`.")
        if body.text is None and body.html is None:
            return error(422, "invalid_request", "A message needs `text` and/or `html`.")
        message_id = str(new_id())
        now = rt.clock()
        data = MessageSubmitted(
            message_id=message_id, channel=body.channel,
            sender=PartyRef(party_id=body.sender_party_id),
            recipient=PartyRef(party_id=body.recipient_party_id, address=body.recipient_alias),
            order_id=body.order_id, contact_reason=body.contact_reason, subject=body.subject,
            text=body.text, html=body.html, in_reply_to=body.in_reply_to, submitted_at=now,
        )
        event = build_event(
            MessageSubmittedEvent, data, event_id=new_id(), occurred_at=now,
            producer=PRODUCER, correlation_id=message_id,
        )
        try:
            await rt.broker.publish(
                to_wire(event, rt.signer), topic=rt.topics(Topic.SUBMITTED),
                key=message_id.encode(),
            )
        except Exception:  # noqa: BLE001 - any publish failure means: not accepted
            return error(503, "unavailable", "The message could not be recorded; nothing was "
                         "sent. Try again in a moment.")
        return Accepted(
            message_id=message_id, status="accepted",
            detail="The message is being checked and delivered; its outcome (Delivered or "
            "Bounced) follows as events.",
        )

    return app
