"""What the benchmarks read from the machine: ``/proc/<pid>/stat`` of every process, and the
pids of the running stack (the devstack's own records: ``.stack/run/*.pid``, PostgreSQL's
``postmaster.pid``). The arithmetic is in :mod:`bench.figures`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from bench.figures import ProcStat, Sample, parse_stat, sample

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def read_stats() -> dict[int, ProcStat]:
    """Every process's stat line (processes that end while being read are skipped)."""
    out: dict[int, ProcStat] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as fh:
                out[int(entry.name)] = parse_stat(fh.read())
        except (OSError, ValueError, IndexError):
            continue
    return out


def stack_processes(root: Path) -> dict[str, int]:
    """Name → pid of every process of the running stack: each service instance (``policy``,
    ``policy-2``, …), each Kafka node, PostgreSQL's postmaster (its backends are its children)
    and the mail sink."""
    from bsm_devstack import postgres, services, stack
    from bsm_devstack import kafka as devkafka
    from bsm_devstack.paths import StackPaths

    paths = StackPaths(root)
    topo = stack.recorded_topology(paths)
    out: dict[str, int] = {}
    for inst in topo.instances():
        pid = services.instance_pid(paths, inst)
        if pid is not None:
            out[inst.name] = pid
    for node in devkafka.nodes(paths, topo):
        pid = stack.kafka_pid(paths, node)
        if pid is not None:
            out[node.name] = pid
    pid = postgres.postmaster_pid(paths)
    if pid is not None:
        out["postgres"] = pid
    pid = services.mailsink_pid(paths)
    if pid is not None:
        out["mail sink"] = pid
    return out


#: The bench's own process: counted alone (its children — relays, sinks, Postfix — are listed
#: under their own names).
BENCH = "bench (clients)"


class Meter:
    """CPU samples of a set of named processes, and the largest RSS each reached between
    :meth:`start` and :meth:`stop` (sampled every ``interval`` seconds)."""

    def __init__(self, roots: Mapping[str, int], *, interval: float = 0.5) -> None:
        self.roots = {**roots, BENCH: os.getpid()}
        self.interval = interval
        self.peak_rss: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Sample:
        return sample(self.roots, read_stats(), trees=set(self.roots) - {BENCH})

    def _rss(self) -> None:
        stats = read_stats()
        for name, pid in self.roots.items():
            if pid in stats:
                rss = stats[pid].rss_pages * PAGE_BYTES
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)

    async def _watch(self) -> None:
        while True:
            self._rss()
            await asyncio.sleep(self.interval)

    def start(self) -> Sample:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self.sample()

    async def stop(self) -> Sample:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._rss()
        return self.sample()
