"""``make bench``: bsm's Kafka path beside a bare Kafka relay chain, on the running stack (a
benchmark, never a timed test).

Four phases in one run, each with the CPU every process spent (``/proc/<pid>/stat``):

1. **bare chain** — three relay processes (``bench/relay.py``: consume a batch → produce it →
   commit) in a row through the same broker, on topics of their own (removed afterwards),
   ``--bare-messages`` records the size of a ``MessageSubmitted``;
2. **bsm burst** — ``--messages`` ``MessageSubmitted`` on ``bsm.messages.submitted`` as fast as
   the producer goes, until every one has its outcome (``Delivered`` or ``Bounced``);
3. **bsm steady** — once every consumer group caught up with the burst, open loop at half the
   burst's rate (or ``--steady-rate``) for ``--steady-seconds``: latency from submission to
   the outcome's broker timestamp (p50, p99, max), and by stage (alias, policy, delivery);
4. **decision path** — another burst, measured to ``PolicyChecked`` (alias → policy alone;
   delivery keeps running, as it must on a shared stack).

The last line reads ``kafka path: bsm X msg/s, bare chain Y msg/s, ratio Z; p99 at half rate W
ms``. Addresses come from ``.stack/env`` (``BSM_STACK_PORT_OFFSET`` applies); the stack's pids
from its own records (``.stack/run``, PostgreSQL's ``postmaster.pid``).

    .venv/bin/python bench/throughput.py [--messages 2000] [--pairs 50] [--bare-messages 20000]
                                         [--steady-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness  # noqa: E402
from bench.figures import (  # noqa: E402
    Phase, cpu_rows, cpu_table, hops, kafka_line, only, peak_rss, phase_rows)
from bench.harness import OUTCOMES, ROOT, console  # noqa: E402
from bench.processes import CLOCK_TICKS, Meter, stack_processes  # noqa: E402
from bsm_devstack.chaos import content  # noqa: E402
from bsm_devstack.chaos.content import Pair  # noqa: E402

HOPS = 3
HOP_PARTITIONS = 6  # as bsm.messages.submitted and the topics after it


# --------------------------------------------------------------------------------------------
# phase 1: the bare relay chain
# --------------------------------------------------------------------------------------------


async def _delete_groups(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
    """Remove the relays' consumer groups (aiokafka's admin client has no public call for
    it; the broker drops their offsets with the topics anyway)."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    for group in groups:
        with contextlib.suppress(Exception):
            node = await admin.find_coordinator(group)
            await admin._send_request_to_node(node, DeleteGroupsRequest([group]))


