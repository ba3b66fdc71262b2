"""The alias service against real Kafka and PostgreSQL."""

import asyncio
import json
import re

import asyncpg

from bsm_alias.app import create_runtime
from bsm_alias.settings import AliasSettings
from bsm_shared.contract import parse_event
from bsm_shared.contract.limits import MAX_ATTACHMENTS, MAX_BODY_BYTES, MAX_EVENT_BYTES
from tests.factories import uid
from tests.stack import platform_event, running


def party(pid: str, role: str, email: str, name: str) -> bytes:
    return platform_event("PartyRegistered", {
        "party_id": pid, "role": role, "email": email, "display_name": name,
        "locale": "es-ES", "marketplace": "ES"}, pid)


def message(mid: str, sender: str, recipient: str, **extra) -> bytes:
    data = {"message_id": mid, "channel": "api", "sender": {"party_id": sender},
            "recipient": {"party_id": recipient}, "subject": "Hola", "text": "¿Cuándo llega?",
            "submitted_at": "2026-11-01T10:00:00Z", **extra}
    return platform_event("MessageSubmitted", data, mid)


async def test_each_pair_gets_stable_random_aliases_and_each_seller_a_different_one(
    kafka, prefix, settings_for, env
):
    settings = settings_for(AliasSettings, "alias")
    b, s1, s2 = "b-" + uid(), "s-" + uid(), "s-" + uid()
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(b, "buyer", "ana@example.com", "Ana"), b)
        await kafka.publish(prefix + "bsm.parties", party(s1, "seller", "sol@shop.example",
                                                          "Muebles Sol"), s1)
        await kafka.publish(prefix + "bsm.parties", party(s2, "seller", "luna@shop.example",
                                                          "Lámparas Luna"), s2)
        for mid, seller in (("m1-" + uid(), s1), ("m2-" + uid(), s1), ("m3-" + uid(), s2)):
            await kafka.publish(prefix + "bsm.messages.submitted", message(mid, b, seller), mid)
        events = await kafka.collect(
            prefix + "bsm.messages.addressed", lambda e: e["data"]["sender_party_id"] == b,
            count=3,
        )
    by_seller = {}
    for raw in events:
        data = parse_event(raw).data
        assert raw["producer"] == "alias" and raw["signature"].startswith("ed25519-merkle:")
        assert re.fullmatch(r"[a-z0-9]{16}@" + re.escape(env["BSM_MAIL_DOMAIN"]), data.sender_alias)
        by_seller.setdefault(data.recipient_party_id, set()).add(
            (data.sender_alias, data.recipient_alias, data.relationship_id))
    assert len(by_seller[s1]) == 1, "the same pair keeps the same aliases across messages"
    assert by_seller[s1] != by_seller[s2], "the buyer has a different alias for every seller"
    assert all("example.com" not in json.dumps(e) for e in events)


async def test_a_message_from_an_unregistered_sender_bounces_at_the_alias_stage_after_waiting(
    kafka, prefix, settings_for
):
    settings = settings_for(AliasSettings, "alias", party_wait_seconds=1.0)
    s, mid = "s-" + uid(), "m-" + uid()
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(s, "seller", "x@shop.example", "X"), s)
        await kafka.publish(prefix + "bsm.messages.submitted", message(mid, "nobody-" + uid(), s),
                            mid)
        [bounce] = await kafka.collect(prefix + "bsm.messages.bounced",
                                       lambda e: e["data"]["message_id"] == mid)
    assert (bounce["data"]["stage"], bounce["data"]["reason_code"]) == ("alias", "unknown_sender")
    assert bounce["data"]["remedy"]


async def test_a_message_that_arrives_before_its_senders_registration_waits_for_it(
    kafka, prefix, settings_for
):
    settings = settings_for(AliasSettings, "alias", party_wait_seconds=30.0)
    b, s, mid = "b-" + uid(), "s-" + uid(), "m-" + uid()
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(s, "seller", "x@shop.example", "X"), s)
        await kafka.publish(prefix + "bsm.messages.submitted", message(mid, b, s), mid)
        await kafka.publish(prefix + "bsm.parties", party(b, "buyer", "late@example.com", "L"), b)
        [addressed] = await kafka.collect(prefix + "bsm.messages.addressed",
                                          lambda e: e["data"]["message_id"] == mid)
    assert addressed["data"]["sender_party_id"] == b


