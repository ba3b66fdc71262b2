"""Selling Partner API Messaging v1 on the gateway: Amazon's paths and shapes (validated
against the model's definitions), bsm's pipeline, and refusals that name the rule."""

from __future__ import annotations

import io
from datetime import timedelta


from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_gateway_api import seed




async def test_sp_api_lists_actions_gives_the_buyer_locale_and_sends_typed_messages(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        amz = {"x-amz-access-token": g.auth(env, a["seller"])["Authorization"].split()[1]}
        base = f"/messaging/v1/orders/{a['order']}"
        actions = await g.eventually(
            lambda: http.get(base, params={"marketplaceIds": "ES"}, headers=amz),
            lambda r: r.status_code == 200)
        attributes = await http.get(f"{base}/attributes", params={"marketplaceIds": "ES"},
                                    headers=amz)
        sent = await http.post(f"{base}/messages/unexpectedProblem",
                               params={"marketplaceIds": "ES"}, headers=amz,
                               json={"text": "The carrier delayed your parcel by one day."})
        # An order of general goods: scheduling a delivery is not a reason it allows (C3).
        not_for_order = await http.post(f"{base}/messages/confirmDeliveryDetails",
                                        headers=amz, json={"text": "Tuesday?"})
        no_text = await http.post(f"{base}/messages/unexpectedProblem", headers=amz, json={})
        foreign = await http.get(base, headers={"x-amz-access-token": g.auth(
            env, "seller-x")["Authorization"].split()[1]})
        anonymous = await http.get(base)
        # Then policy restricts the seller: no action is available, and bsm says why.
        restricted = p.SellerMessagingRestricted(
            seller_id=a["seller"], level="suspended", starts_at=g.now(),
            until=g.now() + timedelta(days=7), violation_count=5,
            reason="Repeated prohibited content.")
        await kafka.publish(prefix + "bsm.parties", g.signed(
            env, "policy", ev.SellerMessagingRestrictedEvent, restricted, a["seller"]),
            a["seller"])
        empty = await g.eventually(lambda: http.get(base, headers=amz),
                                   lambda r: r.json()["_links"]["actions"] == [])
        refused = await http.post(f"{base}/messages/warranty", headers=amz, json={})
    [submitted] = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: e["data"]["message_id"] == sent.json()["x-bsm-message-id"])

    body = actions.json()
    g.sp_validate(body, "GetMessagingActionsForOrderResponse")
    assert actions.headers["content-type"].startswith("application/hal+json")
    names = {link["name"] for link in body["_links"]["actions"]}
    assert "unexpectedProblem" in names and "confirmDeliveryDetails" not in names
    g.sp_validate(attributes.json(), "GetAttributesResponse")
    assert attributes.json() == {"buyer": {"locale": "es-ES"}}
    assert sent.status_code == 201
    g.sp_validate({k: v for k, v in sent.json().items() if k == "errors"},
                  "CreateUnexpectedProblemResponse")
    assert submitted["data"]["contact_reason"] == "unexpected_problem"
    g.sp_validate(not_for_order.json(), "CreateConfirmDeliveryDetailsResponse")
    assert not_for_order.status_code == 403
    assert "rule C" in not_for_order.json()["errors"][0]["details"]
    assert submitted["data"]["channel"] == "api"
    assert submitted["data"]["recipient"]["party_id"] == a["buyer"]
    for error in (no_text, foreign, anonymous, refused):
        g.sp_validate(error.json(), "CreateWarrantyResponse")
        assert error.json()["errors"], error.text
    assert no_text.status_code == 400 and foreign.status_code == 404
    assert anonymous.status_code == 401
    g.sp_validate(empty.json(), "GetMessagingActionsForOrderResponse")
    [why] = empty.json()["errors"]
    assert "C10" in why["details"] and "suspended" in why["message"]
    assert refused.status_code == 403 and "C10" in refused.json()["errors"][0]["details"]


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


async def test_templates_render_in_the_buyers_language_and_attachments_are_judged_by_content(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        seller = g.auth(env, a["seller"])
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=seller),
                           lambda r: r.status_code == 200)
        saved = await http.post("/v1/templates", headers=seller,
                                json={"name": "thanks", "text": "Gracias, {name}"})
        for_order = await http.get("/v1/templates", params={"order_id": a["order"]},
                                   headers=seller)
        german = await http.get("/v1/templates", params={"locale": "de-AT"}, headers=seller)
        other_seller = await http.get("/v1/templates", headers=g.auth(env, "seller-" + uid()))
        by_buyer = await http.get("/v1/templates", headers=g.auth(env, a["buyer"], "buyer"))

        png = await http.post("/v1/attachments", headers=seller,
                              files={"file": ("photo.txt", io.BytesIO(PNG), "text/plain")})
        text = await http.post("/v1/attachments", headers=seller,
                               files={"file": ("notes.png", b"just words", "image/png")})
        exe = await http.post("/v1/attachments", headers=seller,
                              files={"file": ("a.pdf", b"MZ\x90\x00" + b"\x00" * 64, "x")})
        big = await http.post("/v1/attachments", headers=seller,
                              files={"file": ("big.txt", b"a" * (64 * 1024 + 1), "text/plain")})
        reply = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": a["msg"], "text": "See the photo.",
            "attachments": [{"sha256": png.json()["sha256"], "filename": "photo.png"}]})
        unknown = await http.post("/v1/messages", headers=seller, json={
            "in_reply_to": a["msg"], "text": "x",
            "attachments": [{"sha256": "0" * 64, "filename": "x.png"}]})
    [submitted] = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: e["data"]["message_id"] == reply.json()["message_id"])

    own = [t for t in for_order.json() if t["kind"] == "own"]
    assert saved.status_code == 201 and [t["name"] for t in own] == ["thanks"]
    shipped = {t["name"]: t for t in for_order.json()}["order_shipped"]
    assert shipped["locale"] == "es" and shipped["subject"] == "Su pedido ha sido enviado"
    assert {t["name"]: t for t in german.json()}["order_shipped"]["subject"] == \
        "Ihre Bestellung wurde versandt"
    assert all(t["kind"] == "platform" for t in other_seller.json())
    assert by_buyer.status_code == 403
    assert png.status_code == 201 and png.json()["content_type"] == "image/png"
    assert text.json()["content_type"] == "text/plain"
    assert exe.status_code == 415 and exe.json()["error"] == "attachment_type_refused"
    assert big.status_code == 413
    [att] = submitted["data"]["attachments"]
    assert att["content_type"] == "image/png" and att["filename"] == "photo.png"
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_attachment"