async def bare_chain(env: dict[str, str], run: str, n: int, roots: dict[str, int],
                     warm: int = 500, timeout: float = 300.0) -> Phase:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    replicas = min(3, int(env.get("BSM_KAFKA_BROKER_COUNT", "1") or 1))
    topics = [f"{run}.hop{i}" for i in range(HOPS + 1)]
    groups = [f"{run}.relay{i + 1}" for i in range(HOPS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"bench-{run}")
    await admin.start()
    relays: list[asyncio.subprocess.Process] = []
    reader = AIOKafkaConsumer(topics[-1], bootstrap_servers=bootstrap,
                              enable_auto_commit=False, auto_offset_reset="earliest")
    prod = harness.producer(env)
    try:
        config = {"min.insync.replicas": "2"} if replicas >= 3 else {}
        await admin.create_topics([NewTopic(t, HOP_PARTITIONS, replicas, topic_configs=config)
                                   for t in topics])
        for i in range(HOPS):
            relays.append(await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "relay.py"), bootstrap, topics[i],
                topics[i + 1], groups[i], stdout=asyncio.subprocess.PIPE))
        for proc in relays:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
            if line.strip() != b"ready":
                raise SystemExit(f"a relay did not start (said {line!r})")
        await prod.start()
        await reader.start()
        received = {"count": 0, "last": 0.0}

        async def read() -> None:
            while True:
                batch = await reader.getmany(timeout_ms=100, max_records=5000)
                for records in batch.values():
                    received["count"] += len(records)
                    for r in records:
                        received["last"] = max(received["last"], r.timestamp / 1000)

        reading = asyncio.get_running_loop().create_task(read())
        pair = content.pairs(run, 1)[0]
        values = [harness.submitted(f"bare-{run}-{k}", pair) for k in range(warm + n)]

        async def push(chunk: list[bytes], label: str, want: int) -> float:
            futures = [await prod.send(topics[0], v, key=str(k).encode())
                       for k, v in enumerate(chunk)]
            await asyncio.gather(*futures)
            deadline = time.monotonic() + timeout
            while received["count"] < want and time.monotonic() < deadline:
                harness.status(f"{label}: {received['count']:,}/{want:,}")
                await asyncio.sleep(0.05)
            return received["last"]

        await push(values[:warm], "bare chain warm-up", warm)
        meter = Meter({**only(roots, "kafka"),
                       **{f"relay {i + 1}": p.pid for i, p in enumerate(relays)}})
        before, t0, w0 = meter.start(), time.time(), time.monotonic()
        last = await push(values[warm:], "bare chain", warm + n)
        after, wall = await meter.stop(), time.monotonic() - w0
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        done = received["count"] - warm
        phase = Phase("bare chain", n, min(done, n), t0, last)
        phase.cpu = cpu_rows(before, after, messages=phase.finished, seconds=wall,
                             clock_ticks=CLOCK_TICKS)
        phase.peak_rss = meter.peak_rss
        phase.notes.append(f"{HOPS} relay processes, {HOP_PARTITIONS} partitions per topic, "
                           f"replication {replicas}, {len(values[warm])} bytes per record")
        return phase
    finally:
        for proc in relays:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in relays:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 30)
        with contextlib.suppress(Exception):
            await reader.stop()
        with contextlib.suppress(Exception):
            await prod.stop()
        with contextlib.suppress(Exception):
            await admin.delete_topics(topics)
        await _delete_groups(admin, groups)
        await admin.close()


# --------------------------------------------------------------------------------------------
# phases 2-4: bsm
# --------------------------------------------------------------------------------------------


async def bsm_phase(name: str, prod, watch: harness.Watch, pairs: list[Pair],
                    mids: list[str], roots: dict[str, int], *, kinds: tuple[str, ...],
                    rate: float | None, timeout: float) -> Phase:
    """Submit ``mids`` (as fast as possible, or open loop at ``rate`` per second) and wait for
    each one's first event among ``kinds``."""
    meter = Meter(roots)
    before, w0 = meter.start(), time.monotonic()
    sent_at: dict[str, float] = {}
    futures = []
    t0 = time.time()
    for k, mid in enumerate(mids):
        if rate is not None:
            delay = t0 + k / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        sent_at[mid] = time.time()
        futures.append(await harness.submit(prod, mid, pairs[k % len(pairs)]))
    await asyncio.gather(*futures)
    done = await watch.wait(mids, kinds, timeout=timeout, label=name)
    after, wall = await meter.stop(), time.monotonic() - w0
    phase = Phase(name, len(mids), len(done), t0, max(done.values(), default=t0),
                  latencies=[done[m] - sent_at[m] for m in done])
    phase.cpu = cpu_rows(before, after, messages=max(len(done), 1), seconds=wall,
                         clock_ticks=CLOCK_TICKS)
    phase.peak_rss = meter.peak_rss
    if rate is not None:
        phase.notes.append(f"open loop at {rate:,.1f} msg/s")
        # Where the steady latency is spent: submission → alias → policy → the outcome.
        phase.hops = hops(sent_at, watch.seen, (("alias", "MessageAddressed"),
                                                ("policy", "PolicyChecked")), done,
                          last="delivery")
    if "Delivered" in kinds:
        bounced = watch.bounced(done)
        if bounced:
            phase.notes.append(f"bounced: {bounced}")
    return phase


