"""The one parser, on every event type, and the rules for versions."""

import json
import uuid

import pytest

from bsm_shared.contract import EVENT_MODELS, EventParseError, parse_event
from bsm_shared.contract import payloads as p
from bsm_shared.contract.wire import build_event, to_wire
from tests.factories import T0, addressed, policy_checked, submitted

EXAMPLES = {
    "PartyRegistered": p.PartyRegistered(
        party_id="b1", role="buyer", email="ana@example.com", display_name="Ana", locale="es-ES",
        marketplace="ES",
    ),
    "SellerSettingsChanged": p.SellerSettingsChanged(seller_id="s1", messaging_enabled=False),
    "BuyerPreferencesChanged": p.BuyerPreferencesChanged(buyer_id="b1", unsolicited_opt_out=True),
    "SellerMessagingRestricted": p.SellerMessagingRestricted(
        seller_id="s1", level="restricted", starts_at=T0, until=T0, violation_count=3,
        reason="Three messages with phone numbers in 7 days.",
    ),
    "SellerMessagingRestrictionLifted": p.SellerMessagingRestrictionLifted(
        seller_id="s1", lifted_by="op-1", lifted_at=T0,
    ),
    "PartyErased": p.PartyErased(party_id="b1", erased_at=T0, requested_by="op-1",
                                 reason="data-subject request 42"),
    "OrderPlaced": p.OrderPlaced(
        order_id="o1", buyer_id="b1", seller_id="s1", placed_at=T0,
        items=[p.OrderItem(sku="x", wine=True)],
    ),
    "OrderStatusChanged": p.OrderStatusChanged(order_id="o1", status="completed", changed_at=T0),
    "MessageSubmitted": submitted(),
    "MessageAddressed": addressed(),
    "PolicyChecked": policy_checked(),
    "Delivered": p.Delivered(
        message_id="m1", conversation_id="c1", relationship_id="r1", sender_party_id="b1",
        recipient_party_id="s1", sender_role="buyer", sender_alias="a" * 16 + "@m.example",
        recipient_alias="b" * 16 + "@m.example", submitted_at=T0, delivered_at=T0,
        channels=["mailbox", "email"],
    ),
    "Bounced": p.Bounced(
        message_id="m1", stage="alias", reason_code="unknown_sender", explanation="x",
        bounced_at=T0,
    ),
    "Reported": p.Reported(message_id="m1", reporter_party_id="b1", reason="spam", reported_at=T0),
    "ResponseNotNeeded": p.ResponseNotNeeded(message_id="m1", party_id="s1", marked_at=T0),
    "BounceReportReceived": p.BounceReportReceived(
        message_id="m1", received_at=T0, action="failed", status="5.1.1",
        diagnostic="550 5.1.1 <[address]>: User unknown", reporting_mta="mx.example.com",
        standard=True,
    ),
}


def test_there_is_an_example_of_every_event():
    assert set(EXAMPLES) == set(EVENT_MODELS)


@pytest.mark.parametrize("etype", sorted(EVENT_MODELS))
def test_every_event_survives_the_wire_unchanged(etype: str):
    event = build_event(
        EVENT_MODELS[etype], EXAMPLES[etype], event_id=uuid.uuid4(), occurred_at=T0,
        producer="platform", correlation_id="x",
    )
    assert parse_event(to_wire(event, None)) == event


def test_events_are_frozen_facts():
    with pytest.raises(Exception):
        EXAMPLES["Bounced"].reason_code = "other"  # type: ignore[misc]


def test_a_reader_keeps_fields_a_newer_producer_added():
    raw = json.loads(to_wire(build_event(
        EVENT_MODELS["Reported"], EXAMPLES["Reported"], event_id=uuid.uuid4(), occurred_at=T0,
        producer="gateway", correlation_id="m1"), None))
    raw["data"]["channel"] = "email"
    assert parse_event(raw).data.model_extra == {"channel": "email"}


def test_a_message_needs_a_body_and_a_party_reference_needs_an_id_or_address():
    with pytest.raises(ValueError, match="text"):
        submitted(text=None, html=None)
    with pytest.raises(ValueError, match="party_id"):
        p.PartyRef()


def test_a_version_newer_than_the_reader_knows_is_an_error_not_a_guess():
    with pytest.raises(EventParseError) as err:
        parse_event({"type": "Reported", "version": 2})
    assert err.value.code == "unsupported_version"
