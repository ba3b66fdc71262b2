"""Erasure in an immutable log (crypto-shredding), through the running system: HTTP and the
CLI in, Kafka, PostgreSQL and the mail sink observed. Needs the stack up (`make up`)."""

import asyncio
import base64
import json
import os
import subprocess
import sys

import asyncpg
import httpx

from bsm_shared.runtime.keyring import Keyring
from tests.e2e.test_message_path import people, send, sink_mail  # noqa: F401 - fixture
from tests.factories import uid
from tests.stack import ROOT, metrics_headers

TOPICS = ("bsm.messages.addressed", "bsm.messages.policy-checked", "bsm.messages.delivered",
          "bsm.messages.bounced")


def bsm(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bsm_cli.main", *args], capture_output=True, text=True,
        cwd=ROOT, timeout=60, env={**os.environ, **env, "COLUMNS": "200"},
    )


async def open_name(env, token: str) -> str | None:
    keyring = Keyring(base64.b64decode(env["BSM_KEYRING_KEY"]))
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:
        return await keyring.open(conn, token, "display_name")
    finally:
        await conn.close()


async def test_names_travel_sealed_and_erasing_a_party_shreds_them_everywhere(kafka, env, people):
    buyer = people["buyer"]
    question = await send(env, sender_party_id=buyer, recipient_party_id=people["seller"],
                          order_id=people["order"], subject="Mi silla", text="¿Cuándo llega?")
    mail = await sink_mail(env, question)
    assert mail["From"].addresses[0].display_name == "Ana"  # opened for the mail only

    [addressed] = await kafka.collect("bsm.messages.addressed",
                                      lambda e: e["data"]["message_id"] == question)
    token = addressed["data"]["sender_display_name"]
    assert token.startswith(f"pii:v1:{buyer}:")
    assert await open_name(env, token) == "Ana"
    ours = [e for t in TOPICS for e in await kafka.collect(
        t, lambda e: e["data"].get("order_id") == people["order"], count=0, settle=0.5)]
    assert ours and all('"Ana"' not in json.dumps(e) for e in ours)

    done = bsm(env, "erase", buyer, "--operator", "op-1", "--reason", "DSR-7", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Erased" in done.stdout
    [erased] = await kafka.collect("bsm.parties", lambda e: e["type"] == "PartyErased"
                                   and e["data"]["party_id"] == buyer)
    assert erased["producer"] == "gateway" and erased["signature"].startswith("ed25519-merkle:")
    assert erased["data"]["requested_by"] == "op-1" and erased["data"]["reason"] == "DSR-7"

    # The name in every event already written is now ciphertext nobody can open.
    assert await open_name(env, token) is None
    again = bsm(env, "erase", buyer, "--operator", "op-1", "--yes")
    assert again.returncode == 0 and "already erased" in again.stdout

    # Neither side can reach the erased party any more, and each stop says why.
    late = await send(env, sender_party_id=buyer, recipient_party_id=people["seller"],
                      order_id=people["order"], text="¿Hola?")
    reply = await send(env, sender_party_id=people["seller"], recipient_party_id=buyer,
                       order_id=people["order"], in_reply_to=question, text="Mañana.")
    bounces = await kafka.collect("bsm.messages.bounced",
                                  lambda e: e["data"]["message_id"] in (late, reply), count=2)
    assert {b["data"]["reason_code"] for b in bounces} == {"party_erased"}
    assert all(b["data"]["explanation"] and b["data"]["remedy"] for b in bounces)

    # Services forgot what they stored of the party (their own data keys included).
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:
        for schema in ("alias", "delivery"):
            row = await conn.fetchrow(f"SELECT data_key, email_enc, display_name, erased_at "
                                      f"FROM {schema}.parties WHERE party_id = $1", buyer)
            assert row is not None and row["erased_at"] is not None, schema
            assert (bytes(row["data_key"]), bytes(row["email_enc"]), row["display_name"]) == (
                b"", b"", ""), schema
    finally:
        await conn.close()

    # The record still verifies every event, and shows the party as erased.
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"],
                                 headers=metrics_headers(env)) as client:
        for _ in range(100):
            timeline = (await client.get(f"/v1/orders/{people['order']}/timeline")).json()
            if buyer in timeline.get("erased_parties", []):
                break
            await asyncio.sleep(0.2)
    assert timeline["erased_parties"] == [buyer]
    ours = [e for e in timeline["events"] if e["producer"] != "platform"]
    assert ours and all(e["signature_valid"] and e["flag"] is None for e in ours)
    assert all(buyer in e["erased_parties"] for e in ours
               if e["type"] in ("MessageAddressed", "PolicyChecked"))
    from tests.gateway_support import auth

    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        desk = (await client.get(f"/v1/orders/{people['order']}/timeline",
                                 headers=auth(env, "desk-1", "dispute"))).json()
    assert desk["erased_parties"] == [buyer]
    shown = bsm(env, "dispute", people["order"])
    assert shown.returncode == 0 and "Erased parties" in shown.stdout and buyer in shown.stdout


