"""The checker: a pure function from what the harness did (:class:`.model.Result` per
operation) and what it read back (:class:`.model.Observations`) to a verdict.

Like Jepsen's checkers it judges a history, not a live system. What it counts:

* **lost** — a message the system accepted (a door said yes, or a ``MessageSubmitted`` is in the
  log) without an outcome: exactly one ``Delivered`` or ``Bounced`` (``after_delivery`` ones
  are a report's, not an outcome) per message id;
* **duplicate outcomes** — a message with more than one outcome event (distinct event ids: a
  republished event keeps its id and is dropped by every consumer, so it is no duplicate);
* **duplicate mails** — a ``Message-ID`` more than once in the mail sink;
* **missing from the record** — an event of the run on a ``bsm.*`` topic that the metrics
  service's archive does not hold (the hostile records we published on purpose excepted);
* **out of order** — within a relationship, ``PolicyChecked`` events in another order than the
  ``MessageAddressed`` events they answer (policy keeps the order per key, its outbox must too);
  ``Delivered``/``Bounced`` against ``PolicyChecked`` is counted as information only (delivery
  retries per job, in parallel lanes, by design);
* **dead letters** — each must come from a hostile input we published on purpose (its position
  or its token); any other is a finding;
* **hostile inputs** — each must get one of its declared outcomes (refused at the door, a dead
  letter with the error, a ``Bounced`` naming the reason, or delivered normalised); a 5xx from
  an HTTP door is never acceptable;
* **lag recovery** — seconds from the end of the faults until each consumer group's lag is back
  to 0 (``None``: it never was within the bound).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

from bsm_devstack.chaos.model import (
    ACCEPTED,
    BOUNCED,
    DEAD_LETTER,
    DELIVERED,
    ERROR,
    OUTCOME,
    REFUSED,
    UNKNOWN,
    DeadLetter,
    Observations,
    Position,
    Result,
)
from bsm_shared.runtime.settings import DEFAULT_SMTP_CONNECTIONS

SUBMITTED = "bsm.messages.submitted"
ADDRESSED = "bsm.messages.addressed"
POLICY_CHECKED = "bsm.messages.policy-checked"
DELIVERED_TOPIC = "bsm.messages.delivered"
BOUNCED_TOPIC = "bsm.messages.bounced"


KIND_OF_TYPE = {"Delivered": DELIVERED, "Bounced": BOUNCED}


@dataclass
class Targets:
    smtp_lanes: int = DEFAULT_SMTP_CONNECTIONS  # BSM_DELIVERY_SMTP_CONNECTIONS
    lag_bound_seconds: float = 180.0


@dataclass
class Verdict:
    messages: int
    kills: int
    delivery_kills: int
    lost: list[str] = field(default_factory=list)
    duplicate_outcomes: list[str] = field(default_factory=list)
    duplicate_mails: int = 0
    duplicate_mail_ids: list[str] = field(default_factory=list)
    missing_from_record: list[str] = field(default_factory=list)
    out_of_order: int = 0  # PolicyChecked out of place, summed over relationships
    out_of_order_relationships: list[str] = field(default_factory=list)
    reordered_outcomes: int = 0  # information only
    undeclared_dead_letters: list[DeadLetter] = field(default_factory=list)
    hostile_problems: list[str] = field(default_factory=list)
    benign_problems: list[str] = field(default_factory=list)
    mail_problems: list[str] = field(default_factory=list)
    indeterminate: int = 0
    max_lag_recovery: float | None = 0.0
    lag_problems: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)  # delivered / bounced counts
    targets: Targets = field(default_factory=Targets)

    @property
    def duplicate_mail_bound(self) -> int:
        return self.targets.smtp_lanes * self.delivery_kills

    def misses(self) -> list[str]:
        """Each target missed, in words (empty: every target met)."""
        out: list[str] = []
        if self.lost:
            out.append(f"{len(self.lost)} message(s) lost")
        if self.duplicate_outcomes:
            out.append(f"{len(self.duplicate_outcomes)} message(s) with more than one outcome")
        if self.missing_from_record:
            out.append(f"{len(self.missing_from_record)} event(s) missing from the record")
        if self.duplicate_mails > self.duplicate_mail_bound:
            out.append(f"{self.duplicate_mails} duplicate mail(s), more than "
                       f"{self.targets.smtp_lanes} SMTP lanes × {self.delivery_kills} delivery "
                       f"kill(s) = {self.duplicate_mail_bound}")
        if self.out_of_order:
            out.append(f"{self.out_of_order} PolicyChecked event(s) out of order in "
                       f"{len(self.out_of_order_relationships)} relationship(s)")
        if self.undeclared_dead_letters:
            out.append(f"{len(self.undeclared_dead_letters)} dead letter(s) no hostile input "
                       "provoked")
        if self.hostile_problems:
            out.append(f"{len(self.hostile_problems)} hostile input(s) without their declared "
                       "outcome")
        if self.benign_problems:
            out.append(f"{len(self.benign_problems)} ordinary operation(s) refused or failed")
        if self.mail_problems:
            out.append(f"{len(self.mail_problems)} mail(s) with unsafe headers")
        out.extend(self.lag_problems)
        return out

    @property
    def ok(self) -> bool:
        return not self.misses()

    def last_line(self) -> str:
        lag = ("n/a" if self.max_lag_recovery is None else f"{self.max_lag_recovery:.1f}")
        return (f"chaos: {self.messages} messages, {self.kills} kills, lost {len(self.lost)}, "
                f"duplicate outcomes {len(self.duplicate_outcomes)}, duplicate mails "
                f"{self.duplicate_mails}, missing from record {len(self.missing_from_record)}, "
                f"max lag recovery {lag} s")


# --------------------------------------------------------------------------------------------


def _outcomes(obs: Observations) -> dict[str, dict[str, str]]:
    """message id → {outcome event id: "Delivered" | "Bounced"} (reports' Bounced excluded)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for e in obs.events:
        if e.message_id is None or e.event_id is None:
            continue
        if e.type == "Delivered" or (e.type == "Bounced" and not e.after_delivery):
            out[e.message_id][e.event_id] = e.type
    return out


def _accepted_messages(results: list[Result], obs: Observations,
                       refused_positions: set[Position]) -> set[str]:
    """Every message the system took on: a door's yes, or a MessageSubmitted in the log (a door
    may have published and then failed to answer) — except hostile records whose declared fate
    is a dead letter (published as such, or dead-lettered for a hostile input's sake)."""
    ids = {r.message_id for r in results if r.status == ACCEPTED and r.message_id
           and r.op.is_message and DEAD_LETTER not in r.op.accept}
    ids |= {e.message_id for e in obs.events
            if e.type == "MessageSubmitted" and e.message_id
            and e.position not in refused_positions}
    return ids


def out_of_place(sequence: list[int]) -> int:
    """How many elements must move to sort ``sequence``: its length minus its longest
    increasing subsequence."""
    tails: list[int] = []
    for x in sequence:
        i = bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(sequence) - len(tails)


def _per_relationship(obs: Observations, topics: set[str],
                      types: set[str] | None = None) -> dict[str, list[str]]:
    """relationship id → message ids in topic (partition) order, first occurrence only."""
    rows = sorted((e for e in obs.events if e.topic in topics and e.relationship_id
                   and e.message_id and (types is None or e.type in types)
                   and not (e.type == "Bounced" and e.after_delivery)),
                  key=lambda e: (e.partition, e.offset))
    out: dict[str, list[str]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for e in rows:
        key = (e.relationship_id, e.message_id)  # type: ignore[arg-type]
        if key not in seen:
            seen.add(key)
            out[e.relationship_id].append(e.message_id)  # type: ignore[index, arg-type]
    return out


def _inversions(upstream: dict[str, list[str]], downstream: dict[str, list[str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for rel, after in downstream.items():
        rank = {m: i for i, m in enumerate(upstream.get(rel, []))}
        seq = [rank[m] for m in after if m in rank]
        n = out_of_place(seq)
        if n:
            found[rel] = n
    return found


def _dead_letter_owner(dl: DeadLetter, by_position: dict[Position, Result],
                       by_token: dict[str, Result]) -> Result | None:
    if dl.source is not None and dl.source in by_position:
        return by_position[dl.source]
    for token, result in by_token.items():
        if token in dl.value:
            return result
    return None


def check(results: list[Result], obs: Observations, targets: Targets | None = None) -> Verdict:
    targets = targets or Targets()
    kills = [f for f in obs.faults if f.kind == "kill"]
    verdict = Verdict(
        messages=sum(1 for r in results if r.op.is_message),
        kills=len(obs.faults),
        delivery_kills=sum(1 for f in kills if f.service == "delivery"),
        targets=targets,
    )
    hostile = [r for r in results if r.op.hostile]
    hostile_positions = {r.position for r in hostile if r.position is not None}
    outcomes = _outcomes(obs)

    # dead letters: each one provoked on purpose
    by_position = {r.position: r for r in hostile if r.position is not None}
    by_token = {r.op.token: r for r in hostile}
    credited: dict[int, list[DeadLetter]] = defaultdict(list)
    ordinary = {r.position: r for r in results if not r.op.hostile and r.position is not None}
    for dl in obs.dead_letters:
        owner = _dead_letter_owner(dl, by_position, by_token)
        if owner is None:
            verdict.undeclared_dead_letters.append(dl)
            if dl.source in ordinary:  # say which of our operations it was
                credited[ordinary[dl.source].op.n].append(dl)
        else:
            credited[owner.op.n].append(dl)
    refused_positions = hostile_positions | {
        dl.source for letters in credited.values() for dl in letters
        if dl.source is not None and dl.source not in ordinary}

    # lost and duplicated outcomes
    for mid in sorted(_accepted_messages(results, obs, refused_positions)):
        got = outcomes.get(mid, {})
        if not got:
            verdict.lost.append(mid)
        elif len(got) > 1:
            verdict.duplicate_outcomes.append(mid)
    for got in outcomes.values():
        for kind in got.values():
            verdict.outcomes[kind] = verdict.outcomes.get(kind, 0) + 1

    # duplicate mails
    for header, count in sorted(obs.mails.items()):
        if count > 1:
            verdict.duplicate_mails += count - 1
            verdict.duplicate_mail_ids.append(header)
    verdict.mail_problems = [f"{h}: {why}" for h, why in sorted(obs.mail_problems.items())]

    # the record
    expected = {e.event_id for e in obs.events
                if e.event_id and e.position not in refused_positions}
    verdict.missing_from_record = sorted(expected - obs.recorded)

    # order within a relationship
    addressed = _per_relationship(obs, {ADDRESSED})
    checked = _per_relationship(obs, {POLICY_CHECKED})
    policy = _inversions(addressed, checked)
    verdict.out_of_order = sum(policy.values())
    verdict.out_of_order_relationships = sorted(policy)
    outcome_order = _per_relationship(obs, {DELIVERED_TOPIC, BOUNCED_TOPIC},
                                      {"Delivered", "Bounced"})
    verdict.reordered_outcomes = sum(_inversions(checked, outcome_order).values())

    # each hostile input got a declared outcome; ordinary operations went through
    for r in results:
        got = outcomes.get(r.message_id or "", {}) if r.message_id else {}
        kinds = {KIND_OF_TYPE[t] for t in got.values()}
        letters = credited.get(r.op.n, [])
        problem = _judge(r, kinds, letters)
        if r.status == UNKNOWN:
            verdict.indeterminate += 1
        if problem is not None:
            (verdict.hostile_problems if r.op.hostile else verdict.benign_problems).append(
                f"#{r.op.n} {r.op.door}/{r.op.kind}: {problem}")

    # lag after the faults
    recoveries = list(obs.lag_recovery.values())
    if any(v is None for v in recoveries):
        verdict.max_lag_recovery = None
        stuck = sorted(g for g, v in obs.lag_recovery.items() if v is None)
        verdict.lag_problems.append(f"consumer lag not back to 0 within "
                                    f"{targets.lag_bound_seconds:.0f} s: {', '.join(stuck)}")
    else:
        verdict.max_lag_recovery = max(recoveries, default=0.0)
        if verdict.max_lag_recovery > targets.lag_bound_seconds:
            verdict.lag_problems.append(
                f"lag recovery {verdict.max_lag_recovery:.1f} s exceeds "
                f"{targets.lag_bound_seconds:.0f} s")
    return verdict


def _judge(r: Result, outcome_kinds: set[str], letters: list[DeadLetter]) -> str | None:
    """Why this operation's fate is wrong, or None."""
    accept = r.op.accept
    if r.status == ERROR:
        return f"server error {r.code}: {r.detail[:120]}"
    if r.status == UNKNOWN:
        if r.code is not None:  # the door was up and kept saying "try again later"
            return (f"answered {r.code} (temporary) on every attempt ({r.attempts}): "
                    f"{r.detail[:120]}")
        return None  # indeterminate: the door could not be reached within the deadline
    if r.status == REFUSED:
        if REFUSED in accept:
            return None if r.detail.strip() else f"refused ({r.code}) without a reason"
        return f"refused ({r.code}): {r.detail[:160]}"
    # accepted
    seen: set[str] = set()
    if len(outcome_kinds) == 1:
        seen |= outcome_kinds
    unnamed = [d for d in letters if not d.error_code]
    if unnamed:
        return "dead letter without an error code"
    if letters:
        seen.add(DEAD_LETTER)
        if DEAD_LETTER not in accept:
            codes = sorted({f"{d.consumer}:{d.error_code}" for d in letters})
            declared = f"declared {sorted(accept)}" if accept else "none was expected"
            return f"dead-lettered ({', '.join(codes)}) though {declared}"
    if not accept:
        return None  # a platform event: nothing of its own expected (record, no dead letter)
    if seen & accept:
        return None
    if outcome_kinds and not (outcome_kinds & accept):
        return f"got {sorted(outcome_kinds)}, declared {sorted(accept)}"
    if r.op.hostile and accept == {REFUSED}:
        return f"accepted ({r.code}) though it should be refused"
    if r.op.is_message and r.message_id and not outcome_kinds and accept <= OUTCOME:
        return "accepted, no outcome (lost)"
    return f"none of the declared outcomes {sorted(accept)} observed"
