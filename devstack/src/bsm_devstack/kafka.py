"""Apache Kafka in KRaft mode, one node or a three-node cluster, and topic creation.

Every node is broker and controller in one JVM ("combined" mode). A three-node cluster thus
runs three JVMs, not six (three controllers plus three brokers): on the 2-core machine the
stack is built for, three more JVMs would cost about a core at start-up and 1.5 GB of heap for
nothing a local test needs. The price, which suits a fault-injection stack: killing a node kills
a broker *and* a controller voter at once, the harsher fault (the quorum of three survives it).

:func:`ensure_topics` is public API: tests call it to create per-run prefixed topic sets (with
the replication the cluster supports)::

    from bsm_devstack.kafka import ensure_topics
    await ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], prefix="t-1234.")
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from bsm_devstack.envfile import write_atomic
from bsm_devstack.paths import HOST, StackPaths
from bsm_devstack.topology import Broker, Topology

JVM_OPTS = ("-Xms256m", "-Xmx768m", "-Djava.awt.headless=true")
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


# --------------------------------------------------------------------------------------------
# topics (public API)
# --------------------------------------------------------------------------------------------


def replication_for(brokers: int) -> tuple[int, dict[str, str]]:
    """Replication factor and topic configs for a cluster of ``brokers``: 3 and
    ``min.insync.replicas=2`` from three brokers on (an acknowledged write is on two nodes, and
    one node may be down without stopping writes), else 1."""
    rf = min(3, max(1, brokers))
    return rf, {"min.insync.replicas": "2" if rf >= 3 else "1"}


async def cluster_size(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the cluster's metadata lists (live, registered brokers)."""
    return len((await admin.describe_cluster()).get("brokers") or [])


async def create_missing_topics(bootstrap: str, prefix: str = "", timeout: float = 60.0,
                                brokers: int | None = None) -> list[str]:
    """Create every bsm topic (under ``prefix``) that does not exist yet; returns the names
    created. Safe to run concurrently with other creators (TopicAlreadyExists is fine).
    ``brokers`` (the cluster's size; asked of the cluster when not given) sets the replication
    (:func:`replication_for`)."""
    from bsm_shared.topics import TOPIC_CONFIG, TopicNames

    wanted = TopicNames(prefix=prefix).all_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bsm-devstack",
                                request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        rf, replication = replication_for(brokers or await cluster_size(admin))
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=rf,
                     topic_configs={**TOPIC_CONFIG, **replication})
            for name, partitions in sorted(wanted.items())
            if name not in existing
        ]
        created: list[str] = []
        if missing:
            try:
                response = await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                response = None
            errors: list[str] = []
            for entry in getattr(response, "topic_errors", None) or []:
                name, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if code == 0:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:
                    continue
                else:
                    errors.append(f"{name}: {for_code(code).__name__} {message or ''}".strip())
            if errors:
                raise RuntimeError("could not create topics: " + "; ".join(errors))
        # Wait until every topic is visible in metadata, so callers can use them at once.
        deadline = time.monotonic() + timeout
        while True:
            absent = set(wanted) - set(await admin.list_topics())
            if not absent:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics not visible after {timeout:.0f} s: {sorted(absent)}")
            await asyncio.sleep(0.2)
        return created
    finally:
        await admin.close()


async def ensure_topics(bootstrap: str, prefix: str = "") -> None:
    """Create (idempotently) every bsm topic and dead-letter topic under ``prefix``, with the
    partition counts and configs of :mod:`bsm_shared.topics`, replicated as the cluster allows
    (factor 3 and ``min.insync.replicas`` 2 on three brokers, else 1)."""
    await create_missing_topics(bootstrap, prefix)


# --------------------------------------------------------------------------------------------
# readiness
# --------------------------------------------------------------------------------------------


async def kafka_ready(bootstrap: str, timeout: float = 5.0, brokers: int = 1) -> bool:
    """True if an admin client can connect, list topics and sees at least ``brokers``
    registered brokers within ``timeout`` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bsm-devstack-probe",
                                request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        if brokers > 1:
            return await asyncio.wait_for(cluster_size(admin), timeout) >= brokers
        return True
    except Exception:
        return False
    finally:
        try:
            await asyncio.wait_for(admin.close(), 5)
        except Exception:
            pass


# --------------------------------------------------------------------------------------------
# jars, configuration, storage
# --------------------------------------------------------------------------------------------


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java") or "/usr/bin/java"


def _pom_digest(paths: StackPaths) -> str:
    return hashlib.sha256(paths.pom.read_bytes()).hexdigest()


def libs_complete(paths: StackPaths) -> bool:
    marker = paths.kafka_libs_marker
    if not marker.is_file():
        return False
    lines = marker.read_text().split()
    if not lines or lines[0] != _pom_digest(paths):
        return False
    jars = lines[1:]
    return bool(jars) and all((paths.kafka_libs / jar).is_file() for jar in jars)


def fetch_libs(paths: StackPaths) -> list[str]:
    """Copy the broker's jars into .stack/kafka/libs with Maven; returns the jar names."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn (Maven) not found on PATH")
    libs = paths.kafka_libs
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(paths.pom),
           "dependency:copy-dependencies", f"-DoutputDirectory={libs}"]
    result = subprocess.run(cmd, cwd=paths.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {result.returncode}):\n"
                           + result.stdout[-4000:])
    jars = sorted(p.name for p in libs.glob("*.jar"))
    if not any(j.startswith("kafka_2.13-") for j in jars):
        raise RuntimeError(f"Maven did not copy kafka_2.13 into {libs}")
    write_atomic(paths.kafka_libs_marker,
                 ("\n".join([_pom_digest(paths), *jars]) + "\n").encode())
    return jars


