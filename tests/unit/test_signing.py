import json
import uuid

import pytest

from bsm_shared.contract import PolicyCheckedEvent, parse_event
from bsm_shared.contract.signing import SignatureError, Verifier
from bsm_shared.contract.wire import build_event, derived_event_id, to_wire
from tests.factories import T0, policy_checked, signers


def wire_event(signer, producer: str = "policy") -> dict:
    event = build_event(
        PolicyCheckedEvent, policy_checked(), event_id=uuid.uuid4(), occurred_at=T0,
        producer=producer, correlation_id="m-1",
    )
    return json.loads(to_wire(event, signer))


def test_a_signed_event_verifies_and_parses_back_to_the_same_model():
    s, verifier = signers("policy")
    raw = wire_event(s["policy"])
    assert verifier.verify(raw) is True
    assert parse_event(raw).data == policy_checked().model_copy(
        update={"message_id": raw["data"]["message_id"]}
    )


def test_changing_any_field_breaks_the_signature():
    s, verifier = signers("policy")
    raw = wire_event(s["policy"])
    raw["data"]["verdict"] = "rejected"
    with pytest.raises(SignatureError) as err:
        verifier.verify(raw)
    assert err.value.code == "bad_signature"


def test_an_unsigned_event_claiming_to_be_ours_is_refused():
    _, verifier = signers("policy")
    raw = wire_event(None)
    with pytest.raises(SignatureError) as err:
        verifier.verify(raw)
    assert err.value.code == "unsigned"


def test_a_signature_by_a_key_not_trusted_for_that_producer_is_refused():
    s, _ = signers("policy")
    _, other_verifier = signers("policy")  # a deployment that trusts a different policy key
    with pytest.raises(SignatureError) as err:
        other_verifier.verify(wire_event(s["policy"]))
    assert err.value.code == "untrusted_key"


def test_outside_producers_may_publish_unsigned_unless_their_keys_are_listed():
    raw = wire_event(None, producer="orders-service")
    assert Verifier({}).verify(raw) is False
    s, verifier_with_key = signers("orders-service")
    with pytest.raises(SignatureError):
        verifier_with_key.verify(raw)
    assert verifier_with_key.verify(wire_event(s["orders-service"], "orders-service")) is True


def test_a_signer_cannot_sign_as_another_producer():
    s, _ = signers("gateway")
    with pytest.raises(ValueError, match="cannot sign as"):
        wire_event(s["gateway"], producer="policy")


def test_a_re_emitted_fact_keeps_its_event_id():
    cause = uuid.uuid4()
    assert derived_event_id(cause, "policy") == derived_event_id(str(cause), "policy")
    assert derived_event_id(cause, "policy") != derived_event_id(cause, "delivery")
