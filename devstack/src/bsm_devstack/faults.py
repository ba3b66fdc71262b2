"""Fault primitives for the local stack: what ``make chaos`` does to it, usable by hand too.

* :func:`instances` — every service instance with its pid and whether it is alive;
* :func:`kill_instance` — SIGKILL one instance (no shutdown hook runs: no outbox flush, no
  offset commit, open SMTP sessions cut) and, unless told otherwise, start it again;
* :func:`kill_broker` — SIGKILL one Kafka node (broker and controller voter) and start it again;
* :func:`crash_postgres` — ``pg_ctl stop -m immediate`` (every backend quits at once, as in a
  power loss; the next start replays the WAL) and start it again.

Each takes the stack's lock for the restart, so it never races ``up`` or ``down``; the kill
itself is immediate. A killed process is restarted with the same command, environment and
ports ``up`` used (``services.start_instance``, ``stack.start_kafka_node``).

From a shell: ``python -m bsm_devstack instances``, ``… kill policy-2``, ``… kill-broker 2``,
``… crash-postgres`` (each with ``--down SECONDS`` to leave it down a while).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

from bsm_devstack import kafka, postgres, procs, services, stack
from bsm_devstack.paths import StackPaths
from bsm_devstack.topology import Instance, Topology
from bsm_devstack.ui import StackError


@dataclass(frozen=True)
class InstanceState:
    instance: Instance
    pid: int | None

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def alive(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class Fault:
    """What a primitive did: for the harness's log and the report."""

    kind: str  # "kill", "broker", "postgres"
    target: str
    pid: int | None
    down_seconds: float
    restart_seconds: float


def instances(paths: StackPaths, topo: Topology | None = None) -> list[InstanceState]:
    topo = topo or stack.recorded_topology(paths)
    return [InstanceState(i, services.instance_pid(paths, i)) for i in topo.instances()]


def sigkill(pid: int) -> None:
    """SIGKILL ``pid`` and its process group (a service's own children die with it)."""
    procs.signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while procs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:  # reap it if it is our child (an instance this process restarted earlier)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def kill_instance(paths: StackPaths, name: str, *, restart: bool = True,
                  down_seconds: float = 0.0, topo: Topology | None = None) -> Fault:
    """SIGKILL the instance ``name`` (``policy``, ``policy-2``) and start it again after
    ``down_seconds``. Raises :class:`StackError` if it cannot be restarted."""
    topo = topo or stack.recorded_topology(paths)
    inst = topo.instance(name)
    pid = services.instance_pid(paths, inst)
    if pid is not None:
        sigkill(pid)
    paths.pid_file(inst.name).unlink(missing_ok=True)
    if down_seconds:
        time.sleep(down_seconds)
    t = time.monotonic()
    if restart:
        with stack.lock(paths):
            if services.instance_pid(paths, inst) is None:
                services.start_instance(paths, inst, services.service_python(paths), quiet=True)
    return Fault("kill", inst.name, pid, down_seconds, time.monotonic() - t)


def kill_broker(paths: StackPaths, node_id: int, *, restart: bool = True,
                down_seconds: float = 0.0, topo: Topology | None = None,
                wait_ready: float = 90.0) -> Fault:
    """SIGKILL Kafka node ``node_id`` (1-based) and start it again after ``down_seconds``;
    waits until the cluster lists every broker again (at most ``wait_ready`` seconds)."""
    topo = topo or stack.recorded_topology(paths)
    nodes = {n.broker.node_id: n for n in kafka.nodes(paths, topo)}
    if node_id not in nodes:
        raise StackError(f"no Kafka node {node_id}: this stack has {sorted(nodes)}")
    node = nodes[node_id]
    pid = stack.kafka_pid(paths, node)
    if pid is not None:
        sigkill(pid)
    node.pid_file.unlink(missing_ok=True)
    if down_seconds:
        time.sleep(down_seconds)
    t = time.monotonic()
    if restart:
        with stack.lock(paths):
            started = stack.start_kafka_node(paths, node, quiet=True)
        deadline = time.monotonic() + wait_ready
        while not asyncio.run(kafka.kafka_ready(node.broker.address, timeout=3,
                                                brokers=topo.brokers)):
            if started.proc is not None and started.proc.poll() is not None:
                raise StackError(f"{node.name} exited while restarting (see {node.log})")
            if time.monotonic() > deadline:
                raise StackError(f"{node.name} not back after {wait_ready:.0f} s")
            time.sleep(0.5)
    return Fault("broker", node.name, pid, down_seconds, time.monotonic() - t)


def crash_postgres(paths: StackPaths, *, restart: bool = True, down_seconds: float = 0.0,
                   topo: Topology | None = None) -> Fault:
    """Crash PostgreSQL (``pg_ctl stop -m immediate``) and start it again after
    ``down_seconds`` (crash recovery from the WAL happens in that start)."""
    topo = topo or stack.recorded_topology(paths)
    pid = postgres.postmaster_pid(paths)
    try:
        postgres.stop(paths, mode="immediate")
    except postgres.PostgresError as exc:
        raise StackError(f"could not crash postgres: {exc}") from None
    if down_seconds:
        time.sleep(down_seconds)
    t = time.monotonic()
    if restart:
        with stack.lock(paths):
            stack.start_postgres(paths, topo, quiet=True)
    return Fault("postgres", "postgres", pid, down_seconds, time.monotonic() - t)


def heal(paths: StackPaths, topo: Topology | None = None) -> list[str]:
    """Start whatever of the stack is not running (after a run of faults); returns what was
    started. PostgreSQL and the brokers first, then the mail sink and the instances."""
    topo = topo or stack.recorded_topology(paths)
    started: list[str] = []
    with stack.lock(paths):
        if not postgres.is_running(paths):
            stack.start_postgres(paths, topo, quiet=True)
            started.append("postgres")
        nodes = [n for n in kafka.nodes(paths, topo) if stack.kafka_pid(paths, n) is None]
        for node in nodes:
            stack.start_kafka_node(paths, node, quiet=True)
            started.append(node.name)
        deadline = time.monotonic() + 90
        while nodes and not asyncio.run(kafka.kafka_ready(topo.bootstrap, timeout=3,
                                                          brokers=topo.brokers)):
            if time.monotonic() > deadline:
                raise StackError("Kafka not back 90 s after healing")
            time.sleep(0.5)
        if services.mailsink_pid(paths) is None:
            services.start_mailsink(paths, topo)
            started.append(services.MAILSINK)
        python = services.service_python(paths)
        for inst in topo.instances():
            if services.instance_pid(paths, inst) is None:
                services.start_instance(paths, inst, python, quiet=True)
                started.append(inst.name)
    return started
