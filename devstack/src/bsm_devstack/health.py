"""Is the pipeline flowing? Consumer lag per group, the oldest unpublished outbox row per
service schema, dead letters per ``*.dlq`` topic: what ``status`` shows and ``make chaos``
watches.

The figures come from Kafka's own bookkeeping (committed offsets against the partitions' end
offsets) and from each service's ``<schema>.outbox`` table; nothing here asks the services,
so a wedged or dead service shows as lag that does not shrink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from bsm_devstack.topology import SERVICE_NAMES

log = logging.getLogger("bsm_devstack.health")


@dataclass
class GroupLag:
    group: str
    state: str = "?"
    members: int = 0
    lag: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def caught_up(self) -> bool:
        return self.error is None and self.lag == 0


@dataclass
class OutboxBacklog:
    schema: str
    pending: int = 0
    oldest_age_seconds: float | None = None
    error: str | None = None


@dataclass
class Replication:
    partitions: int = 0
    under_replicated: int = 0  # fewer in-sync replicas than replicas
    offline: int = 0  # no leader
    brokers: int = 0  # registered (live) brokers
    error: str | None = None


@dataclass
class Health:
    groups: dict[str, GroupLag]
    outboxes: dict[str, OutboxBacklog]
    dead_letters: dict[str, int]
    replication: Replication = field(default_factory=Replication)

    @property
    def total_lag(self) -> int:
        return sum(g.lag for g in self.groups.values())

    @property
    def quiet(self) -> bool:
        """Every group caught up and every outbox published."""
        return (all(g.caught_up for g in self.groups.values())
                and all(o.error is None and o.pending == 0 for o in self.outboxes.values()))


def partition_lag(committed: int | None, start: int, end: int) -> int:
    """Records of a partition the group has not committed: from its committed offset (the log
    start when it never committed, or committed before records were deleted) to the end."""
    position = start if committed is None or committed < start else committed
    return max(0, end - position)


def bsm_groups(prefix: str = "") -> list[str]:
    from bsm_shared.topics import Group, TopicNames

    names = TopicNames(prefix=prefix)
    return [names.group(g) for g in Group]


class Probe:
    """Open clients for repeated measurements (the chaos harness polls every second)."""

    def __init__(self, bootstrap: str, *, prefix: str = "", timeout: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Probe:
        ms = int(self.timeout * 1000)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                          client_id="bsm-devstack-health", request_timeout_ms=ms)
        self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                        client_id="bsm-devstack-health",
                                        enable_auto_commit=False, request_timeout_ms=ms)
        try:
            await asyncio.wait_for(self._admin.start(), self.timeout)
            await asyncio.wait_for(self._reader.start(), self.timeout)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in (self._reader, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        client.stop() if isinstance(client, AIOKafkaConsumer) else client.close(),
                        5)
        self._admin = self._reader = None

    # -- kafka --------------------------------------------------------------------------------
    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of ``topics`` (from the cluster's metadata; a consumer's own
        metadata only covers what it subscribed to)."""
        assert self._admin is not None
        names = sorted(set(topics))
        if not names:
            return []
        described = await asyncio.wait_for(self._admin.describe_topics(names), self.timeout)
        return sorted(TopicPartition(t["topic"], p["partition"])
                      for t in described if not t.get("error_code")
                      for p in t["partitions"])

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._reader is not None
        if not tps:
            return {}
        return await asyncio.wait_for(self._reader.end_offsets(tps), self.timeout)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._reader is not None
        if not tps:
            return {}
        return await asyncio.wait_for(self._reader.beginning_offsets(tps), self.timeout)

    async def _subscriptions(self, group: str) -> tuple[str, int, set[str]]:
        """(state, members, subscribed topics) of a group, from its members' metadata."""
        assert self._admin is not None
        responses = await asyncio.wait_for(self._admin.describe_consumer_groups([group]),
                                           self.timeout)
        topics: set[str] = set()
        for response in responses:
            for entry in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members[, ops])
                state, members = entry[2], entry[5]
                for member in members:
                    with contextlib.suppress(Exception):
                        meta = ConsumerProtocolMemberMetadata.decode(member[3])
                        topics.update(meta.subscription)
                return str(state), len(members), topics
        return "?", 0, topics

    async def group_lag(self, group: str) -> GroupLag:
        assert self._admin is not None
        result = GroupLag(group)
        try:
            result.state, result.members, topics = await self._subscriptions(group)
            committed = await asyncio.wait_for(
                self._admin.list_consumer_group_offsets(group), self.timeout)
            topics |= {tp.topic for tp in committed}
            tps = await self.partitions(topics)
            ends = await self.end_offsets(tps)
            starts = await self.beginning_offsets(tps)
            for tp in tps:
                done = committed.get(tp)
                lag = partition_lag(None if done is None else done.offset, starts[tp], ends[tp])
                result.lag += lag
                result.by_topic[tp.topic] = result.by_topic.get(tp.topic, 0) + lag
        except Exception as exc:  # noqa: BLE001 - a measurement, reported, never raised
            result.error = f"{type(exc).__name__}: {exc}".strip(": ")
        return result

    async def group_lags(self, groups: Iterable[str] | None = None) -> dict[str, GroupLag]:
        names = list(groups) if groups is not None else bsm_groups(self.prefix)
        return {g: await self.group_lag(g) for g in names}

    async def replication(self) -> Replication:
        """Partitions of every topic whose in-sync replicas fall short, or with no leader."""
        assert self._admin is not None
        result = Replication()
        try:
            cluster = await asyncio.wait_for(self._admin.describe_cluster(), self.timeout)
            result.brokers = len(cluster.get("brokers") or [])
            for topic in await asyncio.wait_for(self._admin.describe_topics(), self.timeout):
                for p in topic["partitions"]:
                    result.partitions += 1
                    result.under_replicated += len(p["isr"]) < len(p["replicas"])
                    result.offline += p["leader"] < 0
        except Exception as exc:  # noqa: BLE001 - a measurement, reported, never raised
            result.error = f"{type(exc).__name__}: {exc}".strip(": ")
        return result

    async def dead_letters(self) -> dict[str, int]:
        """Entries in each ``*.dlq`` topic of this prefix (end minus start offsets)."""
        assert self._admin is not None
        topics = [t for t in await asyncio.wait_for(self._admin.list_topics(), self.timeout)
                  if t.endswith(".dlq") and t.startswith(self.prefix + "bsm.")]
        tps = await self.partitions(topics)
        ends, starts = await self.end_offsets(tps), await self.beginning_offsets(tps)
        counts = {t: 0 for t in sorted(topics)}
        for tp in tps:
            counts[tp.topic] += ends[tp] - starts[tp]
        return counts