def new_cluster_id() -> str:
    """22-character base64url form of 16 random bytes (Kafka's Uuid string form). Never starts
    with '-', which the storage tool's argument parser would read as an option."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def cluster_id(paths: StackPaths, brokers: int = 1) -> str:
    """The cluster id of a layout (one per layout; all nodes of a cluster share it)."""
    path = paths.kafka_home(brokers) / "cluster-id"
    if path.is_file():
        cid = path.read_text().strip()
        if len(cid) == 22:
            return cid
    cid = new_cluster_id()
    write_atomic(path, (cid + "\n").encode())
    return cid


class Node:
    """One Kafka node of the stack's layout: its folders, files and log names."""

    def __init__(self, paths: StackPaths, topology: Topology, broker: Broker) -> None:
        self.paths = paths
        self.topology = topology
        self.broker = broker
        self.home = paths.kafka_node(topology.brokers, broker.node_id)

    @property
    def name(self) -> str:
        return self.broker.name

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def log(self) -> Path:
        return self.paths.log(self.name)

    @property
    def stdout_log(self) -> Path:
        return self.paths.log(f"{self.name}-stdout")

    @property
    def pid_file(self) -> Path:
        return self.paths.pid_file(self.name)


def nodes(paths: StackPaths, topology: Topology) -> list[Node]:
    return [Node(paths, topology, b) for b in topology.kafka_brokers()]


def server_properties(node: Node) -> str:
    topo, broker = node.topology, node.broker
    voters = ",".join(f"{b.node_id}@{HOST}:{b.controller_port}" for b in topo.kafka_brokers())
    rf, min_isr = topo.replication_factor, topo.min_insync_replicas
    return f"""\
# Generated by bsm_devstack on every `up`; edit bsm_devstack/kafka.py instead.
# {topo.describe()}; this is node {broker.node_id} (broker and controller in one JVM).
process.roles=broker,controller
node.id={broker.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{HOST}:{broker.port},CONTROLLER://{HOST}:{broker.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{broker.port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={node.data}
num.partitions=3
auto.create.topics.enable=false
# Every topic, the internal ones included: an acknowledged write (acks=all) is on
# min.insync.replicas nodes; with 3 nodes one may be down without stopping writes.
default.replication.factor={rf}
min.insync.replicas={min_isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=3
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
# After a restart the controller keeps the previous broker registration alive for one session
# timeout before the new incarnation can register (DUPLICATE_BROKER_REGISTRATION): a shorter
# session (default 9 s, heartbeat 2 s) makes `down` + `up` several seconds faster, and a killed
# node is fenced (its partitions led elsewhere) after 4 s instead of 9.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
"""


def log4j2_properties(node: Node) -> str:
    return f"""\
# Generated by bsm_devstack on every `up`: Kafka logs go to {node.log}.
status = warn
name = bsm-devstack-kafka
# Keep logging while Kafka's own shutdown hook runs (log4j's hook would stop it first).
shutdownHook = disable

appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {node.log}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n

rootLogger.level = INFO
rootLogger.appenderRefs = file
rootLogger.appenderRef.file.ref = FILE

logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.logcleaner.name = kafka.log.LogCleaner
logger.logcleaner.level = WARN
logger.clientconfig.name = org.apache.kafka.clients
logger.clientconfig.level = WARN
logger.configs.name = org.apache.kafka.common.config.AbstractConfig
logger.configs.level = WARN
"""


def write_config(node: Node) -> None:
    write_atomic(node.properties, server_properties(node).encode())
    write_atomic(node.log4j, log4j2_properties(node).encode())


def java_command(paths: StackPaths, log4j: Path, main_class: str, *args: str) -> list[str]:
    return [
        java_binary(), *JVM_OPTS,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp", f"{paths.kafka_libs}/*",
        main_class, *args,
    ]


def is_formatted(node: Node) -> bool:
    return (node.data / "meta.properties").is_file()


def format_storage(node: Node) -> None:
    cmd = java_command(node.paths, node.log4j, STORAGE_TOOL, "format", "-t",
                       cluster_id(node.paths, node.topology.brokers),
                       "-c", str(node.properties), "--ignore-formatted")
    result = subprocess.run(cmd, cwd=node.paths.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"kafka storage format failed (exit {result.returncode}):\n"
                           + result.stdout[-4000:])


def broker_command(node: Node) -> list[str]:
    return java_command(node.paths, node.log4j, MAIN_CLASS, str(node.properties))


def pid_markers(node: Node) -> list[str]:
    """Command-line fragments that identify this node's process."""
    return [MAIN_CLASS, str(node.properties)]
