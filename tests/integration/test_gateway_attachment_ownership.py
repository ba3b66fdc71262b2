"""Attachments by hash belong to who uploaded them (or the mail they came with) and to the
messages that carry them (issue 11, item 3): nobody else can attach one by its hash — through
``POST /v1/messages``, lint or the SP-API door — nor learn whether a hash exists."""

from __future__ import annotations

from typing import Any

from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_gateway_api import seed
from tests.integration.test_gateway_visibility import Exchange, store_blob

PRIVATE = b"%PDF-1.4\nContrato privado del vendedor "


def refusal(response: Any, sha: str) -> tuple[int, str]:
    """A refusal with the hash taken out: what is left must not depend on whose hash it was."""
    return response.status_code, response.text.replace(sha, "<sha>")


async def test_another_partys_file_cannot_be_attached_linted_or_sent_and_answers_as_unknown(
    kafka, env, prefix, gateway_settings
):
    unknown = "0" * 63 + "1"
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        other = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        upload = await http.post("/v1/attachments", headers=x.seller, files={
            "file": ("contrato.pdf", PRIVATE + uid().encode(), "application/pdf")})
        sha = upload.json()["sha256"]
        await g.eventually(lambda: http.get(f"/v1/messages/{x.ids['msg']}", headers=x.buyer),
                           lambda r: r.status_code == 200)
        await g.eventually(lambda: http.get("/messaging/v1/orders/" + other.ids["order"],
                                            headers=other.seller),
                           lambda r: r.status_code == 200)
        attempts: dict[str, dict[str, Any]] = {}
        for label, ref in (("foreign", sha), ("unknown", unknown)):
            att = [{"sha256": ref, "filename": "x.pdf"}]
            attempts[label] = {
                # The seller's own buyer, answering in their conversation.
                "send": await http.post("/v1/messages", headers=x.buyer, json={
                    "in_reply_to": x.ids["msg"], "text": "mire", "attachments": att}),
                "lint": await http.post("/v1/messages:lint", headers=x.buyer, json={
                    "order_id": x.ids["order"], "text": "mire", "attachments": att}),
                # Another seller, to its own buyer, by both doors.
                "seller": await http.post("/v1/messages", headers=other.seller, json={
                    "in_reply_to": other.ids["msg"], "text": "adjunto", "attachments": att}),
                "sp-api": await http.post(
                    f"/messaging/v1/orders/{other.ids['order']}/messages/legalDisclosure",
                    headers=other.seller, json={"attachments": [
                        {"uploadDestinationId": ref, "fileName": "x.pdf"}]}),
            }
        own = await http.post("/v1/messages", headers=x.seller, json={
            "in_reply_to": x.ids["msg"], "text": "Su contrato.",
            "attachments": [{"sha256": sha, "filename": "contrato.pdf"}]})
    assert upload.status_code == 201
    for door in ("send", "lint", "seller", "sp-api"):
        foreign, missing = attempts["foreign"][door], attempts["unknown"][door]
        assert foreign.status_code in (400, 422), (door, foreign.text)
        assert refusal(foreign, sha) == refusal(missing, unknown), door  # no oracle
    assert attempts["foreign"]["send"].json()["error"] == "unknown_attachment"
    assert own.status_code == 202, own.text
    published = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: any(a["sha256"] == sha for a in e["data"].get("attachments", [])),
        count=1, settle=1.0)
    assert [e["data"]["sender"]["party_id"] for e in published] == [x.ids["seller"]]


