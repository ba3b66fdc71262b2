"""B4 at the gateway's door (issue 12): the upload takes exactly the types policy takes — DOCX,
TIFF and BMP included, WebP not — judged from the content by ``bsm_shared.attachments``, and
a message's attachment carries the type judged from the stored file."""

from __future__ import annotations

from bsm_shared import attachments as file_types
from tests import gateway_support as g
from tests.file_samples import ALLOWED, REFUSED
from tests.integration.test_gateway_api import seed
from tests.integration.test_gateway_visibility import Exchange


async def test_b4_the_upload_takes_every_type_of_the_list_and_refuses_others_naming_the_list(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        seller, conversation = x.seller, x.ids["msg"]
        await g.eventually(lambda: http.get(f"/v1/messages/{conversation}", headers=seller),
                           lambda r: r.status_code == 200)
        taken = {}
        for name, (data, _) in ALLOWED.items():
            taken[name] = await http.post("/v1/attachments", headers=seller, files={
                "file": (f"file.{name}", data, "application/octet-stream")})
        refused = {name: await http.post("/v1/attachments", headers=seller, files={
            "file": ("foto.png", data, "image/png")}) for name, (data, _) in REFUSED.items()}
        bmp = taken["bmp"].json()["sha256"]
        reply = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": conversation, "text": "Le adjunto el plano.",
            "attachments": [{"sha256": bmp, "filename": "plano.pdf"}]})
    [submitted] = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: e["data"]["message_id"] == reply.json()["message_id"])

    assert {name: (r.status_code, r.json()["content_type"]) for name, r in taken.items()} == {
        name: (201, mime) for name, (_, mime) in ALLOWED.items()}
    for name, r in refused.items():
        assert r.status_code == 415, (name, r.text)
        body = r.json()
        assert (body["error"], body["rule"]) == ("attachment_type_refused", "B4")
        assert body["accepted"] == file_types.ACCEPTED
        assert body["detected"] == REFUSED[name][1]
        assert body["detail"].startswith("foto.png is ")
    [att] = submitted["data"]["attachments"]
    assert (att["filename"], att["content_type"]) == ("plano.pdf", "image/bmp")
