"""Helpers for the gateway's tests: tokens, and the signed events the upstream services
(alias, delivery, policy) would publish, so the gateway's read model can be fed directly."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bsm_gateway.auth import issue_token
from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def running_gateway(settings: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The gateway app in this process (its lifespan: database, Kafka, consumer) and an HTTP
    client that calls it directly."""
    from httpx import ASGITransport, AsyncClient

    from bsm_gateway.app import create_app

    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://gw") as http:
            yield app, http


async def uploaded_by(app: Any, party_id: str, *hashes: str) -> None:
    """Record ``party_id`` as the uploader of blobs a test put into the store directly (a
    sparse 6 MB file costs nothing that way), as ``POST /v1/attachments`` would."""
    from bsm_gateway.readmodel import own_attachments

    await own_attachments(app.state.runtime.pool, app.state.runtime.schema, party_id,
                          list(hashes))


SP_MODEL = ROOT / "tests" / "data" / "sp-api" / "messaging-v1.json"  # NOTICE.md beside it
ARTIFACTS = ROOT / "test-artifacts"


def token_key(env: dict[str, str]) -> bytes:
    return base64.b64decode(env["BSM_GATEWAY_TOKEN_KEY"])


def auth(env: dict[str, str], party_id: str, role: str = "seller") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(token_key(env), party_id, role)}"}


def signer(env: dict[str, str], producer: str) -> Signer:
    return Signer(producer, load_private_key(env[f"BSM_{producer.upper()}_SIGNING_KEY"]))


def now() -> datetime:
    return datetime.now(UTC)


def signed(env: dict[str, str], producer: str, model: Any, data: Any, key: str) -> bytes:
    event = build_event(model, data, event_id=uuid.uuid4(), occurred_at=now(),
                        producer=producer, correlation_id=key)
    return to_wire(event, signer(env, producer))


def addressed(env: dict[str, str], *, message_id: str, conversation_id: str,
              relationship_id: str, sender: str, recipient: str, sender_role: str,
              order_id: str | None, subject: str = "", text: str = "hello",
              in_reply_to: str | None = None, html: str | None = None,
              started_by: str = "buyer", recipient_locale: str = "es-ES",
              attachments: list[p.AttachmentRef] | None = None) -> bytes:
    recipient_role = "seller" if sender_role == "buyer" else "buyer"
    data = p.MessageAddressed(
        message_id=message_id, channel="web", sender=p.PartyRef(party_id=sender),
        recipient=p.PartyRef(party_id=recipient), order_id=order_id, subject=subject,
        text=text, html=html, in_reply_to=in_reply_to, submitted_at=now(),
        attachments=attachments or [],
        relationship_id=relationship_id, conversation_id=conversation_id,
        sender_party_id=sender, recipient_party_id=recipient, sender_role=sender_role,
        recipient_role=recipient_role, sender_alias=f"{uuid.uuid4().hex[:8]}@m.example",
        recipient_alias=f"{uuid.uuid4().hex[:8]}@m.example", sender_display_name="Someone",
        recipient_locale=recipient_locale, conversation_started_by=started_by,
    )
    return signed(env, "alias", ev.MessageAddressedEvent, data, message_id)


def delivered(env: dict[str, str], *, message_id: str, conversation_id: str,
              relationship_id: str, sender: str, recipient: str, sender_role: str,
              order_id: str | None, subject: str = "", text: str = "hello",
              html: str | None = None, in_reply_to: str | None = None,
              attachments: list[p.AttachmentRef] | None = None, **_: Any) -> bytes:
    data = p.Delivered(
        message_id=message_id, conversation_id=conversation_id, relationship_id=relationship_id,
        sender_party_id=sender, recipient_party_id=recipient, sender_role=sender_role,
        sender_alias="a@m.example", recipient_alias="b@m.example", order_id=order_id,
        submitted_at=now(), delivered_at=now(), channels=["mailbox", "email"],
        subject=subject, text=text, html=html, in_reply_to=in_reply_to,
        attachments=attachments or [],
    )
    return signed(env, "delivery", ev.DeliveredEvent, data, message_id)


def bounced(env: dict[str, str], *, message_id: str, conversation_id: str,
            relationship_id: str, sender: str, recipient: str, sender_role: str,
            order_id: str | None, **_: Any) -> bytes:
    data = p.Bounced(
        message_id=message_id, stage="policy", reason_code="rejected", rule="C4",
        explanation="The message contains a phone number.", remedy="Remove the phone number.",
        bounced_at=now(), submitted_at=now(), relationship_id=relationship_id,
        conversation_id=conversation_id, sender_party_id=sender, recipient_party_id=recipient,
        sender_role=sender_role, order_id=order_id,
    )
    return signed(env, "delivery", ev.BouncedEvent, data, message_id)


async def eventually(probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool],
                     timeout: float = 20.0) -> Any:
    """Poll ``probe`` until ``ok(result)`` (the read model follows the log), or fail."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = await probe()
        if ok(result):
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")


def sp_model() -> dict[str, Any]:
    return json.loads(SP_MODEL.read_text())


def sp_validate(instance: Any, definition: str) -> None:
    """Validate against a definition of Amazon's Messaging v1 model (Swagger 2.0 → JSON
    Schema: the definitions are JSON Schema draft 4 with ``#/definitions`` refs)."""
    import jsonschema_rs  # comes with schemathesis

    model = sp_model()
    schema = {"$ref": f"#/definitions/{definition}", "definitions": model["definitions"]}
    jsonschema_rs.Draft4Validator(schema).validate(instance)
