"""The mail door in this process (own port), against the real Kafka and PostgreSQL."""

import asyncio
import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from bsm_alias.app import create_runtime
from bsm_alias.fixed_dns import ZoneLookup
from bsm_alias.mail import MAX_MIME_DEPTH
from bsm_alias.settings import AliasSettings
from bsm_shared.blobs import blob_path
from bsm_shared.contract.limits import MAX_ATTACHMENTS, MAX_BODY_BYTES, MAX_MAIL_BYTES
from bsm_shared.runtime import verp
from bsm_shared.runtime.transit import seal
from tests.dkim_support import signed, zone_line
from tests.dsn_support import FAILED_SHAPES, dsn_mail
from tests.factories import uid
from tests.mail_support import CLIENTS, asmtp_send, corpus_mail, free_port, simple_mail
from tests.stack import platform_event, running

#: The test's DNS (pyspf and dkimpy with the lookup injected: no network). shop.example and
#: buyer.example let this machine send (SPF); elsewhere.example allows another server only;
#: signed.example publishes only a DKIM key; nospf.example and every other domain publish
#: nothing, like most small domains in the real world.
lookup = ZoneLookup("$ORIGIN .\n$TTL 300\n" + "\n".join([
    'shop.example. IN TXT "v=spf1 ip4:127.0.0.1 -all"',
    'buyer.example. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    'elsewhere.example. IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    'evil.example. IN TXT "v=spf1 ip4:192.0.2.66 -all"',
    zone_line("signed.example"),
    zone_line("evil.example"),
]) + "\n")


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"the door never listened on {port}")


@pytest.fixture
async def door(kafka, prefix, settings_for, env, tmp_path):
    """A running alias service with its door, a buyer and a seller with a first message between
    them (so the pair has aliases), the seller's authorized and blocked senders."""
    port = free_port()
    settings = settings_for(AliasSettings, "alias", smtp_inbound=f"127.0.0.1:{port}",
                            blob_dir=str(tmp_path / "blobs"),
                            transit_key=env["BSM_TRANSIT_KEY"],
                            verp_key=env["BSM_ALIAS_VERP_KEY"])
    b, s, mid = "b-" + uid(), "s-" + uid(), "m-" + uid()
    people = {"buyer": b, "seller": s, "first": mid, "port": port, "blobs": tmp_path / "blobs",
              "buyer_mail": f"ana.{uid()}@buyer.example", "seller_mail": f"ventas.{uid()}@shop.example",
              "authorized": f"soporte.{uid()}@shop.example", "blocked": f"becario.{uid()}@shop.example"}
    rt = create_runtime(settings, dns_lookup=lookup)
    async with running(rt):
        t = prefix + "bsm.parties"
        for pid, role, addr, name in ((b, "buyer", people["buyer_mail"], "Ana García"),
                                      (s, "seller", people["seller_mail"], "Muebles Sol")):
            await kafka.publish(t, platform_event("PartyRegistered", {
                "party_id": pid, "role": role, "email": addr, "display_name": name}, pid), pid)
        key = base64.b64decode(env["BSM_TRANSIT_KEY"])
        await kafka.publish(t, platform_event("SellerSettingsChanged", {
            "seller_id": s,
            "authorized_senders": [seal(key, people["authorized"],
                                        "SellerSettingsChanged.authorized_senders")],
            "blocked_senders": [people["blocked"]]}, s), s)
        await kafka.publish(prefix + "bsm.messages.submitted", platform_event("MessageSubmitted", {
            "message_id": mid, "channel": "api", "sender": {"party_id": b},
            "recipient": {"party_id": s}, "subject": "Silla", "text": "¿Cuándo llega?",
            "submitted_at": "2026-11-20T10:00:00Z"}, mid), mid)
        [first] = await kafka.collect(prefix + "bsm.messages.addressed",
                                      lambda e: e["data"]["message_id"] == mid)
        people["buyer_alias"] = first["data"]["sender_alias"]
        people["seller_alias"] = first["data"]["recipient_alias"]
        people["conversation"] = first["data"]["conversation_id"]
        people["rt"] = rt
        await wait_listening(port)
        yield people


