"""What both stack benchmarks share: the stack's addresses, platform events, buyer–seller pairs
registered through the input topics, and a watcher of the outcome topics.

Addresses come from the stack's env file (``.stack/env``, written by ``make up`` with the ports
of ``BSM_STACK_PORT_OFFSET``); nothing here has a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from rich.console import Console

from bench.figures import Phase, peak_rss, rss_line, spread_line
from bsm_devstack.chaos import content
from bsm_devstack.chaos.content import Pair
from bsm_devstack.health import Probe, bsm_groups
from bsm_devstack.topology import SERVICE_NAMES
from bsm_shared.topics import Topic, TopicNames

ROOT = Path(__file__).resolve().parents[1]
console = Console(highlight=False)
if not console.is_terminal:
    console.width = 120  # a log or a pipe: wide enough for the tables
TOPICS = TopicNames()


def stack_env() -> dict[str, str]:
    """The running stack's addresses (``.stack/env``); a clear error when it is not up."""
    from bsm_devstack.envfile import read_env_file

    path = ROOT / ".stack" / "env"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: start the stack first (make up)")
    return read_env_file(path)


def producer(env: dict[str, str]) -> AIOKafkaProducer:
    """The bench's producer: as the platform's would be (acknowledged by every in-sync
    replica, idempotent)."""
    return AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                            enable_idempotence=True, linger_ms=5)


async def register(prod: AIOKafkaProducer, pair_list: Iterable[Pair], run: str) -> None:
    """Each pair's buyer and seller and an order between them, as the platform sends them (the
    chaos workload's pairs and registrations: one source for both)."""
    now = datetime.now(UTC)
    for p in pair_list:
        for topic, key, value in content.registrations(run, p, now):
            await prod.send(topic, value, key=key.encode())
    await prod.flush()


#: A buyer's question as the bench submits it (about the size of a real one: ≈ 450 bytes).
QUESTION = ("Hola, quería saber cuándo llegará mi pedido y si es posible cambiar la dirección "
            "de entrega. Gracias.")


def submitted(mid: str, p: Pair) -> bytes:
    data = {
        "message_id": mid, "channel": "api", "sender": {"party_id": p.buyer},
        "recipient": {"party_id": p.seller}, "order_id": p.order,
        "subject": "Mi pedido", "text": QUESTION,
        "submitted_at": datetime.now(UTC).isoformat()}
    event = content.platform_event("MessageSubmitted", data, mid, str(uuid.uuid4()),
                                   datetime.now(UTC))
    return json.dumps(event).encode()


async def submit(prod: AIOKafkaProducer, mid: str, p: Pair) -> asyncio.Future:
    """Queue one ``MessageSubmitted`` (not awaited: the producer batches)."""
    return await prod.send(TOPICS(Topic.SUBMITTED), submitted(mid, p), key=mid.encode())


# --------------------------------------------------------------------------------------------
# the watcher
# --------------------------------------------------------------------------------------------

OUTCOMES = ("Delivered", "Bounced")


class Watch:
    """Reads the topics where a message's progress shows (from their end, every partition,
    no consumer group) and keeps, per message id, the broker timestamp of each event type —
    ``MessageAddressed`` (with the aliases), ``PolicyChecked``, ``Delivered``, ``Bounced``."""

    TOPICS = (Topic.ADDRESSED, Topic.POLICY_CHECKED, Topic.DELIVERED, Topic.BOUNCED)

    def __init__(self, env: dict[str, str]) -> None:
        self.consumer = AIOKafkaConsumer(
            *(TOPICS(t) for t in self.TOPICS), bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            enable_auto_commit=False, auto_offset_reset="latest", max_partition_fetch_bytes=4 << 20,
            # Times come from the records (broker timestamps), not from when the bench reads
            # them: a lingering fetch costs the figures nothing and the box fewer fetches.
            fetch_max_wait_ms=200, fetch_min_bytes=64 << 10)
        self.seen: dict[str, dict[str, float]] = {}
        self.aliases: dict[str, tuple[str, str]] = {}  # message id → (sender's, recipient's)
        self.bounce_reasons: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        parts = list(self.consumer.assignment())
        await self.consumer.seek_to_end(*parts)
        for p in parts:
            await self.consumer.position(p)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                for r in records:
                    self._note(r.value, r.timestamp / 1000)

    def _note(self, value: bytes | None, at: float) -> None:
        try:
            event = json.loads(value or b"")
            etype, data = event["type"], event["data"]
            mid = data["message_id"]
        except (ValueError, KeyError, TypeError):
            return  # other people's traffic on a shared stack, hostile records included
        if etype == "Bounced" and data.get("after_delivery"):
            return  # a provider's later report, not the message's outcome
        self.seen.setdefault(mid, {}).setdefault(etype, at)
        if etype == "MessageAddressed":
            self.aliases[mid] = (str(data.get("sender_alias")), str(data.get("recipient_alias")))
        if etype == "Bounced":
            self.bounce_reasons[mid] = f"{data.get('rule')} {data.get('reason_code')}"

    def at(self, mid: str, kinds: Iterable[str]) -> float | None:
        """When the first of ``kinds`` arrived for ``mid`` (broker timestamp)."""
        times = [t for k, t in self.seen.get(mid, {}).items() if k in kinds]
        return min(times) if times else None

    async def wait(self, ids: Iterable[str], kinds: Iterable[str], *, timeout: float,
                   label: str) -> dict[str, float]:
        """Until every id has one of ``kinds`` (or ``timeout`` seconds pass): ``{id: when}``
        of those that did, with a progress line."""
        ids, kinds = list(ids), tuple(kinds)
        deadline = time.monotonic() + timeout
        done: dict[str, float] = {}
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for mid in list(pending):
                when = self.at(mid, kinds)
                if when is not None:
                    done[mid] = when
                    pending.discard(mid)
            status(f"{label}: {len(done):,}/{len(ids):,}")
            if pending:
                await asyncio.sleep(0.1)
        status("")
        return done

    def bounced(self, ids: Iterable[str]) -> dict[str, int]:
        """Why the messages among ``ids`` that bounced did: reason → count."""
        out: dict[str, int] = {}
        for mid in ids:
            if "Bounced" in self.seen.get(mid, {}):
                reason = self.bounce_reasons.get(mid, "?")
                out[reason] = out.get(reason, 0) + 1
        return out


