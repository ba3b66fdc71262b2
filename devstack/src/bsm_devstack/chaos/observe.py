"""Reading the run back: every ``bsm.*`` topic (dead-letter topics included) from the offsets
it had when the run began, the record (the metrics service's archive) and the mail sink."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bsm_devstack.chaos.model import DeadLetter, Position, Seen

#: Topics keyed by relationship id: a record's key is its relationship when the data lacks it.
RELATIONSHIP_KEYED = {"bsm.messages.addressed", "bsm.messages.policy-checked",
                      "bsm.messages.delivered", "bsm.messages.reported",
                      "bsm.messages.response-not-needed"}


def parse_record(topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None) -> Seen | DeadLetter | Position:
    """One record as the checker sees it (pure): an event, a dead letter, or the position of
    something that is neither."""
    position = (topic, partition, offset)
    try:
        obj = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return position
    if not isinstance(obj, dict):
        return position
    if topic.endswith(".dlq"):
        source = None
        if isinstance(obj.get("partition"), int) and isinstance(obj.get("offset"), int):
            source = (str(obj.get("topic")), obj["partition"], obj["offset"])
        shown = obj.get("value")
        return DeadLetter(topic, str(obj.get("consumer") or ""), str(obj.get("error_code") or ""),
                          str(obj.get("error") or ""), source,
                          shown if isinstance(shown, str) else json.dumps(obj))
    if "event_id" not in obj:
        return position
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    rel = data.get("relationship_id")
    if rel is None and topic in RELATIONSHIP_KEYED and key:
        rel = key.decode(errors="replace")
    mid = data.get("message_id")
    return Seen(topic, partition, offset, str(obj["event_id"]), str(obj.get("type")),
                message_id=str(mid) if mid else None, relationship_id=str(rel) if rel else None,
                after_delivery=bool(data.get("after_delivery")),
                reason_code=str(data["reason_code"]) if data.get("reason_code") else None,
                producer=str(obj.get("producer")) if obj.get("producer") else None)


async def topic_partitions(bootstrap: str, prefix: str) -> list[TopicPartition]:
    """Every partition of the topics whose name starts with ``prefix``."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bsm-chaos-observer")
    await admin.start()
    try:
        described = await admin.describe_topics(
            [t for t in await admin.list_topics() if t.startswith(prefix)])
    finally:
        await admin.close()
    return sorted(TopicPartition(t["topic"], p["partition"])
                  for t in described for p in t["partitions"])