async def send(door, sender, to, raw):
    return await asmtp_send("127.0.0.1", door["port"], sender, [to], raw)


async def test_an_unknown_alias_is_refused_at_rcpt_with_550_5_1_1(door):
    code, text = await send(door, door["seller_mail"], "nosuchalias12345@marketplace.example",
                            simple_mail(door["seller_mail"], "x"))
    assert (code, text[:5]) == (550, "5.1.1")


async def test_unknown_and_blocked_senders_are_refused_in_the_dialogue_naming_a4(door):
    stranger = f"spam.{uid()}@elsewhere.example"
    for sender in (stranger, door["blocked"]):
        code, text = await send(door, sender, door["buyer_alias"],
                                simple_mail(sender, door["buyer_alias"]))
        assert code == 550 and text.startswith("5.7.1") and "(A4)" in text
    assert door["rt"].door["door"].refused == {"unknown_sender": 1, "blocked_sender": 1}


async def test_the_buyer_cannot_write_to_their_own_alias(door):
    code, text = await send(door, door["buyer_mail"], door["buyer_alias"],
                            simple_mail(door["buyer_mail"], door["buyer_alias"]))
    assert (code, text[:5]) == (550, "5.7.1")


async def test_a_forged_header_from_is_refused_unless_same_domain_with_spf_pass(door):
    other_domain = simple_mail(door["seller_mail"], door["buyer_alias"],
                               from_header="ceo@elsewhere.example")
    code, text = await send(door, door["seller_mail"], door["buyer_alias"], other_domain)
    assert (code, text[:5]) == (550, "5.7.1")
    # Same domain, and the test DNS says 127.0.0.1 may send for shop.example: SPF passes.
    colleague = simple_mail(door["seller_mail"], door["buyer_alias"],
                            from_header=f"pedidos.{uid()}@shop.example")
    code, _ = await send(door, door["seller_mail"], door["buyer_alias"], colleague)
    assert code == 250


async def test_an_spf_fail_for_the_envelope_sender_is_refused_with_5_7_23(door, kafka, prefix):
    # The seller authorizes an address at a domain whose SPF allows only 192.0.2.1; mail from
    # it arriving from 127.0.0.1 passes RCPT (authorized) and fails SPF at DATA.
    addr = f"outsourced.{uid()}@elsewhere.example"
    await kafka.publish(prefix + "bsm.parties", platform_event("SellerSettingsChanged", {
        "seller_id": door["seller"], "authorized_senders": [addr]}, door["seller"]),
        door["seller"])
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        code, text = await send(door, addr, door["buyer_alias"], simple_mail(addr, door["buyer_alias"]))
        if code != 550 or not text.startswith("5.7.1") or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)  # the settings event is still on its way
    assert (code, text[:6]) == (550, "5.7.23"), text
    assert "SPF" in text


async def another_buyer(door, kafka, prefix, address: str) -> dict:
    """A second buyer of the door's seller, registered at ``address``, with a first message
    (so the pair has aliases)."""
    b, mid = "b-" + uid(), "m-" + uid()
    await kafka.publish(prefix + "bsm.parties", platform_event("PartyRegistered", {
        "party_id": b, "role": "buyer", "email": address, "display_name": "Otra"}, b), b)
    await kafka.publish(prefix + "bsm.messages.submitted", platform_event("MessageSubmitted", {
        "message_id": mid, "channel": "api", "sender": {"party_id": b},
        "recipient": {"party_id": door["seller"]}, "subject": "Mesa", "text": "¿Hay stock?",
        "submitted_at": "2026-11-20T10:00:00Z"}, mid), mid)
    [first] = await kafka.collect(prefix + "bsm.messages.addressed",
                                  lambda e: e["data"]["message_id"] == mid)
    return {"buyer": b, "mail": address, "seller_alias": first["data"]["recipient_alias"]}


