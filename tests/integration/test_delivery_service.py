"""The delivery service against real Kafka, PostgreSQL and the stack's mail sink."""

import asyncio
import base64
import email
import uuid
from datetime import UTC, datetime
from email import policy

from bsm_delivery.app import create_runtime
from bsm_delivery.settings import DeliverySettings
from bsm_shared.blobs import blob_path
from bsm_shared.contract import BounceReportReceivedEvent, PolicyCheckedEvent
from bsm_shared.contract.payloads import BounceReportReceived
from bsm_shared.contract.signing import Signer, load_private_key
from bsm_shared.contract.wire import build_event, to_wire
from bsm_shared.runtime import verp
from tests.factories import policy_checked, uid
from tests.mail_support import recent_paths
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
    for path in recent_paths(env["BSM_MAIL_SINK_DIR"]):
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


async def test_the_mail_carries_the_attachment_from_the_blob_store(
    kafka, prefix, settings_for, env, tmp_path
):
    import hashlib

    from bsm_shared.contract.payloads import AttachmentRef

    photo = b"\x89PNG\r\n\x1a\n" + b"chair" * 100
    sha = hashlib.sha256(photo).hexdigest()
    blob_path(tmp_path, sha).parent.mkdir()
    blob_path(tmp_path, sha).write_bytes(photo)
    settings = settings_for(DeliverySettings, "delivery", blob_dir=str(tmp_path))
    seller = "s-" + uid()
    ref = AttachmentRef(sha256=sha, size=len(photo), filename="silla.png", content_type="image/png")
    mid, value = decision(env, recipient_party_id=seller, attachments=[ref])
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        await kafka.collect(prefix + "bsm.messages.delivered",
                            lambda e: e["data"]["message_id"] == mid)
    mail = sink_mail(env, mid)
    assert mail is not None
    [part] = list(mail.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == ("silla.png", "image/png")
    assert part.get_content() == photo


async def test_a_forged_approval_gets_nothing_delivered(kafka, prefix, settings_for, env, expect):
    expect.dead_letter("wrong_producer", topic="bsm.messages.policy-checked.dlq")
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


async def test_an_approved_message_to_a_party_erased_meanwhile_bounces_at_once_saying_why(
    kafka, prefix, settings_for, env
):
    from bsm_shared.contract import PartyErasedEvent
    from bsm_shared.contract.payloads import PartyErased

    settings = settings_for(DeliverySettings, "delivery")
    seller = "s-" + uid()
    erased = build_event(PartyErasedEvent, PartyErased(
        party_id=seller, erased_at=datetime.now(UTC), requested_by="op-1"),
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), producer="gateway",
        correlation_id=seller)
    signer = Signer("gateway", load_private_key(env["BSM_GATEWAY_SIGNING_KEY"]))
    mid, value = decision(env, recipient_party_id=seller)
    async with running(create_runtime(settings)) as rt:
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.parties", to_wire(erased, signer), seller)
        for _ in range(100):  # the erasure applied first (alias would stop the message itself)
            if await rt.pool.fetchval(f"SELECT erased_at FROM {settings.db_schema}.parties "
                                      f"WHERE party_id = $1", seller):
                break
            await asyncio.sleep(0.1)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        [bounce] = await kafka.collect(prefix + "bsm.messages.bounced",
                                       lambda e: e["data"]["message_id"] == mid, settle=1.0)
    assert (bounce["data"]["stage"], bounce["data"]["reason_code"]) == ("delivery", "party_erased")
    assert "erased" in bounce["data"]["explanation"] and bounce["data"]["remedy"]
    assert sink_mail(env, mid) is None


# -- bounce reports after delivery (D1) ------------------------------------------------------

def bounce_report(env, message_id: str, action: str = "failed", status: str = "5.1.1",
                  event_id: uuid.UUID | None = None) -> bytes:
    """A BounceReportReceived as the alias service's mail door publishes it (signed)."""
    data = BounceReportReceived(
        message_id=message_id, received_at=datetime.now(UTC), action=action, status=status,
        diagnostic="550 5.1.1 <[address]>: Recipient address rejected: User unknown",
        reporting_mta="mx1.mail-provider.example", standard=True)
    event = build_event(BounceReportReceivedEvent, data, event_id=event_id or uuid.uuid4(),
                        occurred_at=data.received_at, producer="alias",
                        correlation_id=message_id)
    return to_wire(event, Signer("alias", load_private_key(env["BSM_ALIAS_SIGNING_KEY"])))


