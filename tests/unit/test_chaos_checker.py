"""The chaos checker judges a history (what the doors answered, what the topics, the record and
the mail sink hold) without touching a system: each finding it must make, and each thing it
must not count, as a specification."""

from bsm_devstack.chaos.checker import Targets, check, out_of_place
from bsm_devstack.chaos.model import (
    ACCEPTED,
    BOUNCED,
    DEAD_LETTER,
    DELIVERED,
    ERROR,
    NOTHING,
    OUTCOME,
    REFUSED,
    UNKNOWN,
    DeadLetter,
    Fault,
    Observations,
    Op,
    Result,
    Seen,
)

SUB, ADR, POL = "bsm.messages.submitted", "bsm.messages.addressed", "bsm.messages.policy-checked"
DEL, BOU = "bsm.messages.delivered", "bsm.messages.bounced"


class History:
    """A small history built step by step; ``verdict()`` runs the checker on it."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.obs = Observations(lag_recovery={"bsm.policy": 1.5})
        self._offsets: dict[tuple[str, int], int] = {}
        self._n = 0

    def event(self, topic: str, etype: str, mid: str | None, eid: str, *, rel: str | None = None,
              partition: int = 0, after: bool = False, record: bool = True) -> Seen:
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        seen = Seen(topic, partition, offset, eid, etype, mid, rel, after)
        self.obs.events.append(seen)
        if record:
            self.obs.recorded.add(eid)
        return seen

    def message(self, mid: str, *, outcomes: tuple[str, ...] = ("Delivered",), door: str = "api",
                hostile: bool = False, accept: frozenset[str] = OUTCOME, kind: str = "message",
                rel: str = "r1") -> Result:
        """A message a door accepted, with its path through the topics."""
        self._n += 1
        r = Result(Op(self._n, door, kind, f"tok{self._n}", accept, hostile), ACCEPTED, 202,
                   "", mid)
        self.results.append(r)
        self.event(SUB, "MessageSubmitted", mid, f"s-{mid}")
        self.event(ADR, "MessageAddressed", mid, f"a-{mid}", rel=rel)
        self.event(POL, "PolicyChecked", mid, f"p-{mid}", rel=rel)
        for i, kind in enumerate(outcomes):
            self.event(DEL if kind == "Delivered" else BOU, kind, mid, f"o{i}-{mid}", rel=rel)
        self.obs.mails[f"<{mid}@marketplace.example>"] = 1 if "Delivered" in outcomes else 0
        return r

    def op(self, status: str, *, accept: frozenset[str], hostile: bool = True, code: int | None = None,
           detail: str = "why", door: str = "api", kind: str = "hostile", mid: str | None = None,
           position: tuple[str, int, int] | None = None, is_message: bool = True,
           attempts: int = 1) -> Result:
        self._n += 1
        r = Result(Op(self._n, door, kind, f"tok{self._n}", accept, hostile, 0, is_message),
                   status, code, detail, mid, position, attempts)
        self.results.append(r)
        return r

    def verdict(self, **targets: float):
        return check(self.results, self.obs, Targets(**targets))  # type: ignore[arg-type]


def test_a_clean_history_meets_every_target_and_says_so_in_the_last_line():
    h = History()
    h.message("m1")
    h.message("m2", outcomes=("Bounced",))
    v = h.verdict()
    assert v.ok, v.misses()
    assert v.last_line() == ("chaos: 2 messages, 0 kills, lost 0, duplicate outcomes 0, "
                             "duplicate mails 0, missing from record 0, max lag recovery 1.5 s")


def test_an_accepted_message_without_an_outcome_is_lost():
    h = History()
    h.message("m1", outcomes=())
    v = h.verdict()
    assert v.lost == ["m1"] and not v.ok


def test_a_submitted_event_nobody_acknowledged_still_needs_an_outcome():
    # The door published, then died before answering: the log is what counts.
    h = History()
    h.event(SUB, "MessageSubmitted", "ghost", "s-ghost")
    assert h.verdict().lost == ["ghost"]


def test_a_report_bounce_after_delivery_is_no_outcome_and_no_duplicate():
    h = History()
    h.message("m1")
    h.event(BOU, "Bounced", "m1", "late", rel="r1", after=True)
    v = h.verdict()
    assert v.duplicate_outcomes == [] and v.lost == []
    h2 = History()
    h2.message("m2", outcomes=())
    h2.event(BOU, "Bounced", "m2", "late", rel="r1", after=True)
    assert h2.verdict().lost == ["m2"]


def test_two_outcome_events_for_one_message_are_a_duplicate_but_a_republished_one_is_not():
    h = History()
    h.message("twice", outcomes=("Delivered", "Bounced"))
    h.message("republished")
    h.event(DEL, "Delivered", "republished", "o0-republished", rel="r1")  # same event id again
    v = h.verdict()
    assert v.duplicate_outcomes == ["twice"]


def test_duplicate_mails_are_counted_and_allowed_up_to_lanes_times_delivery_kills():
    h = History()
    h.message("m1")
    h.obs.mails["<m1@marketplace.example>"] = 3
    h.obs.faults = [Fault(1.0, "kill", "delivery", "delivery"),
                    Fault(2.0, "kill", "policy", "policy")]
    v = h.verdict(smtp_lanes=2)
    assert v.duplicate_mails == 2 and v.delivery_kills == 1 and v.kills == 2
    assert v.ok, v.misses()
    assert not h.verdict(smtp_lanes=1).ok  # bound 1 × 1 < 2


def test_an_event_the_record_lacks_is_missing_except_the_hostile_records_we_wrote():
    h = History()
    h.message("m1")
    h.event(ADR, "MessageAddressed", "m9", "not-archived", rel="r9", record=False)
    bad = h.event(SUB, "PartyTeleported", None, "weird", record=False)
    h.op(ACCEPTED, accept=frozenset({DEAD_LETTER}), door="kafka", position=bad.position,
         is_message=False)
    h.obs.dead_letters.append(DeadLetter("bsm.messages.submitted.dlq", "alias", "unknown_type",
                                         "no such type", bad.position, "{}"))
    v = h.verdict()
    assert v.missing_from_record == ["not-archived"]
    assert v.hostile_problems == [] and v.undeclared_dead_letters == []


def test_policy_checked_out_of_the_addressed_order_within_a_relationship_is_a_finding():
    h = History()
    for mid in ("a", "b", "c"):
        h.event(ADR, "MessageAddressed", mid, f"a-{mid}", rel="r1")
    for mid in ("b", "a", "c"):
        h.event(POL, "PolicyChecked", mid, f"p-{mid}", rel="r1")
    # another relationship on another partition, in order: no finding there
    h.event(ADR, "MessageAddressed", "x", "a-x", rel="r2", partition=1)
    h.event(POL, "PolicyChecked", "x", "p-x", rel="r2", partition=1)
    v = h.verdict()
    assert v.out_of_order == 1 and v.out_of_order_relationships == ["r1"]


def test_outcomes_in_another_order_than_policy_are_information_not_a_miss():
    h = History()
    for mid in ("a", "b"):
        h.event(SUB, "MessageSubmitted", mid, f"s-{mid}")
        h.event(ADR, "MessageAddressed", mid, f"a-{mid}", rel="r1")
        h.event(POL, "PolicyChecked", mid, f"p-{mid}", rel="r1")
    h.event(DEL, "Delivered", "b", "o-b", rel="r1")
    h.event(DEL, "Delivered", "a", "o-a", rel="r1")
    v = h.verdict()
    assert v.reordered_outcomes == 1 and v.ok, v.misses()


def test_a_dead_letter_no_hostile_input_provoked_is_a_finding():
    h = History()
    status = h.event("bsm.orders", "OrderStatusChanged", None, "osc")
    h.op(ACCEPTED, accept=NOTHING, hostile=False, door="kafka", position=status.position,
         is_message=False)
    h.obs.dead_letters.append(DeadLetter("bsm.orders.dlq", "policy", "handler_error",
                                         "AmbiguousParameterError", status.position, "{}"))
    v = h.verdict()
    assert len(v.undeclared_dead_letters) == 1
    assert v.benign_problems and "dead-lettered (policy:handler_error)" in v.benign_problems[0]
    assert not v.ok


def test_a_dead_letter_carrying_a_hostile_token_is_credited_to_that_input():
    h = History()
    r = h.op(ACCEPTED, accept=frozenset({REFUSED}), code=202, mid="leak")
    h.obs.dead_letters.append(DeadLetter("bsm.messages.submitted.dlq", "metrics",
                                         "unstorable_text", "U+0000", ("x", 0, 1),
                                         f'{{"subject": "{r.op.token}"}}'))
    v = h.verdict()
    assert v.undeclared_dead_letters == []
    assert "dead-lettered (metrics:unstorable_text) though declared ['refused']" \
        in v.hostile_problems[0]


def test_hostile_inputs_get_their_declared_outcome_or_the_checker_says_what_they_got():
    h = History()
    h.op(REFUSED, accept=frozenset({REFUSED}), code=422, detail="U+0000 in text")
    h.op(REFUSED, accept=frozenset({REFUSED}), code=422, detail="  ")
    h.op(ERROR, accept=frozenset({REFUSED}), code=500, detail="internal_error")
    h.op(UNKNOWN, accept=frozenset({REFUSED}), code=503, detail="unavailable", attempts=12)
    h.op(UNKNOWN, accept=frozenset({REFUSED}), code=None, detail="ConnectError")
    h.message("normalised", hostile=True, accept=frozenset({REFUSED, DELIVERED, BOUNCED}))
    h.message("taken", hostile=True, accept=frozenset({REFUSED}))
    v = h.verdict()
    problems = "\n".join(v.hostile_problems)
    assert "refused (422) without a reason" in problems
    assert "server error 500" in problems
    assert "answered 503 (temporary) on every attempt (12)" in problems
    assert "got ['delivered'], declared ['refused']" in problems
    assert len(v.hostile_problems) == 4 and v.indeterminate == 2


def test_a_hostile_record_declared_for_a_dead_letter_needs_one_with_an_error_code():
    h = History()
    ok = h.event(SUB, "MessageSubmitted", "nul", "s-nul")
    silent = h.event(SUB, "MessageSubmitted", "nul2", "s-nul2")
    h.op(ACCEPTED, accept=frozenset({DEAD_LETTER}), door="kafka", mid="nul", position=ok.position)
    h.op(ACCEPTED, accept=frozenset({DEAD_LETTER}), door="kafka", mid="nul2",
         position=silent.position)
    h.obs.dead_letters.append(DeadLetter("bsm.messages.submitted.dlq", "alias",
                                         "unstorable_text", "U+0000", ok.position, "{}"))
    v = h.verdict()
    assert v.lost == []  # declared dead letters are no lost messages
    assert len(v.hostile_problems) == 1 and "none of the declared" in v.hostile_problems[0]


def test_an_ordinary_message_refused_at_the_door_is_a_finding():
    h = History()
    h.op(REFUSED, accept=OUTCOME, hostile=False, code=404, detail="order_not_found")
    assert h.verdict().benign_problems == ["#1 api/hostile: refused (404): order_not_found"]


def test_lag_that_never_came_back_or_came_back_late_misses_the_target():
    h = History()
    h.obs.lag_recovery = {"bsm.policy": 3.0, "bsm.metrics": None}
    v = h.verdict()
    assert v.max_lag_recovery is None and "bsm.metrics" in v.misses()[0]
    assert v.last_line().endswith("max lag recovery n/a s")
    h.obs.lag_recovery = {"bsm.policy": 200.0}
    assert "exceeds 180 s" in h.verdict().misses()[0]


def test_out_of_place_counts_the_elements_that_must_move():
    assert out_of_place([]) == 0
    assert out_of_place([0, 1, 2]) == 0
    assert out_of_place([1, 0, 2]) == 1
    assert out_of_place([2, 1, 0]) == 2
    assert out_of_place([0, 3, 1, 2]) == 1