async def test_real_addresses_are_stored_only_encrypted(kafka, prefix, settings_for, env):
    settings = settings_for(AliasSettings, "alias")
    b = "b-" + uid()
    email = f"{uid()}@private.example"
    async with running(create_runtime(settings)) as rt:
        await kafka.publish(prefix + "bsm.parties", party(b, "buyer", email, "Ana"), b)
        conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
        try:
            for _ in range(100):
                row = await conn.fetchrow(
                    f"SELECT * FROM {rt.schema}.parties WHERE party_id = $1", b)
                if row:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
    assert row is not None
    assert email.encode() not in b"".join(
        v if isinstance(v, bytes) else str(v).encode() for v in row.values())


async def test_a_restarted_service_resumes_after_its_committed_offset(
    kafka, prefix, settings_for
):
    """Offsets are committed only after the transaction: a restart neither loses the message
    published while it was down nor re-addresses the one it had finished."""
    settings = settings_for(AliasSettings, "alias")
    b, s = "b-" + uid(), "s-" + uid()
    first, second = "m1-" + uid(), "m2-" + uid()
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(b, "buyer", "a@example.com", "A"), b)
        await kafka.publish(prefix + "bsm.parties", party(s, "seller", "s@shop.example", "S"), s)
        await kafka.publish(prefix + "bsm.messages.submitted", message(first, b, s), first)
        await kafka.collect(prefix + "bsm.messages.addressed",
                            lambda e: e["data"]["message_id"] == first)
    await kafka.publish(prefix + "bsm.messages.submitted", message(second, b, s), second)
    async with running(create_runtime(settings)):
        events = await kafka.collect(
            prefix + "bsm.messages.addressed",
            lambda e: e["data"]["message_id"] in (first, second), count=2, settle=2.0)
    assert {e["data"]["message_id"] for e in events} == {first, second}
    assert len({e["event_id"] for e in events}) == 2, "a message is never addressed under two ids"


# -- messages an outside producer submits that cannot travel on (issue 10) -------------------


