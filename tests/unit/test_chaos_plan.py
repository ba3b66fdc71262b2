"""The chaos workload as data: exactly CHAOS_MESSAGES messages, every hostile kind at least
once with its declared outcomes, the same plan for the same seed; what each operation sends;
how records and stored mails are read back."""

import email
import email.policy
import json
from datetime import UTC, datetime

import pytest

from bsm_devstack.chaos import content, observe, plan
from bsm_devstack.chaos.model import DEAD_LETTER, NOTHING, REFUSED, DeadLetter, Op, Seen
from bsm_shared.contract.limits import MAX_BODY_BYTES, MAX_MAIL_BYTES

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("n", [30, 300, 2000])
def test_a_plan_holds_exactly_the_asked_messages_and_every_hostile_kind(n):
    ops = plan.build(n, seed=7, run="abc123")
    assert sum(op.is_message for op in ops) == n
    assert {op.kind for op in ops if op.hostile} == set(plan.HOSTILE)
    assert [op.n for op in ops] == list(range(len(ops)))
    assert len({op.token for op in ops}) == len(ops)
    firsts = [op for op in ops if op.kind == "first"]
    assert ops[:len(firsts)] == firsts and len(firsts) == plan.pair_count(n)
    assert sum(op.kind == "smtp_oversized" for op in ops) == max(1, n // plan.OVERSIZED_MAIL_EVERY)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    assert plan.build(500, seed=3, run="r") == plan.build(500, seed=3, run="r")
    assert plan.build(500, seed=3, run="r") != plan.build(500, seed=4, run="r")


def test_each_hostile_kind_declares_what_it_may_get():
    ops = {op.kind: op for op in plan.build(300, seed=1, run="r")}
    assert ops["api_nul_text"].accept == {REFUSED}
    assert ops["kafka_invalid_json"].accept == {DEAD_LETTER}
    assert not ops["kafka_invalid_json"].is_message
    assert ops["order_status"].accept == NOTHING and not ops["order_status"].hostile


def test_the_fault_plan_kills_every_service_once_a_broker_and_postgres():
    fp = plan.faults(seed=1, brokers=3, services=["alias", "policy", "alias", "gateway"],
                     interval=5)
    assert sorted(s for k, s in fp.mandatory if k == "kill") == ["alias", "gateway", "policy"]
    assert [k for k, _ in fp.mandatory].count("broker") == 1
    assert [k for k, _ in fp.mandatory].count("postgres") == 1
    single = plan.faults(seed=1, brokers=1, services=["alias"], interval=5,
                         crash_postgres=False)
    assert single.mandatory == (("kill", "alias"),)


def _op(kind: str, door: str = "smtp") -> Op:
    return Op(5, door, kind, "chaosr1x5")


PAIR = content.pairs("r1", 1)[0]


def test_ordinary_mails_are_well_formed_and_carry_the_token():
    sender, raw = content.mail(_op("message"), PAIR, to_alias="s@marketplace.example", now=NOW)
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert sender == PAIR.buyer_email and mail["From"] == PAIR.buyer_email
    assert "chaosr1x5" in mail["Subject"] and b"\r\n" in raw
    assert content.mail(_op("seller_mail"), PAIR, to_alias="b@m.example", now=NOW)[0] \
        == PAIR.seller_email


def test_hostile_mails_hide_what_they_claim():
    _, crlf = content.mail(_op("smtp_crlf_filename"), PAIR, to_alias="s@m.example", now=NOW)
    names = [p.get_filename() for p in email.message_from_bytes(
        crlf, policy=email.policy.default).walk() if p.get_filename()]
    assert names and "\r\n" in names[0]
    _, nul = content.mail(_op("smtp_nul_body"), PAIR, to_alias="s@m.example", now=NOW)
    part = email.message_from_bytes(nul, policy=email.policy.default)
    assert "\x00" in part.get_content()
    _, big = content.mail(_op("smtp_oversized"), PAIR, to_alias="s@m.example", now=NOW)
    assert len(big) > MAX_MAIL_BYTES
    _, long = content.mail(_op("smtp_body_too_large"), PAIR, to_alias="s@m.example", now=NOW)
    assert MAX_BODY_BYTES < len(long) < MAX_MAIL_BYTES


def test_hostile_records_are_what_they_claim():
    topic, _, value, _ = content.kafka_record("r1", _op("kafka_invalid_json", "kafka"), PAIR, NOW)
    with pytest.raises(ValueError):
        json.loads(value)
    _, _, value, mid = content.kafka_record("r1", _op("kafka_nul_text", "kafka"), PAIR, NOW)
    event = json.loads(value)
    assert "\x00" in event["data"]["text"] and event["data"]["message_id"] == mid
    _, _, value, _ = content.kafka_record("r1", _op("kafka_missing_sender", "kafka"), PAIR, NOW)
    assert "sender" not in json.loads(value)["data"]
    method, path, sender, body = content.api_request(_op("api_nul_path", "api"), PAIR)
    assert method == "GET" and "%00" in path


def test_records_read_back_as_events_dead_letters_or_positions():
    event = json.dumps({"event_id": "e1", "type": "Bounced", "data": {
        "message_id": "m1", "after_delivery": True, "reason_code": "x"}}).encode()
    seen = observe.parse_record("bsm.messages.bounced", 2, 9, b"rel", event)
    assert isinstance(seen, Seen) and seen.after_delivery and seen.position == (
        "bsm.messages.bounced", 2, 9)
    keyed = observe.parse_record("bsm.messages.addressed", 0, 1, b"rel-1", json.dumps(
        {"event_id": "e2", "type": "MessageAddressed", "data": {"message_id": "m"}}).encode())
    assert keyed.relationship_id == "rel-1"
    dl = observe.parse_record("bsm.orders.dlq", 0, 0, None, json.dumps({
        "consumer": "policy", "error_code": "handler_error", "error": "boom",
        "topic": "bsm.orders", "partition": 1, "offset": 4, "value": "{...}"}).encode())
    assert dl == DeadLetter("bsm.orders.dlq", "policy", "handler_error", "boom",
                            ("bsm.orders", 1, 4), "{...}")
    assert observe.parse_record("bsm.orders", 0, 3, None, b"{not json") == ("bsm.orders", 0, 3)


def test_a_stored_mail_gives_its_message_id_and_header_injection_shows():
    ok = b"X-Bsm-Sink-Envelope-To: a@b\r\nMessage-ID: <m1@marketplace.example>\r\n\r\nBcc: body"
    assert observe.mail_facts(ok) == ("<m1@marketplace.example>", None)
    bad = b"Message-ID: <m2@x>\r\nSubject: hi\r\nBcc: victim@evil.example\r\n\r\nbody"
    assert observe.mail_facts(bad)[1] is not None
    injected = (b"Message-ID: <m3@x>\r\nSubject: =?utf-8?b?"
                + __import__("base64").b64encode(b"a\r\nb") + b"?=\r\n\r\nbody")
    assert observe.unsafe_parts(injected) == "CR/LF in the decoded subject"


def test_the_longest_pause_in_outcomes_counts_from_the_start_and_to_the_end():
    assert observe.longest_pause([], 10.0, 15.0) == 5.0
    assert observe.longest_pause([11.0, 12.0, 17.0], 10.0, 20.0) == 5.0
    assert observe.longest_pause([1.0, 10.5, 30.0], 10.0, 12.0) == 1.5