async def test_only_an_operator_may_erase_and_a_party_may_not_erase_another(env):
    from tests.gateway_support import auth

    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        for role in ("buyer", "seller", "dispute"):
            response = await client.post(f"/v1/parties/buyer-{uid()}/erasure", json={},
                                         headers=auth(env, f"{role}-{uid()}", role))
            assert response.status_code == 403, role
            assert response.json()["error"] == "not_allowed"


async def test_a_party_the_platform_registers_sealed_is_unreadable_on_the_parties_topic_after_erasure(
    kafka, env
):
    from tests.stack import platform_event

    buyer, seller, order = "buyer-" + uid(), "seller-" + uid(), "order-" + uid()
    buyer_mail = f"lucia.{uid()}@correo.example"
    keyring = Keyring(base64.b64decode(env["BSM_KEYRING_KEY"]))
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:  # what the platform's account service does, with the same keyring
        sealed_mail = await keyring.seal(conn, buyer, "email", buyer_mail)
        sealed_name = await keyring.seal(conn, buyer, "display_name", "Lucía Sellada")
    finally:
        await conn.close()
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": buyer, "role": "buyer", "email": sealed_mail, "display_name": sealed_name,
        "locale": "es-ES"}, buyer), buyer)
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": seller, "role": "seller", "email": f"{uid()}@tienda.example",
        "display_name": "Tienda"}, seller), seller)
    await kafka.publish("bsm.orders", platform_event("OrderPlaced", {
        "order_id": order, "buyer_id": buyer, "seller_id": seller,
        "placed_at": "2026-11-20T10:00:00Z", "items": [{"sku": "x"}]}, order), order)

    question = await send(env, sender_party_id=buyer, recipient_party_id=seller, order_id=order,
                          text="¿Tienen talla M?")
    assert (await sink_mail(env, question))["From"].addresses[0].display_name == "Lucía Sellada"
    reply = await send(env, sender_party_id=seller, recipient_party_id=buyer, order_id=order,
                       in_reply_to=question, text="Sí.")
    assert (await sink_mail(env, reply))["X-Bsm-Sink-Envelope-To"] == buyer_mail

    done = bsm(env, "erase", buyer, "--operator", "op-1", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    [registered] = await kafka.collect("bsm.parties", lambda e: e["type"] == "PartyRegistered"
                                       and e["data"]["party_id"] == buyer)
    assert buyer_mail not in json.dumps(registered)
    # (A process that had the key cached loses it within the cache's 30 s; ask afresh.)
    assert await open_name(env, registered["data"]["display_name"]) is None
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    try:
        fresh = Keyring(base64.b64decode(env["BSM_KEYRING_KEY"]))
        assert await fresh.open(conn, registered["data"]["email"], "email") is None
    finally:
        await conn.close()
