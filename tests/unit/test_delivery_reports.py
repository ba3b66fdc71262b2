"""Bounce reports after delivery (D1), pure: which report stops a delivered message and the
Bounced it becomes."""

from datetime import timedelta

import pytest

from bsm_delivery import reports
from bsm_shared.contract.payloads import BounceReportReceived
from tests.factories import T0, policy_checked


def report(**over) -> BounceReportReceived:
    values = dict(message_id="m-1", received_at=T0 + timedelta(hours=3), action="failed",
                  status="5.1.1", diagnostic="550 5.1.1 <[address]>: User unknown",
                  reporting_mta="mx1.mail-provider.example", standard=True)
    values.update(over)
    return BounceReportReceived(**values)


@pytest.mark.parametrize(("action", "acts"), [("failed", True), ("delayed", False),
                                              ("delivered", False), ("relayed", False),
                                              ("expanded", False)])
def test_only_a_failed_report_stops_a_delivered_message(action, acts):
    assert reports.acts_on(report(action=action)) is acts


def test_a_failed_report_becomes_a_d1_bounce_after_delivery_with_the_known_parties():
    pc = policy_checked(message_id="m-1")
    bounce = reports.bounce_after_delivery(pc, report())
    assert (bounce.stage, bounce.reason_code, bounce.rule, bounce.after_delivery) == (
        "delivery", "bounce_report", "D1", True)
    assert bounce.bounced_at == T0 + timedelta(hours=3)  # from the event, not a clock
    assert (bounce.sender_party_id, bounce.recipient_party_id, bounce.conversation_id,
            bounce.relationship_id, bounce.order_id) == (
        pc.sender_party_id, pc.recipient_party_id, pc.conversation_id, pc.relationship_id,
        pc.order_id)
    assert "mx1.mail-provider.example" in bounce.explanation and "5.1.1" in bounce.explanation
    assert "User unknown" in bounce.explanation
    assert "message center" in bounce.remedy and bounce.remedy != reports.remedy_for("5.7.1")


def test_the_remedy_follows_the_status_and_every_status_has_one():
    assert "does not exist" in reports.remedy_for("5.1.1")
    assert "full" in reports.remedy_for("5.2.2")
    assert "unwanted" in reports.remedy_for("5.7.1")
    assert reports.remedy_for("5.0.0") == reports.remedy_for("garbage") != ""