def party(pid: str, role: str, address: str) -> bytes:
    return platform_event("PartyRegistered", {
        "party_id": pid, "role": role, "email": address, "display_name": "Ana B.",
        "locale": "es-ES", "marketplace": "ES"}, pid)


async def sink_notice(env, message_id: str, timeout: float = 20.0):
    """The bounce notice about ``message_id`` in the mail sink, once it is there."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for path in recent_paths(env["BSM_MAIL_SINK_DIR"]):
            mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["Message-ID"] == f"<notice-{message_id}@{env['BSM_MAIL_DOMAIN']}>":
                return mail
        await asyncio.sleep(0.3)
    return None


async def test_a_failed_report_after_delivery_becomes_one_bounce_and_a_notice_to_the_sender(
    kafka, prefix, settings_for, env
):
    settings = settings_for(DeliverySettings, "delivery", verp_key=env["BSM_DELIVERY_VERP_KEY"])
    buyer, seller = "b-" + uid(), "s-" + uid()
    buyer_mail, seller_mail = f"{uid()}@buyer-mail.example", f"{uid()}@seller-mail.example"
    mid, value = decision(env, sender_party_id=buyer, recipient_party_id=seller,
                          sender_role="buyer")
    reports, bounced = prefix + "bsm.messages.bounce-reports", prefix + "bsm.messages.bounced"
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(buyer, "buyer", buyer_mail), buyer)
        await kafka.publish(prefix + "bsm.parties", party(seller, "seller", seller_mail), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        [delivered] = await kafka.collect(prefix + "bsm.messages.delivered",
                                          lambda e: e["data"]["message_id"] == mid)
        # The relayed mail's envelope sender is the message's signed return path.
        mail = sink_mail(env, mid)
        assert mail is not None
        path = str(mail["X-Bsm-Sink-Envelope-From"])
        key = base64.b64decode(env["BSM_ALIAS_VERP_KEY"])  # the door's copy of the key
        assert verp.read_return_path(key, path, domain=env["BSM_MAIL_DOMAIN"],
                                     now=datetime.now(UTC)) == mid
        await kafka.publish(reports, bounce_report(env, mid, "delayed", "4.4.1"), mid)
        await kafka.publish(reports, bounce_report(env, mid), mid)
        await kafka.publish(reports, bounce_report(env, mid, status="5.2.2"), mid)  # a 2nd one
        found = await kafka.collect(bounced, lambda e: e["data"]["message_id"] == mid,
                                    settle=3.0)
        notice = await sink_notice(env, mid)
    assert len(found) == 1
    bounce = found[0]
    assert bounce["producer"] == "delivery" and bounce["signature"].startswith("ed25519-merkle:")
    data = bounce["data"]
    assert (data["stage"], data["reason_code"], data["rule"], data["after_delivery"]) == (
        "delivery", "bounce_report", "D1", True)
    assert "5.1.1" in data["explanation"] and data["remedy"]
    assert (data["sender_party_id"], data["recipient_party_id"], data["conversation_id"]) == (
        buyer, seller, delivered["data"]["conversation_id"])
    assert seller_mail not in str(bounce) and buyer_mail not in str(bounce)
    assert notice is not None and notice["X-Bsm-Sink-Envelope-To"] == buyer_mail
    assert "D1" in notice.get_content()


async def test_a_report_for_an_unknown_message_or_a_bounced_one_changes_nothing(
    kafka, prefix, settings_for, env
):
    settings = settings_for(DeliverySettings, "delivery", verp_key=env["BSM_DELIVERY_VERP_KEY"])
    violation = {"rule": "C1", "code": "unknown_order", "detail": "Order unknown.",
                 "remedy": "Check the order number."}
    rejected, value = decision(env, verdict="rejected", violations=[violation])
    unknown = "m-" + uid()
    reports, bounced = prefix + "bsm.messages.bounce-reports", prefix + "bsm.messages.bounced"
    async with running(create_runtime(settings)) as rt:
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        [first] = await kafka.collect(bounced, lambda e: e["data"]["message_id"] == rejected)
        ids = [uuid.uuid4(), uuid.uuid4()]
        for mid, event_id in zip((unknown, rejected), ids, strict=True):
            await kafka.publish(reports, bounce_report(env, mid, event_id=event_id), mid)
        found = await kafka.collect(bounced, lambda e: e["data"]["message_id"] in (
            unknown, rejected), settle=3.0)
        # Both reports were consumed (recorded as processed), not left behind.
        async with rt.pool.acquire() as conn:
            processed = await conn.fetchval(
                f"SELECT count(*) FROM {rt.schema}.processed_events WHERE event_id = ANY($1)",
                ids)
    assert [e["event_id"] for e in found] == [first["event_id"]]
    assert first["data"]["after_delivery"] is False
    assert processed == 2


def sink_count(env, message_id: str) -> int:
    wanted = f"<{message_id}@{env['BSM_MAIL_DOMAIN']}>".encode()
    return sum(1 for path in recent_paths(env["BSM_MAIL_SINK_DIR"])
               if wanted in path.read_bytes())


async def three_decisions_for_one_lane(kafka, prefix, settings_for, env):
    """Delivery settings with one SMTP lane, and three approved messages to one known seller
    published for it: (settings, [(message_id, event bytes)])."""
    settings = settings_for(DeliverySettings, "delivery", smtp_connections=1)
    seller = "s-" + uid()
    decisions = [decision(env, recipient_party_id=seller) for _ in range(3)]
    await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
    for _, value in decisions:
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
    return settings, decisions


async def test_a_worker_killed_right_after_the_relay_accepted_a_mail_never_mails_it_again(
    kafka, prefix, settings_for, env
):
    """Finding 6 of issue 10: mail was marked sent only when a whole batch committed, so a kill
    mid-batch mailed every mail of the batch again (143 duplicates in a kill storm). Each mail is
    marked right after the relay's 250; the next worker (another instance, or the restarted
    one) takes the dead worker's jobs over at once and settles the mailed ones without sending."""
    settings, decisions = await three_decisions_for_one_lane(kafka, prefix, settings_for, env)
    mailed: list[str] = []

    def kill_after_two(message_id: str) -> None:
        mailed.append(message_id)
        if len(mailed) == 2:  # stands for SIGKILL: the worker stops dead, nothing else runs
            raise asyncio.CancelledError

    first = create_runtime(settings, on_mailed=kill_after_two)
    async with running(first):
        deadline = asyncio.get_running_loop().time() + 30
        while len(mailed) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the first worker sent nothing"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the worker task is dead now; its jobs stay claimed
    assert len(mailed) == 2
    async with running(create_runtime(settings)):  # the restarted instance
        delivered = await kafka.collect(
            prefix + "bsm.messages.delivered",
            lambda e: e["data"]["message_id"] in {m for m, _ in decisions}, count=3, settle=1.0)
    assert sorted(e["data"]["message_id"] for e in delivered) == sorted(m for m, _ in decisions)
    assert [sink_count(env, m) for m, _ in decisions] == [1, 1, 1]


