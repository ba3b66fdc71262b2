"""Who the caller is, sellers' messaging settings and buyers' opt-out (C6)."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from fastapi import APIRouter

from .. import access
from ..models import BuyerPreferencesIn, Me, SellerSettingsIn, SellerSettingsOut
from ..service import Gateway
from .deps import Caller


def router(gw: Gateway) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/me", response_model=Me, summary="Who the token names", tags=["account"])
    async def me(who: Caller) -> Me:
        return await gw.parties.me(who)

    @r.get("/v1/sellers/{seller_id}/settings", response_model=SellerSettingsOut,
           tags=["settings"],
           summary="A seller's messaging settings (the seller or an operator)",
           description="As the gateway's read model has them from `SellerSettingsChanged` "
           "(seconds behind a change). The addresses are kept sealed with the seller's key "
           "and opened for this answer only.")
    async def get_seller_settings(seller_id: str, who: Caller) -> SellerSettingsOut:
        access.require(who, "read_seller_settings", seller_id)
        return await gw.parties.seller_settings(seller_id)

    @r.put("/v1/sellers/{seller_id}/settings", status_code=202, tags=["settings"],
           summary="Change a seller's messaging settings (the seller or an operator)")
    async def seller_settings(seller_id: str, body: SellerSettingsIn,
                              who: Caller) -> dict[str, str]:
        access.require(who, "change_seller_settings", seller_id)
        event_id = await gw.parties.change_seller_settings(seller_id, body)
        return {"status": "accepted", "event_id": event_id}

    @r.put("/v1/buyers/{buyer_id}/preferences", status_code=202, tags=["settings"],
           summary="A buyer's opt-out from unsolicited seller messages (C6)")
    async def buyer_preferences(buyer_id: str, body: BuyerPreferencesIn,
                                who: Caller) -> dict[str, str]:
        access.require(who, "change_buyer_preferences", buyer_id)
        event_id = await gw.parties.change_buyer_preferences(buyer_id, body)
        return {"status": "accepted", "event_id": event_id}

    return r