async def test_the_files_of_a_mail_belong_to_its_sender_and_once_delivered_to_its_recipient(
    kafka, env, prefix, gateway_settings
):
    """The mail door stores a mail's attachments by hash: its sender may send them on from the
    message center; the recipient may once the message reached them (they have the bytes)."""
    photo = store_blob(gateway_settings, b"foto de la silla rota " + uid().encode())
    att = [{"sha256": photo.sha256, "filename": "silla.txt"}]
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        mail = "mail-" + uid()
        await x.addressed(mail, by="buyer", text="Adjunto foto.", attachments=[photo])
        await g.eventually(lambda: http.get(f"/v1/messages/{mail}", headers=x.buyer),
                           lambda r: r.status_code == 200)
        by_sender = await http.post("/v1/messages:lint", headers=x.buyer, json={
            "order_id": x.ids["order"], "text": "otra vez", "attachments": att})
        recipient_before = await http.post("/v1/messages:lint", headers=x.seller, json={
            "order_id": x.ids["order"], "contact_reason": "unexpected_problem",
            "text": "recibida", "attachments": att})
        await x.publish("bsm.messages.delivered", g.delivered(env, **x.fields(
            mail, by="buyer", text="Adjunto foto.", attachments=[photo])))
        await g.eventually(lambda: http.get(f"/v1/messages/{mail}", headers=x.seller),
                           lambda r: r.status_code == 200)
        recipient_after = await http.post("/v1/messages:lint", headers=x.seller, json={
            "order_id": x.ids["order"], "contact_reason": "unexpected_problem",
            "text": "recibida", "attachments": att})
        stranger = await http.post("/v1/messages:lint", headers=g.auth(env, "seller-" + uid()),
                                   json={"text": "x", "attachments": att})
    assert by_sender.status_code == 200, by_sender.text
    assert recipient_before.status_code == 422
    assert recipient_before.json()["error"] == "unknown_attachment"
    assert recipient_after.status_code == 200, recipient_after.text
    assert stranger.status_code == 422 and stranger.json()["error"] == "unknown_attachment"


async def test_uploading_bytes_someone_else_uploaded_answers_alike_and_makes_them_yours(
    kafka, env, prefix, gateway_settings
):
    content = PRIVATE + uid().encode()
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        first = await http.post("/v1/attachments", headers=x.seller,
                                files={"file": ("a.pdf", content, "application/pdf")})
        again = await http.post("/v1/attachments", headers=x.buyer,
                                files={"file": ("a.pdf", content, "application/pdf")})
        fresh = await http.post("/v1/attachments", headers=x.buyer, files={
            "file": ("a.pdf", PRIVATE + uid().encode(), "application/pdf")})
        await g.eventually(lambda: http.get(f"/v1/messages/{x.ids['msg']}", headers=x.buyer),
                           lambda r: r.status_code == 200)
        usable = await http.post("/v1/messages:lint", headers=x.buyer, json={
            "order_id": x.ids["order"], "text": "mire",
            "attachments": [{"sha256": again.json()["sha256"], "filename": "a.pdf"}]})
    assert first.json() == again.json()  # nothing tells the second uploader it existed
    assert {k for k in fresh.json()} == {k for k in again.json()}
    assert fresh.status_code == again.status_code == 201
    assert usable.status_code == 200, usable.text


async def test_files_of_messages_kept_before_ownership_was_recorded_get_their_owners(
    kafka, env, prefix, gateway_settings
):
    """The migration fills ``attachment_owners`` from the messages already in the read model:
    their senders, and the recipients they reached — not the recipient of a bounced one."""
    shas = {name: f"{n:064x}" for n, name in enumerate(("sent", "bounced"), start=1)}
    s, b = "s-" + uid(), "b-" + uid()
    async with g.running_gateway(gateway_settings) as (app, http):
        pool, schema = app.state.runtime.pool, app.state.runtime.schema
        for name, status in (("sent", "delivered"), ("bounced", "bounced")):
            await pool.execute(
                f"""INSERT INTO {schema}.messages (message_id, sender_party_id,
                    recipient_party_id, attachments, submitted_at, status)
                    VALUES ($1, $2, $3, $4, now(), $5)""", f"old-{uid()}", s, b,
                f'[{{"sha256": "{shas[name]}", "size": 1, "filename": "f",'
                f' "content_type": "text/plain"}}]', status)
        await pool.execute(f"DELETE FROM {schema}.attachment_owners")
        await pool.execute(f"DELETE FROM {schema}.schema_migrations")  # as before the upgrade
    async with g.running_gateway(gateway_settings) as (app, http):
        rows = await app.state.runtime.pool.fetch(
            f"SELECT sha256, party_id FROM {app.state.runtime.schema}.attachment_owners")
    assert {(r["sha256"], r["party_id"]) for r in rows} == {
        (shas["sent"], s), (shas["sent"], b), (shas["bounced"], s)}