async def test_a_forged_partner_address_whose_domain_publishes_nothing_is_refused_with_5_7_26(
    door, kafka, prefix
):
    # The probe: the partner buyer's real address as MAIL FROM and as From, from a
    # domain with neither SPF nor DKIM. Anyone could have typed that address.
    partner = await another_buyer(door, kafka, prefix, f"ana.{uid()}@nospf.example")
    raw = simple_mail(partner["mail"], partner["seller_alias"], body="Soy Ana, págueme aquí")
    code, text = await send(door, partner["mail"], partner["seller_alias"], raw)
    assert (code, text[:6]) == (550, "5.7.26"), text
    assert "nospf.example" in text and "SPF" in text and "DKIM" in text
    assert "message center" in text
    assert door["rt"].door["door"].refused == {"sender_unauthenticated": 1}
    assert door["rt"].door["door"].accepted == 0


async def test_spoof_attempts_are_refused_and_genuine_senders_accepted(door, kafka, prefix):
    """Every way of claiming someone's address without their domain's word is refused in the
    dialogue; the same people writing genuinely (SPF pass, or DKIM aligned with From) get in."""
    plain = await another_buyer(door, kafka, prefix, f"luis.{uid()}@nospf.example")
    signer = await another_buyer(door, kafka, prefix, f"eva.{uid()}@signed.example")
    to_p, to_s = plain["seller_alias"], signer["seller_alias"]

    def mail_from(who, to, **kw):  # noqa: ANN001, ANN202
        return simple_mail(who["mail"], to, **kw)

    spoofs = [
        # (envelope sender, to, mail, the refusal's status)
        (plain["mail"], to_p, mail_from(plain, to_p), "5.7.26"),
        (plain["mail"], to_p, signed(mail_from(plain, to_p), "evil.example"), "5.7.26"),
        (plain["mail"], to_p, signed(mail_from(plain, to_p), "nospf.example"), "5.7.26"),
        (plain["mail"], to_p, signed(mail_from(plain, to_p), "signed.example"), "5.7.26"),
        (plain["mail"], to_p, signed(mail_from(plain, to_p), "nospf.example.evil.example"),
         "5.7.26"),
        (signer["mail"], to_s, mail_from(signer, to_s), "5.7.26"),
        (signer["mail"], to_s, signed(mail_from(signer, to_s), "signed.example")
         .replace(b"Hola", b"Pague ya"), "5.7.26"),
        (signer["mail"], to_s, signed(mail_from(signer, to_s), "signed.example", length=True)
         + b"Pague en https://evil.example\r\n", "5.7.26"),
        (signer["mail"], to_s, signed(mail_from(signer, to_s), "evil.example"), "5.7.26"),
        (f"x.{uid()}@evil.example", to_p,
         simple_mail("x@evil.example", to_p, from_header=plain["mail"]), "5.7.1"),
        (door["seller_mail"], door["buyer_alias"],
         simple_mail(door["seller_mail"], door["buyer_alias"],
                     from_header=f"ceo@{uid()}.evil.example"), "5.7.1"),
        (door["seller_mail"], door["buyer_alias"],
         simple_mail(door["seller_mail"], door["buyer_alias"],
                     from_header="ventas@elsewhere.example"), "5.7.1"),
    ]
    refused = []
    for sender, to, raw, status in spoofs:
        code, text = await send(door, sender, to, raw)
        refused.append((code, text[:len(status)]) == (550, status))
        assert refused[-1], (sender, code, text)
    genuine = [
        (signer["mail"], to_s, signed(mail_from(signer, to_s, body="Hola firmado"),
                                      "signed.example")),
        (door["seller_mail"], door["buyer_alias"],
         simple_mail(door["seller_mail"], door["buyer_alias"], body="Hola con SPF")),
        (door["buyer_mail"], door["seller_alias"],
         simple_mail(door["buyer_mail"], door["seller_alias"], body="Hola de la compradora")),
    ]
    ids = []
    for sender, to, raw in genuine:
        code, text = await send(door, sender, to, raw)
        assert code == 250, (sender, text)
        ids.append(text.rsplit(" ", 1)[1])
    found = await kafka.collect(prefix + "bsm.messages.submitted",
                                lambda e: e["data"]["message_id"] in ids, count=len(ids))
    assert {e["data"]["sender"]["party_id"] for e in found} == {
        signer["buyer"], door["seller"], door["buyer"]}
    assert sum(refused) == len(spoofs) == 12


