"""The workload and the fault schedule as data: which operations, through which door, with
which declared outcome — decided up front from a seed, so a run can be repeated.

Ordinary operations: buyers writing to sellers through the gateway (``POST /v1/messages``),
through the mail door (from their registered address to the seller's alias), and as platform
events on ``bsm.messages.submitted``; sellers writing with a contact reason; platform events on
``bsm.orders`` (new orders, status changes). A share of hostile inputs goes through every door,
each declared with the outcomes it may get (:data:`HOSTILE`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bsm_devstack.chaos.model import (
    BOUNCED,
    DEAD_LETTER,
    DELIVERED,
    NOTHING,
    OUTCOME,
    REFUSED,
    Op,
)

NORMALISED = frozenset({REFUSED, DELIVERED, BOUNCED})  # refused, or taken in a safe form


@dataclass(frozen=True)
class HostileKind:
    door: str
    accept: frozenset[str]
    is_message: bool = True
    what: str = ""


#: Every hostile input, its door and the outcomes it may get (anything else is a finding).
HOSTILE: dict[str, HostileKind] = {
    # the gateway: the contract refuses NUL, the HTTP door answers 422 naming it
    "api_nul_text": HostileKind("api", frozenset({REFUSED}), what="U+0000 in text"),
    "api_nul_html": HostileKind("api", frozenset({REFUSED}), what="U+0000 in html"),
    "api_nul_subject": HostileKind("api", frozenset({REFUSED}), what="U+0000 in the subject"),
    "api_crlf_subject": HostileKind("api", NORMALISED,
                                    what="CR/LF and a Bcc header in the subject"),
    "api_oversized_body": HostileKind("api", frozenset({REFUSED}),
                                      what="text over MAX_BODY_BYTES"),
    "api_invalid_json": HostileKind("api", frozenset({REFUSED}), what="a body that is not JSON"),
    "api_nul_path": HostileKind("api", frozenset({REFUSED}), is_message=False,
                                what="%00 in a URL path"),
    # the mail door
    "smtp_nul_body": HostileKind("smtp", NORMALISED, what="U+0000 in the decoded text"),
    "smtp_crlf_filename": HostileKind("smtp", NORMALISED,
                                      what="CR/LF in an RFC 2047 attachment file name"),
    "smtp_crlf_subject": HostileKind("smtp", NORMALISED,
                                     what="CR/LF in an RFC 2047 encoded subject"),
    "smtp_malformed_mime": HostileKind("smtp", NORMALISED,
                                       what="an unterminated multipart with broken base64"),
    "smtp_body_too_large": HostileKind("smtp", frozenset({REFUSED, BOUNCED}),
                                       what="text over MAX_BODY_BYTES in a small mail"),
    "smtp_oversized": HostileKind("smtp", frozenset({REFUSED}),
                                  what="a mail over MAX_MAIL_BYTES, without SIZE"),
    # the input topics
    "kafka_invalid_json": HostileKind("kafka", frozenset({DEAD_LETTER}), is_message=False,
                                      what="a record that is not JSON"),
    "kafka_unknown_type": HostileKind("kafka", frozenset({DEAD_LETTER}), is_message=False,
                                      what="an unknown event type on bsm.parties"),
    "kafka_nul_text": HostileKind("kafka", frozenset({DEAD_LETTER}),
                                  what="MessageSubmitted with U+0000 in text"),
    "kafka_missing_sender": HostileKind("kafka", frozenset({DEAD_LETTER}),
                                        what="MessageSubmitted without a sender"),
    "kafka_oversized_body": HostileKind("kafka", frozenset({DEAD_LETTER, BOUNCED}),
                                        what="MessageSubmitted with text over MAX_BODY_BYTES"),
}

#: Mails over MAX_MAIL_BYTES cost 25 MB each: one per this many messages (at least one).
OVERSIZED_MAIL_EVERY = 5000

# Shares of the ordinary messages (after each pair's first message through the gateway).
ORDINARY = (("api", "message", 0.40), ("smtp", "message", 0.25), ("kafka", "message", 0.25),
            ("api", "seller_message", 0.05), ("smtp", "seller_mail", 0.05))


def pair_count(messages: int) -> int:
    """Buyer–seller pairs: about 100 messages each, between 3 and 200."""
    return max(3, min(200, messages // 100))


def build(messages: int, *, seed: int, run: str, hostile_share: float = 0.05) -> list[Op]:
    """The operations of a run: ``messages`` messages (each pair's first one through the
    gateway first, then ordinary and hostile ones shuffled), plus platform events."""
    rng = random.Random(seed)
    pairs = pair_count(messages)
    ops: list[Op] = []

    def token(n: int) -> str:
        return f"chaos{run}x{n}"

    n = 0
    for p in range(min(pairs, messages)):
        ops.append(Op(n, "api", "first", token(n), OUTCOME, pair=p))
        n += 1
    rest = messages - len(ops)
    kinds = [k for k, h in HOSTILE.items() if k != "smtp_oversized" and h.is_message]
    extra = [k for k, h in HOSTILE.items() if not h.is_message]  # not messages: on top
    hostile_msgs = min(rest, max(int(rest * hostile_share), len(kinds) + 1)) if rest > 0 else 0
    oversized = min(hostile_msgs, max(1, messages // OVERSIZED_MAIL_EVERY)) if hostile_msgs else 0
    picks = ["smtp_oversized"] * oversized
    picks += [kinds[i % len(kinds)] for i in range(hostile_msgs - oversized)]
    body: list[Op] = []
    rounds = max(1, hostile_msgs // max(1, len(kinds)))
    for kind in picks + extra * rounds:
        h = HOSTILE[kind]
        body.append(Op(0, h.door, kind, "", h.accept, hostile=True,
                       pair=rng.randrange(pairs), is_message=h.is_message))
    doors = [(d, k) for d, k, _ in ORDINARY]
    weights = [w for _, _, w in ORDINARY]
    for _ in range(rest - len(picks)):
        door, kind = rng.choices(doors, weights)[0]
        body.append(Op(0, door, kind, "", OUTCOME, pair=rng.randrange(pairs)))
    # Platform events about orders: status changes and new orders (not messages).
    for _ in range(max(1, messages // 25)):
        body.append(Op(0, "kafka", "order_status", "", NOTHING, pair=rng.randrange(pairs),
                       is_message=False))
    for _ in range(max(1, messages // 50)):
        body.append(Op(0, "kafka", "order_placed", "", NOTHING, pair=rng.randrange(pairs),
                       is_message=False))
    rng.shuffle(body)
    for op in body:
        ops.append(Op(n, op.door, op.kind, token(n), op.accept, op.hostile, op.pair,
                      op.is_message))
        n += 1
    return ops


@dataclass(frozen=True)
class FaultPlan:
    """What the nemesis does, one fault every ``interval`` seconds: first the ``mandatory``
    faults in order — an instance of each service killed once, the Kafka node kill (three-broker
    stacks) a third of the way through and the PostgreSQL crash two thirds of the way — then
    instance kills at random for as long as the workload runs."""

    interval: float
    mandatory: tuple[tuple[str, str], ...]  # ("kill", service) | ("broker", "") | ("postgres", "")


def faults(*, seed: int, brokers: int, services: list[str], interval: float,
           crash_postgres: bool = True) -> FaultPlan:
    rng = random.Random(seed + 1)
    order = list(dict.fromkeys(services))
    rng.shuffle(order)
    steps: list[tuple[str, str]] = [("kill", s) for s in order]
    if brokers > 1:
        steps.insert(len(steps) // 3 + 1, ("broker", ""))
    if crash_postgres:
        steps.insert(2 * len(steps) // 3 + 1, ("postgres", ""))
    return FaultPlan(interval=interval, mandatory=tuple(steps))
