"""What every integration and e2e run checks at its end, whatever the tests asserted.

A green run must not hide a failure nobody looked for (issue 10: policy dead-lettered every
order status change while CI was green). So, beyond each test's own assertions:

* **No undeclared ERROR**: no service of the running stack (``.stack/logs/*.log``, the lines
  written during this run) and no service run in-process by an integration test (loggers
  ``bsm.*``) logged an ERROR that a test did not declare with ``expect.error(...)``.
* **No undeclared dead letter**: every entry that appeared on a dead-letter topic during the run
  — the stack's ``bsm.*.dlq`` and each integration test's own prefixed ones (read before the
  test's topics are deleted) — matches an ``expect.dead_letter(...)`` of a test.
* **Every consumer caught up**: at the end, every consumer group of the stack has committed up to
  the end of its topics (lag 0), within ``CATCH_UP_SECONDS``.

A test declares what it provokes on purpose::

    async def test_a_forged_approval_is_dead_lettered(expect, ...):
        expect.dead_letter("wrong_producer", topic="bsm.messages.policy-checked.dlq")

A violation fails the run (exit status 1) and the terminal summary lists each one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bsm_shared.topics import DLQ_PARTITIONS

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".stack" / "logs"
#: Log files of the stack that are not our services' (their ERRORs are theirs to show).
NOT_SERVICES = {"kafka", "kafka-stdout", "postgres", "mailsink"}
CATCH_UP_SECONDS = 90.0
_CURRENT: dict[str, str] = {"test": "(outside a test)"}


@dataclass
class Declaration:
    kind: str  # "error" | "dead_letter"
    test: str
    code: str | None = None
    topic: str | None = None
    match: str | None = None
    logger: str | None = None
    seen: int = 0

    def matches_error(self, logger: str, message: str) -> bool:
        return (self.kind == "error"
                and (self.logger is None or logger.startswith(self.logger))
                and (self.match is None or re.search(self.match, message) is not None))

    def matches_dead_letter(self, topic: str, entry: dict[str, Any]) -> bool:
        text = f"{entry.get('error', '')} {entry.get('value') or ''}"
        return (self.kind == "dead_letter"
                and (self.code is None or entry.get("error_code") == self.code)
                and (self.topic is None or topic.endswith(self.topic))
                and (self.match is None or self.match in text))


@dataclass
class Ledger:
    """Everything declared and everything seen during the run."""

    declared: list[Declaration] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    errors_in_process: list[tuple[str, str, str]] = field(default_factory=list)
    log_offsets: dict[str, int] = field(default_factory=dict)
    dlq_offsets: dict[tuple[str, int], int] | None = None
    checks_stack: bool = False


LEDGER = Ledger()


class Expect:
    """The fixture tests declare with (see the module's docstring)."""

    def __init__(self, test: str) -> None:
        self.test = test

    def error(self, match: str | None = None, *, logger: str | None = None) -> None:
        """An ERROR log line (regex ``match`` on the message) this test provokes on purpose."""
        LEDGER.declared.append(Declaration("error", self.test, match=match, logger=logger))

    def dead_letter(self, code: str | None = None, *, topic: str | None = None,
                    match: str | None = None) -> None:
        """A dead letter (error ``code``, on a topic ending with ``topic``, with ``match`` in
        its error or value) this test provokes on purpose."""
        LEDGER.declared.append(
            Declaration("dead_letter", self.test, code=code, topic=topic, match=match))


@pytest.fixture
def expect(request: pytest.FixtureRequest) -> Expect:
    return Expect(request.node.nodeid)


class _InProcessErrors(logging.Handler):
    """ERRORs of services run inside the test process (integration tests)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        LEDGER.errors_in_process.append((_CURRENT["test"], record.name, record.getMessage()))


_HANDLER = _InProcessErrors()


def _declared_error(test: str | None, logger: str, message: str) -> bool:
    for d in LEDGER.declared:
        if (test is None or d.test == test) and d.matches_error(logger, message):
            d.seen += 1
            return True
    return False


def _declared_dead_letter(test: str | None, topic: str, entry: dict[str, Any]) -> bool:
    for d in LEDGER.declared:
        if (test is None or d.test == test) and d.matches_dead_letter(topic, entry):
            d.seen += 1
            return True
    return False


# -- hooks ------------------------------------------------------------------------------------


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    LEDGER.checks_stack = any(("/integration/" in str(i.path) or "/e2e/" in str(i.path))
                              for i in items)
    if LEDGER.checks_stack:
        logging.getLogger("bsm").addHandler(_HANDLER)
        for path in LOGS.glob("*.log"):
            if path.stem not in NOT_SERVICES:
                LEDGER.log_offsets[path.name] = path.stat().st_size
        try:
            LEDGER.dlq_offsets = asyncio.run(_dlq_ends())
        except Exception as exc:  # noqa: BLE001 - the stack is down: tests will say so
            LEDGER.violations.append(f"could not read the dead-letter topics at start: {exc!r}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    _CURRENT["test"] = item.nodeid


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _CURRENT["test"] = "(outside a test)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not LEDGER.checks_stack:
        return
    logging.getLogger("bsm").removeHandler(_HANDLER)
    for test, logger, message in LEDGER.errors_in_process:
        if not _declared_error(test, logger, message):
            LEDGER.violations.append(f"undeclared ERROR in {test}: [{logger}] {message[:300]}")
    _check_stack_logs()
    try:
        asyncio.run(_check_stack_kafka())
    except Exception as exc:  # noqa: BLE001
        LEDGER.violations.append(f"could not check the stack's topics and groups: {exc!r}")
    if LEDGER.violations and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not LEDGER.checks_stack:
        return
    tr = terminalreporter
    if LEDGER.violations:
        tr.section("run invariants: FAILED", sep="=", red=True, bold=True)
        for v in LEDGER.violations:
            tr.write_line(f"- {v}")
        tr.write_line("Declare what a test provokes on purpose with the `expect` fixture "
                      "(tests/invariants.py).")
    else:
        tr.write_line("run invariants: no undeclared ERROR, no undeclared dead letter, every "
                      "consumer group caught up", green=True)


# -- the stack --------------------------------------------------------------------------------


def _check_stack_logs() -> None:
    for path in sorted(LOGS.glob("*.log")):
        if path.stem in NOT_SERVICES:
            continue
        with path.open("rb") as f:
            f.seek(LEDGER.log_offsets.get(path.name, 0))
            for line in f.read().decode(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # not one of our JSON lines (e.g. FastStream's banner)
                if not isinstance(entry, dict) or entry.get("level") not in ("ERROR", "CRITICAL"):
                    continue
                logger, message = str(entry.get("logger", "")), str(entry.get("msg", ""))
                if not _declared_error(None, logger, message):
                    LEDGER.violations.append(
                        f"undeclared ERROR in {path.name}: [{logger}] {message[:300]}")


def _bootstrap() -> str:
    from tests.stack import stack_env

    return stack_env()["KAFKA_BOOTSTRAP_SERVERS"]


async def _dlq_ends() -> dict[tuple[str, int], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics()
                  if t.startswith("bsm.") and t.endswith(".dlq")]
        parts = [TopicPartition(t, p) for t in topics for p in range(DLQ_PARTITIONS)]
        ends = await consumer.end_offsets(parts) if parts else {}
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def read_dead_letters(bootstrap: str, since: dict[tuple[str, int], int],
                            topics: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Entries of the dead-letter ``topics`` after the offsets in ``since`` (0 if absent)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # Also lets the consumer's background task start: stopping one that never ran raises
        # CancelledError in aiokafka 0.14.
        existing = await consumer.topics()
        parts = [TopicPartition(t, p) for t in topics if t in existing
                 for p in range(DLQ_PARTITIONS)]
        if not parts:
            return []
        ends = await consumer.end_offsets(parts)
        wanted = {tp: (since.get((tp.topic, tp.partition), 0), end) for tp, end in ends.items()
                  if end > since.get((tp.topic, tp.partition), 0)}
        out: list[tuple[str, dict[str, Any]]] = []
        if not wanted:
            return out
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        deadline = time.monotonic() + 30
        remaining = dict(wanted)
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    try:
                        out.append((tp.topic, json.loads(r.value)))
                    except ValueError:
                        out.append((tp.topic, {"error_code": "(unreadable entry)"}))
                    if r.offset + 1 >= remaining.get(tp, (0, 0))[1]:
                        remaining.pop(tp, None)
        return out
    finally:
        await consumer.stop()


async def _check_stack_kafka() -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = _bootstrap()
    since = LEDGER.dlq_offsets or {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        dlqs = [t for t in await consumer.topics() if t.startswith("bsm.") and t.endswith(".dlq")]
    finally:
        await consumer.stop()
    for topic, entry in await read_dead_letters(bootstrap, since, dlqs):
        if not _declared_dead_letter(None, topic, entry):
            LEDGER.violations.append(
                f"undeclared dead letter on {topic}: {entry.get('error_code')} by "
                f"{entry.get('consumer')}: {str(entry.get('error'))[:200]}")
    # Every consumer group of the stack caught up.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        groups = [g[0] if isinstance(g, tuple) else g.group_id
                  for g in await admin.list_consumer_groups()]
        groups = [g for g in groups if g.startswith("bsm.")]
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            lagging: dict[str, int] = {}
            for group in groups:
                committed = await admin.list_consumer_group_offsets(group)
                parts = [TopicPartition(tp.topic, tp.partition) for tp in committed]
                ends = await consumer.end_offsets(parts) if parts else {}
                lag = sum(max(0, ends[tp] - committed[tp].offset) for tp in parts
                          if committed[tp].offset >= 0)
                if lag:
                    lagging[group] = lag
            if not lagging or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        for group, lag in lagging.items():
            LEDGER.violations.append(
                f"consumer group {group} still {lag} records behind after "
                f"{CATCH_UP_SECONDS:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def check_prefixed_dead_letters(bootstrap: str, prefix: str, test: str) -> None:
    """An integration test's own dead-letter topics, read before they are deleted."""
    from bsm_shared.topics import Topic, TopicNames

    names = TopicNames(prefix)
    for topic, entry in await read_dead_letters(bootstrap, {}, [names.dlq(t) for t in Topic]):
        if not _declared_dead_letter(test, topic, entry):
            LEDGER.violations.append(
                f"undeclared dead letter in {test} on {topic}: {entry.get('error_code')} by "
                f"{entry.get('consumer')}: {str(entry.get('error'))[:200]}")
