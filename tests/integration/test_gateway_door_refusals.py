"""Issue 12 on the gateway, against real Kafka and PostgreSQL (and the real metrics service in
this process where the record's figures matter): the SP-API door and `?validate=true` refuse
at once what the rules would stop, naming every violation and sending nothing; contact
options and the SP-API action list judge the daily limit (C7) on the record's figures; F2 and
F3 through the gateway for the roles that should see them; seller templates by language."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from httpx import ASGITransport

from bsm_gateway.metrics_client import MetricsClient
from bsm_metrics.app import create_app as create_metrics
from bsm_metrics.settings import MetricsSettings
from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_gateway_api import seed
from tests.stack import platform_event

PHONE_TEXT = "Your parcel is late; call me on +1 212 555 0199 to arrange it."


async def nothing_submitted(kafka, prefix: str, marker: str) -> None:
    sent = await kafka.collect(prefix + "bsm.messages.submitted",
                               lambda e: marker in (e["data"].get("text") or ""), count=0,
                               settle=1.0)
    assert sent == [], "a refused message was sent"


async def test_the_sp_api_door_refuses_a_phone_number_at_once_naming_rule_code_and_span(
    kafka, env, prefix, gateway_settings
):
    """C4 at the SP-API door (item 4): it answered 201 and the message bounced later, where
    an integrator could not see why."""
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        amz = {"x-amz-access-token": g.auth(env, a["seller"])["Authorization"].split()[1]}
        base = f"/messaging/v1/orders/{a['order']}/messages"
        await g.eventually(lambda: http.get(f"/messaging/v1/orders/{a['order']}", headers=amz),
                           lambda r: r.status_code == 200)
        marker = uid()
        phone = await http.post(f"{base}/unexpectedProblem", headers=amz,
                                json={"text": f"{PHONE_TEXT} {marker}"})
        clean = await http.post(f"{base}/unexpectedProblem", headers=amz,
                                json={"text": "The carrier delayed your parcel by a day."})
    body = phone.json()
    g.sp_validate(body, "CreateUnexpectedProblemResponse")
    assert phone.status_code == 400
    [error] = body["errors"]
    start = PHONE_TEXT.index("+1")
    assert error["code"] == "InvalidInput"
    assert error["details"].startswith(f"phone_number (rule C4) at text[{start}:")
    assert "phone" in error["message"].lower()
    assert clean.status_code == 201
    await nothing_submitted(kafka, prefix, marker)


async def test_validate_true_answers_422_with_every_violation_and_sends_nothing(
    kafka, env, prefix, gateway_settings
):
    """Item 4 for `POST /v1/messages`: asked to validate (`?validate=true` or `Prefer:
    handling=strict`), the gateway refuses at once with every violation, as lint finds them."""
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        seller = g.auth(env, a["seller"])
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=seller),
                           lambda r: r.status_code == 200)
        marker = uid()
        draft = {"order_id": a["order"], "contact_reason": "unexpected_problem",
                 "subject": "Your order",
                 "text": f"{PHONE_TEXT} Write to sol@example.com too. {marker}"}
        validated = await http.post("/v1/messages", params={"validate": "true"}, headers=seller,
                                    json=draft)
        strict = await http.post("/v1/messages", headers={**seller,
                                                           "Prefer": "handling=strict"},
                                 json=draft)
        linted = await http.post("/v1/messages:lint", headers=seller, json=draft)
        # A reply in the buyer's conversation is judged as a reply (not as proactive).
        reply = await http.post("/v1/messages", params={"validate": "true"}, headers=seller,
                                json={"in_reply_to": a["msg"], "text": "It left today."})
    for refused in (validated, strict):
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["error"] == "policy_violations" and body["rule"] == "C4"
        assert {(v["rule"], v["code"]) for v in body["violations"]} >= {
            ("C4", "phone_number"), ("C4", "email_address")}
        for v in body["violations"]:
            assert v["detail"] and v["remedy"] and v["span"]["field"] == "text"
            assert v["span"]["start"] is not None
        assert body["violations"] == linted.json()["violations"]  # one code path
    assert reply.status_code == 202
    await nothing_submitted(kafka, prefix, marker)


def policy_approved(seller: str, buyer: str, order: str) -> p.PolicyChecked:
    now = datetime.now(UTC)
    mid = "m-" + uid()
    return p.PolicyChecked(
        message_id=mid, channel="web", sender=p.PartyRef(party_id=seller),
        recipient=p.PartyRef(party_id=buyer), order_id=order, subject="s", text="t",
        submitted_at=now, relationship_id="r-" + uid(), conversation_id="c-" + uid(),
        sender_party_id=seller, recipient_party_id=buyer, sender_role="seller",
        recipient_role="buyer", sender_alias="a@m.example", recipient_alias="b@m.example",
        sender_display_name="Sol", recipient_locale="es-ES", conversation_started_by="seller",
        contact_reason="unexpected_problem", verdict="approved", essential=True, violations=[],
        checked_at=now)


async def test_contact_options_and_sp_api_actions_judge_the_daily_limit_on_the_records_figures(
    kafka, env, prefix, settings_for, gateway_settings
):
    """C7 (item 5) with F2's count and formula: one approved message today and a limit of one
    (base 1, no orders in the window) — nothing is available, and every answer says C7. F2 and
    F3 through the gateway for the roles that should see them."""
    metrics_app = create_metrics(settings_for(MetricsSettings, "metrics", daily_limit_base=1))
    async with metrics_app.router.lifespan_context(metrics_app):
        metrics = MetricsClient("http://metrics", token=env["BSM_METRICS_TOKEN"],
                                transport=ASGITransport(app=metrics_app))
        async with g.running_gateway(gateway_settings, metrics=metrics) as (app, http):
            a = await seed(kafka, env, prefix)
            seller = g.auth(env, a["seller"])
            amz = {"x-amz-access-token": seller["Authorization"].split()[1]}
            order = f"/v1/orders/{a['order']}/contact-options"
            before = await g.eventually(lambda: http.get(order, headers=seller),
                                        lambda r: r.status_code == 200)
            await kafka.publish(prefix + "bsm.messages.policy-checked", g.signed(
                env, "policy", ev.PolicyCheckedEvent,
                policy_approved(a["seller"], a["buyer"], a["order"]), a["seller"]), a["seller"])
            full = await g.eventually(lambda: http.get(order, headers=seller),
                                      lambda r: r.json()["daily_limit"]["used"] == 1)
            actions = await http.get(f"/messaging/v1/orders/{a['order']}", headers=amz)
            send = await http.post(
                f"/messaging/v1/orders/{a['order']}/messages/unexpectedProblem", headers=amz,
                json={"text": "The carrier delayed your parcel by a day."})
            lint = await http.post("/v1/messages:lint", headers=seller, json={
                "order_id": a["order"], "contact_reason": "unexpected_problem",
                "text": "The carrier delayed your parcel by a day."})
            # F2: the seller's own, or an operator's look; F3: trust & safety and disputes.
            own = await http.get(f"/v1/sellers/{a['seller']}/quota", headers=seller)
            others = await http.get(f"/v1/sellers/{a['seller']}/quota",
                                    headers=g.auth(env, "seller-" + uid()))
            operator = await http.get(f"/v1/sellers/{a['seller']}/quota",
                                      headers=g.auth(env, "op-1", "operator"))
            stats = {role: await http.get("/v1/reports/stats", headers=g.auth(env, "x", role))
                     for role in ("operator", "dispute", "seller", "buyer")}

    assert before.json()["available"] and before.json()["daily_limit"]["limit"] == 1
    assert before.json()["not_judged"] == []
    answer = full.json()
    assert answer["available"] == [] and answer["can_message"] is False
    assert [v["rule"] for v in answer["blocked_by"]] == ["C7"]
    g.sp_validate(actions.json(), "GetMessagingActionsForOrderResponse")
    assert actions.json()["_links"]["actions"] == []
    assert "daily_limit_reached (rule C7)" in actions.json()["errors"][0]["details"]
    g.sp_validate(send.json(), "CreateUnexpectedProblemResponse")
    assert send.status_code == 403
    assert send.json()["errors"][0]["details"] == "daily_limit_reached (rule C7) at message"
    assert [v["code"] for v in lint.json()["violations"]] == ["daily_limit_reached"]
    assert own.status_code == operator.status_code == 200
    assert own.json() == {"seller_id": a["seller"], "day": own.json()["day"], "used": 1,
                          "limit": 1}
    assert others.status_code == 403
    assert stats["operator"].status_code == stats["dispute"].status_code == 200
    assert set(stats["operator"].json()["by_reason"]) == set(p.REPORT_REASONS)
    for refused in (stats["seller"], stats["buyer"]):
        assert refused.status_code == 403
        assert refused.json()["error"] == "role_cannot_read_reports"


async def test_a_sellers_template_comes_in_the_buyers_language_or_falls_back_visibly(
    kafka, env, prefix, gateway_settings
):
    """E5 (item 7): one text per language; the buyer's marketplace language (es-ES here), else
    English, else the template's own — and the answer says which and that it fell back."""
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        seller = g.auth(env, a["seller"])
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=seller),
                           lambda r: r.status_code == 200)
        name = "late-" + uuid.uuid4().hex[:6]
        saved = await http.post("/v1/templates", headers=seller, json={
            "name": name, "subject": "Your parcel", "text": "It is late.", "language": "en",
            "translations": {"es": {"subject": "Su paquete", "text": "Llega tarde."},
                             "de": {"subject": "Ihr Paket", "text": "Es ist spät."}}})
        italian_only = await http.post("/v1/templates", headers=seller, json={
            "name": name + "-it", "subject": "Il pacco", "text": "È in ritardo.",
            "language": "it"})
        twice = await http.post("/v1/templates", headers=seller, json={
            "name": "x", "text": "y", "language": "es", "translations": {"es": {"text": "z"}}})
        for_order = await http.get("/v1/templates", params={"order_id": a["order"]},
                                   headers=seller)
        french = await http.get("/v1/templates", params={"locale": "fr-FR"}, headers=seller)
        plain = await http.get("/v1/templates", headers=seller)

    def own(r, n):
        return {t["name"]: t for t in r.json()}[n]

    assert saved.status_code == 201 and saved.json()["languages"] == ["de", "en", "es"]
    assert twice.status_code == 422
    spanish = own(for_order, name)
    assert (spanish["locale"], spanish["subject"], spanish["text"]) == ("es", "Su paquete",
                                                                        "Llega tarde.")
    assert (spanish["requested_language"], spanish["fell_back"]) == ("es", False)
    english = own(french, name)
    assert (english["locale"], english["text"], english["fell_back"]) == ("en", "It is late.",
                                                                          True)
    assert english["requested_language"] == "fr"
    assert (own(for_order, name + "-it")["locale"], own(for_order, name + "-it")["fell_back"]) \
        == ("it", True)
    assert own(plain, name)["locale"] == "en" and own(plain, name)["fell_back"] is False
    assert own(plain, name)["requested_language"] is None
    assert italian_only.json()["locale"] == "it"