async def test_a_round_the_database_broke_off_is_taken_up_again_by_the_same_worker_at_once(
    kafka, prefix, settings_for, env
):
    """Found by make chaos (issue 14): PostgreSQL crashed between a round's claim and its
    settle; the worker retried, but its own leases kept the claimed jobs from every claim for
    the whole lease (ten minutes), and four messages had no outcome when the run ended. A
    worker now takes its own leased rows again (none is in flight at a claim): the round's jobs
    are delivered on the next attempt, the mail the relay already accepted not sent again."""
    settings, decisions = await three_decisions_for_one_lane(kafka, prefix, settings_for, env)
    broken: list[str] = []

    def database_gone_once(message_id: str) -> None:
        if not broken:  # after the first mail's mark: the round fails, transiently
            broken.append(message_id)
            raise ConnectionResetError("stands for PostgreSQL going away mid-round")

    async with running(create_runtime(settings, on_mailed=database_gone_once)):
        delivered = await kafka.collect(
            prefix + "bsm.messages.delivered",
            lambda e: e["data"]["message_id"] in {m for m, _ in decisions}, count=3,
            timeout=30.0, settle=1.0)
    assert broken, "the round did break off"
    assert sorted(e["data"]["message_id"] for e in delivered) == sorted(m for m, _ in decisions)
    assert [sink_count(env, m) for m, _ in decisions] == [1, 1, 1]


