"""The policy service's rulebook through real Kafka and PostgreSQL: opt-out (C6), the daily
limit counted atomically across instances (C7), vacation mode (C8) and the sanction ladder
(C10), with the reference data arriving on ``bsm.parties`` and ``bsm.orders``."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bsm_policy.app import create_runtime
from bsm_policy.settings import PolicySettings
from bsm_shared.blobs import blob_path
from bsm_shared.contract import MessageAddressedEvent
from bsm_shared.contract.events import SellerMessagingRestrictionLiftedEvent
from bsm_shared.contract.payloads import SellerMessagingRestrictionLifted
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from tests.factories import addressed, uid
from tests.stack import platform_event, running

SUBMITTED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class World:
    """One isolated buyer/seller world on the test's topics."""

    def __init__(self, kafka: Any, prefix: str, env: dict[str, str]) -> None:
        self.kafka, self.prefix, self.env = kafka, prefix, env
        self.seller = "seller-" + uid()
        self.published = 0

    async def platform(self, topic: str, etype: str, data: dict[str, Any], key: str) -> None:
        await self.kafka.publish(self.prefix + topic, platform_event(etype, data, key), key)
        self.published += 1

    async def order(self, buyer: str, *, status: str | None = None, **item: Any) -> str:
        oid = "o-" + uid()
        await self.platform("bsm.orders", "OrderPlaced", {
            "order_id": oid, "buyer_id": buyer, "seller_id": self.seller,
            "placed_at": "2026-11-18T09:00:00Z",
            "items": [{"sku": "silla", "category": "furniture", **item}]}, oid)
        if status:
            await self.platform("bsm.orders", "OrderStatusChanged", {
                "order_id": oid, "status": status, "changed_at": "2026-11-19T09:00:00Z"}, oid)
        return oid

    async def settled(self, rt: Any, timeout: float = 30.0) -> None:
        """Wait until the service applied every event published so far (with one instance)."""
        deadline = time.monotonic() + timeout
        while rt.consumer is None or rt.consumer.applied < self.published:
            assert time.monotonic() < deadline, "reference data was not applied in time"
            await asyncio.sleep(0.1)

    async def message(self, *, buyer: str, seller_sends: bool, **over: Any) -> str:
        rel = f"r-{buyer}-{self.seller}"
        parties = (
            dict(sender={"party_id": self.seller}, recipient={"party_id": buyer},
                 sender_party_id=self.seller, recipient_party_id=buyer, sender_role="seller",
                 recipient_role="buyer", conversation_started_by="seller",
                 contact_reason="unexpected_problem")
            if seller_sends else
            dict(sender={"party_id": buyer}, recipient={"party_id": self.seller},
                 sender_party_id=buyer, recipient_party_id=self.seller, sender_role="buyer",
                 recipient_role="seller", conversation_started_by="buyer")
        )
        data = addressed(**{"relationship_id": rel, "submitted_at": SUBMITTED, "order_id": None,
                            **parties, **over})
        event = build_event(MessageAddressedEvent, data, event_id=uuid.uuid4(),
                            occurred_at=datetime.now(UTC), producer="alias",
                            correlation_id=data.message_id)
        signer = Signer("alias", load_private_key(self.env["BSM_ALIAS_SIGNING_KEY"]))
        await self.kafka.publish(self.prefix + "bsm.messages.addressed", to_wire(event, signer), rel)
        self.published += 1
        return data.message_id

    async def checked(self, *ids: str) -> dict[str, dict[str, Any]]:
        wanted = set(ids)
        events = await self.kafka.collect(self.prefix + "bsm.messages.policy-checked",
                                          lambda e: e["data"]["message_id"] in wanted,
                                          count=len(wanted))
        return {e["data"]["message_id"]: e["data"] for e in events}


REPLY = dict(in_reply_to="m-0", conversation_started_by="buyer", contact_reason=None)


def codes(checked: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["rule"], v["code"]) for v in checked["violations"]]


async def test_c6_an_opted_out_buyer_gets_essential_messages_and_replies_but_not_others(
    kafka, prefix, settings_for, env
):
    w = World(kafka, prefix, env)
    buyer = "buyer-" + uid()
    async with running(create_runtime(settings_for(PolicySettings, "policy"))) as rt:
        await w.platform("bsm.parties", "BuyerPreferencesChanged",
                         {"buyer_id": buyer, "unsolicited_opt_out": True}, buyer)
        oid = await w.order(buyer)
        await w.settled(rt)
        chatty = await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                                 contact_reason="confirm_order_details",
                                 text="¿Prefiere el color roble o nogal?", sender_locale="es-ES")
        essential = await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                                    contact_reason="unexpected_problem",
                                    text="El color elegido está agotado; le avisamos del plazo.")
        important = await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                                    contact_reason="confirm_order_details",
                                    subject="[Important] Falta el número de portal",
                                    text="Necesitamos el número de portal para entregar.")
        out = await w.checked(chatty, essential, important)
    assert codes(out[chatty]) == [("C6", "buyer_opted_out")]
    assert "[Important]" in out[chatty]["violations"][0]["remedy"]
    assert out[chatty]["violations"][0]["detail"].startswith("El comprador")
    assert out[essential]["verdict"] == "approved" and out[essential]["essential"]
    assert out[important]["verdict"] == "approved" and out[important]["essential"]


