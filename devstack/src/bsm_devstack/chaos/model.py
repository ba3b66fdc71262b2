"""What the chaos harness records: the operations it did, what each door answered, and what it
observed afterwards in the topics, the record and the mail sink. Plain data, no I/O: the
checker (:mod:`.checker`) is a pure function of these."""

from __future__ import annotations

from dataclasses import dataclass, field

# Outcomes an operation may be declared to accept.
REFUSED = "refused"  # the door said no: HTTP 4xx with a reason, SMTP 5xx with a reason
DEAD_LETTER = "dead_letter"  # a dead letter naming the error, for the record we published
DELIVERED = "delivered"  # exactly one Delivered
BOUNCED = "bounced"  # exactly one Bounced naming a reason
OUTCOME = frozenset({DELIVERED, BOUNCED})
NOTHING = frozenset()  # platform events: no outcome of their own (record, no dead letter)

# What a door answered.
ACCEPTED = "accepted"
ERROR = "error"  # a server error (HTTP 5xx other than 502-504): never acceptable
UNKNOWN = "unknown"  # no answer before the deadline (the door was down): indeterminate

Position = tuple[str, int, int]  # (topic, partition, offset)


@dataclass(frozen=True)
class Op:
    """One operation of the workload."""

    n: int
    door: str  # "api", "smtp" or "kafka"
    kind: str  # e.g. "message", "order_status", or a hostile kind such as "api_nul_text"
    token: str  # unique text carried by the operation's content (subject / body / event)
    accept: frozenset[str] = OUTCOME
    hostile: bool = False
    pair: int = 0
    is_message: bool = True  # counts as one of CHAOS_MESSAGES


@dataclass
class Result:
    """What the door answered to one operation (after retries of temporary failures)."""

    op: Op
    status: str  # ACCEPTED, REFUSED, ERROR, UNKNOWN
    code: int | None = None
    detail: str = ""
    message_id: str | None = None
    position: Position | None = None
    attempts: int = 1


@dataclass(frozen=True)
class Seen:
    """One event of the run read back from a topic."""

    topic: str
    partition: int
    offset: int
    event_id: str | None
    type: str | None
    message_id: str | None = None
    relationship_id: str | None = None
    after_delivery: bool = False
    reason_code: str | None = None
    producer: str | None = None

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    consumer: str
    error_code: str
    error: str
    source: Position | None
    value: str  # the dead-lettered record as text (for tokens)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds since the workload started
    kind: str  # "kill", "broker", "postgres"
    target: str  # instance name, node name, "postgres"
    service: str  # the killed instance's service ("" for broker / postgres)


@dataclass
class Observations:
    """Everything read back after the run."""

    events: list[Seen] = field(default_factory=list)  # every parseable event, topic order
    unparseable: list[Position] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)  # event ids found in the record
    mails: dict[str, int] = field(default_factory=dict)  # Message-ID header → files in the sink
    mail_problems: dict[str, str] = field(default_factory=dict)  # Message-ID → what is wrong
    lag_recovery: dict[str, float | None] = field(default_factory=dict)  # group → seconds
    faults: list[Fault] = field(default_factory=list)
