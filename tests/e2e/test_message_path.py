"""The running system through its real doors: HTTP in, Kafka in, SMTP out, HTTP and CLI for
the record. Needs the stack up (`make up`); every service runs as its own process."""

import asyncio
import email
import json
import os
import subprocess
import sys
import time
from email import policy

import httpx
import pytest

from bsm_devstack.mailsink import find_by_message_id
from tests.factories import uid
from tests.gateway_support import auth
from tests.mail_support import recent_paths
from tests.stack import ROOT, metrics_headers, platform_event


async def sink_mail(env, message_id: str, timeout: float = 30.0) -> email.message.EmailMessage:
    wanted = f"<{message_id}@{env['BSM_MAIL_DOMAIN']}>"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = find_by_message_id(env["BSM_MAIL_SINK_DIR"], wanted)
        if path is not None:
            return email.message_from_bytes(path.read_bytes(), policy=policy.default)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail with Message-ID {wanted} reached the mail sink")


@pytest.fixture
async def people(kafka, env):
    """A buyer and a seller registered, and an order between them, as the platform would."""
    buyer, seller, order = "buyer-" + uid(), "seller-" + uid(), "order-" + uid()
    buyer_mail, seller_mail = f"ana.{uid()}@gmail.example", f"ventas.{uid()}@sol.example"
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": buyer, "role": "buyer", "email": buyer_mail, "display_name": "Ana",
        "locale": "es-ES", "marketplace": "ES"}, buyer), buyer)
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": seller, "role": "seller", "email": seller_mail,
        "display_name": "Muebles Sol", "locale": "es-ES", "marketplace": "ES"}, seller), seller)
    await kafka.publish("bsm.orders", platform_event("OrderPlaced", {
        "order_id": order, "buyer_id": buyer, "seller_id": seller,
        "placed_at": "2026-11-20T10:00:00Z", "items": [{"sku": "silla"}]}, order), order)
    return {"buyer": buyer, "seller": seller, "order": order, "buyer_mail": buyer_mail,
            "seller_mail": seller_mail}


def bearer(env, party_id: str) -> dict[str, str]:
    """The Authorization header of a party (the fixtures name parties `buyer-…`/`seller-…`)."""
    return auth(env, party_id, "buyer" if party_id.startswith("buyer-") else "seller")