def show(phases: list[Phase]) -> None:
    for phase in phases:
        table = Table(title=phase.name, title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for label, value in phase_rows(phase):
            table.add_row(label, value)
        console.print(table)
        for note in phase.notes:
            console.print(f"  {note}")
        if not phase.complete:
            console.print(f"  [red]{phase.sent - phase.finished:,} messages unfinished[/red]")
    header, rows = cpu_table(phases)
    table = Table(title="CPU milliseconds per message (from /proc/<pid>/stat over each phase; "
                        "PostgreSQL and Postfix with their children)", title_justify="left")
    for h in header:
        table.add_column(h, justify="left" if h == "process" else "right")
    table.add_column("peak RSS", justify="right")
    for row in rows:
        rss = peak_rss(phases).get(row[0])
        table.add_row(*row, f"{rss / 2**20:,.0f} MB" if rss else "")
    console.print(table)


async def main(args: argparse.Namespace) -> int:
    env = harness.stack_env()
    roots = stack_processes(ROOT)
    run = "bench" + uuid.uuid4().hex[:6]
    harness.intro(f"[bold]bench {run}[/bold] on the stack at "
                  f"{env['KAFKA_BOOTSTRAP_SERVERS']}: {', '.join(sorted(roots))}")
    phases = [await bare_chain(env, run, args.bare_messages, roots)]
    console.print(f"  bare chain: {phases[0].rate:,.0f} msg/s")
    async with harness.session(env, run, args.pairs) as bsm:
        prod, watch, pair_list = bsm.prod, bsm.watch, bsm.pairs
        burst = await bsm_phase("bsm burst", prod, watch, pair_list,
                                [f"bm-{run}-{k}" for k in range(args.messages)], roots,
                                kinds=OUTCOMES, rate=None, timeout=args.timeout)
        phases.append(burst)
        console.print(f"  bsm burst: {burst.rate:,.0f} msg/s")
        # Half the burst's rate, or the rate asked for (to compare runs at one rate).
        half = args.steady_rate or max(burst.rate / 2, 1.0)
        # Each phase starts on a quiet stack: the burst's backlog (gateway and metrics read
        # its outcomes after the bench saw them) is not the steady phase's work or latency.
        await harness.quiet(env)
        steady_n = max(int(half * args.steady_seconds), 10)
        phases.append(await bsm_phase("bsm steady", prod, watch, pair_list,
                                      [f"bs-{run}-{k}" for k in range(steady_n)], roots,
                                      kinds=OUTCOMES, rate=half, timeout=args.timeout))
        await harness.quiet(env)
        decision_ids = [f"bd-{run}-{k}" for k in range(args.messages)]
        phases.append(await bsm_phase("decision path", prod, watch, pair_list, decision_ids,
                                      roots, kinds=("PolicyChecked",), rate=None,
                                      timeout=args.timeout))
        # Leave the stack quiet: the decision phase's messages still go out.
        await watch.wait(decision_ids, OUTCOMES, timeout=args.timeout, label="draining")
    show(phases)
    await harness.closing_notes(env, phases)
    bare, burst, steady = phases[0], phases[1], phases[2]
    console.print(f"ratios: bsm burst / bare chain {burst.rate / max(bare.rate, 1e-9):.3f} "
                  f"(target ≥ 0.5); decision path / bare chain "
                  f"{phases[3].rate / max(bare.rate, 1e-9):.3f}; steady p99 "
                  f"{(steady.latency.p99 * 1000 if steady.latency else float('nan')):,.0f} ms "
                  "(target ≤ 500 ms)")
    print(kafka_line(burst.rate, bare.rate, steady.latency.p99 if steady.latency else None))
    return 0 if all(p.complete for p in phases) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="per burst (phases 2, 4)")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--bare-messages", type=int, default=20000)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--steady-rate", type=float, default=None,
                        help="msg/s of the open loop (default: half the burst's rate); the last "
                        "line's p99 is then at this rate")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="longest wait for one phase's outcomes")
    sys.exit(asyncio.run(main(parser.parse_args())))
