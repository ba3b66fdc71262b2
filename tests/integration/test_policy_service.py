"""The policy service against real Kafka and PostgreSQL."""

import json
import uuid
from datetime import UTC, datetime

from bsm_policy.app import create_runtime
from bsm_policy.settings import PolicySettings
from bsm_shared.contract import MessageAddressedEvent, parse_event
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from tests.factories import addressed, uid
from tests.stack import platform_event, running


def alias_event(env, **over) -> tuple[str, bytes]:
    data = addressed(**over)
    event = build_event(MessageAddressedEvent, data, event_id=uuid.uuid4(),
                        occurred_at=datetime.now(UTC), producer="alias",
                        correlation_id=data.message_id)
    signer = Signer("alias", load_private_key(env["BSM_ALIAS_SIGNING_KEY"]))
    return data.message_id, to_wire(event, signer)


def order(order_id: str, buyer: str = "buyer-1", seller: str = "seller-1") -> bytes:
    return platform_event("OrderPlaced", {
        "order_id": order_id, "buyer_id": buyer, "seller_id": seller,
        "placed_at": "2026-11-01T09:00:00Z", "items": [{"sku": "chair"}]}, order_id)


async def test_a_message_that_overtakes_its_order_waits_for_it_and_is_approved(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", order_wait_seconds=60)
    oid = "o-" + uid()
    mid, value = alias_event(env, order_id=oid)
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.messages.addressed", value, "r-1")
        await kafka.publish(prefix + "bsm.orders", order(oid), oid)
        [checked] = await kafka.collect(prefix + "bsm.messages.policy-checked",
                                        lambda e: e["data"]["message_id"] == mid)
    assert checked["producer"] == "policy" and checked["data"]["verdict"] == "approved"


async def test_a_message_about_an_order_that_never_comes_is_rejected_after_the_wait(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", order_wait_seconds=1)
    mid, value = alias_event(env, order_id="o-never-" + uid())
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.messages.addressed", value, "r-1")
        [checked] = await kafka.collect(prefix + "bsm.messages.policy-checked",
                                        lambda e: e["data"]["message_id"] == mid)
    assert checked["data"]["verdict"] == "rejected"
    assert [(v["rule"], v["code"]) for v in checked["data"]["violations"]] == [
        ("C1", "unknown_order")]


async def test_an_addressed_message_not_signed_by_alias_is_dead_lettered_not_decided(
    kafka, prefix, settings_for, env, expect
):
    expect.dead_letter("bad_signature", topic="bsm.messages.addressed.dlq")
    settings = settings_for(PolicySettings, "policy", order_wait_seconds=0)
    mid, value = alias_event(env, order_id=None)
    forged = json.loads(value)
    forged["data"]["subject"] = "changed after signing"
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.messages.addressed", json.dumps(forged).encode(), "r-1")
        await kafka.publish(prefix + "bsm.messages.addressed", alias_event(env, order_id=None)[1],
                            "r-1")
        [dead] = await kafka.collect(prefix + "bsm.messages.addressed.dlq",
                                     lambda e: mid in (e.get("value") or ""))
        decided = await kafka.collect(prefix + "bsm.messages.policy-checked", lambda e: True,
                                      count=1, settle=1.0)
    assert dead["error_code"] == "bad_signature" and dead["consumer"] == "policy"
    assert mid not in {parse_event(e).data.message_id for e in decided}
