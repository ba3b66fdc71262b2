"""A message that did not reach its recipient exists for its sender and the dispute team only
(issue 11, item 1): in every view of the gateway — a conversation, the inbox list and its
counts and views, one message, the quote of the answered message, attachment downloads,
replies, marks and reports."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bsm_gateway.auth import Principal
from bsm_gateway.readmodel import visible_sql
from bsm_shared.blobs import blob_path
from bsm_shared.contract import events as ev
from bsm_shared.contract import payloads as p
from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_gateway_api import seed

#: What the rejected reply says: what the policy stopped must not reach the buyer.
PHONE, ADDRESS, LINK = "600 123 456", "ventas@sol-privado.example", "https://sol-privado.example"
SECRET = f"Llámame al {PHONE}, escribe a {ADDRESS} o mira {LINK}"


def bounced(env: dict[str, str], *, message_id: str, stage: str = "policy", rule: str = "C4",
            reason_code: str = "phone_number", after_delivery: bool = False,
            **fields: Any) -> bytes:
    keep = ("conversation_id", "relationship_id", "order_id")
    data = p.Bounced(
        message_id=message_id, stage=stage, reason_code=reason_code, rule=rule,
        explanation=f"Stopped ({reason_code}).", remedy="Write again without it.",
        bounced_at=g.now(), submitted_at=g.now(), after_delivery=after_delivery,
        sender_party_id=fields.get("sender"), recipient_party_id=fields.get("recipient"),
        sender_role=fields.get("sender_role"), **{k: fields.get(k) for k in keep})
    return g.signed(env, "delivery", ev.BouncedEvent, data, message_id)


class Exchange:
    """One buyer–seller pair with a delivered buyer message (``seed``), and helpers to add
    messages to their conversation (or a new one) as the upstream services would."""

    def __init__(self, kafka: Any, env: dict[str, str], prefix: str, ids: dict[str, str]):
        self.kafka, self.env, self.prefix, self.ids = kafka, env, prefix, ids
        self.buyer = g.auth(env, ids["buyer"], "buyer")
        self.seller = g.auth(env, ids["seller"])
        self.dispute = g.auth(env, "trust-" + uid(), "dispute")

    def fields(self, mid: str, *, by: str = "seller", conv: str | None = None,
               **over: Any) -> dict[str, Any]:
        sender, recipient = ((self.ids["seller"], self.ids["buyer"]) if by == "seller"
                             else (self.ids["buyer"], self.ids["seller"]))
        return dict(message_id=mid, conversation_id=conv or self.ids["conv"],
                    relationship_id=self.ids["rel"], sender=sender, recipient=recipient,
                    sender_role=by, order_id=self.ids["order"], **over)

    async def publish(self, topic: str, value: bytes) -> None:
        await self.kafka.publish(self.prefix + topic, value, self.ids["rel"])

    async def addressed(self, mid: str, **kw: Any) -> dict[str, Any]:
        f = self.fields(mid, **kw)
        await self.publish("bsm.messages.addressed", g.addressed(self.env, **f))
        return f

    async def rejected(self, mid: str, *, bounce: dict[str, Any] | None = None,
                       **kw: Any) -> None:
        f = await self.addressed(mid, **kw)
        keep = {k: v for k, v in f.items() if k not in ("text", "subject", "in_reply_to",
                                                        "attachments", "started_by")}
        await self.publish("bsm.messages.bounced", bounced(self.env, **keep, **(bounce or {})))

    async def delivered(self, mid: str, **kw: Any) -> None:
        f = await self.addressed(mid, **kw)
        await self.publish("bsm.messages.delivered", g.delivered(self.env, **f))


async def outcome(http: Any, headers: dict[str, str], mid: str, status: str) -> Any:
    """Wait until the read model has ``mid`` with this outcome, as its sender sees it."""
    return await g.eventually(lambda: http.get(f"/v1/messages/{mid}", headers=headers),
                              lambda r: r.status_code == 200
                              and r.json()["outcome"]["status"] == status)


def listed(response: Any) -> dict[str, Any]:
    return {c["conversation_id"]: c for c in response.json()["conversations"]}


def store_blob(settings: Any, content: bytes) -> p.AttachmentRef:
    sha = hashlib.sha256(content).hexdigest()
    path = blob_path(settings.blob_dir, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return p.AttachmentRef(sha256=sha, size=len(content), filename="tarjeta.txt",
                           content_type="text/plain")


async def test_a_rejected_reply_is_invisible_to_its_recipient_in_every_view_and_never_quoted(
    kafka, env, prefix, gateway_settings
):
    card = store_blob(gateway_settings, f"Sol — {PHONE} — {uid()}".encode())
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        rejected, next_reply = "rej-" + uid(), "ok-" + uid()
        await x.rejected(rejected, subject="Re: silla", text=SECRET, in_reply_to=x.ids["msg"],
                         attachments=[card])
        await x.delivered(next_reply, subject="Re: silla", text="Perdone, le escribo aquí.",
                          in_reply_to=rejected)
        await outcome(http, x.seller, rejected, "bounced")
        await outcome(http, x.seller, next_reply, "delivered")

        inbox = await http.get("/v1/conversations", params={"filter": "all"}, headers=x.buyer)
        thread = await http.get(f"/v1/conversations/{x.ids['conv']}", headers=x.buyer)
        one = await http.get(f"/v1/messages/{rejected}", headers=x.buyer)
        unknown = await http.get("/v1/messages/no-such-message", headers=x.buyer)
        answer = await http.get(f"/v1/messages/{next_reply}", headers=x.buyer)
        download = await http.get(f"/v1/messages/{rejected}/attachments/{card.sha256}",
                                  headers=x.buyer)
        reply = await http.post("/v1/messages", headers=x.buyer,
                                json={"in_reply_to": rejected, "text": "¿Qué número?"})
        report = await http.post(f"/v1/messages/{rejected}/reports", headers=x.buyer,
                                 json={"reason": "spam"})
        mark = await http.post(f"/v1/messages/{rejected}/no-response-needed", headers=x.buyer)
        sellers = await http.get(f"/v1/conversations/{x.ids['conv']}", headers=x.seller)
        disputes = await http.get(f"/v1/conversations/{x.ids['conv']}", headers=x.dispute)
        seller_file = await http.get(f"/v1/messages/{rejected}/attachments/{card.sha256}",
                                     headers=x.seller)

    everything_the_buyer_got = " ".join(r.text for r in (
        inbox, thread, one, answer, download, reply, report, mark))
    for secret in (PHONE, ADDRESS, LINK):
        assert secret not in everything_the_buyer_got, secret
    # Not even its id or its file's hash (the refusals only echo what she asked for).
    for trace in (rejected, card.sha256):
        assert trace not in inbox.text + thread.text + answer.text, trace
    buyers_thread = thread.json()
    assert [m["message_id"] for m in buyers_thread["message_list"]] == [x.ids["msg"], next_reply]
    shown = buyers_thread["message_list"][1]
    assert (shown["in_reply_to"], shown["quoted"]) == (None, None)
    assert (answer.json()["in_reply_to"], answer.json()["quoted"]) == (None, None)
    summary = listed(inbox)[x.ids["conv"]]
    assert summary["messages"] == 2 and summary["unread"] == 1
    assert buyers_thread["view"] == "response_needed"
    # Answered exactly like a message that does not exist.
    assert one.status_code == unknown.status_code == 404
    assert one.json()["error"] == unknown.json()["error"] == "message_not_found"
    assert one.json()["detail"] == unknown.json()["detail"].replace("no-such-message", rejected)
    for refused in (download, reply, report, mark):
        assert refused.status_code == 404 and refused.json()["error"] == "message_not_found"
    # Its sender and the dispute team still see it, with why it bounced.
    for view in (sellers, disputes):
        by_id = {m["message_id"]: m for m in view.json()["message_list"]}
        assert by_id[rejected]["outcome"]["bounce"]["rule"] == "C4"
        assert by_id[rejected]["text"] == SECRET
        assert by_id[next_reply]["quoted"] == SECRET
        assert view.json()["messages"] == 3
    assert seller_file.status_code == 200


async def test_a_conversation_opened_by_a_rejected_message_does_not_exist_for_the_recipient(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        conv, first, later = "c2-" + uid(), "r2-" + uid(), "n2-" + uid()
        await x.rejected(first, conv=conv, subject=f"Llame al {PHONE}", text=SECRET,
                         started_by="seller")
        await outcome(http, x.seller, first, "bounced")
        before = {f: await http.get("/v1/conversations", params={"filter": f}, headers=x.buyer)
                  for f in ("all", "response_needed", "sent", "no_response_needed")}
        by_order = await http.get("/v1/conversations", headers=x.buyer,
                                  params={"filter": "all", "order_id": x.ids["order"]})
        direct = await http.get(f"/v1/conversations/{conv}", headers=x.buyer)
        sellers_sent = await http.get("/v1/conversations", params={"filter": "sent"},
                                      headers=x.seller)
        disputes = await http.get("/v1/conversations", params={"filter": "all"},
                                  headers=x.dispute)
        # A clean message later in the same conversation reaches her: she sees that one only,
        # under its own subject (not the rejected one's).
        await x.delivered(later, conv=conv, subject="Sobre su pedido", text="Su pedido sale hoy.",
                          started_by="seller")
        after = await g.eventually(
            lambda: http.get(f"/v1/conversations/{conv}", headers=x.buyer),
            lambda r: r.status_code == 200)
        listing = await http.get("/v1/conversations", params={"filter": "all"}, headers=x.buyer)

    for f, response in before.items():
        assert conv not in listed(response), f
    assert list(listed(by_order)) == [x.ids["conv"]]
    assert direct.status_code == 404 and direct.json()["error"] == "conversation_not_found"
    assert conv in listed(sellers_sent) and conv in listed(disputes)
    assert [m["message_id"] for m in after.json()["message_list"]] == [later]
    assert after.json()["subject"] == listed(listing)[conv]["subject"] == "Sobre su pedido"
    assert PHONE not in after.text + listing.text


async def test_a_message_bounced_because_of_the_buyers_own_opt_out_is_not_shown_to_her(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        conv, unsolicited = "c3-" + uid(), "u-" + uid()
        await x.rejected(unsolicited, conv=conv, subject="¡Reseña!", text="¿Nos deja una reseña?",
                         started_by="seller",
                         bounce={"rule": "C6", "reason_code": "buyer_opted_out"})
        sellers = await outcome(http, x.seller, unsolicited, "bounced")
        one = await http.get(f"/v1/messages/{unsolicited}", headers=x.buyer)
        thread = await http.get(f"/v1/conversations/{conv}", headers=x.buyer)
        inbox = await http.get("/v1/conversations", params={"filter": "all"}, headers=x.buyer)
        notes = await http.get("/v1/notifications", headers=x.buyer)
    assert sellers.json()["outcome"]["bounce"]["reason_code"] == "buyer_opted_out"
    assert one.status_code == 404 and thread.status_code == 404
    assert conv not in listed(inbox) and "reseña" not in inbox.text
    assert notes.json() == []  # the bounce is the seller's notice, not hers


async def test_a_buyer_named_as_recipient_cannot_read_a_third_sellers_message_by_id(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        third = "seller-" + uid()
        stranger = g.auth(env, third)
        sent = await http.post("/v1/messages", headers=stranger, json={
            "recipient_party_id": x.ids["buyer"], "subject": "Oferta", "text": SECRET})
        mid = sent.json()["message_id"]
        in_flight = await http.get(f"/v1/messages/{mid}", headers=x.buyer)
        # The alias stage stops it (no relationship): the bounce names her as recipient.
        await x.kafka.publish(x.prefix + "bsm.messages.bounced", bounced(
            env, message_id=mid, stage="alias", rule="C1", reason_code="no_relationship",
            sender=third, sender_role="seller", recipient=x.ids["buyer"]), mid)
        await g.eventually(lambda: app.state.runtime.pool.fetchval(
            f"SELECT status FROM {app.state.runtime.schema}.messages WHERE message_id = $1",
            mid), lambda status: status == "bounced")
        stopped = await http.get(f"/v1/messages/{mid}", headers=x.buyer)
        report = await http.post(f"/v1/messages/{mid}/reports", headers=x.buyer,
                                 json={"reason": "spam"})
        answer = await http.post("/v1/messages", headers=x.buyer,
                                 json={"in_reply_to": mid, "text": "?"})
        by_sender = await http.get(f"/v1/messages/{mid}", headers=stranger)
        inbox = await http.get("/v1/conversations", params={"filter": "all"}, headers=x.buyer)
    assert sent.status_code == 202
    for refused in (in_flight, stopped, report, answer):
        assert refused.status_code == 404, refused.text
        assert PHONE not in refused.text
    assert by_sender.status_code == 200 and by_sender.json()["text"] == SECRET
    assert PHONE not in inbox.text


async def test_a_message_on_its_way_reaches_the_recipients_views_and_counts_only_when_delivered(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        reply, follow_up = "p-" + uid(), "q-" + uid()
        await x.addressed(reply, text="Sale mañana.", in_reply_to=x.ids["msg"])
        await outcome(http, x.seller, reply, "addressed")
        on_its_way = {
            "thread": await http.get(f"/v1/conversations/{x.ids['conv']}", headers=x.buyer),
            "one": await http.get(f"/v1/messages/{reply}", headers=x.buyer),
            "inbox": await http.get("/v1/conversations", params={"filter": "all"},
                                    headers=x.buyer),
        }
        await x.publish("bsm.messages.delivered", g.delivered(env, **x.fields(
            reply, text="Sale mañana.", in_reply_to=x.ids["msg"])))
        await outcome(http, x.buyer, reply, "delivered")
        buyer_inbox = await http.get("/v1/conversations", params={"filter": "all"},
                                     headers=x.buyer)
        # The buyer's follow-up on its way does not make the seller's inbox ask for an answer.
        await x.addressed(follow_up, by="buyer", text="¡Gracias!", in_reply_to=reply)
        await outcome(http, x.buyer, follow_up, "addressed")
        seller_waiting = await http.get("/v1/conversations", params={"filter": "all"},
                                        headers=x.seller)
        await x.publish("bsm.messages.delivered", g.delivered(env, **x.fields(
            follow_up, by="buyer", text="¡Gracias!", in_reply_to=reply)))
        await outcome(http, x.seller, follow_up, "delivered")
        seller_now = await http.get("/v1/conversations", params={"filter": "all"},
                                    headers=x.seller)
    thread = on_its_way["thread"].json()
    assert [m["message_id"] for m in thread["message_list"]] == [x.ids["msg"]]
    assert thread["view"] == "sent" and thread["messages"] == 1
    assert on_its_way["one"].status_code == 404
    before = listed(on_its_way["inbox"])[x.ids["conv"]]
    assert (before["messages"], before["unread"], before["view"]) == (1, 0, "sent")
    after = listed(buyer_inbox)[x.ids["conv"]]
    assert (after["messages"], after["unread"], after["view"]) == (2, 1, "response_needed")
    waiting = listed(seller_waiting)[x.ids["conv"]]
    assert (waiting["messages"], waiting["view"]) == (2, "sent")
    now = listed(seller_now)[x.ids["conv"]]
    assert (now["messages"], now["unread"], now["view"]) == (3, 2, "response_needed")


async def test_a_delivery_failure_hides_the_message_but_a_later_report_on_its_email_copy_does_not(
    kafka, env, prefix, gateway_settings
):
    async with g.running_gateway(gateway_settings) as (app, http):
        x = Exchange(kafka, env, prefix, await seed(kafka, env, prefix))
        failed, reached = "f-" + uid(), "e-" + uid()
        await x.rejected(failed, text="No llegará.", bounce={
            "stage": "delivery", "rule": "D2", "reason_code": "permanent_failure"})
        await x.delivered(reached, text="Llegó aquí.")
        await x.publish("bsm.messages.bounced", bounced(env, **{
            k: v for k, v in x.fields(reached).items()}, stage="delivery", rule="D1",
            reason_code="mailbox_full", after_delivery=True))
        await outcome(http, x.seller, failed, "bounced")
        await g.eventually(lambda: http.get(f"/v1/messages/{reached}", headers=x.seller),
                           lambda r: r.json()["outcome"]["bounce"] is not None)
        hidden = await http.get(f"/v1/messages/{failed}", headers=x.buyer)
        shown = await http.get(f"/v1/messages/{reached}", headers=x.buyer)
    assert hidden.status_code == 404
    assert shown.status_code == 200 and shown.json()["outcome"]["status"] == "delivered"


async def test_the_sql_filter_of_visible_messages_agrees_with_the_principals_rule(
    gateway_settings
):
    """The inbox list filters in SQL (``readmodel.visible_sql``), every other view in Python
    (``Principal.may_see_message``): both must say the same for every status and relation."""
    sender, recipient, other = ("s-" + uid(), "r-" + uid(), "o-" + uid())
    statuses = ("submitted", "addressed", "delivered", "bounced")
    async with g.running_gateway(gateway_settings) as (app, http):
        pool, schema = app.state.runtime.pool, app.state.runtime.schema
        rows = []
        for status in statuses:
            for to in (recipient, None):
                mid = f"v-{uid()}"
                await pool.execute(
                    f"""INSERT INTO {schema}.messages (message_id, conversation_id,
                        sender_party_id, recipient_party_id, submitted_at, status)
                        VALUES ($1, 'c-vis', $2, $3, now(), $4)""", mid, sender, to, status)
                rows.append({"message_id": mid, "sender_party_id": sender,
                             "recipient_party_id": to, "status": status})
        ids = [r["message_id"] for r in rows]
        by_sql = {}
        for party in (sender, recipient, other):
            found = await pool.fetch(
                f"SELECT message_id FROM {schema}.messages m WHERE m.message_id = ANY($2) "
                f"AND {visible_sql('m', '$1')}", party, ids)
            by_sql[party] = {r["message_id"] for r in found}
    for party in (sender, recipient, other):
        for role in ("buyer", "seller"):
            who = Principal(party_id=party, role=role)  # type: ignore[arg-type]
            by_rule = {r["message_id"] for r in rows if who.may_see_message(
                r["sender_party_id"], r["recipient_party_id"], r["status"])}
            assert by_rule == by_sql[party], (party, role)
    assert len(by_sql[sender]) == 8 and len(by_sql[recipient]) == 1 and not by_sql[other]
    assert json.dumps(sorted(by_sql[recipient])) == json.dumps(
        [r["message_id"] for r in rows if r["status"] == "delivered" and r["recipient_party_id"]])
