"""The pure arithmetic of the benchmarks (``make bench``, ``make bench-mail``): percentiles,
rates, CPU deltas read from ``/proc/<pid>/stat``, and the report's rows and closing lines.

No I/O, no clock: ``bench/processes.py`` reads ``/proc``, the bench scripts measure; everything
here is unit-tested (``tests/unit/test_bench_figures.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# latency and rate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Percentiles of a set of latencies, in seconds."""

    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency | None:
        """None for no values. Percentiles interpolate linearly between the two nearest ranks
        (``statistics.quantiles(method="inclusive")``, numpy's default)."""
        if not values:
            return None
        if len(values) == 1:
            return cls(1, values[0], values[0], values[0])
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(len(values), cuts[49], cuts[98], max(values))


def rate(count: int, start: float, end: float) -> float:
    """Messages per second between the first submission (``start``) and the last outcome
    (``end``); 0 when nothing finished."""
    if count <= 0 or end <= start:
        return 0.0
    return count / (end - start)


def ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else 0.0


def schedule(rate_per_second: float, count: int, start: float) -> list[float]:
    """When each message of an open-loop run is due: one every ``1/rate`` seconds from
    ``start``, whatever became of the ones before."""
    if rate_per_second <= 0:
        raise ValueError(f"an open-loop rate must be positive, not {rate_per_second}")
    return [start + k / rate_per_second for k in range(count)]