async def outbox_backlogs(database_url: str, schemas: Iterable[str] = SERVICE_NAMES,
                          timeout: float = 5.0) -> dict[str, OutboxBacklog]:
    """Unpublished rows and the age of the oldest one in each ``<schema>.outbox``."""
    import asyncpg

    out = {s: OutboxBacklog(s) for s in schemas}
    try:
        conn = await asyncpg.connect(database_url, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported per schema
        for backlog in out.values():
            backlog.error = f"{type(exc).__name__}: {exc}"
        return out
    try:
        for schema, backlog in out.items():
            try:
                row = await conn.fetchrow(
                    f'SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age '
                    f'FROM "{schema}".outbox WHERE published_at IS NULL', timeout=timeout)
                backlog.pending = int(row["n"])
                backlog.oldest_age_seconds = None if row["age"] is None else float(row["age"])
            except asyncpg.UndefinedTableError:
                backlog.error = "no outbox table (service never started)"
            except Exception as exc:  # noqa: BLE001
                backlog.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return out


async def measure(bootstrap: str, database_url: str, *, prefix: str = "",
                  timeout: float = 5.0) -> Health:
    """One snapshot: lag per group, outbox backlogs, dead letters."""
    outboxes = await outbox_backlogs(database_url, timeout=timeout)
    try:
        async with Probe(bootstrap, prefix=prefix, timeout=timeout) as probe:
            groups = await probe.group_lags()
            dead = await probe.dead_letters()
            replication = await probe.replication()
    except Exception as exc:  # noqa: BLE001 - Kafka down: say so per group
        error = f"{type(exc).__name__}: {exc}"
        groups = {g: GroupLag(g, error=error) for g in bsm_groups(prefix)}
        dead, replication = {}, Replication(error=error)
    return Health(groups, outboxes, dead, replication)
