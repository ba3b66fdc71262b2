"""Topic names and consumer group ids: the one place they are defined.

Topics are named as past-tense events (``bsm.messages.delivered``); each has a dead-letter
topic ``<topic>.dlq`` where a consumer puts an event it cannot parse or verify, with the error,
instead of crashing or silently dropping it. Message and record topics keep events forever
(``retention.ms=-1``): they are the auditable record (G1) and the source for replays (G2).

A deployment (or a test) may put every topic under a prefix (``BSM_TOPIC_PREFIX``), so several
isolated copies of the system can share one Kafka cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    """Logical topic names (without a deployment prefix); see ``DESCRIPTIONS``."""

    PARTIES = "bsm.parties"
    ORDERS = "bsm.orders"
    SUBMITTED = "bsm.messages.submitted"
    ADDRESSED = "bsm.messages.addressed"
    POLICY_CHECKED = "bsm.messages.policy-checked"
    DELIVERED = "bsm.messages.delivered"
    BOUNCED = "bsm.messages.bounced"
    REPORTED = "bsm.messages.reported"
    RESPONSE_NOT_NEEDED = "bsm.messages.response-not-needed"
    BOUNCE_REPORTS = "bsm.messages.bounce-reports"


#: What each topic carries and how it is keyed (also published in the AsyncAPI document).
DESCRIPTIONS: dict[Topic, str] = {
    Topic.PARTIES: "Key: party id. PartyRegistered, SellerSettingsChanged, "
    "BuyerPreferencesChanged, SellerMessagingRestricted, SellerMessagingRestrictionLifted, "
    "PartyErased.",
    Topic.ORDERS: "Key: order id. OrderPlaced, OrderStatusChanged.",
    Topic.SUBMITTED: "Key: message id. MessageSubmitted (from people, mail clients and "
    "platform services).",
    Topic.ADDRESSED: "Key: relationship id. MessageAddressed (parties, aliases and "
    "conversation resolved by the alias service).",
    Topic.POLICY_CHECKED: "Key: relationship id. PolicyChecked (approved, or rejected with "
    "every violation).",
    Topic.DELIVERED: "Key: relationship id. Delivered.",
    Topic.BOUNCED: "Key: relationship id (message id before addressing). Bounced.",
    Topic.REPORTED: "Key: relationship id. Reported.",
    Topic.RESPONSE_NOT_NEEDED: "Key: relationship id. ResponseNotNeeded.",
    Topic.BOUNCE_REPORTS: "Key: message id. BounceReportReceived (a delivery status report "
    "from a recipient's mail provider, received by the mail door at the message's signed VERP "
    "return path).",
}


#: Partition count each topic is created with. A service can run as many instances as its
#: input topics have partitions (H4).
PARTITIONS: dict[Topic, int] = {
    Topic.PARTIES: 3,
    Topic.ORDERS: 3,
    Topic.SUBMITTED: 6,
    Topic.ADDRESSED: 6,
    Topic.POLICY_CHECKED: 6,
    Topic.DELIVERED: 6,
    Topic.BOUNCED: 6,
    Topic.REPORTED: 3,
    Topic.RESPONSE_NOT_NEEDED: 3,
    Topic.BOUNCE_REPORTS: 6,
}

#: Topic configuration: every topic keeps its events forever (the record). Not compacted:
#: compacting ``bsm.parties`` by key would drop a registration once settings change.
TOPIC_CONFIG: dict[str, str] = {"retention.ms": "-1", "cleanup.policy": "delete"}

#: Dead-letter topics keep entries forever too: a dead letter is an unresolved problem.
DLQ_PARTITIONS = 1

#: Topics outside producers (other platform services) publish on; events there may be unsigned
#: unless the deployment lists trusted producer keys for that producer.
INPUT_TOPICS: frozenset[Topic] = frozenset({Topic.PARTIES, Topic.ORDERS, Topic.SUBMITTED})


class Group(StrEnum):
    """Consumer group ids: one per service and purpose."""

    ALIAS = "bsm.alias"
    POLICY = "bsm.policy"
    DELIVERY = "bsm.delivery"
    METRICS = "bsm.metrics"
    GATEWAY = "bsm.gateway"


@dataclass(frozen=True)
class TopicNames:
    """Concrete topic names for one deployment (logical name + optional prefix)."""

    prefix: str = ""

    def __call__(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def dlq(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}.dlq"

    def group(self, group: Group) -> str:
        return f"{self.prefix}{group.value}"

    def all_topics(self) -> dict[str, int]:
        """Every topic name with its partition count, dead-letter topics included."""
        names = {self(t): PARTITIONS[t] for t in Topic}
        names.update({self.dlq(t): DLQ_PARTITIONS for t in Topic})
        return names


#: Which of our services may write each inner topic. A consumer refuses (dead-letters) an event
#: on these topics from any other producer, even one with a valid signature of its own: a
#: ``PolicyChecked`` signed by the gateway is still a forgery.
PRODUCERS: dict[Topic, frozenset[str]] = {
    Topic.ADDRESSED: frozenset({"alias"}),
    Topic.POLICY_CHECKED: frozenset({"policy"}),
    Topic.DELIVERED: frozenset({"delivery"}),
    Topic.BOUNCED: frozenset({"alias", "delivery"}),
    Topic.REPORTED: frozenset({"gateway"}),
    Topic.RESPONSE_NOT_NEEDED: frozenset({"gateway"}),
    Topic.BOUNCE_REPORTS: frozenset({"alias"}),
}


#: Event types that only some of our services may write, wherever they appear (the input topic
#: ``bsm.parties`` also carries events of outside producers).
TYPE_PRODUCERS: dict[str, frozenset[str]] = {
    "SellerMessagingRestricted": frozenset({"policy"}),
    "SellerMessagingRestrictionLifted": frozenset({"gateway"}),
    "PartyErased": frozenset({"gateway"}),
}