async def test_the_gateway_folds_order_statuses_as_policy_does_whatever_their_arrival_order(
    kafka, env, prefix, gateway_settings
):
    """Same facts (item 5): the gateway kept the status that *arrived* last and the latest
    delivery; policy keeps the latest by its own time and the first delivery and completion
    (``engine.fold_status``). A completion published before the earlier delivery it follows."""
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        for status, at in (("completed", "2026-11-25T10:00:00+00:00"),
                           ("delivered", "2026-11-22T10:00:00+00:00"),
                           ("delivered", "2026-11-23T10:00:00+00:00")):
            await kafka.publish(prefix + "bsm.orders", platform_event("OrderStatusChanged", {
                "order_id": a["order"], "status": status, "changed_at": at}, a["order"]),
                a["order"])
        pool, schema = app.state.runtime.pool, app.state.runtime.schema

        async def order():
            return await pool.fetchrow(f"SELECT status, delivered_at, completed_at, "
                                       f"status_changed_at FROM {schema}.orders "
                                       f"WHERE order_id = $1", a["order"])

        row = await g.eventually(order, lambda r: r is not None and r["delivered_at"] is not None
                                 and r["status_changed_at"] is not None
                                 and r["completed_at"] is not None, timeout=20)
        await asyncio.sleep(1.0)  # the third event too
        row = await order()
    assert row["status"] == "completed"
    assert row["delivered_at"] == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert row["completed_at"] == datetime(2026, 11, 25, 10, tzinfo=UTC)