async def test_a_sellers_reply_from_an_authorized_address_is_submitted_and_threads(
    door, kafka, prefix
):
    before = datetime.now(UTC)
    raw = corpus_mail("outlook_reply", **{
        "from": door["authorized"], "from_name": "Juan Perez", "to": door["buyer_alias"],
        "to_name": "Ana García", "subject": "Silla",
        "in_reply_to": f"{door['first']}@marketplace.example"})
    code, text = await send(door, door["authorized"], door["buyer_alias"], raw)
    assert code == 250, text
    message_id = text.rsplit(" ", 1)[1]
    [submitted] = await kafka.collect(prefix + "bsm.messages.submitted",
                                      lambda e: e["data"]["message_id"] == message_id)
    data = submitted["data"]
    assert submitted["producer"] == "alias" and submitted["signature"].startswith("ed25519-merkle:")
    assert data["channel"] == "email" and data["sender"]["party_id"] == door["seller"]
    assert data["recipient"]["address"] == door["buyer_alias"]
    assert data["in_reply_to"] == door["first"]
    assert before <= datetime.fromisoformat(data["submitted_at"]) <= datetime.now(UTC)
    assert "mañana" in data["text"]
    dumped = json.dumps(submitted).lower()
    for real in (door["authorized"], door["seller_mail"], door["buyer_mail"], "juan perez"):
        assert real.lower() not in dumped
    [addressed] = await kafka.collect(prefix + "bsm.messages.addressed",
                                      lambda e: e["data"]["message_id"] == message_id)
    assert addressed["data"]["conversation_id"] == door["conversation"]
    assert addressed["data"]["sender_alias"] == door["seller_alias"]


async def test_the_same_mail_sent_twice_is_submitted_under_one_message_id(door, kafka, prefix):
    raw = simple_mail(door["seller_mail"], door["buyer_alias"], body="Dos veces",
                      in_reply_to=f"<{door['first']}@marketplace.example>")
    first = await send(door, door["seller_mail"], door["buyer_alias"], raw)
    second = await send(door, door["seller_mail"], door["buyer_alias"], raw)
    assert first[0] == second[0] == 250 and first[1] == second[1]
    mid = first[1].rsplit(" ", 1)[1]
    found = await kafka.collect(prefix + "bsm.messages.addressed",
                                lambda e: e["data"]["message_id"] == mid, settle=1.5)
    assert len(found) == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_every_client_shape_is_accepted_and_its_attachments_stored_by_hash(
    door, kafka, prefix, client
):
    raw = corpus_mail(client, **{
        "from": door["buyer_mail"], "from_name": "Ana Garcia", "to": door["seller_alias"],
        "to_name": "Muebles Sol", "subject": "Silla",
        "in_reply_to": f"{door['first']}@marketplace.example"})
    code, text = await send(door, door["buyer_mail"], door["seller_alias"], raw)
    assert code == 250, text
    mid = text.rsplit(" ", 1)[1]
    [event] = await kafka.collect(prefix + "bsm.messages.submitted",
                                  lambda e: e["data"]["message_id"] == mid)
    for ref in event["data"]["attachments"]:
        stored = blob_path(door["blobs"], ref["sha256"])
        assert stored.stat().st_size == ref["size"]
    assert door["buyer_mail"] not in json.dumps(event)


# -- bounce reports at VERP return paths (D1) ------------------------------------------------

REPORTS = "bsm.messages.bounce-reports"


