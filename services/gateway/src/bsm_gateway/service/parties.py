"""Parties: who the caller is, a buyer's orders found by alias (A5), sellers' settings and
buyers' preferences, erasure and lifting a sanction. Settings addresses are kept sealed with
the seller's keyring key and opened for one answer only; every change is a signed event."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from bsm_shared.contract.wire import build_event
from bsm_shared.runtime.consumer import Outgoing
from bsm_shared.runtime.keyring import Erased
from bsm_shared.topics import Topic

from ..access import Principal
from ..errors import ApiError
from ..models import (
    BuyerPreferencesIn, ErasureOut, LiftRestriction, Me, SellerSettingsIn, SellerSettingsOut,
)

if TYPE_CHECKING:
    from .gateway import Gateway


class Parties:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def me(self, who: Principal) -> Me:
        row = await self.gw.party(who.party_id)
        return Me(party_id=who.party_id, role=who.role,
                  locale=row["locale"] if row else None,
                  messaging_enabled=row["messaging_enabled"] if row and who.role == "seller"
                  else None,
                  restriction=row["restriction"] if row and who.role == "seller" else None,
                  unsolicited_opt_out=row["unsolicited_opt_out"] if row and who.role == "buyer"
                  else None)

    async def orders_by_alias(self, who: Principal, buyer_alias: str) -> dict[str, Any]:
        domain_name = self.gw.settings.mail_domain
        alias = buyer_alias.strip().lower()
        if "@" not in alias:
            alias = f"{alias}@{domain_name}"
        local, _, domain = alias.partition("@")
        well_formed = (domain == domain_name.lower() and 15 <= len(local) <= 16
                       and local.isascii() and local.isalnum())
        rel = await self.gw.pool.fetchrow(
            f"SELECT relationship_id, buyer_id FROM {self.gw.s}.relationship_aliases "
            f"WHERE buyer_alias = $1 AND seller_id = $2", alias, who.party_id,
        ) if well_formed else None
        if rel is None:  # unknown, or another seller's buyer: the same answer (no enumeration)
            raise ApiError(404, "alias_not_found",
                           f"No buyer of yours writes from {alias}. Check the address in the "
                           "buyer's message.")
        rows = await self.gw.pool.fetch(
            f"SELECT order_id, placed_at, status FROM {self.gw.s}.orders "
            f"WHERE buyer_id = $1 AND seller_id = $2 ORDER BY placed_at DESC NULLS LAST",
            rel["buyer_id"], who.party_id)
        return {"buyer_alias": alias, "relationship_id": rel["relationship_id"],
                "orders": [{"order_id": r["order_id"], "status": r["status"],
                            "placed_at": r["placed_at"].isoformat() if r["placed_at"] else None}
                           for r in rows]}

    async def seller_settings(self, seller_id: str) -> SellerSettingsOut:
        keyring = self.gw.keyring
        async with self.gw.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT messaging_enabled, opt_out_bounce_notices, sender_settings "
                f"FROM {self.gw.s}.parties WHERE party_id = $1", seller_id)
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

    async def change_seller_settings(self, seller_id: str, body: SellerSettingsIn) -> str:
        # Addresses travel sealed with the seller's own keyring key: readable by our services
        # now, by nobody once the seller is erased.
        keyring = self.gw.keyring
        async with self.gw.pool.acquire() as conn:

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
        return await self.gw.party_event(ev.SellerSettingsChangedEvent, data, seller_id)

    async def change_buyer_preferences(self, buyer_id: str, body: BuyerPreferencesIn) -> str:
        data = p.BuyerPreferencesChanged(buyer_id=buyer_id,
                                         unsolicited_opt_out=body.unsolicited_opt_out)
        return await self.gw.party_event(ev.BuyerPreferencesChangedEvent, data, buyer_id)

    async def erase(self, who: Principal, party_id: str, reason: str) -> ErasureOut:
        gw, keyring = self.gw, self.gw.keyring
        now = gw.rt.clock()
        event_id = gw.new_id()
        data = p.PartyErased(party_id=party_id, erased_at=now, requested_by=who.party_id,
                             reason=reason)
        event = build_event(ev.PartyErasedEvent, data, event_id=event_id, occurred_at=now,
                            producer=gw.producer, correlation_id=party_id)
        async with gw.pool.acquire() as conn, conn.transaction():
            first = await keyring.erase(conn, party_id, at=now, requested_by=who.party_id)
            if first:
                await gw.rt.record(conn, [Outgoing(Topic.PARTIES, party_id, event)])
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

    async def lift(self, who: Principal, seller_id: str, body: LiftRestriction) -> str:
        data = p.SellerMessagingRestrictionLifted(seller_id=seller_id, lifted_by=who.party_id,
                                                  lifted_at=self.gw.rt.clock(),
                                                  reason=body.reason)
        return await self.gw.party_event(ev.SellerMessagingRestrictionLiftedEvent, data,
                                         seller_id)