class Observer:
    """A consumer without a group over every ``bsm.*`` topic, from the run's start offsets; it
    keeps what the checker needs and follows outcomes and aliases while the run goes on."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self.start_offsets: dict[TopicPartition, int] = {}
        self.events: list[Seen] = []
        self.dead_letters: list[DeadLetter] = []
        self.unparseable: list[Position] = []
        self.outcomes: dict[str, set[str]] = defaultdict(set)
        self.submitted: dict[str, Position] = {}  # message id → its MessageSubmitted
        self.addressed: dict[str, tuple[str, str]] = {}  # message id → (sender, recipient alias)
        self.outcome_times: list[float] = []  # monotonic time each new outcome was read
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id="bsm-chaos-observer",
            enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024)
        await self.consumer.start()
        tps = await topic_partitions(self.bootstrap, "bsm.")
        self.start_offsets = await self.consumer.end_offsets(tps)
        self.consumer.assign(tps)
        for tp, offset in self.start_offsets.items():
            self.consumer.seek(tp, offset)
            self._positions[tp] = offset
        self._task = asyncio.create_task(self._run(), name="chaos-observer")

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broker is being killed: read on
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                for r in records:
                    self._take(r.topic, r.partition, r.offset, r.key, r.value)
                if records:
                    self._positions[tp] = records[-1].offset + 1

    def _take(self, topic: str, partition: int, offset: int, key: bytes | None,
              value: bytes | None) -> None:
        seen = parse_record(topic, partition, offset, key, value)
        if isinstance(seen, DeadLetter):
            self.dead_letters.append(seen)
        elif isinstance(seen, Seen):
            self.events.append(seen)
            if seen.message_id:
                if seen.type == "Delivered" or (seen.type == "Bounced" and not seen.after_delivery):
                    if not self.outcomes[seen.message_id]:
                        self.outcome_times.append(time.monotonic())
                    self.outcomes[seen.message_id].add(seen.event_id or "")
                elif seen.type == "MessageSubmitted":
                    self.submitted.setdefault(seen.message_id, seen.position)
                elif seen.type == "MessageAddressed":
                    self._addressed(seen, value)
        else:
            self.unparseable.append(seen)

    def _addressed(self, seen: Seen, value: bytes | None) -> None:
        with contextlib.suppress(Exception):
            data = json.loads(value or b"")["data"]
            self.addressed[seen.message_id or ""] = (str(data["sender_alias"]),
                                                     str(data["recipient_alias"]))

    async def drain(self, timeout: float = 120.0) -> bool:
        """Read on until every partition reached the end offsets it has now."""
        assert self.consumer is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ends: dict[TopicPartition, int] = {}
        while not ends:
            try:
                ends = await self.consumer.end_offsets(list(self.start_offsets))
            except Exception:  # noqa: BLE001 - a broker still recovering
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(1)
        while any(self._positions.get(tp, 0) < end for tp, end in ends.items()):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()


async def recorded(database_url: str, event_ids: set[str], schema: str = "metrics") -> set[str]:
    """Which of ``event_ids`` the record (``<schema>.archive``) holds."""
    import asyncpg

    ids = []
    for e in event_ids:
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(e))
    conn = await asyncpg.connect(database_url)
    try:
        found: set[str] = set()
        for i in range(0, len(ids), 5000):
            rows = await conn.fetch(
                f"SELECT event_id FROM {schema}.archive WHERE event_id = ANY($1::uuid[])",
                ids[i:i + 5000])
            found |= {str(r["event_id"]) for r in rows}
        return found
    finally:
        await conn.close()


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_BCC = re.compile(rb"^bcc:", re.IGNORECASE | re.MULTILINE)


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]


def mail_facts(raw: bytes) -> tuple[str | None, str | None]:
    """(Message-ID, a problem with the header block or None) of one stored mail (pure)."""
    head = header_block(raw)
    m = _MESSAGE_ID.search(head)
    problem = "a Bcc header in the relayed mail (header injection)" if _BCC.search(head) else None
    return (m.group(1).decode(errors="replace") if m else None), problem


def unsafe_parts(raw: bytes) -> str | None:
    """CR or LF in the decoded subject or an attachment's file name (pure)."""
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    subject = str(mail.get("Subject") or "")
    if "\r" in subject or "\n" in subject:
        return "CR/LF in the decoded subject"
    for part in mail.walk():
        name = part.get_filename()
        if name and ("\r" in name or "\n" in name):
            return "CR/LF in an attachment's file name"
    return None


def sink_mails(sink: Path, before: set[str], deep: set[str]) -> tuple[dict[str, int],
                                                                       dict[str, str]]:
    """Message-ID → count over the mails stored since ``before``, and problems found (the
    mails whose Message-ID is in ``deep`` are parsed whole)."""
    counts: dict[str, int] = defaultdict(int)
    problems: dict[str, str] = {}
    for path in sorted(sink.glob("*.eml")):
        if path.name in before:
            continue
        raw = path.read_bytes()
        mid, problem = mail_facts(raw)
        key = mid or f"(no Message-ID: {path.name})"
        counts[key] += 1
        if problem is None and mid in deep:
            problem = unsafe_parts(raw)
        if problem:
            problems[key] = problem
    return dict(counts), problems


def longest_pause(times: list[float], start: float, end: float) -> float:
    """The longest stretch within [start, end] without a new outcome (pure)."""
    inside = sorted(t for t in times if start <= t <= end)
    marks = [start, *inside, end]
    return max((b - a for a, b in zip(marks, marks[1:])), default=0.0)


def describe_dead_letter(dl: DeadLetter) -> dict[str, Any]:
    return {"dlq": dl.dlq_topic, "consumer": dl.consumer, "error_code": dl.error_code,
            "error": dl.error[:300], "source": dl.source, "value": dl.value[:300]}
