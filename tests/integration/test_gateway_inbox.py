"""The inbox's API (issue 13): pages with an opaque keyset cursor, search by order id ignoring
case and surrounding spaces, both parties' names opened for the answer (an erased party shown
as erased), the time the seller's answer is due, and a template changed in one step."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests import gateway_support as g
from tests.factories import uid
from tests.stack import platform_event


async def register(kafka, prefix: str, party: str, role: str, name: str) -> None:
    await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
        "party_id": party, "role": role, "email": f"{uid()}@private.example",
        "display_name": name, "locale": "es-ES"}, party), party)


async def message(kafka, env, prefix: str, *, sender: str, recipient: str, role: str,
                  order: str, conv: str, rel: str, subject: str = "Hola") -> str:
    """One message addressed and delivered (as alias and delivery publish them)."""
    mid = "m-" + uid()
    common = dict(message_id=mid, conversation_id=conv, relationship_id=rel, sender=sender,
                  recipient=recipient, sender_role=role, order_id=order, subject=subject,
                  started_by="buyer")
    await kafka.publish(prefix + "bsm.messages.addressed", g.addressed(env, **common), rel)
    await kafka.publish(prefix + "bsm.messages.delivered", g.delivered(env, **common), rel)
    return mid


def ids(listing: Any) -> list[str]:
    return [c["conversation_id"] for c in listing.json()["conversations"]]


async def test_the_inbox_pages_newest_first_by_cursor_and_finds_an_order_ignoring_case(
    kafka, env, prefix, gateway_settings
):
    seller, buyer = "seller-" + uid(), "buyer-" + uid()
    orders = [f"Order-AbC-{i}-{uid()}" for i in range(5)]
    convs = [f"conv-{i}-{uid()}" for i in range(5)]
    async with g.running_gateway(gateway_settings) as (app, http):
        for order, conv in zip(orders, convs, strict=True):
            await message(kafka, env, prefix, sender=buyer, recipient=seller, role="buyer",
                          order=order, conv=conv, rel="rel-" + uid())
        auth = g.auth(env, seller)
        whole = await g.eventually(
            lambda: http.get("/v1/conversations", headers=auth),
            lambda r: r.status_code == 200 and len(ids(r)) == 5)
        pages, cursor = [], None
        while True:
            page = await http.get("/v1/conversations", headers=auth,
                                  params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            pages.append(page.json())
            cursor = page.json()["next"]
            if cursor is None:
                break
        found = await http.get("/v1/conversations", headers=auth,
                               params={"order_id": f"  {orders[2].upper()}  ", "filter": "all"})
        forged = await http.get("/v1/conversations", headers=auth,
                                params={"cursor": "bm90IG91cnM"})
        too_many = await http.get("/v1/conversations", headers=auth, params={"limit": 101})

    listed = whole.json()["conversations"]
    keys = [(c["last_message_at"], c["conversation_id"]) for c in listed]
    assert keys == sorted(keys, reverse=True) and whole.json()["next"] is None
    assert [len(p["conversations"]) for p in pages] == [2, 2, 1]
    assert [c["conversation_id"] for p in pages for c in p["conversations"]] == ids(whole)
    assert ids(found) == [convs[2]] and found.json()["order_id"] == orders[2].upper()
    assert forged.status_code == 422 and forged.json()["error"] == "invalid_cursor"
    assert too_many.status_code == 422


async def test_summaries_name_both_parties_sealed_at_rest_and_an_erased_party_as_erased(
    kafka, env, prefix, gateway_settings
):
    seller, buyer, late = "seller-" + uid(), "buyer-" + uid(), "buyer-" + uid()
    order, conv, late_conv = "order-" + uid(), "conv-" + uid(), "conv-" + uid()
    async with g.running_gateway(gateway_settings) as (app, http):
        await register(kafka, prefix, seller, "seller", "Muebles Sol")
        await register(kafka, prefix, buyer, "buyer", "Ana García")
        await message(kafka, env, prefix, sender=buyer, recipient=seller, role="buyer",
                      order=order, conv=conv, rel="rel-" + uid())
        # A buyer whose registration the read model never saw: named as its mail shows it.
        await message(kafka, env, prefix, sender=late, recipient=seller, role="buyer",
                      order="order-" + uid(), conv=late_conv, rel="rel-" + uid())
        auth = g.auth(env, seller)
        before = await g.eventually(
            lambda: http.get("/v1/conversations", headers=auth),
            lambda r: r.status_code == 200 and len(ids(r)) == 2
            and all(c["buyer_name"] for c in r.json()["conversations"]))
        thread = await http.get(f"/v1/conversations/{conv}", headers=auth)
        as_buyer = await http.get("/v1/conversations", headers=g.auth(env, buyer, "buyer"),
                                  params={"filter": "all"})
        stored = await app.state.runtime.pool.fetch(
            f"SELECT display_name FROM {gateway_settings.db_schema}.party_names "
            f"WHERE party_id = ANY($1::text[])", [seller, buyer, late])
        erased = await http.post(f"/v1/parties/{buyer}/erasure", json={"reason": "test"},
                                 headers=g.auth(env, "op-1", "operator"))
        after = await http.get("/v1/conversations", headers=auth,
                               params={"order_id": order})

    names = {c["conversation_id"]: c for c in before.json()["conversations"]}
    assert names[conv]["buyer_name"] == "Ana García"
    assert names[conv]["seller_name"] == "Muebles Sol"
    assert names[late_conv]["buyer_name"] == "Someone"
    assert thread.json()["buyer_name"] == "Ana García" and not thread.json()["buyer_erased"]
    assert as_buyer.json()["conversations"][0]["seller_name"] == "Muebles Sol"
    assert len(stored) == 3 and all(r["display_name"].startswith("pii:v1:") for r in stored)
    assert not any("Ana" in r["display_name"] or "Sol" in r["display_name"] for r in stored)
    assert erased.status_code == 202
    [gone] = after.json()["conversations"]
    assert gone["buyer_name"] is None and gone["buyer_erased"] is True
    assert gone["seller_name"] == "Muebles Sol" and gone["seller_erased"] is False


async def test_the_answer_is_due_a_day_after_the_oldest_unanswered_buyer_message(
    kafka, env, prefix, gateway_settings
):
    seller, buyer = "seller-" + uid(), "buyer-" + uid()
    order, conv, rel = "order-" + uid(), "conv-" + uid(), "rel-" + uid()
    where = dict(order=order, conv=conv, rel=rel)
    async with g.running_gateway(gateway_settings) as (app, http):
        auth = g.auth(env, seller)
        first = await message(kafka, env, prefix, sender=buyer, recipient=seller, role="buyer",
                              **where)
        await message(kafka, env, prefix, sender=buyer, recipient=seller, role="buyer", **where)
        owed = await g.eventually(
            lambda: http.get(f"/v1/conversations/{conv}", headers=auth),
            lambda r: r.status_code == 200 and r.json()["messages"] == 2)
        asked = await http.get(f"/v1/messages/{first}", headers=auth)
        await message(kafka, env, prefix, sender=seller, recipient=buyer, role="seller",
                      **where)
        # Owed until the reply has reached the buyer (delivered), then nothing is.
        answered = await g.eventually(
            lambda: http.get("/v1/conversations", headers=auth, params={"filter": "all"}),
            lambda r: r.status_code == 200 and r.json()["conversations"]
            and r.json()["conversations"][0]["response_due_at"] is None)
        reply = await http.get(f"/v1/conversations/{conv}", headers=auth)

    due = datetime.fromisoformat(owed.json()["response_due_at"])
    assert due == datetime.fromisoformat(asked.json()["submitted_at"]) + timedelta(hours=24)
    assert answered.json()["conversations"][0]["view"] == "sent"
    assert [m["outcome"]["status"] for m in reply.json()["message_list"]] == ["delivered"] * 3


async def test_a_seller_replaces_its_own_template_in_one_step(env, gateway_settings):
    seller = "seller-" + uid()
    auth = g.auth(env, seller)
    async with g.running_gateway(gateway_settings) as (app, http):
        made = await http.post("/v1/templates", headers=auth, json={
            "name": "Delay", "text": "Your order leaves tomorrow.",
            "translations": {"es": {"text": "Su pedido sale mañana."}}})
        tid = made.json()["template_id"]
        changed = await http.put(f"/v1/templates/{tid}", headers=auth, json={
            "name": "Retraso", "language": "es", "subject": "Un retraso",
            "text": "Su pedido sale el lunes."})
        listed = await http.get("/v1/templates", headers=auth)
        someone_elses = await http.put(f"/v1/templates/{tid}", headers=g.auth(env, "s-other"),
                                       json={"name": "x", "text": "x"})
        by_buyer = await http.put(f"/v1/templates/{tid}", headers=g.auth(env, "b", "buyer"),
                                  json={"name": "x", "text": "x"})
        platform = await http.put("/v1/templates/platform:order_shipped", headers=auth,
                                  json={"name": "x", "text": "x"})
        invalid = await http.put(f"/v1/templates/{tid}", headers=auth, json={"name": ""})
        unchanged = await http.get("/v1/templates", headers=auth)

    assert made.status_code == 201 and changed.status_code == 200, changed.text
    body = changed.json()
    assert body["template_id"] == tid and body["name"] == "Retraso"
    assert body["languages"] == ["es"] and body["text"] == "Su pedido sale el lunes."
    own = [t for t in listed.json() if t["kind"] == "own"]
    assert [(t["template_id"], t["name"], t["subject"]) for t in own] == [
        (tid, "Retraso", "Un retraso")]
    assert someone_elses.status_code == 404
    assert someone_elses.json()["error"] == "template_not_found"
    assert by_buyer.status_code == 403 and by_buyer.json()["error"] == "role_cannot_use_templates"
    assert platform.status_code == 404 and invalid.status_code == 422
    assert [t for t in unchanged.json() if t["kind"] == "own"] == own
