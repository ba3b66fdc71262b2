"""The inbox (E1, E3): conversations by view or order id, a page at a time; one conversation
with its messages; and a party's platform notifications."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Query

from .. import access, core
from ..models import Conversation, ConversationList, Notification
from ..service import Gateway
from ..service.inbox import MAX_PAGE
from .deps import Caller


def router(gw: Gateway) -> APIRouter:
    r = APIRouter(tags=["conversations"])

    @r.get("/v1/conversations", response_model=ConversationList,
           summary="The inbox: conversations by view, or by order id")
    async def list_conversations(
        who: Caller,
        filter: Annotated[core.Filter, Query(
            description="`response_needed` (default), `sent`, `no_response_needed` or `all`."
        )] = "response_needed",
        order_id: Annotated[str | None, Query(
            max_length=128, description="Search by order id (ignoring case and surrounding "
            "spaces; subject and body are never searched).")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=(
            f"Conversations per page (at most {MAX_PAGE})."))] = MAX_PAGE,
        cursor: Annotated[str | None, Query(
            max_length=512, description="The `next` of the previous page.")] = None,
    ) -> ConversationList:
        access.require(who, "read_conversations")
        conversations, next_page = await gw.inbox.page(who, filter, order_id, limit, cursor)
        return ConversationList(filter=filter,
                                order_id=order_id.strip() if order_id is not None else None,
                                conversations=conversations, next=next_page)

    @r.get("/v1/conversations/{conversation_id}", response_model=Conversation,
           summary="A conversation with every message and outcome")
    async def get_conversation(conversation_id: str, who: Caller) -> Conversation:
        return await gw.inbox.conversation(who, conversation_id)

    @r.get("/v1/notifications", response_model=list[Notification],
           summary="Platform notifications: why your messages bounced (newest first)")
    async def notifications(who: Caller) -> list[Notification]:
        access.require(who, "notifications")
        return await gw.inbox.notifications(who)

    return r
