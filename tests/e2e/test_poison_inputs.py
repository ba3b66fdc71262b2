"""Hostile input on the input topics, through the running stack (issue 10): each poison event
gets its declared outcome — a dead letter naming why — and the stream moves on: the ordinary
message published right after it is delivered and archived in the record."""

import asyncio
import json

import httpx

from tests.e2e.test_message_path import people, sink_mail  # noqa: F401 - fixture
from tests.factories import uid
from tests.stack import metrics_headers, platform_event


def submitted(people, mid: str, **over) -> dict:
    return {"message_id": mid, "channel": "api", "sender": {"party_id": people["buyer"]},
            "recipient": {"party_id": people["seller"]}, "order_id": people["order"],
            "subject": "¿Cuándo llega?", "text": "Hola", "submitted_at": "2026-11-21T10:00:00Z",
            **over}


async def archived(env, order_id: str, message_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"],
                                 headers=metrics_headers(env)) as client:
        for _ in range(150):
            response = await client.get(f"/v1/orders/{order_id}/timeline")
            if response.status_code == 200:
                types = [e["type"] for e in response.json()["events"]
                         if e["message_id"] == message_id]
                if "Delivered" in types:
                    return types
            await asyncio.sleep(0.2)
    raise AssertionError(f"{message_id} never reached the record as delivered")


async def test_poison_events_on_the_input_topics_are_dead_lettered_and_the_next_message_flows(
    kafka, env, people, expect  # noqa: F811
):
    nul, surrogate = "nul-" + uid(), "sur-" + uid()
    # U+0000 in the html (the event that wedged the record for good) and a lone surrogate.
    await kafka.publish("bsm.messages.submitted", platform_event(
        "MessageSubmitted", submitted(people, nul, html="<p>a\u0000b</p>"), nul), nul)
    raw = json.loads(platform_event("MessageSubmitted", submitted(people, surrogate), surrogate))
    body = json.dumps(raw).replace('"Hola"', '"Hola \\ud800"').encode()
    await kafka.publish("bsm.messages.submitted", body, surrogate)
    # Not JSON, JSON that is not an object, an event type nobody knows.
    junk = "junk-" + uid()
    await kafka.publish("bsm.messages.submitted", b"\x00\xff{not json " + junk.encode(), junk)
    await kafka.publish("bsm.orders", json.dumps([junk]).encode(), junk)
    unknown = json.loads(platform_event("OrderShipped", {"order_id": junk}, junk))
    await kafka.publish("bsm.orders", json.dumps(unknown).encode(), junk)
    # Each consumer of the topic (alias and the record; policy, the record and the gateway
    # for the orders) dead-letters them: a declaration covers every such entry.
    expect.dead_letter("unstorable_text", topic="bsm.messages.submitted.dlq", match=nul)
    expect.dead_letter("unstorable_text", topic="bsm.messages.submitted.dlq", match=surrogate)
    expect.dead_letter("malformed_json", topic="bsm.messages.submitted.dlq")
    expect.dead_letter("not_an_object", topic="bsm.orders.dlq", match=junk)
    expect.dead_letter("unknown_type", topic="bsm.orders.dlq", match=junk)

    after = "m-" + uid()
    await kafka.publish("bsm.messages.submitted", platform_event(
        "MessageSubmitted", submitted(people, after, submitted_at="2026-11-21T10:00:01Z"), after), after)
    await sink_mail(env, after)
    assert await archived(env, people["order"], after) == [
        "MessageSubmitted", "MessageAddressed", "PolicyChecked", "Delivered"]

    [dead_nul] = await kafka.collect(
        "bsm.messages.submitted.dlq",
        lambda e: nul in (e.get("value") or "") and e["consumer"] == "alias")
    assert "data.html" in dead_nul["error"] and "U+0000" in dead_nul["error"]
    [dead_sur] = await kafka.collect(
        "bsm.messages.submitted.dlq",
        lambda e: surrogate in (e.get("value") or "") and e["consumer"] == "alias")
    assert dead_sur["error_code"] == "unstorable_text" and "surrogate" in dead_sur["error"]
    [dead_junk] = await kafka.collect(
        "bsm.messages.submitted.dlq",
        lambda e: e.get("value_base64") is not None and e["consumer"] == "alias"
        and e["key"] == junk)
    assert dead_junk["error_code"] == "malformed_json" and dead_junk["value_bytes"] > 0