def signed_with_raw_data(env, value: bytes, **data: object) -> bytes:
    """The event with some of its data replaced as bytes on the wire (what an older producer, or
    the door before its fix, wrote), signed again by policy."""
    import json

    obj = json.loads(value)
    obj.pop("signature")
    obj["data"].update(data)
    obj["signature"] = Signer("policy", load_private_key(env["BSM_POLICY_SIGNING_KEY"])).sign(obj)
    return json.dumps(obj).encode()


async def test_a_file_name_or_order_id_with_cr_lf_is_mailed_as_one_line_and_the_queue_moves_on(
    kafka, prefix, settings_for, env, tmp_path
):
    """Finding 3 of issue 10: one attachment file name with CR/LF made the composer raise; the
    batch rolled back and was retried every 30 s, and no mail left the system. Names and ids
    that become headers are single lines now (contract and composer), and a mail that still
    cannot be composed bounces alone (``core.settle``, ``unsendable_mail``)."""
    import hashlib

    data = b"%PDF-1.4 invoice"
    sha = hashlib.sha256(data).hexdigest()
    blob_path(tmp_path, sha).parent.mkdir()
    blob_path(tmp_path, sha).write_bytes(data)
    settings = settings_for(DeliverySettings, "delivery", blob_dir=str(tmp_path),
                            smtp_connections=1)
    seller = "s-" + uid()
    bad, value = decision(env, recipient_party_id=seller)
    bad_value = signed_with_raw_data(
        env, value, order_id="o-1\r\nBcc: everyone@x.example",
        attachments=[{"sha256": sha, "size": len(data), "filename": "factura\r\nX-Evil: 1.pdf",
                      "content_type": "application/pdf\r\nX-Evil: 2"}])
    good, good_value = decision(env, recipient_party_id=seller)
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", bad_value, "r-1")
        await kafka.publish(prefix + "bsm.messages.policy-checked", good_value, "r-1")
        await kafka.collect(prefix + "bsm.messages.delivered",
                            lambda e: e["data"]["message_id"] in (bad, good), count=2)
    mail = sink_mail(env, bad)
    assert mail is not None and mail["Bcc"] is None and mail["X-Evil"] is None
    assert mail["X-Bsm-Order"] == "o-1 Bcc: everyone@x.example"
    [part] = list(mail.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == (
        "factura X-Evil: 1.pdf", "application/octet-stream")
    assert sink_mail(env, good) is not None


async def test_finished_jobs_are_pruned_after_their_return_paths_expired_and_pending_ones_stay(
    kafka, prefix, settings_for, env
):
    """Retention (issue 10): the jobs table held every message's full decision forever."""
    settings = settings_for(DeliverySettings, "delivery", verp_valid_days=1)
    seller = "s-" + uid()
    old, value = decision(env, recipient_party_id=seller)
    async with running(create_runtime(settings)) as rt:
        await kafka.publish(prefix + "bsm.parties", recipient(seller, f"{uid()}@x.example"), seller)
        await kafka.publish(prefix + "bsm.messages.policy-checked", value, "r-1")
        await kafka.collect(prefix + "bsm.messages.delivered",
                            lambda e: e["data"]["message_id"] == old)
        s = settings.db_schema
        await rt.pool.execute(f"UPDATE {s}.jobs SET created_at = now() - interval '3 days'")
        await rt.pool.execute(
            f"INSERT INTO {s}.jobs (message_id, cause_event_id, policy_checked, created_at) "
            f"VALUES ('waiting', gen_random_uuid(), '{{}}', now() - interval '3 days')")
        await rt.pool.execute(f"UPDATE {s}.jobs SET next_attempt_at = now() + interval '1 day' "
                              f"WHERE message_id = 'waiting'")
        gone = await rt.delivery.prune_finished()
        left = [r["message_id"] for r in await rt.pool.fetch(f"SELECT message_id FROM {s}.jobs")]
    assert gone["jobs"] == 1 and left == ["waiting"]
