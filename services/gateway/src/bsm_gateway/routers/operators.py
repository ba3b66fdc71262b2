"""Operators' actions: erase a party's personal data, lift a seller's restriction."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as FastApiPath

from .. import access
from ..models import ErasureIn, ErasureOut, LiftRestriction
from ..service import Gateway
from .deps import Caller


def router(gw: Gateway) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/parties/{party_id}/erasure", status_code=202, response_model=ErasureOut,
            tags=["erasure"], summary="Erase a party's personal data (operators)",
            description="Crypto-shredding: destroys the party's data key in the keyring and "
            "publishes `PartyErased` (signed) on `bsm.parties`, in one transaction. Every "
            "value sealed for the party in any event becomes unreadable; the events, their "
            "signatures and replays stay intact; services drop the party's stored addresses "
            "and refuse messages to or from it. Idempotent: erasing again changes nothing "
            "(`already_erased`). Cannot be undone.")
    async def erase(party_id: Annotated[str, FastApiPath(min_length=1, max_length=128)],
                    body: ErasureIn, who: Caller) -> ErasureOut:
        access.require(who, "erase_party")
        return await gw.parties.erase(who, party_id, body.reason)

    @r.post("/v1/sellers/{seller_id}/restriction/lift", status_code=202, tags=["sanctions"],
            summary="Lift a seller's messaging restriction (operators)")
    async def lift(seller_id: str, body: LiftRestriction, who: Caller) -> dict[str, str]:
        access.require(who, "lift_restriction")
        return {"status": "accepted", "event_id": await gw.parties.lift(who, seller_id, body)}

    return r
