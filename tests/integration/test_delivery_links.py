"""Delivered mail carries the signed "no response needed" / "report" links (issue 11, item 6;
E2, E4 from the mail itself), and the gateway acts on them: delivery and the gateway in this
process on the same topics, the mail read back from the stack's mail sink."""

from __future__ import annotations

import re
from datetime import timedelta

from bsm_delivery.app import create_runtime
from bsm_delivery.settings import DeliverySettings
from bsm_shared.runtime.links import LinkIssuer
from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_delivery_service import decision, recipient, sink_mail
from tests.stack import running

BASE = "http://gw.test"
LINK = re.compile(re.escape(BASE) + r"(/v1/links/[A-Za-z0-9_.%-]+)")


async def test_a_sellers_mail_carries_both_links_and_each_one_acts_at_the_gateway(
    kafka, prefix, settings_for, env, gateway_settings
):
    settings = settings_for(DeliverySettings, "delivery")
    issuer = LinkIssuer(gateway_settings.link_key_bytes(), BASE, timedelta(days=30))
    seller, buyer = "s-" + uid(), "b-" + uid()
    mid, value = decision(env, recipient_party_id=seller, recipient_role="seller",
                          sender_party_id=buyer, sender_role="buyer",
                          recipient_locale="es-ES", html="<p>¿Cuándo llega?</p>")
    async with running(create_runtime(settings, link_issuer=issuer)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        [delivered] = await kafka.collect(prefix + "bsm.messages.delivered",
                                          lambda e: e["data"]["message_id"] == mid)
    mail = sink_mail(env, mid)
    assert mail is not None
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    in_text = LINK.findall(text)
    assert len(in_text) == 2 and LINK.findall(html) == in_text
    assert "¿No necesita respuesta?" in text and "Denuncia este mensaje" in text
    # The record keeps the message as written: the links are the mail's, not the message's.
    assert "/v1/links/" not in str(delivered["data"])

    async with g.running_gateway(gateway_settings) as (app, http):
        await g.eventually(lambda: http.get(f"/v1/messages/{mid}", headers=g.auth(env, seller)),
                           lambda r: r.status_code == 200)
        pages = [await http.get(path) for path in in_text]
        done = [await http.post(path, data={"reason": "spam"}) for path in in_text]
    assert all(p.status_code == 200 and "<form method=post" in p.text for p in pages)
    assert [d.status_code for d in done] == [200, 200]
    [mark] = await kafka.collect(prefix + "bsm.messages.response-not-needed",
                                 lambda e: e["data"]["message_id"] == mid)
    [report] = await kafka.collect(prefix + "bsm.messages.reported",
                                   lambda e: e["data"]["message_id"] == mid)
    assert mark["data"]["party_id"] == seller
    assert (report["data"]["reporter_party_id"], report["data"]["reason"]) == (seller, "spam")


async def test_a_buyers_mail_carries_the_report_link_only(kafka, prefix, settings_for, env):
    settings = settings_for(DeliverySettings, "delivery")
    issuer = LinkIssuer(b"k" * 32, BASE, timedelta(days=30))
    buyer = "b-" + uid()
    mid, value = decision(env, recipient_party_id=buyer, recipient_role="buyer",
                          sender_role="seller", recipient_locale="de-DE")
    async with running(create_runtime(settings, link_issuer=issuer)):
        await kafka.publish(prefix + "bsm.parties", recipient(buyer, f"{uid()}@x.example"), buyer)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        await kafka.collect(prefix + "bsm.messages.delivered",
                            lambda e: e["data"]["message_id"] == mid)
    mail = sink_mail(env, mid)
    assert mail is not None
    text = mail.get_body(("plain",)).get_content()
    assert len(LINK.findall(text)) == 1 and "Diese Nachricht dem Marktplatz melden" in text
