"""The running stack through its real mail door (alias service, BSM_SMTP_INBOUND) with real SMTP
clients — Python's smtplib and swaks — and out through delivery to the mail sink."""

import asyncio
import base64
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bsm_shared.runtime import verp
from tests.dsn_support import dsn_mail, sink_by_message_id
from tests.gateway_support import auth as gateway_auth
from tests.gateway_support import eventually
from tests.factories import uid
from tests.mail_support import all_text, asmtp_send, corpus_mail, recent_paths
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
    to_seller = await sink_by_message_id(env["BSM_MAIL_SINK_DIR"], wanted)
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
    reply = await sink_by_message_id(env["BSM_MAIL_SINK_DIR"], wanted)
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
    copies = [p for p in recent_paths(env["BSM_MAIL_SINK_DIR"])
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
    mail = await sink_by_message_id(env["BSM_MAIL_SINK_DIR"], wanted)
    assert mail["X-Bsm-Sink-Envelope-To"] == thread["seller_mail"]
    body = mail.get_body(("plain",)).get_content()
    assert thread["buyer_mail"] not in body and thread["buyer_alias"] in body


# -- bounce reports at the VERP return path (D1) ---------------------------------------------

async def test_a_providers_dsn_at_the_return_path_bounces_the_delivered_message(
    thread, env, kafka, tmp_path
):
    """The buyer's first message was delivered to the seller's provider, which later reports it
    undeliverable (a Gmail-shaped RFC 3464 report, sent with swaks from the null sender to the
    envelope sender the mail went out with): the message gets a Bounced after delivery, stays
    delivered in the message center with the email copy's bounce beside it (the seller still
    sees it and answers it), and the buyer gets a notice."""
    header = thread["first_message_id_header"]
    first = header[1:-1].rpartition("@")[0]
    mail = await sink_by_message_id(env["BSM_MAIL_SINK_DIR"], header)
    path = str(mail["X-Bsm-Sink-Envelope-From"])
    conversation = str(mail["X-Bsm-Conversation"])
    assert path.startswith(f"bounces+{first}.")
    report = tmp_path / "dsn.eml"
    report.write_bytes(dsn_mail("gmail", return_path=path, recipient=thread["seller_mail"],
                                msgid=header[1:-1]))
    result = await asyncio.to_thread(swaks, env, "--from", "<>", "--to", path,
                                     "--data", str(report))
    assert result.returncode == 0, result.stdout
    assert f"report recorded for {first}" in result.stdout

    [received] = await kafka.collect("bsm.messages.bounce-reports",
                                     lambda e: e["data"]["message_id"] == first)
    assert (received["data"]["action"], received["data"]["status"]) == ("failed", "5.1.1")
    assert thread["seller_mail"] not in str(received)
    [bounce] = await kafka.collect(
        "bsm.messages.bounced", lambda e: e["data"]["message_id"] == first, settle=2.0)
    assert (bounce["producer"], bounce["data"]["rule"], bounce["data"]["after_delivery"]) == (
        "delivery", "D1", True)
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"]) as http:
        seen = await eventually(
            lambda: http.get(f"/v1/conversations/{conversation}",
                             headers=gateway_auth(env, thread["buyer"], "buyer")),
            lambda r: r.status_code == 200 and any(
                m["message_id"] == first and m["outcome"]["bounce"]
                for m in r.json()["message_list"]), timeout=30)
    [shown] = [m for m in seen.json()["message_list"] if m["message_id"] == first]
    assert shown["outcome"]["status"] == "delivered"
    assert shown["outcome"]["bounce"]["rule"] == "D1"
    assert shown["outcome"]["bounce"]["after_delivery"] is True
    assert shown["outcome"]["bounce"]["reason_code"] == "bounce_report"
    notice = await sink_by_message_id(env["BSM_MAIL_SINK_DIR"],
                                      f"<notice-{first}@{env['BSM_MAIL_DOMAIN']}>")
    assert notice["X-Bsm-Sink-Envelope-To"] == thread["buyer_mail"]


async def test_a_report_at_a_forged_or_expired_return_path_is_refused_by_the_door(env):
    mid = "m-" + uid()
    key = base64.b64decode(env["BSM_DELIVERY_VERP_KEY"])
    domain = env["BSM_MAIL_DOMAIN"]
    expired = verp.return_path(key, mid, datetime.now(UTC) - timedelta(minutes=1), domain)
    forged = verp.return_path(b"not-our-key" * 3, mid, datetime.now(UTC) + timedelta(days=1),
                              domain)
    for path, reply in ((forged, "550 5.7.1"), (expired, "550 5.1.1")):
        result = await asyncio.to_thread(swaks, env, "--from", "<>", "--to", path)
        assert result.returncode != 0 and reply in result.stdout, result.stdout