async def test_contact_options_and_lint_answer_from_the_rulebook_without_sending(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        seller = g.auth(env, a["seller"])
        options = await g.eventually(
            lambda: http.get(f"/v1/orders/{a['order']}/contact-options", headers=seller),
            lambda r: r.status_code == 200)
        by_buyer = await http.get(f"/v1/orders/{a['order']}/contact-options",
                                  headers=g.auth(env, a["buyer"], "buyer"))
        lint = await http.post("/v1/messages:lint", headers=seller, json={
            "order_id": a["order"], "contact_reason": "unexpected_problem",
            "text": "Call me at +34 600 123 456 or write to me@example.com"})
        clean = await http.post("/v1/messages:lint", headers=seller, json={
            "order_id": a["order"], "contact_reason": "unexpected_problem",
            "text": "Your parcel is delayed by one day."})
    [submitted] = await kafka.collect(prefix + "bsm.messages.submitted", lambda e: True,
                                      count=0, settle=1.0) or [None]
    body = options.json()
    assert body["order_id"] == a["order"] and body["buyer_opted_out"] is False
    assert "unexpected_problem" in body["available"]
    assert by_buyer.status_code == 403
    rules = {v["rule"] for v in lint.json()["violations"]}
    assert lint.json()["ok"] is False and "C4" in rules
    assert (clean.json()["ok"], clean.json()["violations"]) == (True, [])
    assert submitted is None, "asking never sends"


async def test_each_action_links_a_json_schema_of_its_body_with_the_models_fields(
    kafka, env, prefix, gateway_settings
):
    import jsonschema_rs  # comes with schemathesis

    from bsm_gateway import core

    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        amz = {"x-amz-access-token": g.auth(env, a["seller"])["Authorization"].split()[1]}
        base = f"/messaging/v1/orders/{a['order']}"
        actions = await g.eventually(lambda: http.get(base, headers=amz),
                                     lambda r: r.status_code == 200)
        linked = {}
        for action in actions.json()["_embedded"]["actions"]:
            linked[action["payload"]["name"]] = await http.get(
                action["_links"]["schema"]["href"], headers=amz)
        schemas = {kind: await http.get(f"{base}/messages/{kind}/schema", headers=amz)
                   for kind in core.SP_TYPES}
        foreign = await http.get(f"{base}/messages/invoice/schema", headers={
            "x-amz-access-token": g.auth(env, "seller-x")["Authorization"].split()[1]})
        too_long = await http.post(f"{base}/messages/unexpectedProblem", headers=amz,
                                   json={"text": "x" * 2001})

    model = g.sp_model()["definitions"]
    assert linked and all(r.status_code == 200 for r in linked.values())
    for kind, response in schemas.items():
        assert response.status_code == 200, response.text
        g.sp_validate(response.json(), "GetSchemaResponse")
        schema = response.json()["payload"]
        request = model["InvoiceRequest" if kind == "invoice" else f"Create{kind[0].upper()}"
                        f"{kind[1:]}Request"]
        assert set(schema["properties"]) == set(request["properties"]), kind
        for field in ("text",):
            if field in request["properties"]:
                assert schema["properties"][field]["maxLength"] \
                    == request["properties"][field]["maxLength"], kind
        validator = jsonschema_rs.Draft4Validator(schema)
        assert not validator.is_valid({})  # every type needs its text or attachments
    text_only = jsonschema_rs.Draft4Validator(schemas["unexpectedProblem"].json()["payload"])
    assert text_only.is_valid({"text": "The carrier delayed your parcel."})
    assert not text_only.is_valid({"text": "x" * 2001})
    invoice = jsonschema_rs.Draft4Validator(schemas["invoice"].json()["payload"])
    assert invoice.is_valid({"attachments": [{"uploadDestinationId": "a" * 64,
                                              "fileName": "invoice.pdf"}]})
    assert foreign.status_code == 404 and foreign.json()["errors"][0]["code"] == "NotFound"
    assert too_long.status_code == 422  # what the schema says is what the door enforces
    assert too_long.json()["errors"][0]["code"] == "InvalidInput"
