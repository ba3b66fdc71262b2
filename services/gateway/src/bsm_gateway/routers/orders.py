"""Orders as a seller asks about them: a buyer's orders found by the alias the buyer writes
from (A5), and the contact reasons an order allows now (the policy library's answer)."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated, Any

from fastapi import APIRouter, Query

from .. import access, policy
from ..service import Gateway
from .deps import Caller


def router(gw: Gateway) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/orders", tags=["orders"],
           summary="A buyer's orders with you, found by the alias the buyer writes from (A5)")
    async def orders_by_alias(
        who: Caller,
        buyer_alias: Annotated[str, Query(min_length=3, max_length=320, description=(
            "The buyer's alias address (or its local part), as it appears in their mail."))],
    ) -> dict[str, Any]:
        access.require(who, "find_orders_by_alias")
        return await gw.parties.orders_by_alias(who, buyer_alias)

    @r.get("/v1/orders/{order_id}/contact-options", tags=["policy"],
           summary="Contact reasons available now, and whether the buyer opted out",
           description="Judged by the policy library on the facts policy decides with: the "
           "order, the seller's restrictions, the buyer's opt-out, and the daily limit (C7: "
           "`daily_limit` from the record, F2). `not_judged` lists rules the gateway could "
           "not judge just now (`C7` while the record cannot be reached).")
    async def contact_options(order_id: str, who: Caller) -> dict[str, Any]:
        row = await gw.seller_order(who, order_id)
        locale = (await gw.party(who.party_id) or {"locale": "en-US"})["locale"]
        return policy.options_json(*await gw.contact_options(who, row, locale))

    return r