async def test_too_large_messages_from_an_outside_producer_bounce_at_the_alias_stage(
    kafka, prefix, settings_for
):
    settings = settings_for(AliasSettings, "alias")
    b, s = "b-" + uid(), "s-" + uid()
    long_body, escapes, many_files, huge_field = ("m1-" + uid(), "m2-" + uid(), "m3-" + uid(),
                                                  "m4-" + uid())

    def refs(n: int, content_type: str = "application/pdf") -> list[dict]:
        return [{"sha256": f"{i:064x}", "size": 10, "content_type": content_type,
                 "filename": f"f{i}.pdf"} for i in range(n)]

    # Within every body limit and small enough for the input topic, but the addressed message
    # (the same fields plus the alias stage's) would be over MAX_EVENT_BYTES: a field the
    # contract does not know (a newer producer's; kept and passed on).
    huge = message(huge_field, b, s, x_newer_field="y" * (MAX_EVENT_BYTES - 700))
    assert MAX_EVENT_BYTES - 400 < len(huge) < MAX_EVENT_BYTES
    submissions = {
        long_body: message(long_body, b, s, text="a" * (MAX_BODY_BYTES + 1)),
        # 166 KB of text, 1 MB as JSON spells it (six bytes a control character)
        escapes: message(escapes, b, s, text="\x01" * (MAX_BODY_BYTES * 5 // 6)),
        many_files: message(many_files, b, s, attachments=refs(MAX_ATTACHMENTS + 1)),
        huge_field: huge,
    }
    async with running(create_runtime(settings)):
        await kafka.publish(prefix + "bsm.parties", party(b, "buyer", "a@example.com", "A"), b)
        await kafka.publish(prefix + "bsm.parties", party(s, "seller", "s@shop.example", "S"), s)
        for mid, raw in submissions.items():
            await kafka.publish(prefix + "bsm.messages.submitted", raw, mid)
        bounces = await kafka.collect(prefix + "bsm.messages.bounced",
                                      lambda e: e["data"]["message_id"] in submissions, count=4)
        assert await kafka.collect(prefix + "bsm.messages.addressed",
                                   lambda e: e["data"]["message_id"] in submissions, count=0,
                                   settle=1.0) == []
    by_id = {e["data"]["message_id"]: e["data"] for e in bounces}
    for mid, code, figure in (
        (long_body, "message_too_large", f"{MAX_BODY_BYTES:,}"),
        (escapes, "message_too_large", f"{MAX_BODY_BYTES:,}"),
        (many_files, "too_many_attachments", f"{MAX_ATTACHMENTS}"),
        (huge_field, "message_too_large", f"{MAX_EVENT_BYTES:,}"),
    ):
        bounce = by_id[mid]
        assert (bounce["stage"], bounce["reason_code"], bounce["rule"]) == ("alias", code, "C3")
        assert figure in bounce["explanation"] and bounce["remedy"]
        assert bounce["sender_party_id"] == b


async def test_a_batch_with_its_parties_new_pairs_and_a_reply_to_its_own_message_is_addressed_right(
    kafka, prefix, settings_for
):
    """Set-based loading (issue 14): published before the service starts, registrations,
    first messages of new pairs and a reply to one of them arrive in one batch; what the batch
    preloads must not hide what the same batch wrote (the parties, the new relationship, the
    message the reply answers)."""
    settings = settings_for(AliasSettings, "alias")
    b, s1, s2 = "b-" + uid(), "s-" + uid(), "s-" + uid()
    m1, m2, m3, reply = ("m-" + uid() for _ in range(4))
    await kafka.publish(prefix + "bsm.parties", party(b, "buyer", f"{b}@x.example", "Ana"), b)
    for s in (s1, s2):
        await kafka.publish(prefix + "bsm.parties", party(s, "seller", f"{s}@x.example", "S"), s)
    # One key: one partition, so the reply comes after the message it answers.
    for mid, seller in ((m1, s1), (m2, s1), (m3, s2)):
        await kafka.publish(prefix + "bsm.messages.submitted", message(mid, b, seller), b)
    await kafka.publish(prefix + "bsm.messages.submitted",
                        message(reply, s1, b, in_reply_to=m1), b)
    async with running(create_runtime(settings)):
        events = await kafka.collect(
            prefix + "bsm.messages.addressed",
            lambda e: e["data"]["message_id"] in {m1, m2, m3, reply}, count=4)
    by_id = {e["data"]["message_id"]: e["data"] for e in events}
    assert by_id[reply]["conversation_id"] == by_id[m1]["conversation_id"]
    assert by_id[reply]["relationship_id"] == by_id[m1]["relationship_id"] \
        == by_id[m2]["relationship_id"] != by_id[m3]["relationship_id"]
    assert by_id[reply]["recipient_alias"] == by_id[m1]["sender_alias"]


async def test_a_batch_addresses_each_message_id_once_whether_seen_before_or_twice_in_it(
    kafka, prefix, settings_for, env
):
    """Set-based writes (issue 14): a batch records its messages in one statement at its end;
    a message id addressed in an earlier batch, or submitted twice within the batch (under new
    event ids), is still addressed exactly once, and a reply in the batch threads on the
    message the batch itself recorded."""
    from bsm_shared.runtime.db import create_pool

    settings = settings_for(AliasSettings, "alias")
    b, s = "b-" + uid(), "s-" + uid()
    earlier, twice, reply = ("m-" + uid() for _ in range(3))
    await kafka.publish(prefix + "bsm.parties", party(b, "buyer", f"{b}@x.example", "Ana"), b)
    await kafka.publish(prefix + "bsm.parties", party(s, "seller", f"{s}@x.example", "S"), s)
    await kafka.publish(prefix + "bsm.messages.submitted", message(earlier, b, s), b)
    async with running(create_runtime(settings)):
        await kafka.collect(prefix + "bsm.messages.addressed",
                            lambda e: e["data"]["message_id"] == earlier)
    # Service stopped: the next records arrive together, in one batch.
    for mid in (earlier, twice, twice):
        await kafka.publish(prefix + "bsm.messages.submitted", message(mid, b, s), b)
    await kafka.publish(prefix + "bsm.messages.submitted",
                        message(reply, s, b, in_reply_to=twice), b)
    async with running(create_runtime(settings)) as rt:
        events = await kafka.collect(
            prefix + "bsm.messages.addressed",
            lambda e: e["data"]["message_id"] in {earlier, twice, reply}, count=3, settle=2.0)
        applied = rt.consumer.applied
    ids = sorted(e["data"]["message_id"] for e in events)
    assert ids == sorted([earlier, twice, reply])  # nothing addressed twice
    by_id = {e["data"]["message_id"]: e["data"] for e in events}
    assert by_id[reply]["conversation_id"] == by_id[twice]["conversation_id"]
    assert applied == 4  # the second batch's four events, each applied (duplicates ignored)
    pool = await create_pool(env["BSM_DATABASE_URL"], size=1)
    try:
        rows = await pool.fetchval(
            f"SELECT count(*) FROM {settings.db_schema}.messages "
            f"WHERE message_id = ANY($1::text[])", [earlier, twice, reply])
    finally:
        await pool.close()
    assert rows == 3


async def test_a_batch_of_messages_to_aliases_reads_the_aliases_at_once_and_resolves_each(
    kafka, prefix, settings_for
):
    """Set-based loading (issue 14): messages addressed to alias addresses (as the mail door
    and API callers send them) are resolved from one read of the batch's aliases; a known
    alias finds its relationship and party, an alias nobody has bounces (A4)."""
    settings = settings_for(AliasSettings, "alias", party_wait_seconds=0.0)
    b, s = "b-" + uid(), "s-" + uid()
    first, to_alias, again, nowhere = ("m-" + uid() for _ in range(4))
    await kafka.publish(prefix + "bsm.parties", party(b, "buyer", f"{b}@x.example", "Ana"), b)
    await kafka.publish(prefix + "bsm.parties", party(s, "seller", f"{s}@x.example", "S"), s)
    await kafka.publish(prefix + "bsm.messages.submitted", message(first, b, s), b)
    async with running(create_runtime(settings)):
        [made] = await kafka.collect(prefix + "bsm.messages.addressed",
                                     lambda e: e["data"]["message_id"] == first)
    seller_alias = made["data"]["recipient_alias"]  # the seller's alias for this buyer
    for mid, address in ((to_alias, seller_alias), (again, seller_alias.upper()),
                         (nowhere, f"zz{uid()}@{seller_alias.split('@')[1]}")):
        data = {"message_id": mid, "channel": "api", "sender": {"party_id": b},
                "recipient": {"address": address}, "subject": "Hola", "text": "¿Y mi pedido?",
                "submitted_at": "2026-11-01T10:00:00Z"}
        await kafka.publish(prefix + "bsm.messages.submitted",
                            platform_event("MessageSubmitted", data, mid), b)
    async with running(create_runtime(settings)):
        addressed = await kafka.collect(
            prefix + "bsm.messages.addressed",
            lambda e: e["data"]["message_id"] in {to_alias, again}, count=2)
        [bounce] = await kafka.collect(prefix + "bsm.messages.bounced",
                                       lambda e: e["data"]["message_id"] == nowhere)
    assert {e["data"]["recipient_party_id"] for e in addressed} == {s}
    assert {e["data"]["relationship_id"] for e in addressed} == {made["data"]["relationship_id"]}
    assert bounce["data"]["stage"] == "alias" and bounce["data"]["rule"]
