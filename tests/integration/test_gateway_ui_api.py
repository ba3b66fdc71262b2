"""The gateway's record endpoints (dispute timeline, seller response times) against the real
metrics service, both in this process on the real Kafka and PostgreSQL: the gateway checks
the caller's role and proxies; a metrics outage is a 503 in the API's error shape."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from httpx import ASGITransport, AsyncClient

from bsm_gateway.app import create_app as create_gateway
from bsm_gateway.metrics_client import MetricsClient
from bsm_metrics.app import create_app as create_metrics
from bsm_metrics.settings import MetricsSettings
from tests import gateway_support as g
from tests.factories import uid
from tests.metrics_support import delivered, issue_scenario




def signed(env, raw: dict, producer: str) -> bytes:
    """An event as ``producer`` signs it (a Delivered event signed by the gateway's own key is
    a forgery: the signature verifies, the producer may not write it)."""
    from bsm_shared.contract.signing import Signer, load_private_key

    signer = Signer(producer, load_private_key(env[f"BSM_{producer.upper()}_SIGNING_KEY"]))
    body = {**raw, "producer": producer, "causation_id": None}
    body["signature"] = signer.sign(body)
    return json.dumps(body).encode()


async def test_dispute_and_operators_see_the_timeline_with_verification_and_parties_get_403(
    kafka, env, prefix, settings_for, gateway_settings, expect
):
    # The fake Delivered is signed by the gateway, which may not write it: the consumers
    # dead-letter it (and the record keeps it, flagged).
    expect.dead_letter("wrong_producer", topic="bsm.messages.delivered.dlq")
    oid = "o-" + uid()
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    question = delivered("q-" + uid(), conversation="c", sender_role="buyer", at=t0,
                         order_id=oid)
    answer = delivered("a-" + uid(), conversation="c", sender_role="seller",
                       at=t0 + timedelta(hours=2), order_id=oid)
    fake = delivered("f-" + uid(), conversation="c", sender_role="seller",
                     at=t0 + timedelta(hours=1), order_id=oid)
    metrics_app = create_metrics(settings_for(MetricsSettings, "metrics"))
    async with metrics_app.router.lifespan_context(metrics_app):
        metrics = MetricsClient("http://metrics", token=env["BSM_METRICS_TOKEN"],
                                transport=ASGITransport(app=metrics_app))
        async with g.running_gateway(gateway_settings, metrics=metrics) as (app, http):
            # Published out of time order; the fake is signed by the gateway, not delivery.
            await kafka.publish(prefix + "bsm.messages.delivered",
                                signed(env, answer, "delivery"), "r-1")
            await kafka.publish(prefix + "bsm.messages.delivered",
                                signed(env, question, "delivery"), "r-1")
            await kafka.publish(prefix + "bsm.messages.delivered",
                                signed(env, fake, "gateway"), "r-1")
            dispute = g.auth(env, "trust-1", "dispute")
            full = await g.eventually(
                lambda: http.get(f"/v1/orders/{oid}/timeline", headers=dispute),
                lambda r: r.status_code == 200 and len(r.json()["events"]) == 3, timeout=30)
            past = await http.get(f"/v1/orders/{oid}/timeline", headers=dispute,
                                  params={"as_of": (t0 + timedelta(minutes=90)).isoformat()})
            operator = await http.get(f"/v1/orders/{oid}/timeline",
                                      headers=g.auth(env, "op-1", "operator"))
            buyer = await http.get(f"/v1/orders/{oid}/timeline",
                                   headers=g.auth(env, "b-1", "buyer"))
            seller = await http.get(f"/v1/orders/{oid}/timeline", headers=g.auth(env, "s-1"))
            anonymous = await http.get(f"/v1/orders/{oid}/timeline")
            naive = await http.get(f"/v1/orders/{oid}/timeline", headers=dispute,
                                   params={"as_of": "2026-11-01T11:00:00"})
            unknown = await http.get(f"/v1/orders/nope-{uid()}/timeline", headers=dispute)

    events = full.json()["events"]
    ids = [e["message_id"] for e in events]
    assert ids == [question["data"]["message_id"], fake["data"]["message_id"],
                   answer["data"]["message_id"]]  # the events' own times, not arrival
    marks = {e["message_id"]: e["verification"] for e in events}
    assert marks[fake["data"]["message_id"]] == "not_verified"
    assert marks[question["data"]["message_id"]] == marks[answer["data"]["message_id"]] \
        == "verified"
    assert [e["producer"] for e in events] == ["delivery", "gateway", "delivery"]
    assert [e["message_id"] for e in past.json()["events"]] == ids[:2]
    assert operator.status_code == 200 and len(operator.json()["events"]) == 3
    for refused in (buyer, seller):
        assert refused.status_code == 403
        assert refused.json()["error"] == "role_cannot_read_record"
        assert set(refused.json()) == {"error", "detail"}
    assert anonymous.status_code == 401
    assert naive.status_code == 422 and naive.json()["error"] == "invalid_request"
    assert unknown.status_code == 404 and unknown.json()["error"] == "order_not_found"


async def test_a_seller_sees_only_its_own_response_times_and_operators_any(
    kafka, env, prefix, settings_for, gateway_settings
):
    seller = "s-" + uid()
    events, as_of = issue_scenario(seller)
    metrics_app = create_metrics(settings_for(MetricsSettings, "metrics"))
    async with metrics_app.router.lifespan_context(metrics_app):
        metrics = MetricsClient("http://metrics", token=env["BSM_METRICS_TOKEN"],
                                transport=ASGITransport(app=metrics_app))
        async with g.running_gateway(gateway_settings, metrics=metrics) as (app, http):
            for e in events:
                producer = "delivery" if e["type"] == "Delivered" else "gateway"
                topic = ("bsm.messages.delivered" if e["type"] == "Delivered"
                         else "bsm.messages.response-not-needed")
                await kafka.publish(prefix + topic, signed(env, e, producer), "r-1")
            params = {"window": "7d", "as_of": as_of.isoformat()}
            own = await g.eventually(
                lambda: http.get(f"/v1/sellers/{seller}/response-times", params=params,
                                 headers=g.auth(env, seller)),
                lambda r: r.status_code == 200 and r.json()["counted"] == 3, timeout=30)
            other_seller = await http.get(f"/v1/sellers/{seller}/response-times",
                                          params=params, headers=g.auth(env, "s-other"))
            buyer = await http.get(f"/v1/sellers/{seller}/response-times", params=params,
                                   headers=g.auth(env, "b-1", "buyer"))
            operator = await http.get(f"/v1/sellers/{seller}/response-times", params=params,
                                      headers=g.auth(env, "op", "operator"))
            bad_window = await http.get(f"/v1/sellers/{seller}/response-times",
                                        params={"window": "1y"}, headers=g.auth(env, seller))

    figures = own.json()
    assert figures["late_response_rate"] == pytest.approx(2 / 3)
    assert figures["average_response_time_seconds"] == 16 * 3600
    assert (figures["answered"], figures["excluded"]) == (2, 1)
    assert other_seller.status_code == 403 and other_seller.json()["error"] == "not_allowed"
    assert buyer.status_code == 403
    assert operator.status_code == 200 and operator.json() == figures
    assert bad_window.status_code == 422


async def test_a_metrics_outage_or_a_hanging_metrics_service_is_a_503_in_the_error_shape(
    env, gateway_settings
):
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)
        writer.close()

    hanging = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = hanging.sockets[0].getsockname()[1]
    dispute, seller = g.auth(env, "trust-1", "dispute"), g.auth(env, "s-1")
    answers = []
    try:
        for client in (MetricsClient("http://127.0.0.1:9", timeout=2),  # nothing listens
                       MetricsClient(f"http://127.0.0.1:{port}", timeout=0.5)):
            app = create_gateway(gateway_settings, metrics=client)
            async with app.router.lifespan_context(app):
                http = AsyncClient(transport=ASGITransport(app=app), base_url="http://gw")
                started = asyncio.get_running_loop().time()
                answers.append(await http.get("/v1/orders/o-1/timeline", headers=dispute))
                answers.append(await http.get("/v1/sellers/s-1/response-times",
                                              headers=seller))
                elapsed = asyncio.get_running_loop().time() - started
                assert elapsed < 5, elapsed  # the timeout, not the server, ends the wait
    finally:
        hanging.close()
    for r in answers:
        assert r.status_code == 503
        assert r.json()["error"] == "metrics_unavailable"
        assert set(r.json()) == {"error", "detail"} and "Traceback" not in r.text


async def test_notifications_list_only_the_callers_own_bounced_messages_with_rule_and_remedy(
    kafka, env, prefix, gateway_settings
):
    from tests.integration.test_gateway_api import seed

    app = create_gateway(gateway_settings, metrics=MetricsClient("http://127.0.0.1:9"))
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://gw")
        a = await seed(kafka, env, prefix)
        b = await seed(kafka, env, prefix)
        stopped = "m-" + uid()
        common = dict(message_id=stopped, conversation_id=a["conv"], relationship_id=a["rel"],
                      sender=a["buyer"], recipient=a["seller"], sender_role="buyer",
                      order_id=a["order"], subject="Call me")
        await kafka.publish(prefix + "bsm.messages.addressed", g.addressed(env, **common),
                            a["rel"])
        await kafka.publish(prefix + "bsm.messages.bounced", g.bounced(env, **common), a["rel"])
        buyer_a = g.auth(env, a["buyer"], "buyer")
        mine = await g.eventually(lambda: http.get("/v1/notifications", headers=buyer_a),
                                  lambda r: r.status_code == 200 and len(r.json()) == 1)
        buyer_b = await http.get("/v1/notifications", headers=g.auth(env, b["buyer"], "buyer"))
        seller_a = await http.get("/v1/notifications", headers=g.auth(env, a["seller"]))
        dispute = await http.get("/v1/notifications", headers=g.auth(env, "t", "dispute"))
        anonymous = await http.get("/v1/notifications")

    [notice] = mine.json()
    assert notice["message_id"] == stopped and notice["kind"] == "bounce"
    assert (notice["rule"], notice["explanation"], notice["remedy"]) == (
        "C4", "The message contains a phone number.", "Remove the phone number.")
    assert notice["subject"] == "Call me" and notice["order_id"] == a["order"]
    assert buyer_b.json() == [] and seller_a.json() == []  # the recipient gets no notice
    assert dispute.status_code == 403 and dispute.json()["error"] == "role_cannot_read"
    assert anonymous.status_code == 401