def return_path(env, message_id: str, expires: datetime) -> str:
    """A return path exactly as delivery writes it (same key, same module)."""
    key = base64.b64decode(env["BSM_DELIVERY_VERP_KEY"])
    return verp.return_path(key, message_id, expires, env["BSM_MAIL_DOMAIN"])


@pytest.mark.parametrize("shape", FAILED_SHAPES)
async def test_a_dsn_from_the_null_sender_at_a_genuine_return_path_is_recorded(
    door, kafka, prefix, env, shape
):
    mid = "m-" + uid()
    path = return_path(env, mid, datetime.now(UTC) + timedelta(days=14))
    raw = dsn_mail(shape, return_path=path, recipient=door["buyer_mail"],
                   msgid=f"{mid}@{env['BSM_MAIL_DOMAIN']}")
    before = datetime.now(UTC)
    code, text = await send(door, "", path, raw)  # MAIL FROM:<>, as reporting MTAs send
    assert code == 250, text
    [event] = await kafka.collect(prefix + REPORTS, lambda e: e["data"]["message_id"] == mid)
    data = event["data"]
    assert (event["type"], event["producer"]) == ("BounceReportReceived", "alias")
    assert event["signature"].startswith("ed25519-merkle:")
    assert (data["action"], data["standard"]) == ("failed", True)
    assert data["status"].startswith("5.1.")
    assert data["reporting_mta"] and data["diagnostic"]
    assert before <= datetime.fromisoformat(data["received_at"]) <= datetime.now(UTC)
    assert door["buyer_mail"] not in json.dumps(event)
    assert "@" not in data["diagnostic"]


async def test_the_same_report_retried_by_the_provider_is_published_once(door, kafka, prefix, env):
    mid = "m-" + uid()
    path = return_path(env, mid, datetime.now(UTC) + timedelta(days=1))
    raw = dsn_mail("postfix", return_path=path, recipient=door["buyer_mail"], msgid=mid)
    for _ in range(2):
        code, text = await send(door, "", path, raw)
        assert code == 250, text
    # Both dialogues end in 250; the second report derives the same event id, which the
    # outbox already holds: one event on the topic.
    found = await kafka.collect(prefix + REPORTS, lambda e: e["data"]["message_id"] == mid,
                                settle=2.0)
    assert len(found) == 1


async def test_a_plain_text_bounce_is_recorded_as_a_non_standard_failure(
    door, kafka, prefix, env
):
    mid = "m-" + uid()
    path = return_path(env, mid, datetime.now(UTC) + timedelta(days=1))
    raw = dsn_mail("plain_undelivered", return_path=path, recipient=door["buyer_mail"], msgid=mid)
    code, text = await send(door, "MAILER-DAEMON@smtp.old-isp.example", path, raw)
    assert code == 250, text
    [event] = await kafka.collect(prefix + REPORTS, lambda e: e["data"]["message_id"] == mid)
    assert (event["data"]["action"], event["data"]["status"], event["data"]["standard"]) == (
        "failed", "5.0.0", False)
    assert "Non-standard bounce" in event["data"]["diagnostic"]


