"""The delivery service against real Kafka, PostgreSQL and the stack's mail sink."""

import email
import uuid
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from bsm_delivery.app import create_runtime
from bsm_delivery.settings import DeliverySettings
from bsm_shared.contract import PolicyCheckedEvent
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from tests.factories import policy_checked, uid
from tests.stack import platform_event, running


def decision(env, producer: str = "policy", **over) -> tuple[str, bytes]:
    data = policy_checked(**over)
    event = build_event(PolicyCheckedEvent, data, event_id=uuid.uuid4(),
                        occurred_at=datetime.now(UTC), producer=producer,
                        correlation_id=data.message_id)
    signer = Signer(producer, load_private_key(env[f"BSM_{producer.upper()}_SIGNING_KEY"]))
    return data.message_id, to_wire(event, signer)


def recipient(pid: str, address: str) -> bytes:
    return platform_event("PartyRegistered", {
        "party_id": pid, "role": "seller", "email": address, "display_name": "Muebles Sol",
        "locale": "es-ES", "marketplace": "ES"}, pid)


def sink_mail(env, message_id: str) -> email.message.EmailMessage | None:
    for path in Path(env["BSM_MAIL_SINK_DIR"]).glob("*.eml"):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if mail["Message-ID"] == f"<{message_id}@{env['BSM_MAIL_DOMAIN']}>":
            return mail
    return None


async def test_an_approved_message_is_mailed_from_the_alias_and_delivered_exactly_once(
    kafka, prefix, settings_for, env
):
    settings = settings_for(DeliverySettings, "delivery")
    seller = "s-" + uid()
    address = f"{uid()}@seller-mail.example"
    mid, value = decision(env, recipient_party_id=seller, sender_display_name="Ana B.")
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, address), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")  # redelivery
        delivered = await kafka.collect(prefix + "bsm.messages.delivered",
                                        lambda e: e["data"]["message_id"] == mid, settle=2.0)
    assert len(delivered) == 1
    assert delivered[0]["producer"] == "delivery" and delivered[0]["signature"]
    mail = sink_mail(env, mid)
    assert mail is not None
    assert mail["From"].addresses[0].display_name == "Ana B."
    assert mail["X-Bsm-Sink-Envelope-To"] == address
    assert address not in str(delivered[0])


async def test_a_forged_approval_gets_nothing_delivered(kafka, prefix, settings_for, env):
    settings = settings_for(DeliverySettings, "delivery")
    seller = "s-" + uid()
    mid, forged = decision(env, producer="gateway", recipient_party_id=seller)
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", forged, "r-1")
        [dead] = await kafka.collect(prefix + "bsm.messages.policy-checked.dlq",
                                     lambda e: mid in (e.get("value") or ""))
        outcomes = await kafka.collect(prefix + "bsm.messages.delivered",
                                       lambda e: e["data"]["message_id"] == mid, count=0,
                                       settle=2.0)
    assert dead["error_code"] == "wrong_producer"
    assert outcomes == [] and sink_mail(env, mid) is None


async def test_a_rejection_becomes_one_bounce_naming_the_rule(kafka, prefix, settings_for, env):
    settings = settings_for(DeliverySettings, "delivery")
    violation = {"rule": "C1", "code": "unknown_order", "detail": "Order unknown.",
                 "remedy": "Check the order number."}
    mid, value = decision(env, verdict="rejected", violations=[violation])
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        [bounce] = await kafka.collect(prefix + "bsm.messages.bounced",
                                       lambda e: e["data"]["message_id"] == mid, settle=1.0)
    assert (bounce["data"]["stage"], bounce["data"]["rule"], bounce["data"]["reason_code"]) == (
        "policy", "C1", "unknown_order")
    assert bounce["data"]["remedy"] == "Check the order number."