async def visible_to(env, party_id: str, message_id: str, timeout: float = 30.0) -> None:
    """Wait until the gateway shows the message to the party: a recipient sees it once the
    gateway has read its `Delivered`, which can come a moment after the mail reached the sink."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        while True:
            response = await client.get(f"/v1/messages/{message_id}",
                                        headers=bearer(env, party_id))
            if response.status_code == 200:
                return
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"{message_id} never shown to {party_id}"
            await asyncio.sleep(0.1)


async def send(env, sender_party_id: str, **body) -> str:
    """Send as the party; a reply first waits until the party is shown what it answers."""
    if body.get("in_reply_to"):
        await visible_to(env, sender_party_id, body["in_reply_to"])
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        response = await client.post("/v1/messages", json=body,
                                     headers=bearer(env, sender_party_id))
    assert response.status_code == 202, response.text
    return response.json()["message_id"]


async def test_a_buyer_message_and_the_sellers_reply_reach_each_other_through_aliases(
    kafka, env, people
):
    question = await send(env, sender_party_id=people["buyer"],
                          recipient_party_id=people["seller"], order_id=people["order"],
                          subject="¿Cuándo llega mi silla?", text="Hola, ¿ya salió?")
    to_seller = await sink_mail(env, question)
    reply = await send(env, sender_party_id=people["seller"], recipient_party_id=people["buyer"],
                       order_id=people["order"], in_reply_to=question, subject="Re: silla",
                       text="Sale mañana.")
    to_buyer = await sink_mail(env, reply)

    buyer_alias = to_seller["From"].addresses[0].addr_spec
    seller_alias = to_buyer["From"].addresses[0].addr_spec
    assert to_seller["X-Bsm-Sink-Envelope-To"] == people["seller_mail"]
    assert to_buyer["X-Bsm-Sink-Envelope-To"] == people["buyer_mail"]
    assert to_buyer["From"].addresses[0].display_name == "Muebles Sol"
    assert to_seller["To"] == seller_alias and to_buyer["To"] == buyer_alias
    assert buyer_alias.endswith("@" + env["BSM_MAIL_DOMAIN"]) and buyer_alias != seller_alias
    assert to_buyer["In-Reply-To"] == to_seller["Message-ID"]
    for mail in (to_seller, to_buyer):
        headers = "".join(f"{k}: {v}\n" for k, v in mail.items() if not k.startswith("X-Bsm-Sink"))
        assert people["buyer_mail"] not in headers and people["seller_mail"] not in headers

    delivered = await kafka.collect("bsm.messages.delivered",
                                    lambda e: e["data"]["message_id"] in (question, reply),
                                    count=2, settle=1.0)
    assert len(delivered) == 2
    assert {e["data"]["conversation_id"] for e in delivered} == {
        delivered[0]["data"]["conversation_id"]}, "the reply is in the same conversation"


async def test_an_unsigned_message_from_another_platform_service_ends_in_one_signed_delivered(
    kafka, env, people
):
    mid = "platform-" + uid()
    await kafka.publish("bsm.messages.submitted", platform_event("MessageSubmitted", {
        "message_id": mid, "channel": "api", "sender": {"party_id": people["buyer"]},
        "recipient": {"party_id": people["seller"]}, "order_id": people["order"],
        "subject": "Factura", "text": "¿Me envían la factura?",
        "submitted_at": "2026-11-21T08:00:00Z"}, mid), mid)
    outcomes = await kafka.collect("bsm.messages.delivered",
                                   lambda e: e["data"]["message_id"] == mid, settle=2.0)
    bounces = await kafka.collect("bsm.messages.bounced",
                                  lambda e: e["data"]["message_id"] == mid, count=0)
    assert len(outcomes) == 1 and bounces == []
    assert outcomes[0]["producer"] == "delivery"
    assert outcomes[0]["signature"].startswith("ed25519-merkle:")


async def test_a_seller_writing_to_a_seller_bounces_naming_rule_c9(kafka, env, people):
    other = "seller-" + uid()
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": other, "role": "seller", "email": f"{uid()}@otro.example",
        "display_name": "Otro"}, other), other)
    mid = await send(env, sender_party_id=people["seller"], recipient_party_id=other,
                     contact_reason="unexpected_problem", text="¿Colaboramos?")
    [bounce] = await kafka.collect("bsm.messages.bounced",
                                   lambda e: e["data"]["message_id"] == mid)
    assert (bounce["data"]["stage"], bounce["data"]["rule"], bounce["data"]["reason_code"]) == (
        "alias", "C9", "seller_to_seller")
    assert bounce["data"]["remedy"]


async def test_no_event_our_services_produce_carries_a_real_address(kafka, env, people):
    mid = await send(env, sender_party_id=people["buyer"], recipient_party_id=people["seller"],
                     order_id=people["order"], text="Hola")
    await sink_mail(env, mid)
    ours = []
    for topic in ("bsm.messages.submitted", "bsm.messages.addressed",
                  "bsm.messages.policy-checked", "bsm.messages.delivered"):
        ours += await kafka.collect(topic, lambda e: json.dumps(e).find(people["order"]) >= 0)
    text = json.dumps(ours)
    assert people["buyer_mail"] not in text and people["seller_mail"] not in text


async def test_the_dispute_timeline_shows_the_whole_exchange_verified(kafka, env, people):
    mid = await send(env, sender_party_id=people["buyer"], recipient_party_id=people["seller"],
                     order_id=people["order"], subject="Consulta", text="Hola")
    await sink_mail(env, mid)
    expected = ["OrderPlaced", "MessageSubmitted", "MessageAddressed", "PolicyChecked",
                "Delivered"]
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"],
                                 headers=metrics_headers(env)) as client:
        for _ in range(100):
            response = await client.get(f"/v1/orders/{people['order']}/timeline")
            types = [e["type"] for e in response.json().get("events", [])]
            if response.status_code == 200 and types == expected:
                break
            await asyncio.sleep(0.2)
    assert types == expected
    ours = [e for e in response.json()["events"] if e["producer"] != "platform"]
    assert ours and all(e["signature_valid"] and e["flag"] is None for e in ours)

    cli = subprocess.run(
        [sys.executable, "-m", "bsm_cli.main", "dispute", people["order"]],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "BSM_METRICS_URL": env["BSM_METRICS_URL"], "COLUMNS": "200"},
    )
    assert cli.returncode == 0, cli.stderr
    for name in expected:
        assert name in cli.stdout
    assert "verified" in cli.stdout


async def test_the_gateway_explains_what_is_wrong_with_a_request(env):
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        response = await client.post("/v1/messages", json={"recipient_party_id": "y",
                                                           "contact_reason": "marketing"},
                                     headers=bearer(env, "seller-x"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert any(p["field"] == "contact_reason" for p in body["problems"])


async def test_a_forged_approval_on_the_live_topic_delivers_nothing_and_is_flagged(
    kafka, env, people, expect
):
    """Someone with write access to Kafka fakes policy's approval of a message that never
    went through alias and policy: delivery must not act on it, and the record flags it."""
    expect.dead_letter("unsigned", topic="bsm.messages.policy-checked.dlq", match="forged-")
    from tests.factories import policy_checked

    mid = "forged-" + uid()
    data = policy_checked(
        message_id=mid, order_id=people["order"], sender_party_id=people["buyer"],
        recipient_party_id=people["seller"], sender={"party_id": people["buyer"]},
        recipient={"party_id": people["seller"]},
    ).model_dump(mode="json")
    forged = platform_event("PolicyChecked", data, mid)
    forged_json = json.loads(forged)
    forged_json["producer"] = "policy"  # claims to be policy, but is unsigned
    await kafka.publish("bsm.messages.policy-checked", json.dumps(forged_json).encode(), mid)
    [dead] = await kafka.collect("bsm.messages.policy-checked.dlq",
                                 lambda e: mid in (e.get("value") or "")
                                 and e["consumer"] == "delivery")
    assert dead["error_code"] == "unsigned"
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"],
                                 headers=metrics_headers(env)) as client:
        for _ in range(100):
            timeline = (await client.get(f"/v1/orders/{people['order']}/timeline")).json()
            entries = [e for e in timeline.get("events", []) if e["message_id"] == mid]
            if entries:
                break
            await asyncio.sleep(0.2)
    assert entries and entries[0]["flag"] == "forged:unsigned"
    delivered = await kafka.collect("bsm.messages.delivered",
                                    lambda e: e["data"]["message_id"] == mid, count=0, settle=1.0)
    assert delivered == []
    wanted = f"<{mid}@{env['BSM_MAIL_DOMAIN']}>"
    for path in recent_paths(env["BSM_MAIL_SINK_DIR"]):
        assert wanted not in path.read_text(errors="replace")


async def test_the_sellers_reply_shows_in_their_response_time_figures(kafka, env, people):
    question = await send(env, sender_party_id=people["buyer"],
                          recipient_party_id=people["seller"], order_id=people["order"],
                          text="¿Hay otro color?")
    await sink_mail(env, question)
    reply = await send(env, sender_party_id=people["seller"], recipient_party_id=people["buyer"],
                       order_id=people["order"], in_reply_to=question, text="Sí, en negro.")
    await sink_mail(env, reply)
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"],
                                 headers=metrics_headers(env)) as client:
        for _ in range(100):
            figures = (await client.get(f"/v1/sellers/{people['seller']}/response-times",
                                        params={"window": "7d"})).json()
            if figures.get("answered") == 1:
                break
            await asyncio.sleep(0.2)
    assert (figures["buyer_messages"], figures["answered"], figures["answered_late"]) == (1, 1, 0)
    assert 0 <= figures["average_response_time_seconds"] < 60
    assert figures["late_response_rate"] == 0.0


async def test_a_seller_finds_the_buyers_orders_by_the_alias_the_buyer_writes_from(
    kafka, env, people
):
    question = await send(env, people["buyer"], recipient_party_id=people["seller"],
                          order_id=people["order"], text="¿Y mi pedido?")
    buyer_alias = (await sink_mail(env, question))["From"].addresses[0].addr_spec
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        for _ in range(100):
            found = await client.get("/v1/orders", params={"buyer_alias": buyer_alias},
                                     headers=bearer(env, people["seller"]))
            if found.status_code == 200:
                break
            await asyncio.sleep(0.2)
        stranger = await client.get("/v1/orders", params={"buyer_alias": buyer_alias},
                                    headers=bearer(env, "seller-" + uid()))
    assert found.status_code == 200, found.text
    assert [o["order_id"] for o in found.json()["orders"]] == [people["order"]]
    assert stranger.status_code == 404 and stranger.json()["error"] == "alias_not_found"
    cli = subprocess.run(
        [sys.executable, "-m", "bsm_cli.main", "orders", buyer_alias.split("@")[0],
         "--seller", people["seller"]],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "BSM_GATEWAY_URL": env["BSM_GATEWAY_URL"]},
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert people["order"] in cli.stdout
