"""The gateway's read model writes a batch as a set (issue 14, set-based handlers): everything
below is published before the gateway starts, so it arrives as one batch, and the rows must be
what event-by-event statements would have left — the later delivery of a message delivered
twice, a bounce that keeps its message bounced, the first name a sender wrote under, the files
the recipient now holds."""

from __future__ import annotations

from typing import Any

from bsm_shared.contract import payloads as p
from tests import gateway_support as g
from tests.factories import uid


async def test_one_batch_leaves_the_rows_event_by_event_statements_would_leave(
    kafka, env, prefix, gateway_settings
):
    buyer, seller = "buyer-" + uid(), "seller-" + uid()
    rel = "rel-" + uid()
    sha = "ab" * 32
    msgs: list[dict[str, Any]] = [
        dict(message_id=f"m{i}-" + uid(), conversation_id=f"c{i}-" + uid(), relationship_id=rel,
             sender=buyer, recipient=seller, sender_role="buyer", order_id=f"o{i}-" + uid(),
             subject=f"Pedido {i}", text=f"Hola {i}") for i in range(4)]
    topic = prefix + "bsm.messages."
    for m in msgs:
        await kafka.publish(topic + "addressed", g.addressed(env, **m), rel)
    # m0, m1 delivered; m1 twice (the second delivery's text is the one kept); m2 delivered
    # with a file; m3 bounced.
    await kafka.publish(topic + "delivered", g.delivered(env, **msgs[0]), rel)
    await kafka.publish(topic + "delivered", g.delivered(env, **{**msgs[1], "text": "first"}), rel)
    await kafka.publish(topic + "delivered", g.delivered(env, **{**msgs[1], "text": "second"}),
                        rel)
    ref = p.AttachmentRef(sha256=sha, filename="f.pdf", content_type="application/pdf", size=10)
    await kafka.publish(topic + "delivered",
                        g.delivered(env, **msgs[2], attachments=[ref]), rel)
    await kafka.publish(topic + "bounced", g.bounced(env, **msgs[3]), rel)

    async with g.running_gateway(gateway_settings) as (app, http):
        auth = g.auth(env, seller)
        await g.eventually(lambda: http.get("/v1/conversations", headers=auth,
                                            params={"filter": "all"}),
                           lambda r: r.status_code == 200
                           and len(r.json()["conversations"]) == 3)
        rt = app.state.runtime
        async with rt.pool.acquire() as conn:
            rows = {r["message_id"]: r for r in await conn.fetch(
                f"SELECT message_id, status, text, delivered_at, conversation_id "
                f"FROM {rt.schema}.messages WHERE relationship_id = $1", rel)}
            conversations = await conn.fetchval(
                f"SELECT count(*) FROM {rt.schema}.conversations WHERE relationship_id = $1",
                rel)
            aliases = await conn.fetchval(
                f"SELECT count(*) FROM {rt.schema}.relationship_aliases "
                f"WHERE relationship_id = $1", rel)
            owners = {(r["sha256"], r["party_id"]) for r in await conn.fetch(
                f"SELECT sha256, party_id FROM {rt.schema}.attachment_owners "
                f"WHERE sha256 = $1", sha)}
            named = await conn.fetchval(
                f"SELECT count(*) FROM {rt.schema}.party_names WHERE party_id = $1", buyer)
        consumer = rt.consumer
    assert {m: r["status"] for m, r in rows.items()} == {
        msgs[0]["message_id"]: "delivered", msgs[1]["message_id"]: "delivered",
        msgs[2]["message_id"]: "delivered", msgs[3]["message_id"]: "bounced"}
    assert rows[msgs[1]["message_id"]]["text"] == "second"
    assert all(rows[m["message_id"]]["delivered_at"] is not None for m in msgs[:3])
    assert rows[msgs[3]["message_id"]]["delivered_at"] is None
    assert (conversations, aliases, named) == (4, 1, 1)
    assert owners == {(sha, seller)}
    assert consumer.applied == 4 + 4 + 1 and consumer.dead_lettered == 0