async def test_c7_the_daily_limit_is_counted_atomically_across_two_policy_instances(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", daily_limit_base=5, daily_limit_factor=0)
    w = World(kafka, prefix, env)
    buyers = ["buyer-" + uid() for _ in range(12)]
    # Two instances in one consumer group, one schema: the topic's partitions are split between
    # them, so the same seller's messages are decided by both at once.
    async with running(create_runtime(settings)), running(create_runtime(settings)):
        # Replies inside buyer-started conversations: they need no order, and count all the same.
        ids = [await w.message(buyer=b, seller_sends=True, text="Su envío se retrasa un día.",
                               **REPLY) for b in buyers]
        out = await w.checked(*ids)
    verdicts = [out[i]["verdict"] for i in ids]
    assert verdicts.count("approved") == 5
    stopped = [out[i] for i in ids if out[i]["verdict"] == "rejected"]
    assert all(codes(c) == [("C7", "daily_limit_reached")] for c in stopped)


async def test_c7_buyer_messages_do_not_count_towards_the_sellers_daily_limit(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", daily_limit_base=1, daily_limit_factor=0)
    w = World(kafka, prefix, env)
    async with running(create_runtime(settings)):
        asks = [await w.message(buyer="buyer-" + uid(), seller_sends=False, text="¿Hay stock?")
                for _ in range(3)]
        first = await w.message(buyer="buyer-" + uid(), seller_sends=True, text="Un retraso.",
                                **REPLY)
        await w.checked(*asks, first)
        second = await w.message(buyer="buyer-" + uid(), seller_sends=True, text="Otro retraso.",
                                 **REPLY)
        out = await w.checked(*asks, first, second)
    assert all(out[a]["verdict"] == "approved" for a in asks)
    assert out[first]["verdict"] == "approved"
    assert codes(out[second]) == [("C7", "daily_limit_reached")]


async def test_c8_in_vacation_mode_new_buyers_cannot_start_a_conversation_but_existing_ones_can(
    kafka, prefix, settings_for, env
):
    w = World(kafka, prefix, env)
    regular, newcomer = "buyer-" + uid(), "buyer-" + uid()
    async with running(create_runtime(settings_for(PolicySettings, "policy"))) as rt:
        before = await w.message(buyer=regular, seller_sends=False, text="¿Cuándo sale?")
        await w.checked(before)
        await w.platform("bsm.parties", "SellerSettingsChanged",
                         {"seller_id": w.seller, "messaging_enabled": False}, w.seller)
        await w.settled(rt)
        again = await w.message(buyer=regular, seller_sends=False, text="¿Y la factura?")
        new = await w.message(buyer=newcomer, seller_sends=False, text="¿Tienen la mesa?",
                              sender_locale="it-IT")
        out = await w.checked(before, again, new)
    assert out[again]["verdict"] == "approved"
    assert codes(out[new]) == [("C8", "seller_messaging_off")]
    assert "venditore" in out[new]["violations"][0]["detail"]


async def test_c8_a_platform_fulfilled_seller_has_messaging_off_until_turned_on(
    kafka, prefix, settings_for, env
):
    w = World(kafka, prefix, env)
    async with running(create_runtime(settings_for(PolicySettings, "policy"))) as rt:
        await w.platform("bsm.parties", "SellerSettingsChanged",
                         {"seller_id": w.seller, "fulfilment": "platform"}, w.seller)
        await w.settled(rt)
        off = await w.message(buyer="buyer-" + uid(), seller_sends=False, text="¿Hola?")
        await w.checked(off)
        await w.platform("bsm.parties", "SellerSettingsChanged",
                         {"seller_id": w.seller, "messaging_enabled": True}, w.seller)
        await w.settled(rt)
        on = await w.message(buyer="buyer-" + uid(), seller_sends=False, text="¿Hola?")
        out = await w.checked(off, on)
    assert codes(out[off]) == [("C8", "seller_messaging_off")]
    assert out[on]["verdict"] == "approved"


async def test_c10_repeated_violations_restrict_the_seller_by_a_signed_event_until_lifted(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", sanction_strikes=2)
    w = World(kafka, prefix, env)
    buyer = "buyer-" + uid()
    async with running(create_runtime(settings)) as rt:
        oid = await w.order(buyer)
        await w.settled(rt)
        bad = [await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                               text=f"Llámeme al +34 612 34 56 7{i}, por favor.",
                               submitted_at=SUBMITTED + timedelta(minutes=i))
               for i in range(2)]
        await w.checked(*bad)
        [restricted] = await kafka.collect(
            prefix + "bsm.parties",
            lambda e: e["type"] == "SellerMessagingRestricted" and e["data"]["seller_id"] == w.seller)
        clean = await w.message(buyer=buyer, seller_sends=True, text="Su envío se retrasa.",
                                order_id=oid, submitted_at=SUBMITTED + timedelta(hours=1),
                                sender_locale="de-DE")
        reply = await w.message(buyer=buyer, seller_sends=True, text="Sale mañana.", **REPLY,
                                submitted_at=SUBMITTED + timedelta(hours=1))
        stopped = await w.checked(clean, reply)
        # An operator lifts it (the gateway signs that event).
        lifted = SellerMessagingRestrictionLifted(
            seller_id=w.seller, lifted_by="operator-1",
            lifted_at=SUBMITTED + timedelta(hours=2), reason="appeal accepted")
        event = build_event(SellerMessagingRestrictionLiftedEvent, lifted, event_id=uuid.uuid4(),
                            occurred_at=datetime.now(UTC), producer="gateway",
                            correlation_id=w.seller)
        signer = Signer("gateway", load_private_key(env["BSM_GATEWAY_SIGNING_KEY"]))
        await kafka.publish(prefix + "bsm.parties", to_wire(event, signer), w.seller)
        w.published += 2  # the lift, and our own restriction coming back on bsm.parties
        await w.settled(rt)
        after = await w.message(buyer=buyer, seller_sends=True, text="Su envío se retrasa.",
                                order_id=oid, submitted_at=SUBMITTED + timedelta(hours=3))
        out = await w.checked(after)
    assert restricted["producer"] == "policy" and restricted["signature"]
    data = restricted["data"]
    assert data["level"] == "restricted" and data["violation_count"] == 2
    assert data["until"].startswith((SUBMITTED + timedelta(minutes=1, days=5)).date().isoformat())
    assert codes(stopped[clean]) == [("C10", "seller_restricted")]
    assert "eingeschränkt" in stopped[clean]["violations"][0]["detail"]
    assert stopped[reply]["verdict"] == "approved"
    assert out[after]["verdict"] == "approved"


def _gif(frames: int) -> bytes:
    head = b"GIF89a" + (1).to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00" * 2
    frame = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + b"\x00\x00" * 2
             + (1).to_bytes(2, "little") * 2 + b"\x00" + b"\x02\x02\x44\x01\x00")
    return head + frame * frames + b"\x3b"


async def test_c4_an_animated_gif_attachment_is_judged_from_the_stored_file_not_its_name(
    kafka, prefix, settings_for, env, tmp_path
):
    import hashlib

    refs = {}
    for name, frames in (("still", 1), ("moving", 8)):
        content = _gif(frames)
        digest = hashlib.sha256(content).hexdigest()
        blob_path(tmp_path, digest).parent.mkdir(exist_ok=True)
        blob_path(tmp_path, digest).write_bytes(content)
        refs[name] = {"sha256": digest, "size": len(content), "filename": "foto.jpg",
                      "content_type": "image/gif"}
    w = World(kafka, prefix, env)
    buyer = "buyer-" + uid()
    async with running(create_runtime(settings_for(PolicySettings, "policy",
                                                   blob_dir=str(tmp_path)))) as rt:
        oid = await w.order(buyer)
        await w.settled(rt)
        ids = {name: await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                                     contact_reason="additional_information_required",
                                     text="Le adjunto una foto del grabado para confirmarlo.",
                                     attachments=[ref])
               for name, ref in refs.items()}
        out = await w.checked(*ids.values())
    assert out[ids["still"]]["verdict"] == "approved"
    [v] = out[ids["moving"]]["violations"]
    assert (v["rule"], v["code"], v["span"]["element"]) == ("C4", "animated_gif", "foto.jpg")


