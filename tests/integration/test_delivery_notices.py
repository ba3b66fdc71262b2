"""Bounce notices from the delivery service in this process, to the real mail sink."""

import asyncio
import base64
import uuid
from datetime import UTC, datetime

from bsm_delivery.app import create_runtime
from bsm_delivery.settings import DeliverySettings
from bsm_shared.contract import BouncedEvent
from bsm_shared.contract.payloads import Bounced
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from bsm_shared.runtime.transit import seal
from tests.factories import uid
from tests.mail_support import recent_paths, sink_mail
from tests.stack import platform_event, running


def alias_bounce(env, sender: str, reason: str = "unknown_reply_target") -> tuple[str, bytes]:
    mid = "m-" + uid()
    data = Bounced(message_id=mid, stage="alias", reason_code=reason, rule="E6",
                   explanation="The message this replies to is not known.",
                   remedy="Reply from the conversation in the message center.",
                   bounced_at=datetime.now(UTC), sender_party_id=sender)
    event = build_event(BouncedEvent, data, event_id=uuid.uuid4(), occurred_at=datetime.now(UTC),
                        producer="alias", correlation_id=mid)
    signer = Signer("alias", load_private_key(env["BSM_ALIAS_SIGNING_KEY"]))
    return mid, to_wire(event, signer)


async def test_a_sellers_bounce_notice_goes_to_the_customer_service_address_in_their_language(
    kafka, prefix, settings_for, env
):
    settings = settings_for(DeliverySettings, "delivery", transit_key=env["BSM_TRANSIT_KEY"])
    seller, buyer = "s-" + uid(), "b-" + uid()
    registered, service = f"ventas.{uid()}@shop.example", f"soporte.{uid()}@shop.example"
    key = base64.b64decode(env["BSM_TRANSIT_KEY"])
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
            "party_id": seller, "role": "seller", "email": registered, "display_name": "Sol",
            "locale": "fr-FR"}, seller), seller)
        await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
            "party_id": buyer, "role": "buyer", "email": f"ana.{uid()}@buyer.example",
            "display_name": "Ana", "locale": "it-IT"}, buyer), buyer)
        await kafka.publish(prefix + "bsm.parties", platform_event("SellerSettingsChanged", {
            "seller_id": seller, "customer_service_email": seal(
                key, service, "SellerSettingsChanged.customer_service_email")}, seller), seller)
        await asyncio.sleep(1.0)
        to_seller, raw = alias_bounce(env, seller)
        await kafka.publish(prefix + "bsm.messages.bounced", raw, to_seller)
        to_buyer, raw = alias_bounce(env, buyer)
        await kafka.publish(prefix + "bsm.messages.bounced", raw, to_buyer)
        stranger, raw = alias_bounce(env, "nobody-" + uid())
        await kafka.publish(prefix + "bsm.messages.bounced", raw, stranger)
        seller_notice = await sink_mail(
            env["BSM_MAIL_SINK_DIR"], lambda m: m["Message-ID"] == f"<notice-{to_seller}@{env['BSM_MAIL_DOMAIN']}>")
        buyer_notice = await sink_mail(
            env["BSM_MAIL_SINK_DIR"], lambda m: m["Message-ID"] == f"<notice-{to_buyer}@{env['BSM_MAIL_DOMAIN']}>")
        await asyncio.sleep(1.0)
    assert seller_notice["X-Bsm-Sink-Envelope-To"] == service
    assert seller_notice["Subject"] == "Votre message n'a pas été remis"
    assert "Règle: E6" in seller_notice.get_content()
    assert buyer_notice["Subject"] == "Il tuo messaggio non è stato consegnato"
    assert not [p for p in recent_paths(env["BSM_MAIL_SINK_DIR"])
                if f"notice-{stranger}".encode() in p.read_bytes()], \
        "no notice for a sender who is not a registered party"
