"""The message center's API on the running stack: a buyer writes, the seller finds it under
*Response needed* and by order id, answers with a platform template in the buyer's language,
marks another message, the buyer reports one; SP-API-shaped calls send typed messages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import gateway_support as g
from tests.factories import uid
from tests.stack import platform_event


@pytest.fixture
async def pair(kafka, env) -> dict[str, str]:
    buyer, seller, order = "buyer-" + uid(), "seller-" + uid(), "order-" + uid()
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": buyer, "role": "buyer", "email": f"ana.{uid()}@gmail.example",
        "display_name": "Ana", "locale": "es-ES", "marketplace": "ES"}, buyer), buyer)
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": seller, "role": "seller", "email": f"ventas.{uid()}@sol.example",
        "display_name": "Muebles Sol", "locale": "es-ES", "marketplace": "ES"}, seller), seller)
    await kafka.publish("bsm.orders", platform_event("OrderPlaced", {
        "order_id": order, "buyer_id": buyer, "seller_id": seller,
        "placed_at": g.now().isoformat(), "items": [{"sku": "silla"}]}, order), order)
    return {"buyer": buyer, "seller": seller, "order": order}


def conversation_ids(response: httpx.Response) -> list[str]:
    return [c["conversation_id"] for c in response.json()["conversations"]]


async def test_buyer_writes_seller_answers_with_a_template_marks_and_buyer_reports(
    env, pair
):
    buyer, seller = g.auth(env, pair["buyer"], "buyer"), g.auth(env, pair["seller"])
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"], timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": pair["order"]},
                                            headers=seller), lambda r: r.status_code == 200)
        first = await http.post("/v1/messages", headers=buyer, json={
            "order_id": pair["order"], "subject": "Silla rota", "text": "Llegó con una pata rota."})
        second = await http.post("/v1/messages", headers=buyer, json={
            "order_id": pair["order"], "subject": "Gracias", "text": "Gracias por todo."})
        assert first.status_code == 202 and second.status_code == 202, first.text
        inbox = await g.eventually(
            lambda: http.get("/v1/conversations", headers=seller),
            lambda r: len(r.json()["conversations"]) == 2
            and all(c["messages"] == 1 for c in r.json()["conversations"]), timeout=30)
        by_order = await http.get("/v1/conversations", params={"order_id": pair["order"]},
                                  headers=seller)
        by_word = await http.get("/v1/conversations", params={"order_id": "Silla"},
                                 headers=seller)
        templates = (await http.get("/v1/templates", params={"order_id": pair["order"]},
                                    headers=seller)).json()
        shipped = next(t for t in templates if t["name"] == "order_shipped")
        await g.eventually(lambda: http.get(f"/v1/messages/{first.json()['message_id']}",
                                            headers=seller),
                           lambda r: r.json()["outcome"]["status"] == "delivered", timeout=30)
        answer = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": first.json()["message_id"], "subject": shipped["subject"],
            "text": shipped["text"]})
        marked = await http.post(f"/v1/messages/{second.json()['message_id']}/no-response-needed",
                                 headers=seller)
        outcome = await g.eventually(
            lambda: http.get(f"/v1/messages/{answer.json()['message_id']}", headers=buyer),
            lambda r: r.status_code == 200 and r.json()["outcome"]["status"] == "delivered",
            timeout=30)
        reported = await http.post(f"/v1/messages/{answer.json()['message_id']}/reports",
                                   headers=buyer,
                                   json={"reason": "other", "text": "No es verdad"})
        await g.eventually(
            lambda: http.get("/v1/conversations", params={"filter": "all"}, headers=seller),
            lambda r: {c["view"] for c in r.json()["conversations"]}
            == {"sent", "no_response_needed"}, timeout=30)
        buyer_thread = await g.eventually(
            lambda: http.get(f"/v1/conversations/{outcome.json()['conversation_id']}",
                             headers=buyer),
            lambda r: any(m["reported"] for m in r.json()["message_list"]), timeout=30)
        other_seller = await http.get(f"/v1/conversations/{outcome.json()['conversation_id']}",
                                      headers=g.auth(env, "seller-" + uid()))

    assert len(conversation_ids(inbox)) == 2 and inbox.json()["filter"] == "response_needed"
    assert sorted(conversation_ids(by_order)) == sorted(conversation_ids(inbox))
    assert conversation_ids(by_word) == []
    assert shipped["locale"] == "es" and shipped["subject"] == "Su pedido ha sido enviado"
    assert answer.status_code == 202 and marked.status_code == 202
    assert outcome.json()["subject"] == "Su pedido ha sido enviado"
    assert reported.status_code == 202
    messages = buyer_thread.json()["message_list"]
    assert [m["sender_role"] for m in messages] == ["buyer", "seller"]
    assert messages[1]["quoted"] == "Llegó con una pata rota."
    assert other_seller.status_code == 404


async def test_an_sp_api_typed_message_is_delivered_through_the_pipeline(env, pair):
    token = g.auth(env, pair["seller"])["Authorization"].split()[1]
    base = f"/messaging/v1/orders/{pair['order']}"
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"], timeout=10,
                                 headers={"x-amz-access-token": token}) as http:
        actions = await g.eventually(lambda: http.get(base, params={"marketplaceIds": "ES"}),
                                     lambda r: r.status_code == 200)
        sent = await http.post(f"{base}/messages/unexpectedProblem",
                               params={"marketplaceIds": "ES"},
                               json={"text": "El transportista ha retrasado su envío un día."})
        message: Any = await g.eventually(
            lambda: http.get(f"/v1/messages/{sent.json()['x-bsm-message-id']}"),
            lambda r: r.status_code == 200 and r.json()["outcome"]["status"]
            in ("delivered", "bounced"), timeout=30)
    g.sp_validate(actions.json(), "GetMessagingActionsForOrderResponse")
    assert sent.status_code == 201
    assert message.json()["contact_reason"] == "unexpected_problem"
    assert message.json()["outcome"]["status"] == "delivered", message.json()["outcome"]
