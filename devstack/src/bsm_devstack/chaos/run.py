"""``make chaos``: the workload, the nemesis, the recovery watch, the checker — one run.

Phases:

1. **setup** — buyer–seller pairs registered and an order each (platform events); each pair's
   first message through the gateway; the aliases learnt from ``MessageAddressed`` (the mail
   door needs the seller's alias).
2. **chaos** — the workload at a steady rate through every door while the nemesis SIGKILLs
   random service instances (each service at least once), kills a Kafka node (three-broker
   stacks) and crashes PostgreSQL.
3. **recovery** — the faults stop, whatever is down is started, and the harness watches every
   consumer group's lag and the outboxes until all is quiet and every accepted message has its
   outcome (at most ``lag_bound`` seconds).
4. **check** — the topics, the record and the mail sink read back and judged
   (:mod:`.checker`). A JSON report goes to ``.stack/chaos/<run>.json``; the last line is the
   summary, and the exit code says whether every target was met.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bsm_devstack import faults as faults_mod
from bsm_devstack import health, stack
from bsm_devstack.chaos import checker, content, observe, plan
from bsm_devstack.chaos.doors import Doors
from bsm_devstack.chaos.model import (
    ACCEPTED,
    NOTHING,
    Fault,
    Observations,
    Op,
    Result,
)
from bsm_devstack.envfile import read_env_file
from bsm_devstack.paths import StackPaths
from bsm_devstack.topology import Topology
from bsm_devstack.ui import StackError
from bsm_shared.runtime.settings import DEFAULT_SMTP_CONNECTIONS


#: About how long one fault takes (the kill, the time down, the restart) on the 2-core box.
FAULT_SECONDS = 5.0


@dataclass
class Config:
    messages: int = 20_000
    seed: int | None = None
    rate: float | None = None  # operations per second; default: see effective_rate
    concurrency: int = 48
    fault_interval: float = 5.0
    lag_bound: float = 180.0
    hostile_share: float = 0.05
    faults: bool = True
    min_seconds: float = 40.0  # the shortest chaos phase (so short runs still see faults)
    max_rate: float = 40.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        e = os.environ if environ is None else environ

        def num(name: str, default: float) -> float:
            return float(e[name]) if e.get(name, "").strip() else default

        return cls(
            messages=int(num("CHAOS_MESSAGES", 20_000)),
            seed=int(e["CHAOS_SEED"]) if e.get("CHAOS_SEED", "").strip() else None,
            rate=num("CHAOS_RATE", 0) or None,
            concurrency=int(num("CHAOS_CONCURRENCY", 48)),
            fault_interval=num("CHAOS_FAULT_INTERVAL", 5.0),
            lag_bound=num("CHAOS_LAG_BOUND", 180.0),
            hostile_share=num("CHAOS_HOSTILE_SHARE", 0.05),
            faults=e.get("CHAOS_FAULTS", "1").strip().lower() not in ("0", "no", "false", "off"),
        )

    def effective_rate(self, operations: int) -> float:
        """Operations per second: ``rate`` if given, else at most ``max_rate`` and slow enough
        that the chaos phase lasts ``min_seconds``."""
        if self.rate:
            return self.rate
        return max(1.0, min(self.max_rate, operations / self.min_seconds))


def say(message: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# the nemesis
# --------------------------------------------------------------------------------------------


class Nemesis:
    """Runs the fault plan: the mandatory faults first (it keeps going after the workload
    until they are done), then random instance kills until told to stop."""

    def __init__(self, paths: StackPaths, topo: Topology, fplan: plan.FaultPlan,
                 rng: random.Random) -> None:
        self.paths, self.topo, self.plan, self.rng = paths, topo, fplan, rng
        self.done: list[Fault] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._todo = list(fplan.mandatory)
        self.t0 = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while self._todo or not self._stop.is_set():
            wait = self.plan.interval * self.rng.uniform(0.6, 1.4)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set() and not self._todo:
                return
            await self.strike()

    async def strike(self) -> None:
        kind, service = self._todo.pop(0) if self._todo else (
            "kill", self.rng.choice([i.service for i in self.topo.instances()]))
        at = time.monotonic() - self.t0
        try:
            if kind == "broker":
                node = self.rng.randrange(1, self.topo.brokers + 1)
                say(f"nemesis: SIGKILL Kafka node {node} (down 5 s)")
                self.done.append(Fault(at, "broker", f"kafka-{node}", ""))
                await asyncio.to_thread(faults_mod.kill_broker, self.paths, node,
                                        down_seconds=5.0, topo=self.topo, wait_ready=240.0)
            elif kind == "postgres":
                say("nemesis: crash PostgreSQL (pg_ctl stop -m immediate, down 2 s)")
                self.done.append(Fault(at, "postgres", "postgres", ""))
                await asyncio.to_thread(faults_mod.crash_postgres, self.paths,
                                        down_seconds=2.0, topo=self.topo)
            else:
                inst = self.rng.choice(self.topo.instances(service))
                down = round(self.rng.uniform(0, 2), 1)
                say(f"nemesis: SIGKILL {inst.name} (down {down} s)")
                self.done.append(Fault(at, "kill", inst.name, inst.service))
                await asyncio.to_thread(faults_mod.kill_instance, self.paths, inst.name,
                                        down_seconds=down, topo=self.topo)
        except Exception as exc:  # noqa: BLE001 - healed afterwards, reported
            self.failures.append(f"{type(exc).__name__}: {exc}")
            say(f"nemesis: restart failed: {exc}")


# --------------------------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------------------------


class Run:
    def __init__(self, paths: StackPaths, cfg: Config) -> None:
        self.paths, self.cfg = paths, cfg
        self.topo = stack.recorded_topology(paths)
        self.env = {**read_env_file(paths.env_file), **read_env_file(paths.secrets_file)}
        self.run = secrets.token_hex(3)
        self.seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.ops = plan.build(cfg.messages, seed=self.seed, run=self.run,
                              hostile_share=cfg.hostile_share)
        self.pairs = content.pairs(self.run, plan.pair_count(cfg.messages))
        self.results: list[Result] = []
        self.doors = Doors(self.env, run=self.run)
        self.observer = observe.Observer(self.env["KAFKA_BOOTSTRAP_SERVERS"])
        self.timings: dict[str, float] = {}
        self.done_ops = 0
        self.chaos_window = (0.0, 0.0)

    def check_stack(self) -> None:
        dead = [s.name for s in faults_mod.instances(self.paths, self.topo) if not s.alive]
        if dead:
            raise StackError(f"not running: {', '.join(dead)} — run `make up` first")

    async def setup(self) -> None:
        t = time.monotonic()
        now = datetime.now(UTC)
        n = 10_000_000
        for pair in self.pairs:
            for topic, key, value in content.registrations(self.run, pair, now):
                op = Op(n, "kafka", "setup", f"setup{n}", NOTHING, pair=pair.index,
                        is_message=False)
                n += 1
                self.results.append(await self.doors.publish(op, topic, key, value))
        await self.doors.producer.flush()
        firsts = [op for op in self.ops if op.kind == "first"]
        say(f"setup: {len(self.pairs)} pairs registered; their first messages through the "
            "gateway…")
        await asyncio.sleep(2)
        results = await asyncio.gather(*(self.doors.call(op, self.pairs[op.pair])
                                         for op in firsts))
        self.results.extend(results)
        wanted = {r.message_id: r.op.pair for r in results if r.message_id}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for mid, p in wanted.items():
                if mid in self.observer.addressed and p not in self.doors.aliases:
                    sender_alias, recipient_alias = self.observer.addressed[mid]
                    self.doors.aliases[p] = (sender_alias, recipient_alias)  # buyer, seller
            if len(self.doors.aliases) == len(self.pairs):
                break
            await asyncio.sleep(0.5)
        say(f"setup: aliases of {len(self.doors.aliases)}/{len(self.pairs)} pairs known "
            f"({time.monotonic() - t:.1f} s)")
        self.timings["setup"] = time.monotonic() - t

    async def chaos(self) -> list[Fault]:
        ops = [op for op in self.ops if op.kind != "first"]
        nemesis = None
        rate = self.cfg.effective_rate(len(ops))
        if self.cfg.faults:
            fplan = plan.faults(seed=self.seed, brokers=self.topo.brokers,
                                services=[i.service for i in self.topo.instances()],
                                interval=self.cfg.fault_interval)
            nemesis = Nemesis(self.paths, self.topo, fplan, self.rng)
            # Long enough for the planned faults (each: the interval plus a restart) to strike
            # while messages flow.
            span = len(fplan.mandatory) * (self.cfg.fault_interval + FAULT_SECONDS)
            if not self.cfg.rate:
                rate = min(rate, max(1.0, len(ops) / span))
        say(f"chaos: {len(ops)} operations at {rate:.0f}/s "
            f"(about {len(ops) / rate:.0f} s)" + (", faults every "
                                                  f"~{self.cfg.fault_interval:.0f} s"
                                                  if nemesis else ", no faults"))
        t = time.monotonic()
        self.chaos_window = (t, t)
        nemesis_task = asyncio.create_task(nemesis.run()) if nemesis else None
        gate = asyncio.Semaphore(self.cfg.concurrency)

        async def one(i: int, op: Op) -> None:
            delay = t + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with gate:
                result = await self.doors.call(op, self.pairs[op.pair])
            self.results.append(result)
            self.done_ops += 1

        async def report() -> None:
            while True:
                await asyncio.sleep(15)
                lag = sum(len(v) for v in self.observer.outcomes.values())
                say(f"chaos: {self.done_ops}/{len(ops)} operations done, {lag} outcomes seen, "
                    f"{len(nemesis.done) if nemesis else 0} faults")

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(one(i, op) for i, op in enumerate(ops)))
        reporter.cancel()
        self.timings["workload"] = time.monotonic() - t
        if nemesis is not None and nemesis_task is not None:
            nemesis.stop()
            if nemesis._todo:
                say(f"chaos: workload done; the nemesis finishes its {len(nemesis._todo)} "
                    "remaining planned fault(s)")
            await nemesis_task
            self.timings["faults"] = time.monotonic() - t
            self.chaos_window = (t, time.monotonic())
            if nemesis.failures:
                say(f"nemesis: {len(nemesis.failures)} restart(s) failed: "
                    + "; ".join(nemesis.failures[:3]))
            return nemesis.done
        self.chaos_window = (t, time.monotonic())
        return []

    def expected_outcomes(self) -> set[str]:
        hostile = {r.position for r in self.results if r.op.hostile and r.position}
        ids = {r.message_id for r in self.results if r.status == ACCEPTED and r.message_id
               and r.op.is_message and "dead_letter" not in r.op.accept}
        ids |= {m for m, pos in self.observer.submitted.items() if pos not in hostile}
        return ids

    async def recover(self) -> dict[str, float | None]:
        """Heal, then watch lag and outboxes until quiet and every outcome is in."""
        started = await asyncio.to_thread(faults_mod.heal, self.paths, self.topo)
        if started:
            say(f"recovery: started {', '.join(started)}")
        t_heal = time.monotonic()
        bound = self.cfg.lag_bound
        zero_from: dict[str, float | None] = {}
        quiet = 0
        db = self.env["BSM_DATABASE_URL"]
        last_report = 0.0
        async with health.Probe(self.env["KAFKA_BOOTSTRAP_SERVERS"], timeout=5) as probe:
            while True:
                now = time.monotonic()
                lags = await probe.group_lags()
                outboxes = await health.outbox_backlogs(db)
                for g, lag in lags.items():
                    if lag.caught_up:
                        if zero_from.get(g) is None:
                            zero_from[g] = now - t_heal
                    else:
                        zero_from[g] = None
                pending = self.expected_outcomes() - set(self.observer.outcomes)
                backlog = sum(o.pending for o in outboxes.values())
                calm = (all(lag.caught_up for lag in lags.values()) and backlog == 0
                        and all(o.error is None for o in outboxes.values()))
                quiet = quiet + 1 if calm and not pending else 0
                if now - last_report >= 10:
                    last_report = now
                    say(f"recovery: {now - t_heal:.0f} s, lag "
                        + ", ".join(f"{g.removeprefix('bsm.')} {lag.lag if lag.error is None else '?'}"
                                    for g, lag in lags.items())
                        + f"; outbox backlog {backlog}; {len(pending)} outcome(s) pending")
                if quiet >= 3:
                    break
                if now - t_heal > bound and (not calm or now - t_heal > 2 * bound):
                    say(f"recovery: not quiet after {now - t_heal:.0f} s: giving up waiting")
                    break
                await asyncio.sleep(1)
        self.timings["recovery"] = time.monotonic() - t_heal
        return {g: v for g, v in zero_from.items()}

    async def collect(self, faults: list[Fault], lag_recovery: dict[str, float | None],
                      sink_before: set[str]) -> Observations:
        t = time.monotonic()
        drained = await self.observer.drain()
        if not drained:
            say("collect: could not read every topic to its end (Kafka unavailable?)")
        obs = Observations(events=list(self.observer.events),
                           unparseable=list(self.observer.unparseable),
                           dead_letters=list(self.observer.dead_letters),
                           lag_recovery=lag_recovery, faults=faults)
        ids = {e.event_id for e in obs.events if e.event_id}
        obs.recorded = await observe.recorded(self.env["BSM_DATABASE_URL"], ids)
        domain = self.env.get("BSM_MAIL_DOMAIN", "marketplace.example")
        deep = {f"<{r.message_id}@{domain}>" for r in self.results
                if r.op.hostile and r.message_id}
        obs.mails, obs.mail_problems = await asyncio.to_thread(
            observe.sink_mails, Path(self.env["BSM_MAIL_SINK_DIR"]), sink_before, deep)
        self.timings["collect"] = time.monotonic() - t
        return obs

    async def execute(self) -> checker.Verdict:
        self.check_stack()
        t0 = time.monotonic()
        say(f"chaos run {self.run} (seed {self.seed}): {self.cfg.messages} messages, "
            f"{self.topo.describe()}")
        sink = Path(self.env["BSM_MAIL_SINK_DIR"])
        sink_before = {p.name for p in sink.glob("*.eml")}
        await self.doors.start()
        await self.observer.start()
        try:
            await self.setup()
            faults = await self.chaos()
            lag = await self.recover()
            obs = await self.collect(faults, lag, sink_before)
        finally:
            await self.observer.stop()
            await self.doors.stop()
        lanes = int(os.environ.get("BSM_DELIVERY_SMTP_CONNECTIONS")
                    or self.env.get("BSM_DELIVERY_SMTP_CONNECTIONS")
                    or DEFAULT_SMTP_CONNECTIONS)
        verdict = checker.check(self.results, obs,
                                checker.Targets(smtp_lanes=lanes, lag_bound_seconds=self.cfg.lag_bound))
        self.timings["total"] = time.monotonic() - t0
        self.report(verdict, obs)
        return verdict

    # ----------------------------------------------------------------------------------------
    def report(self, v: checker.Verdict, obs: Observations) -> None:
        by_status = Counter(r.status for r in self.results if r.op.kind != "setup")
        by_door = Counter((r.op.door, r.status) for r in self.results if r.op.is_message)
        hostile = Counter((r.op.kind, r.status, r.code) for r in self.results if r.op.hostile)
        reasons = Counter(e.reason_code for e in obs.events
                          if e.type == "Bounced" and not e.after_delivery)
        kinds = Counter(f.kind for f in obs.faults)
        print()
        say(f"run {self.run}, seed {self.seed}, {self.topo.describe()}")
        say("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        say(f"faults: {len(obs.faults)} ({', '.join(f'{k} {n}' for k, n in kinds.items())}); "
            f"delivery kills {v.delivery_kills}")
        say("doors: " + ", ".join(f"{d} {s} {n}" for (d, s), n in sorted(by_door.items()))
            + f"; all operations {dict(by_status)}")
        say(f"outcomes: {v.outcomes}; bounce reasons {dict(reasons.most_common(8))}")
        say(f"events read back {len(obs.events)}, dead letters {len(obs.dead_letters)}, "
            f"mails {sum(obs.mails.values())}, indeterminate operations {v.indeterminate}")
        say(f"out of order: PolicyChecked {v.out_of_order}; outcomes reordered against "
            f"PolicyChecked (information) {v.reordered_outcomes}")
        pause = observe.longest_pause(self.observer.outcome_times, *self.chaos_window)
        self.timings["longest_pause_in_outcomes"] = pause
        say(f"flow: the longest stretch without a new outcome while the faults struck was "
            f"{pause:.1f} s")
        say("hostile inputs: " + "; ".join(f"{k} {s} {c if c is not None else ''}×{n}".replace(" ×", "×")
                                           for (k, s, c), n in sorted(hostile.items(),
                                                                      key=lambda x: str(x))))
        for title, items in (("lost", v.lost), ("duplicate outcomes", v.duplicate_outcomes),
                             ("duplicate mails", v.duplicate_mail_ids),
                             ("missing from the record", v.missing_from_record),
                             ("hostile problems", v.hostile_problems),
                             ("ordinary operations refused or failed", v.benign_problems),
                             ("mail problems", v.mail_problems)):
            if items:
                say(f"{title} ({len(items)}): " + "; ".join(map(str, items[:8]))
                    + (" …" if len(items) > 8 else ""))
        if v.undeclared_dead_letters:
            summary = Counter(f"{d.consumer}:{d.error_code} on {d.source[0] if d.source else '?'}"
                              for d in v.undeclared_dead_letters)
            say(f"undeclared dead letters ({len(v.undeclared_dead_letters)}): "
                + "; ".join(f"{k} ×{n}" for k, n in summary.most_common(8)))
        lag = ", ".join(f"{g.removeprefix('bsm.')} "
                        + ("never" if s is None else f"{s:.1f} s")
                        for g, s in sorted(obs.lag_recovery.items()))
        say(f"lag back to 0 after the faults: {lag}")
        misses = v.misses()
        say("targets: " + ("all met" if not misses else "MISSED — " + "; ".join(misses)))
        self.write_json(v, obs)
        print(v.last_line(), flush=True)

    def write_json(self, v: checker.Verdict, obs: Observations) -> None:
        folder = self.paths.stack / "chaos"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run}.json"
        doc = {
            "run": self.run, "seed": self.seed, "topology": self.topo.describe(),
            "config": asdict(self.cfg), "timings": self.timings, "last_line": v.last_line(),
            "misses": v.misses(), "lost": v.lost, "duplicate_outcomes": v.duplicate_outcomes,
            "duplicate_mails": v.duplicate_mail_ids,
            "missing_from_record": v.missing_from_record,
            "out_of_order_relationships": v.out_of_order_relationships,
            "undeclared_dead_letters": [observe.describe_dead_letter(d)
                                        for d in v.undeclared_dead_letters],
            "hostile_problems": v.hostile_problems, "benign_problems": v.benign_problems,
            "mail_problems": v.mail_problems, "faults": [asdict(f) for f in obs.faults],
            "lag_recovery": obs.lag_recovery,
            "results": [{"n": r.op.n, "door": r.op.door, "kind": r.op.kind,
                         "hostile": r.op.hostile, "status": r.status, "code": r.code,
                         "message_id": r.message_id, "detail": r.detail[:200],
                         "attempts": r.attempts} for r in self.results if r.op.kind != "setup"],
        }
        path.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        say(f"report: {path}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bsm_devstack.chaos",
                                     description="Chaos run against the local stack (see "
                                                 "README: make chaos).")
    parser.add_argument("--messages", type=int, help="default CHAOS_MESSAGES or 20000")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--rate", type=float, help="operations per second")
    parser.add_argument("--no-faults", action="store_true", help="a baseline without faults")
    args = parser.parse_args(argv)
    cfg = Config.from_env()
    if args.messages:
        cfg.messages = args.messages
    if args.seed is not None:
        cfg.seed = args.seed
    if args.rate:
        cfg.rate = args.rate
    if args.no_faults:
        cfg.faults = False
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        paths = StackPaths.discover()
        async def go() -> checker.Verdict:
            return await Run(paths, cfg).execute()

        verdict = asyncio.run(go())
    except StackError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    return 0 if verdict.ok else 1