async def test_a_forged_or_expired_return_path_is_refused_and_nothing_is_published(
    door, kafka, prefix, env
):
    forged_mid, expired_mid = "m-" + uid(), "m-" + uid()
    genuine = return_path(env, forged_mid, datetime.now(UTC) + timedelta(days=1))
    local, _, domain = genuine.partition("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"  # one MAC letter off
    expired = return_path(env, expired_mid, datetime.now(UTC) - timedelta(seconds=1))
    for path, mid, (status, words) in ((forged, forged_mid, ("5.7.1", "not issued")),
                                       (expired, expired_mid, ("5.1.1", "expired"))):
        raw = dsn_mail("postfix", return_path=path, recipient=door["buyer_mail"], msgid=mid)
        code, text = await send(door, "", path, raw)
        assert (code, text[:5]) == (550, status) and words in text and "(D1)" in text
    found = await kafka.collect(prefix + REPORTS,
                                lambda e: e["data"]["message_id"] in (forged_mid, expired_mid),
                                count=0, settle=2.0)
    assert found == []
    refused = door["rt"].door["door"].refused
    assert refused["return_path_not_genuine"] == 1 and refused["return_path_expired"] == 1


async def test_the_null_sender_is_still_refused_for_an_alias(door):
    code, text = await send(door, "", door["buyer_alias"], simple_mail("x@y.example", "z"))
    assert (code, text[:5]) == (550, "5.7.1") and "delivery report" in text


async def test_an_auto_reply_at_a_return_path_is_taken_and_records_nothing(
    door, kafka, prefix, env
):
    mid = "m-" + uid()
    path = return_path(env, mid, datetime.now(UTC) + timedelta(days=1))
    reply = simple_mail(door["buyer_mail"], path, subject="Out of office: Silla",
                        body="I am on holiday until Monday.")
    code, text = await send(door, door["buyer_mail"], path, reply)
    assert code == 250 and "nothing recorded" in text
    assert await kafka.collect(prefix + REPORTS, lambda e: e["data"]["message_id"] == mid,
                               count=0, settle=1.5) == []


# -- hostile mail at the door (issue 10): one safe line, no NUL, limits named, MIME bounded -----


async def raw_smtp(port: int, sender: str, rcpt: str, data: bytes,
                   mail_params: str = "") -> tuple[int, str]:
    """A swaks-like raw dialogue: DATA goes over the wire byte for byte (only dot-stuffed, as
    SMTP requires), NUL bytes and all. (code, text) of the first refusal, or of the DATA reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> tuple[int, str]:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode("utf-8", "replace").strip()

    try:
        await reply()  # greeting
        for command in ("EHLO client.example", f"MAIL FROM:<{sender}>{mail_params}",
                        f"RCPT TO:<{rcpt}>", "DATA"):
            writer.write(command.encode() + b"\r\n")
            code, text = await reply()
            if code >= 400:
                return code, text
        lines = data.removesuffix(b"\r\n").split(b"\r\n")
        writer.write(b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
                     + b".\r\n")
        code, text = await reply()
        writer.write(b"QUIT\r\n")
        return code, text
    finally:
        writer.close()


def hostile_mail(sender: str, to: str, headers: bytes, body: bytes) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nMessage-ID: <{uid()}@client.example>\r\n".encode()
            + b"MIME-Version: 1.0\r\n" + headers + b"\r\n" + body + b"\r\n")


def encoded_word(text: str) -> bytes:
    return b"=?utf-8?b?" + base64.b64encode(text.encode()) + b"?="


async def test_a_crlf_in_an_encoded_file_name_and_subject_arrives_as_one_line(
    door, kafka, prefix
):
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: " + encoded_word("Factura\r\nBcc: otro") + b"\r\n"
                       b"Content-Type: multipart/mixed; boundary=B\r\n",
                       b"--B\r\nContent-Type: text/plain\r\n\r\nAdjunto la factura.\r\n--B\r\n"
                       b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\""
                       + encoded_word("factura\r\n.txt") + b"\"\r\n\r\nTotal: 10\r\n--B--")
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert code == 250, text
    mid = text.rsplit(" ", 1)[1]
    [event] = await kafka.collect(prefix + "bsm.messages.addressed",
                                  lambda e: e["data"]["message_id"] == mid)
    assert event["data"]["subject"] == "Factura Bcc: otro"
    assert [a["filename"] for a in event["data"]["attachments"]] == ["factura .txt"]


async def test_nul_bytes_and_u0000_never_reach_an_event_and_the_message_flows_on(
    door, kafka, prefix
):
    html = base64.b64encode("<p>Ho\x00la</p>".encode())
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: Ho\x00la\r\nContent-Type: multipart/alternative; boundary=A\r\n",
                       b"--A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHo\x00la \x00\r\n"
                       b"--A\r\nContent-Type: text/html; charset=utf-8\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\n" + html + b"\r\n--A--")
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert code == 250, text  # was 451 for ever: the event could not be written
    mid = text.rsplit(" ", 1)[1]
    [submitted] = await kafka.collect(prefix + "bsm.messages.submitted",
                                      lambda e: e["data"]["message_id"] == mid)
    data = submitted["data"]
    assert (data["subject"], data["text"].strip(), data["html"]) == ("Hola", "Hola", "<p>Hola</p>")
    assert "\\u0000" not in json.dumps(submitted)
    # The alias consumer takes it like any other (the contract would dead-letter a NUL).
    await kafka.collect(prefix + "bsm.messages.addressed", lambda e: e["data"]["message_id"] == mid)


async def test_a_body_over_the_limit_is_refused_with_552_naming_it_and_nothing_published(
    door, kafka, prefix
):
    body = b"\r\n".join([b"x" * 998] * 210)  # 210 KB of text, well under the 25 MB SIZE limit
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: Largo\r\nContent-Type: text/plain\r\n", body)
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert (code, text[:5]) == (552, "5.3.4"), text
    assert f"{MAX_BODY_BYTES:,}" in text and "attachment" in text
    assert await kafka.collect(prefix + "bsm.messages.submitted",
                               lambda e: e["data"]["subject"] == "Largo", count=0,
                               settle=1.5) == []
    assert door["rt"].door["door"].refused["message_too_large"] == 1


async def test_a_body_counts_as_its_event_spells_it_and_is_refused_with_552(door):
    # 180 KB of text, but each control character takes six bytes of JSON (\u0001): 1 MB in
    # the event, which the outbox could not write (it answered 451 for ever).
    body = b"\r\n".join([b"\x01" * 990] * 180)
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: Escapes\r\nContent-Type: text/plain\r\n", body)
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert (code, text[:5]) == (552, "5.3.4"), text
    assert f"{MAX_BODY_BYTES:,}" in text
    assert door["rt"].door["door"].refused["message_too_large"] == 1


async def test_too_many_attachments_are_refused_with_552_naming_the_limit(door):
    parts = b"".join(b"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
                     b"filename=f%d.pdf\r\n\r\n%%PDF-1.4\r\n" % i
                     for i in range(MAX_ATTACHMENTS + 1))
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: Muchos\r\nContent-Type: multipart/mixed; boundary=B\r\n",
                       b"--B\r\nContent-Type: text/plain\r\n\r\nVarios\r\n" + parts + b"--B--")
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert (code, text[:5]) == (552, "5.3.4"), text
    assert f"{MAX_ATTACHMENTS + 1}" in text and f"limit is {MAX_ATTACHMENTS}" in text


async def test_deeply_nested_mime_is_refused_with_550_5_6_0_and_the_door_goes_on(door):
    depth = MAX_MIME_DEPTH + 8
    nested = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                      for i in range(depth))
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth + 1)))
    raw = hostile_mail(door["seller_mail"], door["buyer_alias"],
                       b"Subject: Hondo\r\nContent-Type: multipart/mixed; boundary=b0\r\n",
                       nested + b"--b%d\r\nContent-Type: text/plain\r\n\r\nfondo\r\n" % depth
                       + closing)
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], raw)
    assert (code, text[:5]) == (550, "5.6.0") and "nested" in text, text
    ok = simple_mail(door["seller_mail"], door["buyer_alias"], body="Sigo aquí")
    assert (await send(door, door["seller_mail"], door["buyer_alias"], ok))[0] == 250


async def test_a_mail_declared_larger_than_the_size_limit_is_refused_at_mail_naming_it(door):
    code, text = await raw_smtp(door["port"], door["seller_mail"], door["buyer_alias"], b"",
                                mail_params=" SIZE=999999999")
    assert (code, text[:5]) == (552, "5.3.4"), text
    assert f"{MAX_MAIL_BYTES:,}" in text
