"""The gateway in this process against the real Kafka and PostgreSQL: its read model is fed
with the signed events the upstream services publish; its writes come out as events."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg
from httpx import ASGITransport, AsyncClient

from bsm_gateway.app import create_app
from bsm_shared.contract import payloads as p
from bsm_shared.contract.events import parse_event
from bsm_shared.runtime import links
from bsm_shared.runtime.keyring import sealed_party
from tests import gateway_support as g
from tests.factories import uid
from tests.stack import platform_event




async def seed(kafka, env, prefix: str, *, subject: str = "Where is my chair?") -> dict[str, str]:
    """A buyer (es-ES) and a seller with an order, and one delivered buyer message."""
    ids = {k: f"{k}-{uid()}" for k in ("buyer", "seller", "order", "conv", "rel", "msg")}
    b, s, o = ids["buyer"], ids["seller"], ids["order"]
    await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
        "party_id": b, "role": "buyer", "email": f"{b}@private.example", "display_name": "Ana",
        "locale": "es-ES"}, b), b)
    await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
        "party_id": s, "role": "seller", "email": f"{s}@private.example",
        "display_name": "Sol"}, s), s)
    await kafka.publish(prefix + "bsm.orders", platform_event("OrderPlaced", {
        "order_id": o, "buyer_id": b, "seller_id": s, "placed_at": "2026-11-20T10:00:00Z"}, o), o)
    common = dict(message_id=ids["msg"], conversation_id=ids["conv"], relationship_id=ids["rel"],
                  sender=b, recipient=s, sender_role="buyer", order_id=o, subject=subject,
                  text="It has not arrived.")
    await kafka.publish(prefix + "bsm.messages.addressed", g.addressed(env, **common), ids["rel"])
    await kafka.publish(prefix + "bsm.messages.delivered", g.delivered(env, **common), ids["rel"])
    return ids


def views(listing: Any) -> list[str]:
    return [c["conversation_id"] for c in listing.json()["conversations"]]


async def test_each_party_reads_only_its_own_conversations_found_by_order_id_never_by_subject(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix, subject="Broken table leg")
        b = await seed(kafka, env, prefix)
        seller_a, buyer_a = g.auth(env, a["seller"]), g.auth(env, a["buyer"], "buyer")

        inbox = await g.eventually(lambda: http.get("/v1/conversations", headers=seller_a),
                                   lambda r: r.status_code == 200 and views(r) == [a["conv"]])
        by_order = await http.get("/v1/conversations", params={"order_id": a["order"],
                                                               "filter": "all"}, headers=seller_a)
        by_subject = await http.get("/v1/conversations", params={"order_id": "Broken",
                                                                 "filter": "all"}, headers=seller_a)
        other_order = await http.get("/v1/conversations", params={"order_id": b["order"]},
                                     headers=seller_a)
        foreign = await http.get(f"/v1/conversations/{b['conv']}", headers=seller_a)
        foreign_msg = await http.get(f"/v1/messages/{b['msg']}", headers=seller_a)
        mine = await http.get(f"/v1/conversations/{a['conv']}", headers=seller_a)
        buyer_sent = await http.get("/v1/conversations", params={"filter": "sent"},
                                    headers=buyer_a)
        dispute = await g.eventually(
            lambda: http.get("/v1/conversations", params={"filter": "all"},
                             headers=g.auth(env, "trust-1", "dispute")),
            lambda r: {a["conv"], b["conv"]} <= set(views(r)))
        dispute_send = await http.post("/v1/messages", json={"order_id": a["order"], "text": "x"},
                                       headers=g.auth(env, "trust-1", "dispute"))
        operator_read = await http.get("/v1/conversations", headers=g.auth(env, "op", "operator"))
        anonymous = await http.get("/v1/conversations")
        forged = await http.get("/v1/conversations",
                                headers={"Authorization": "Bearer not.a.token"})

    assert inbox.json()["filter"] == "response_needed"
    assert views(by_order) == [a["conv"]] and views(by_subject) == []
    assert views(other_order) == []
    assert foreign.status_code == 404 and foreign.json()["error"] == "conversation_not_found"
    assert foreign_msg.status_code == 404
    thread = mine.json()
    assert thread["state"] == "open" and thread["view"] == "response_needed"
    [message] = thread["message_list"]
    assert message["outcome"]["status"] == "delivered" and message["text"] == "It has not arrived."
    assert views(buyer_sent) == [a["conv"]]
    assert {a["conv"], b["conv"]} <= set(views(dispute))
    assert dispute_send.status_code == 403 and dispute_send.json()["error"] == "role_cannot_write"
    assert operator_read.status_code == 403
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"error", "detail"}
    assert forged.status_code == 401


async def test_marking_and_reporting_are_events_keyed_by_relationship_that_move_the_conversation(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        seller, buyer = g.auth(env, a["seller"]), g.auth(env, a["buyer"], "buyer")
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=seller),
                           lambda r: r.status_code == 200
                           and r.json()["outcome"]["status"] == "delivered")
        by_sender = await http.post(f"/v1/messages/{a['msg']}/no-response-needed", headers=buyer)
        marked = await http.post(f"/v1/messages/{a['msg']}/no-response-needed", headers=seller)
        again = await http.post(f"/v1/messages/{a['msg']}/no-response-needed", headers=seller)
        moved = await g.eventually(
            lambda: http.get("/v1/conversations", params={"filter": "no_response_needed"},
                             headers=seller), lambda r: views(r) == [a["conv"]])
        needed = await http.get("/v1/conversations", headers=seller)
        reported = await http.post(f"/v1/messages/{a['msg']}/reports", headers=seller,
                                   json={"reason": "spam"})
        no_reason = await http.post(f"/v1/messages/{a['msg']}/reports", headers=seller, json={})
    rnn = await kafka.collect(prefix + "bsm.messages.response-not-needed",
                              lambda e: e["data"]["message_id"] == a["msg"], settle=1.0)
    reports = await kafka.collect(prefix + "bsm.messages.reported",
                                  lambda e: e["data"]["message_id"] == a["msg"])
    assert by_sender.status_code == 403 and by_sender.json()["error"] == "not_the_recipient"
    assert marked.status_code == 202 and again.json()["event_id"] == marked.json()["event_id"]
    # The repeat is the same event (same id): consumers drop the duplicate.
    assert {e["event_id"] for e in rnn} == {marked.json()["event_id"]}
    assert rnn[0]["producer"] == "gateway" and rnn[0]["signature"]
    assert parse_event(rnn[0]).data.party_id == a["seller"]
    assert views(moved) == [a["conv"]] and views(needed) == []
    assert reported.status_code == 202 and reports[0]["data"]["reason"] == "spam"
    assert reports[0]["data"]["reporter_party_id"] == a["seller"]
    assert no_reason.status_code == 422 and no_reason.json()["error"] == "invalid_request"


async def test_a_reply_goes_out_as_message_submitted_with_the_sender_the_token_names(
    kafka, env, prefix, gateway_settings
):
    app = create_app(gateway_settings)
    dev = create_app(gateway_settings.model_copy(update={"dev_unauthenticated": True}))
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://gw")
        a = await seed(kafka, env, prefix)
        seller = g.auth(env, a["seller"])
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=seller),
                           lambda r: r.status_code == 200)
        reply = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": a["msg"], "text": "It ships today.", "sender_party_id": a["seller"]})
        impostor = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": a["msg"], "text": "x", "sender_party_id": a["buyer"]})
        stranger = await http.post("/v1/messages", headers=g.auth(env, "seller-x"), json={
            "in_reply_to": a["msg"], "text": "x"})
        anonymous = await http.post("/v1/messages", json={
            "sender_party_id": a["seller"], "recipient_party_id": a["buyer"], "text": "x"})
        pending = await http.get(f"/v1/messages/{reply.json()['message_id']}", headers=seller)
    async with dev.router.lifespan_context(dev):
        http = AsyncClient(transport=ASGITransport(app=dev), base_url="http://gw")
        skeleton = await http.post("/v1/messages", json={
            "sender_party_id": a["seller"], "recipient_party_id": a["buyer"], "text": "old way"})
    [submitted] = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: e["data"]["message_id"] == reply.json()["message_id"])
    assert reply.status_code == 202
    data = parse_event(submitted).data
    assert (data.sender.party_id, data.recipient.party_id) == (a["seller"], a["buyer"])
    assert data.in_reply_to == a["msg"] and data.order_id == a["order"]
    assert submitted["producer"] == "gateway" and submitted["signature"]
    assert pending.json()["outcome"]["status"] == "submitted"
    assert impostor.status_code == 403 and stranger.status_code == 404
    assert anonymous.status_code == 401
    assert skeleton.status_code == 202


async def test_a_bounced_message_shows_its_rule_and_explanation_to_its_sender(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        mid = "m-" + uid()
        common = dict(message_id=mid, conversation_id=a["conv"], relationship_id=a["rel"],
                      sender=a["seller"], recipient=a["buyer"], sender_role="seller",
                      order_id=a["order"], text="call me at 600 000 000")
        await kafka.publish(prefix + "bsm.messages.addressed", g.addressed(env, **common),
                            a["rel"])
        await kafka.publish(prefix + "bsm.messages.bounced", g.bounced(env, **common), a["rel"])
        seller = g.auth(env, a["seller"])
        thread = await g.eventually(
            lambda: http.get(f"/v1/conversations/{a['conv']}", headers=seller),
            lambda r: r.status_code == 200 and any(
                m["outcome"]["status"] == "bounced" for m in r.json()["message_list"]))
        buyer_view = await http.get(f"/v1/conversations/{a['conv']}",
                                    headers=g.auth(env, a["buyer"], "buyer"))
    bounce = next(m for m in thread.json()["message_list"] if m["message_id"] == mid)
    assert bounce["outcome"]["bounce"]["rule"] == "C4"
    assert "phone number" in bounce["outcome"]["bounce"]["explanation"]
    # A bounced reply asks nothing of anyone: the buyer's message still needs the response.
    assert thread.json()["view"] == "response_needed"
    assert buyer_view.json()["view"] == "sent"


async def test_settings_travel_sealed_and_only_operators_lift_a_sanction(
    kafka, env, prefix, gateway_settings
):
    app = create_app(gateway_settings)
    seller = "seller-" + uid()
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://gw")
        changed = await http.put(f"/v1/sellers/{seller}/settings", headers=g.auth(env, seller),
                                 json={"authorized_senders": ["ventas@sol.example"],
                                       "messaging_enabled": False})
        other = await http.put(f"/v1/sellers/{seller}/settings",
                               headers=g.auth(env, "seller-x"), json={"messaging_enabled": True})
        opt_out = await http.put("/v1/buyers/b-1/preferences", headers=g.auth(env, "b-1", "buyer"),
                                 json={"unsolicited_opt_out": True})
        by_seller = await http.post(f"/v1/sellers/{seller}/restriction/lift",
                                    headers=g.auth(env, seller), json={"reason": "please"})
        lifted = await http.post(f"/v1/sellers/{seller}/restriction/lift",
                                 headers=g.auth(env, "op-1", "operator"), json={"reason": "ok"})
    events = await kafka.collect(prefix + "bsm.parties",
                                 lambda e: e["correlation_id"] in (seller, "b-1"), count=3)
    by_type = {e["type"]: e for e in events}
    settings_event = by_type["SellerSettingsChanged"]
    [sealed] = settings_event["data"]["authorized_senders"]
    assert changed.status_code == 202 and other.status_code == 403
    assert "ventas@sol.example" not in json.dumps(settings_event)
    assert sealed_party(sealed) == seller  # sealed with the seller's own key: erasable
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:
        assert await gateway_settings.keyring().open(
            conn, sealed, "SellerSettingsChanged.authorized_senders") == "ventas@sol.example"
    finally:
        await conn.close()
    assert settings_event["data"]["messaging_enabled"] is False
    assert opt_out.status_code == 202
    assert by_type["BuyerPreferencesChanged"]["data"]["unsolicited_opt_out"] is True
    assert by_seller.status_code == 403 and lifted.status_code == 202
    assert by_type["SellerMessagingRestrictionLifted"]["data"]["lifted_by"] == "op-1"
    assert by_type["SellerMessagingRestrictionLifted"]["signature"]


async def test_a_signed_mail_link_confirms_on_get_and_acts_on_post(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}",
                                            headers=g.auth(env, a["seller"])),
                           lambda r: r.status_code == 200)
        key = gateway_settings.link_key_bytes()
        token = links.make_token(key, links.ActionToken(
            "report", a["msg"], a["seller"], g.now() + timedelta(days=7)))
        page = await http.get(f"/v1/links/{token}")
        # E4: the form's reason comes from the fixed list; `other` needs words.
        unsaid = await http.post(f"/v1/links/{token}", data={"reason": "other"})
        free_text = await http.post(f"/v1/links/{token}", data={"reason": "abusive"})
        done = await http.post(f"/v1/links/{token}", data={"reason": "other",
                                                           "text": "abusive"})
        forged = await http.get(f"/v1/links/{token[:-3]}abc")
    [report] = await kafka.collect(prefix + "bsm.messages.reported",
                                   lambda e: e["data"]["message_id"] == a["msg"])
    assert page.status_code == 200 and "<form method=post" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert all(f'value={r} required' in page.text for r in p.REPORT_REASONS)
    for refused in (unsaid, free_text):  # shown again, saying what is missing; nothing sent
        assert refused.status_code == 422 and "role=alert" in refused.text
    assert done.status_code == 200 and report["data"]["reason"] == "other"
    assert report["data"]["text"] == "abusive"
    assert report["data"]["reporter_party_id"] == a["seller"]
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_link"


async def test_a_sellers_settings_come_back_opened_for_them_and_are_kept_sealed_until_erased(
    kafka, env, prefix, gateway_settings
):
    seller, address = "seller-" + uid(), f"ventas.{uid()}@sol.example"
    async with g.running_gateway(gateway_settings) as (app, http):
        await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
            "party_id": seller, "role": "seller", "email": f"{uid()}@sol.example",
            "display_name": "Sol"}, seller), seller)
        # An outside producer's plaintext settings: the read model seals them itself.
        await kafka.publish(prefix + "bsm.parties", platform_event("SellerSettingsChanged", {
            "seller_id": seller, "authorized_senders": [address], "blocked_senders": [],
            "customer_service_email": "atencion@sol.example", "opt_out_bounce_notices": True},
            seller), seller)
        shown = await g.eventually(
            lambda: http.get(f"/v1/sellers/{seller}/settings", headers=g.auth(env, seller)),
            lambda r: r.status_code == 200 and r.json()["authorized_senders"] == [address])
        stored = await app.state.runtime.pool.fetchval(
            f"SELECT sender_settings::text FROM {gateway_settings.db_schema}.parties "
            f"WHERE party_id = $1", seller)
        by_buyer = await http.get(f"/v1/sellers/{seller}/settings",
                                  headers=g.auth(env, "b-1", "buyer"))
        erased = await http.post(f"/v1/parties/{seller}/erasure", json={"reason": "test"},
                                 headers=g.auth(env, "op-1", "operator"))
        after = await g.eventually(
            lambda: http.get(f"/v1/sellers/{seller}/settings",
                             headers=g.auth(env, "op-1", "operator")),
            lambda r: r.json()["authorized_senders"] is None)
    assert shown.json()["customer_service_email"] == "atencion@sol.example"
    assert shown.json()["opt_out_bounce_notices"] is True
    assert address not in stored and "atencion" not in stored and "pii:v1:" in stored
    assert by_buyer.status_code == 403
    assert erased.status_code == 202 and erased.json()["status"] == "erased"
    assert after.json()["customer_service_email"] is None