# --------------------------------------------------------------------------------------------
# CPU from /proc/<pid>/stat
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """The fields of one ``/proc/<pid>/stat`` line the bench uses (times in clock ticks)."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    rss_pages: int

    @property
    def own(self) -> int:
        """CPU of the process itself (user + system)."""
        return self.utime + self.stime

    @property
    def total(self) -> int:
        """Its own CPU plus that of the children it has waited for (exited children's time is
        added to the parent's ``cutime``/``cstime`` when it reaps them)."""
        return self.own + self.cutime + self.cstime


def parse_stat(line: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line (proc(5)). The command name, in parentheses, may hold
    spaces and parentheses itself: the fields after it are found from its *last* ``)``."""
    pid_part, _, rest = line.rpartition(")")
    pid = int(pid_part.split("(", 1)[0])
    f = rest.split()
    # f[0] is field 3 (state); field n of proc(5) is f[n - 3].
    return ProcStat(pid=pid, ppid=int(f[1]), utime=int(f[11]), stime=int(f[12]),
                    cutime=int(f[13]), cstime=int(f[14]), rss_pages=int(f[21]))


def descendants(root: int, stats: Mapping[int, ProcStat]) -> list[int]:
    """``root`` and every live process below it (by parent pid)."""
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in out:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def tree_ticks(root: int, stats: Mapping[int, ProcStat]) -> int | None:
    """CPU ticks of a process tree so far: every live member's own time plus the time of the
    children each has reaped (PostgreSQL's backends, Postfix's smtpd and cleanup processes).
    None when ``root`` is not running."""
    if root not in stats:
        return None
    return sum(stats[p].total for p in descendants(root, stats))


@dataclass(frozen=True)
class Sample:
    """CPU ticks of each named process (tree) at one instant: ``{name: (pid, ticks)}``."""

    ticks: Mapping[str, tuple[int, int]]


def sample(roots: Mapping[str, int], stats: Mapping[int, ProcStat], *,
           trees: bool | Iterable[str] = True) -> Sample:
    """Ticks of each ``name → pid`` (a whole tree unless ``trees`` excludes the name: the
    bench's own process, whose children are listed on their own)."""
    whole = set(roots) if trees is True else set() if trees is False else set(trees)
    out: dict[str, tuple[int, int]] = {}
    for name, pid in roots.items():
        if name in whole:
            ticks = tree_ticks(pid, stats)
        else:
            ticks = stats[pid].own if pid in stats else None
        if ticks is not None:
            out[name] = (pid, ticks)
    return Sample(out)


def only(roots: Mapping[str, int], *names: str) -> dict[str, int]:
    """The processes among ``roots`` named ``names`` or ``name-N`` (``kafka`` gives every Kafka
    node): what a phase that is not bsm's runs on, so that its total is that path's cost."""
    return {n: p for n, p in roots.items()
            if any(n == name or n.startswith(f"{name}-") for name in names)}


@dataclass(frozen=True)
class CpuRow:
    name: str
    cpu_ms: float  # CPU milliseconds over the phase
    ms_per_message: float
    share_of_phase: float  # cores busy on average (1.0 = one core all the time)
    note: str = ""


def cpu_rows(before: Sample, after: Sample, *, messages: int, seconds: float,
             clock_ticks: int) -> list[CpuRow]:
    """Per process: CPU over the phase, per message and as cores busy; heaviest first. A
    process that restarted (another pid) or appeared during the phase is counted from zero and
    marked; one that is gone at the end is marked and left out of the figures."""
    rows: list[CpuRow] = []
    for name in sorted(set(before.ticks) | set(after.ticks)):
        if name not in after.ticks:
            rows.append(CpuRow(name, 0.0, 0.0, 0.0, "gone before the end"))
            continue
        pid, end = after.ticks[name]
        start_pid, start = before.ticks.get(name, (None, 0))
        note = ""
        if start_pid != pid:
            start, note = 0, "started during the phase" if start_pid is None else "restarted"
        ms = (end - start) * 1000.0 / clock_ticks
        rows.append(CpuRow(name, ms, ms / messages if messages else 0.0,
                           ms / 1000.0 / seconds if seconds > 0 else 0.0, note))
    rows.sort(key=lambda r: (-r.cpu_ms, r.name))
    return rows


def total_row(rows: Sequence[CpuRow], *, exclude: Iterable[str] = ()) -> CpuRow:
    skip = set(exclude)
    kept = [r for r in rows if r.name not in skip]
    return CpuRow("all", sum(r.cpu_ms for r in kept), sum(r.ms_per_message for r in kept),
                  sum(r.share_of_phase for r in kept))


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: what was sent, what finished, when, and the CPU it cost."""

    name: str
    sent: int
    finished: int
    start: float  # first submission (epoch seconds)
    end: float  # last outcome (broker timestamp, epoch seconds)
    latencies: list[float] = field(default_factory=list)  # seconds
    cpu: list[CpuRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)  # bytes, per process
    #: Latency of each stage on the way (stage → seconds per message), in path order.
    hops: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return rate(self.finished, self.start, self.end)

    @property
    def latency(self) -> Latency | None:
        return Latency.of(self.latencies)

    @property
    def complete(self) -> bool:
        return self.finished == self.sent


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def phase_rows(phase: Phase) -> list[tuple[str, str]]:
    """The figures of one phase, as (label, value) rows."""
    rows = [("messages", f"{phase.finished:,} / {phase.sent:,}"),
            ("throughput", f"{phase.rate:,.0f} msg/s"),
            ("elapsed", f"{max(phase.end - phase.start, 0):,.2f} s")]
    lat = phase.latency
    if lat is not None:
        rows += [("latency p50", f"{ms(lat.p50)} ms"), ("latency p99", f"{ms(lat.p99)} ms"),
                 ("latency max", f"{ms(lat.max)} ms")]
    for stage, values in phase.hops.items():
        hop = Latency.of(values)
        if hop is not None:
            rows.append((f"  {stage} p50 / p99", f"{ms(hop.p50)} / {ms(hop.p99)} ms"))
    return rows


def hops(sent: dict[str, float], seen: dict[str, dict[str, float]],
         stages: Sequence[tuple[str, str]], outcome: dict[str, float], *,
         last: str = "outcome") -> dict[str, list[float]]:
    """Per stage, the time from the previous event of a message to this stage's event (the
    first stage from its submission; ``last`` from the last stage to the outcome): where the
    latency is spent. ``stages``: (label, event type) in path order; messages missing one are
    left out (a message the alias bounced has no PolicyChecked)."""
    out: dict[str, list[float]] = {label: [] for label, _ in stages}
    out[last] = []
    for mid, done in outcome.items():
        times = [seen.get(mid, {}).get(kind) for _, kind in stages]
        if mid not in sent or any(t is None for t in times):
            continue
        previous = sent[mid]
        for (label, _), t in zip(stages, times, strict=True):
            out[label].append(t - previous)
            previous = t
        out[last].append(done - previous)
    return out


def cpu_table(phases: Sequence[Phase]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the CPU table: one row per process, one column (ms per message) per
    phase, then the total; a process a phase did not see shows ``-``."""
    names: list[str] = []
    for p in phases:
        for r in p.cpu:
            if r.name not in names:
                names.append(r.name)
    header = ["process", *(f"{p.name} (ms/msg)" for p in phases)]
    rows = []
    for name in names:
        cells = [name]
        for p in phases:
            row = next((r for r in p.cpu if r.name == name), None)
            cells.append("-" if row is None else f"{row.ms_per_message:.2f}"
                         + (f" ({row.note})" if row.note else ""))
        rows.append(cells)
    rows.append(["all", *(f"{total_row(p.cpu).ms_per_message:.2f}" for p in phases)])
    rows.append(["cores busy", *(f"{total_row(p.cpu).share_of_phase:.2f}" for p in phases)])
    return header, rows


def peak_rss(phases: Sequence[Phase]) -> dict[str, int]:
    """The largest RSS each process reached in any phase (bytes)."""
    out: dict[str, int] = {}
    for p in phases:
        for name, rss in p.peak_rss.items():
            out[name] = max(out.get(name, 0), rss)
    return out


def kafka_line(bsm_rate: float, bare_rate: float, p99_seconds: float | None) -> str:
    """The last line of ``make bench``."""
    p99 = "n/a" if p99_seconds is None else f"{p99_seconds * 1000:.0f}"
    return (f"kafka path: bsm {bsm_rate:.0f} msg/s, bare chain {bare_rate:.0f} msg/s, "
            f"ratio {ratio(bsm_rate, bare_rate):.3f}; p99 at half rate {p99} ms")


def mail_line(bsm_rate: float, postfix_rate: float) -> str:
    """The last line of ``make bench-mail``."""
    return (f"mail path: bsm {bsm_rate:.0f} msg/s, Postfix {postfix_rate:.0f} msg/s, "
            f"ratio {ratio(bsm_rate, postfix_rate):.3f}")


#: The issue's ceiling for a service's resident memory under load.
RSS_TARGET = 150 * 2**20


def rss_line(peaks: Mapping[str, int], services: Iterable[str]) -> str:
    """The largest peak RSS among the service instances (``peaks`` holds every process)."""
    names = set(services)
    ours = {n: b for n, b in peaks.items()
            if n in names or n.rpartition("-")[0] in names}
    if not ours:
        return "service RSS: not measured"
    name = max(ours, key=lambda n: (ours[n], n))
    over = sorted(n for n, b in ours.items() if b > RSS_TARGET)
    verdict = f"over the target: {', '.join(over)}" if over else "every service within it"
    return (f"largest service RSS {ours[name] / 2**20:,.0f} MB ({name}; target ≤ "
            f"{RSS_TARGET // 2**20} MB, {verdict})")


def spread_line(group: str, partitions_per_member: Sequence[int]) -> str:
    """How a consumer group's partitions are spread over its members (instances)."""
    counts = sorted(partitions_per_member, reverse=True)
    if not counts:
        return f"{group}: no members"
    idle = sum(1 for c in counts if c == 0)
    return (f"{group}: {len(counts)} member{'s' if len(counts) != 1 else ''}, partitions "
            f"{' + '.join(map(str, counts))}" + (f" ({idle} idle)" if idle else ""))
