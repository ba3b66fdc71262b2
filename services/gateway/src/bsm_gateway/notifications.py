"""Platform notifications of a party: the explanations of its own messages that bounced.

Platform notices are not messages of the read model (every message there has a buyer or
seller sender), so *Your messages* keeps sellers' messages in the conversations and lists
the platform's word here: which rule stopped which of your messages, and what you can do.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from .auth import Principal
from .errors import ApiError


class Notification(BaseModel):
    kind: str = Field(description="`bounce`: one of your messages was not delivered.")
    message_id: str = Field(description="Your message.")
    conversation_id: str | None = Field(default=None, description="Its conversation.")
    order_id: str | None = Field(default=None, description="Its order.")
    subject: str = Field(description="Its subject.")
    at: str = Field(description="When it was stopped (RFC 3339).")
    rule: str | None = Field(default=None, description="The rule that stopped it.")
    stage: str | None = Field(default=None, description="Where it was stopped.")
    explanation: str = Field(description="Why, in your language.")
    remedy: str | None = Field(default=None, description="What you can do.")


def router(gw: Any, caller: Any) -> APIRouter:
    r = APIRouter(tags=["conversations"])
    Caller = Annotated[Principal, Depends(caller)]

    @r.get("/v1/notifications", response_model=list[Notification],
           summary="Platform notifications: why your messages bounced (newest first)")
    async def notifications(who: Caller) -> list[Notification]:
        if not who.is_party:
            raise ApiError(403, "role_cannot_read",
                           f"The {who.role} role has no notifications.")
        rows = await gw.pool.fetch(
            f"""SELECT message_id, conversation_id, order_id, subject, bounce, submitted_at
                FROM {gw.s}.messages WHERE sender_party_id = $1 AND bounce IS NOT NULL
                ORDER BY submitted_at DESC LIMIT 200""", who.party_id)
        out = []
        for row in rows:
            bounce = json.loads(row["bounce"]) if row["bounce"] else {}
            out.append(Notification(
                kind="bounce", message_id=row["message_id"],
                conversation_id=row["conversation_id"], order_id=row["order_id"],
                subject=row["subject"] or "", at=bounce.get("bounced_at")
                or row["submitted_at"].isoformat(), rule=bounce.get("rule"),
                stage=bounce.get("stage"),
                explanation=bounce.get("explanation") or "The message was not delivered.",
                remedy=bounce.get("remedy")))
        return out

    return r
