"""The consumer's gate, before anything is applied: parse, verify, right producer."""

import json
import uuid

import pytest

from bsm_shared.contract import EventParseError, PolicyCheckedEvent
from bsm_shared.contract.signing import SignatureError
from bsm_shared.contract.wire import build_event, to_wire
from bsm_shared.runtime.consumer import EventConsumer, Record
from bsm_shared.topics import Topic, TopicNames
from tests.factories import T0, policy_checked, signers, submitted


async def _noop(conn, incoming):  # pragma: no cover - never called by check()
    return []


def gate(verifier) -> EventConsumer:
    topics = TopicNames("")
    return EventConsumer(
        name="delivery", pool=None, schema="delivery", topics=topics, verifier=verifier,
        signer=None, handlers={Topic.POLICY_CHECKED: _noop, Topic.SUBMITTED: _noop},
    )


def record(topic: Topic, value: bytes) -> Record:
    return Record(topic.value, 0, 7, b"k", value)


def policy_event(signer, producer: str = "policy") -> bytes:
    event = build_event(
        PolicyCheckedEvent, policy_checked(), event_id=uuid.uuid4(), occurred_at=T0,
        producer=producer, correlation_id="m-1",
    )
    return to_wire(event, signer)


def test_a_policy_decision_signed_by_policy_passes_the_gate():
    s, verifier = signers("policy", "gateway")
    incoming = gate(verifier).check(record(Topic.POLICY_CHECKED, policy_event(s["policy"])))
    assert incoming.verified and incoming.event.data.verdict == "approved"


def test_a_policy_decision_signed_by_another_of_our_services_is_a_forgery():
    s, verifier = signers("policy", "gateway")
    with pytest.raises(SignatureError) as err:
        gate(verifier).check(record(Topic.POLICY_CHECKED, policy_event(s["gateway"], "gateway")))
    assert err.value.code == "wrong_producer"


def test_an_unsigned_policy_decision_from_an_outsider_is_refused():
    _, verifier = signers("policy")
    with pytest.raises(SignatureError) as err:
        gate(verifier).check(record(Topic.POLICY_CHECKED, policy_event(None, "someone")))
    assert err.value.code == "untrusted_producer"


def test_an_outside_platform_service_may_submit_unsigned_messages():
    _, verifier = signers("policy")
    raw = {
        "event_id": str(uuid.uuid4()), "type": "MessageSubmitted", "version": 1,
        "occurred_at": "2026-11-01T12:00:00Z", "producer": "orders-platform",
        "correlation_id": "m-1", "data": submitted().model_dump(mode="json"),
    }
    incoming = gate(verifier).check(record(Topic.SUBMITTED, json.dumps(raw).encode()))
    assert not incoming.verified and incoming.event.type == "MessageSubmitted"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"type": "Nope", "version": 1, "producer": "x"}', "unknown_type"),
        (b'{"type": "MessageSubmitted", "version": 9, "producer": "x"}', "unsupported_version"),
        (b'{"type": "MessageSubmitted", "version": 1, "producer": "x"}', "invalid_event"),
    ],
)
def test_what_cannot_be_parsed_is_refused_with_a_reason(value: bytes, code: str):
    _, verifier = signers("policy")
    with pytest.raises(EventParseError) as err:
        gate(verifier).check(record(Topic.SUBMITTED, value))
    assert err.value.code == code


def test_a_sanction_on_the_parties_topic_must_come_signed_from_policy():
    from bsm_shared.contract import SellerMessagingRestrictedEvent
    from bsm_shared.contract.payloads import SellerMessagingRestricted

    s, verifier = signers("policy", "gateway")
    data = SellerMessagingRestricted(seller_id="s1", level="suspended", starts_at=T0,
                                     violation_count=5, reason="x")
    consumer = EventConsumer(
        name="alias", pool=None, schema="alias", topics=TopicNames(""), verifier=verifier,
        signer=None, handlers={Topic.PARTIES: _noop},
    )

    def value(signer, producer):
        return to_wire(build_event(SellerMessagingRestrictedEvent, data, event_id=uuid.uuid4(),
                                   occurred_at=T0, producer=producer, correlation_id="s1"), signer)

    assert consumer.check(record(Topic.PARTIES, value(s["policy"], "policy"))).verified
    for signer, producer in ((None, "platform"), (s["gateway"], "gateway")):
        with pytest.raises(SignatureError) as err:
            consumer.check(record(Topic.PARTIES, value(signer, producer)))
        assert err.value.code == "wrong_producer"


def test_every_dead_letter_code_the_code_can_write_is_documented():
    """A dead letter is for a person to act on: each code it can carry is explained in
    ``docs/events.md`` (generated from ``ERROR_CODES``)."""
    import re
    from pathlib import Path

    from bsm_shared.contract.deadletter import ERROR_CODES

    src = Path(__file__).resolve().parents[2] / "shared" / "src" / "bsm_shared"
    text = "".join(p.read_text() for p in src.rglob("*.py"))
    raised = set(re.findall(r'(?:SignatureError|EventParseError)\(\s*"([a-z_]+)"', text))
    raised |= set(re.findall(r'code = "([a-z_]+)"', text))
    raised |= set(re.findall(r'_dead_letter\([^)]*?"([a-z_]+)"', text))
    assert raised and raised <= set(ERROR_CODES), raised - set(ERROR_CODES)
