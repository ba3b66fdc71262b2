"""The running stack through its real mail door (alias service, BSM_SMTP_INBOUND) with real SMTP
clients — Python's smtplib and swaks — and out through delivery to the mail sink."""

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.gateway_support import auth as gateway_auth
from tests.factories import uid
from tests.mail_support import all_text, asmtp_send, corpus_mail, simple_mail, sink_mail
from tests.stack import platform_event


def door(env) -> tuple[str, int]:
    host, _, port = env["BSM_SMTP_INBOUND"].rpartition(":")
    return host, int(port)


@pytest.fixture
async def thread(kafka, env):
    """A buyer and a seller, an order, and the buyer's first message (through the gateway)
    already in the seller's mailbox: the pair has aliases and a conversation."""
    buyer, seller, order = "buyer-" + uid(), "seller-" + uid(), "order-" + uid()
    p = {"buyer": buyer, "seller": seller, "order": order,
         "buyer_mail": f"ana.garcia.{uid()}@gmail.example",
         "seller_mail": f"juan.perez.{uid()}@sol-muebles.example"}
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": buyer, "role": "buyer", "email": p["buyer_mail"], "display_name": "Ana",
        "locale": "es-ES", "marketplace": "ES"}, buyer), buyer)
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": seller, "role": "seller", "email": p["seller_mail"],
        "display_name": "Muebles Sol", "locale": "es-ES", "marketplace": "ES"}, seller), seller)
    await kafka.publish("bsm.orders", platform_event("OrderPlaced", {
        "order_id": order, "buyer_id": buyer, "seller_id": seller,
        "placed_at": "2026-11-20T10:00:00Z", "items": [{"sku": "silla"}]}, order), order)
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as client:
        response = await client.post("/v1/messages", headers=gateway_auth(env, buyer, "buyer"),
                                     json={"recipient_party_id": seller, "order_id": order,
                                           "subject": "Silla", "text": "¿Cuándo llega mi silla?"})
    assert response.status_code == 202, response.text
    first = response.json()["message_id"]
    wanted = f"<{first}@{env['BSM_MAIL_DOMAIN']}>"
    to_seller = await sink_mail(env["BSM_MAIL_SINK_DIR"], lambda m: m["Message-ID"] == wanted)
    p["first_message_id_header"] = wanted
    p["buyer_alias"] = to_seller["From"].addresses[0].addr_spec
    p["seller_alias"] = to_seller["To"].addresses[0].addr_spec
    return p


async def test_a_seller_replying_from_outlook_reaches_the_buyer_once_from_the_alias_in_thread(
    thread, env
):
    raw = corpus_mail("outlook_reply", **{
        "from": thread["seller_mail"], "from_name": "Juan Perez", "to": thread["buyer_alias"],
        "to_name": "Ana", "subject": "Silla", "in_reply_to": thread["first_message_id_header"][1:-1]})
    code, text = await asmtp_send(*door(env), thread["seller_mail"], [thread["buyer_alias"]], raw)
    assert code == 250, text
    mid = text.rsplit(" ", 1)[1]
    wanted = f"<{mid}@{env['BSM_MAIL_DOMAIN']}>"
    reply = await sink_mail(env["BSM_MAIL_SINK_DIR"], lambda m: m["Message-ID"] == wanted)
    assert reply["X-Bsm-Sink-Envelope-To"] == thread["buyer_mail"]
    assert reply["From"].addresses[0].display_name == "Muebles Sol"
    assert reply["From"].addresses[0].addr_spec == thread["seller_alias"]
    assert reply["In-Reply-To"] == thread["first_message_id_header"]
    assert "d=" + env["BSM_MAIL_DOMAIN"] in reply["DKIM-Signature"], "signed for our domain"
    assert reply["X-Bsm-Sink-Envelope-From"].startswith(f"bounces+{mid}."), "VERP return path"
    seen = all_text(b"".join(
        line + b"\n" for line in reply.raw_bytes.splitlines()
        if not line.lower().startswith(b"x-bsm-sink-envelope")))
    for leak in (thread["seller_mail"], thread["buyer_mail"], "juan perez", "juan.perez",
                 "outlook.com", "83.45.112.9", "x-originating-ip", "thread-index",
                 "sol-muebles.example"):
        assert leak not in seen, f"{leak!r} reached the buyer"
    assert "mañana por mensajería" in reply.get_body(("plain",)).get_content()
    await asyncio.sleep(1.5)
    copies = [p for p in Path(env["BSM_MAIL_SINK_DIR"]).glob("*.eml")
              if wanted.encode() in p.read_bytes()]
    assert len(copies) == 1, "the buyer receives the reply exactly once"


def swaks(env, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed: apt-get install -y swaks")
    return subprocess.run(["swaks", "--server", env["BSM_SMTP_INBOUND"], "--helo", "client.example",
                           *args], capture_output=True, text=True, timeout=60)


async def test_swaks_to_an_unknown_alias_is_refused_with_550_5_1_1(env, thread):
    result = await asyncio.to_thread(swaks, env, "--from", thread["seller_mail"], "--to",
                                     f"zz{uid()[:14]}@{env['BSM_MAIL_DOMAIN']}")
    assert result.returncode != 0 and "550 5.1.1" in result.stdout


async def test_swaks_from_an_unknown_sender_is_refused_in_the_dialogue(env, thread):
    result = await asyncio.to_thread(swaks, env, "--from", f"spam.{uid()}@elsewhere.example",
                                     "--to", thread["buyer_alias"])
    assert result.returncode != 0 and "550 5.7.1" in result.stdout


async def test_swaks_with_a_forged_from_header_is_refused(env, thread):
    result = await asyncio.to_thread(
        swaks, env, "--from", thread["seller_mail"], "--to", thread["buyer_alias"],
        "--header", "From: Boss <ceo@elsewhere.example>")
    assert result.returncode != 0 and "550 5.7.1" in result.stdout


async def test_swaks_from_the_buyer_reaches_the_seller_through_the_door(env, thread):
    result = await asyncio.to_thread(
        swaks, env, "--from", thread["buyer_mail"], "--to", thread["seller_alias"],
        "--header", "Subject: Gracias", "--body", "Gracias, Ana <" + thread["buyer_mail"] + ">")
    assert result.returncode == 0, result.stdout
    mid = [l for l in result.stdout.splitlines() if "queued as" in l][0].rsplit(" ", 1)[1]
    wanted = f"<{mid}@{env['BSM_MAIL_DOMAIN']}>"
    mail = await sink_mail(env["BSM_MAIL_SINK_DIR"], lambda m: m["Message-ID"] == wanted)
    assert mail["X-Bsm-Sink-Envelope-To"] == thread["seller_mail"]
    body = mail.get_body(("plain",)).get_content()
    assert thread["buyer_mail"] not in body and thread["buyer_alias"] in body