async def test_order_status_changes_are_applied_so_a_review_request_after_delivery_is_approved(
    kafka, prefix, settings_for, env
):
    """Finding 1 of issue 10: every OrderStatusChanged was dead-lettered (a parameter typed both
    text and timestamptz), so policy judged every order as placed: a review request ten days
    after delivery bounced with C1/C2 and counted as a strike. The decision must change."""
    w = World(kafka, prefix, env)
    buyer = "buyer-" + uid()
    oid = "o-" + uid()
    async with running(create_runtime(settings_for(PolicySettings, "policy"))) as rt:
        await w.platform("bsm.orders", "OrderPlaced", {
            "order_id": oid, "buyer_id": buyer, "seller_id": w.seller,
            "placed_at": "2026-11-01T09:00:00Z",
            "items": [{"sku": "silla", "category": "furniture"}]}, oid)
        for status, at in (("shipped", "2026-11-03T09:00:00Z"),
                           ("delivered", "2026-11-08T09:00:00Z")):
            await w.platform("bsm.orders", "OrderStatusChanged",
                             {"order_id": oid, "status": status, "changed_at": at}, oid)
        await w.settled(rt)
        assert rt.consumer.dead_lettered == 0
        review = await w.message(buyer=buyer, seller_sends=True, order_id=oid,
                                 contact_reason="review_request",
                                 text="We hope the chair arrived well. Would you leave an honest "
                                      "review of your purchase?")
        out = await w.checked(review)
    assert out[review]["verdict"] == "approved", codes(out[review])