async def warm_up(prod: AIOKafkaProducer, watch: Watch, pair_list: list[Pair], run: str, *,
                  timeout: float = 180.0) -> dict[int, tuple[str, str]]:
    """One message per pair through the whole path (so every service knows every party and
    order before anything is measured); returns each pair's (buyer alias, seller alias)."""
    mids = {f"bw-{run}-{p.index}": p for p in pair_list}
    futures = [await submit(prod, mid, p) for mid, p in mids.items()]
    await asyncio.gather(*futures)
    done = await watch.wait(mids, OUTCOMES, timeout=timeout, label="warm-up")
    if len(done) < len(mids):
        raise SystemExit(f"warm-up: {len(mids) - len(done)} of {len(mids)} messages got no "
                         f"outcome within {timeout:.0f} s: is the stack healthy? (make status)")
    bounced = watch.bounced(mids)
    if bounced:
        raise SystemExit(f"warm-up: messages bounced ({bounced}): the bench's pairs are not "
                         "accepted, fix that first")
    return {p.index: watch.aliases[mid] for mid, p in mids.items() if mid in watch.aliases}


@dataclass
class Session:
    """The bsm side of a benchmark: a producer, the watcher, and pairs registered and warmed
    up (``aliases``: pair index → (buyer's alias, seller's alias))."""

    prod: AIOKafkaProducer
    watch: Watch
    pairs: list[Pair]
    aliases: dict[int, tuple[str, str]]


@contextlib.asynccontextmanager
async def session(env: dict[str, str], run: str, pair_count: int) -> AsyncIterator[Session]:
    prod, watch = producer(env), Watch(env)
    await prod.start()
    await watch.start()
    try:
        pair_list = content.pairs(run, pair_count)
        await register(prod, pair_list, run)
        yield Session(prod, watch, pair_list, await warm_up(prod, watch, pair_list, run))
    finally:
        await watch.stop()
        await prod.stop()


def intro(text: str) -> None:
    console.print(text)
    console.print("[dim]other work on this machine shares its cores: compare figures of one "
                  "run with each other, and runs with care[/dim]")


def status(text: str) -> None:
    """A progress line that overwrites itself on a terminal (nothing in a log)."""
    if console.is_terminal:
        console.print(f"  {text}".ljust(60), end="\r")


async def quiet(env: dict[str, str], timeout: float = 120.0) -> None:
    """Wait until every bsm consumer group has read everything (twice in a row: a relay may
    publish what the last batch recorded), so a phase does not pay for the one before it."""
    deadline, calm = time.monotonic() + timeout, 0
    async with Probe(env["KAFKA_BOOTSTRAP_SERVERS"]) as probe:
        while calm < 2 and time.monotonic() < deadline:
            lags = await probe.group_lags()
            behind = sum(g.lag for g in lags.values())
            calm = calm + 1 if all(g.caught_up for g in lags.values()) else 0
            status(f"waiting for the consumers to catch up: {behind:,} records")
            await asyncio.sleep(0.5)


async def partition_spread(env: dict[str, str]) -> dict[str, list[int]]:
    """Per bsm consumer group, how many partitions each member (a service instance) holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    out: dict[str, list[int]] = {}
    try:
        for group in bsm_groups():
            # One group per request: aiokafka misreads a response that describes several.
            for entry in (await admin.describe_consumer_groups([group]))[0].groups:
                counts = []
                for member in entry[5]:
                    assignment = ConsumerProtocolMemberAssignment.decode(member[4])
                    counts.append(sum(len(parts) for _, parts in assignment.assignment))
                out[str(entry[1])] = counts
    finally:
        await admin.close()
    return out


async def closing_notes(env: dict[str, str], phases: Sequence[Phase]) -> None:
    """After the tables: each service's peak RSS against the target, and how every consumer
    group's partitions are spread over its instances (with ``BSM_SCALE``, several)."""
    console.print(rss_line(peak_rss(phases), SERVICE_NAMES))
    try:
        spread = await partition_spread(env)
    except Exception as exc:  # noqa: BLE001 - a note, not a figure: say it and go on
        console.print(f"partition spread not read: {type(exc).__name__}: {exc}")
        return
    console.print("partitions per instance: " + "; ".join(
        spread_line(g, counts) for g, counts in sorted(spread.items())))
