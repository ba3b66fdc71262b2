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


# -- one signature per batch (issue 14: a Merkle root, RFC 9162) -------------------------------


def batch(signer, n: int) -> list[dict]:
    from bsm_shared.contract.wire import to_wire_batch, unsigned_body

    events = [build_event(PolicyCheckedEvent, policy_checked(message_id=f"m-{i}"),
                          event_id=uuid.uuid4(), occurred_at=T0, producer="policy",
                          correlation_id=f"m-{i}") for i in range(n)]
    return [json.loads(b) for b in to_wire_batch([unsigned_body(e) for e in events], signer)]


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_every_event_of_a_batch_signed_once_verifies_on_its_own(n):
    s, _ = signers("policy")
    events = batch(s["policy"], n)
    assert all(e["signature"].startswith("ed25519-merkle:") for e in events)
    assert len({e["signature"].split(":")[2] for e in events}) == 1  # one signature
    for e in events:
        # A reader that saw no other event of the batch (a timeline, a replay).
        fresh = Verifier({"policy": (s["policy"].private_key.public_key(),)})
        assert fresh.verify(e) is True


def test_a_batch_root_is_verified_once_and_the_rest_of_the_batch_costs_hashes():
    s, verifier = signers("policy")
    events = batch(s["policy"], 50)
    for e in events:
        verifier.verify(e)
    assert len(verifier._roots) == 1


def test_changing_one_event_of_a_batch_breaks_its_signature_and_no_other():
    s, verifier = signers("policy")
    events = batch(s["policy"], 5)
    events[2]["data"]["verdict"] = "rejected"
    with pytest.raises(SignatureError) as err:
        verifier.verify(events[2])
    assert err.value.code == "bad_signature"
    assert all(verifier.verify(e) for i, e in enumerate(events) if i != 2)


def test_a_batch_signature_moved_to_another_event_or_with_a_cut_proof_is_refused():
    s, verifier = signers("policy")
    a, b = batch(s["policy"], 2)
    b["signature"] = a["signature"]  # a's proof and index on b's bytes: another root
    with pytest.raises(SignatureError) as moved:
        verifier.verify(b)
    assert moved.value.code == "bad_signature"
    parts = a["signature"].split(":")
    a["signature"] = ":".join([*parts[:5], ""])  # no audit path for a tree of 2
    with pytest.raises(SignatureError) as cut:
        verifier.verify(a)
    assert cut.value.code == "malformed_signature"


def test_events_signed_one_by_one_before_batches_keep_verifying():
    s, verifier = signers("policy")
    assert verifier.verify(wire_event(s["policy"])) is True


def test_a_batch_event_is_byte_for_byte_what_one_serialisation_with_its_signature_gives():
    """The signature is spliced into the canonical bytes instead of serialising again: the
    result must be exactly the canonical JSON of the event with its signature."""
    from bsm_shared.contract.wire import to_wire_batch, unsigned_body

    s, _ = signers("policy")
    events = [build_event(PolicyCheckedEvent, policy_checked(subject='"type":"x", ñ'),
                          event_id=uuid.uuid4(), occurred_at=T0, producer="policy",
                          correlation_id=f"m-{i}") for i in range(3)]
    for raw in to_wire_batch([unsigned_body(e) for e in events], s["policy"]):
        assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()


def test_a_producer_cannot_batch_sign_another_producers_events():
    from bsm_shared.contract.wire import to_wire_batch, unsigned_body

    s, _ = signers("policy", "gateway")
    event = build_event(PolicyCheckedEvent, policy_checked(), event_id=uuid.uuid4(),
                        occurred_at=T0, producer="policy", correlation_id="m-1")
    with pytest.raises(ValueError):
        to_wire_batch([unsigned_body(event)], s["gateway"])
