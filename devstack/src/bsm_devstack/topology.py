"""The shape of the local stack: where each part listens and how many of each run.

Three knobs, read from the environment by ``up`` and recorded in ``.stack/topology.json`` so that
``status``, ``down``, the fault primitives and ``make chaos`` find the same stack without them:

* ``BSM_STACK_PORT_OFFSET`` (default 0): added to every port of the stack, so a second stack
  (a git worktree, a CI job) runs beside the first on one machine. Offset 1000 puts Kafka on
  20092, PostgreSQL on 16432, the gateway on 19080, and so on.
* ``BSM_KAFKA_BROKERS`` (1 or 3, default 1): one combined broker+controller, or a three-node
  KRaft cluster (each node broker and controller) with replication factor 3 and
  ``min.insync.replicas`` 2 for every topic, the internal ones included.
* ``BSM_SCALE`` (e.g. ``policy=2,delivery=2``; default one of each): instances per service, all
  in the service's consumer group. Extra instances of the doors get ports of their own.

This module is pure (no I/O besides reading and writing the record file): the port plan and
the parsing are unit-tested.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

ENV_PORT_OFFSET = "BSM_STACK_PORT_OFFSET"
ENV_BROKERS = "BSM_KAFKA_BROKERS"
ENV_SCALE = "BSM_SCALE"

# Ports at offset 0 (high ports, loopback only, so they do not clash with system services).
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
PG_PORT = 15432
GATEWAY_PORT = 18080
METRICS_PORT = 18081
SMTP_INBOUND_PORT = 12525
SMTP_RELAY_PORT = 12526  # the mail sink

#: Node n of a cluster listens on KAFKA_PORT + 2(n-1) (clients) and the next port (controller).
BROKER_PORT_STRIDE = 2
#: Instance k of a door (gateway, metrics, the alias service's mail door) listens on its base
#: port + 10(k-1): gateway 18080, 18090, …; metrics 18081, 18091, …; mail door 12525, 12535, ….
INSTANCE_PORT_STRIDE = 10

BROKER_COUNTS = (1, 3)
MAX_INSTANCES = 6  # the input topics have 3 to 6 partitions: more instances would idle
MAX_PORT_OFFSET = 40000

SERVICE_NAMES: tuple[str, ...] = ("alias", "policy", "delivery", "metrics", "gateway")
#: The port each service's instance 1 listens on (a door), if any.
SERVICE_BASE_PORTS: dict[str, int] = {
    "alias": SMTP_INBOUND_PORT, "metrics": METRICS_PORT, "gateway": GATEWAY_PORT,
}
#: Where services serve their runtime's Prometheus metrics (a block of its own: with offsets in
#: thousands, no port of one stack is a port of another) (``BSM_<SERVICE>_PROMETHEUS_PORT``;
#: the metrics service serves them on its own /metrics, behind its scrape token; the gateway's
#: public API does not serve them).
PROMETHEUS_BASE_PORTS: dict[str, int] = {
    "alias": 18182, "policy": 18183, "delivery": 18184, "gateway": 18185,
}


class TopologyError(ValueError):
    """A knob has a value the stack cannot run with; the message says which and why."""


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


def _whole(name: str, value: str | None, default: int) -> int:
    """``value`` as a whole number (``default`` when unset or blank)."""
    if value is None or not value.strip():
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise TopologyError(f"{name}={value!r} is not a whole number") from None


def parse_offset(value: str | None) -> int:
    offset = _whole(ENV_PORT_OFFSET, value, 0)
    if not 0 <= offset <= MAX_PORT_OFFSET:
        raise TopologyError(f"{ENV_PORT_OFFSET}={offset}: must be between 0 and "
                            f"{MAX_PORT_OFFSET} (ports stay below 65536)")
    return offset


def parse_brokers(value: str | None) -> int:
    n = _whole(ENV_BROKERS, value, 1)
    if n not in BROKER_COUNTS:
        raise TopologyError(f"{ENV_BROKERS}={n}: the local stack runs 1 broker or a cluster "
                            "of 3 (a quorum of 3 survives one node down; 2 would not)")
    return n


def parse_scale(value: str | None) -> dict[str, int]:
    """``"policy=2,delivery=2"`` → ``{"alias": 1, "policy": 2, "delivery": 2, …}``."""
    scale = {name: 1 for name in SERVICE_NAMES}
    if value is None or not value.strip():
        return scale
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep:
            raise TopologyError(f"{ENV_SCALE}: {part!r} is not service=count "
                                "(e.g. policy=2,delivery=2)")
        if name not in scale:
            raise TopologyError(f"{ENV_SCALE}: unknown service {name!r}; one of "
                                + ", ".join(SERVICE_NAMES))
        try:
            n = int(count.strip())
        except ValueError:
            raise TopologyError(f"{ENV_SCALE}: {part!r}: the count is not a whole number") \
                from None
        if not 1 <= n <= MAX_INSTANCES:
            raise TopologyError(f"{ENV_SCALE}: {name}={n}: between 1 and {MAX_INSTANCES} "
                                "(the input topics' partitions bound the useful instances)")
        scale[name] = n
    return scale


def format_scale(scale: Mapping[str, int]) -> str:
    return ",".join(f"{name}={scale.get(name, 1)}" for name in SERVICE_NAMES)


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    node_id: int
    port: int
    controller_port: int
    clustered: bool  # part of a 3-node cluster (names and folders carry the node id)

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}" if self.clustered else "kafka"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class Instance:
    service: str
    index: int  # 1-based
    port: int | None  # the door's port (HTTP or SMTP), None for pure consumers
    prometheus_port: int | None = None  # its own Prometheus endpoint

    @property
    def name(self) -> str:
        """``policy`` for the first instance (its pid file, log and ready file keep the names
        they always had), ``policy-2`` for the second, …"""
        return self.service if self.index == 1 else f"{self.service}-{self.index}"

    @property
    def marker(self) -> str:
        """What identifies this instance's process on its command line (``-X`` option)."""
        return f"bsm-instance={self.service}-{self.index}"

    @property
    def address(self) -> str:
        if self.port is None:
            return "-"
        if self.service == "alias":
            return f"smtp://{HOST}:{self.port}"
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where the instance's runtime metrics (lag, outbox, dead letters, retries) are."""
        if self.prometheus_port is not None:
            return f"http://{HOST}:{self.prometheus_port}/metrics"
        if self.service == "metrics" and self.port is not None:
            return f"http://{HOST}:{self.port}/metrics"
        return "-"

    @property
    def health_url(self) -> str | None:
        if self.service == "metrics" and self.port is not None:
            return f"http://{HOST}:{self.port}/health"
        return None

    def env(self) -> dict[str, str]:
        """Per-instance settings on top of ``.stack/env``: the door's and the Prometheus
        endpoint's ports."""
        out: dict[str, str] = {}
        if self.prometheus_port is not None:
            out[f"BSM_{self.service.upper()}_PROMETHEUS_PORT"] = str(self.prometheus_port)
        if self.port is None:
            return out
        if self.service == "alias":
            address = f"{HOST}:{self.port}"
            return {**out, "BSM_SMTP_INBOUND": address, "BSM_ALIAS_SMTP_INBOUND": address}
        return {**out, f"BSM_{self.service.upper()}_HTTP_PORT": str(self.port)}


@dataclass(frozen=True)
class Topology:
    port_offset: int = 0
    brokers: int = 1
    scale: Mapping[str, int] = field(default_factory=lambda: {n: 1 for n in SERVICE_NAMES})

    def __post_init__(self) -> None:
        parse_offset(str(self.port_offset))
        parse_brokers(str(self.brokers))
        parse_scale(format_scale(self.scale))

    # -- ports --------------------------------------------------------------------------------
    def port(self, base: int) -> int:
        return base + self.port_offset

    @property
    def pg_port(self) -> int:
        return self.port(PG_PORT)

    @property
    def smtp_relay_port(self) -> int:
        return self.port(SMTP_RELAY_PORT)

    def kafka_brokers(self) -> list[Broker]:
        clustered = self.brokers > 1
        return [
            Broker(n, self.port(KAFKA_PORT + BROKER_PORT_STRIDE * (n - 1)),
                   self.port(KAFKA_CONTROLLER_PORT + BROKER_PORT_STRIDE * (n - 1)), clustered)
            for n in range(1, self.brokers + 1)
        ]

    def instances(self, service: str | None = None) -> list[Instance]:
        names = [service] if service else list(SERVICE_NAMES)
        out: list[Instance] = []
        for name in names:
            base, prom = SERVICE_BASE_PORTS.get(name), PROMETHEUS_BASE_PORTS.get(name)
            for k in range(1, self.scale.get(name, 1) + 1):
                step = INSTANCE_PORT_STRIDE * (k - 1)
                out.append(Instance(name, k, None if base is None else self.port(base + step),
                                    None if prom is None else self.port(prom + step)))
        return out

    def instance(self, name: str) -> Instance:
        """An instance by its name (``policy``, ``policy-2``)."""
        for inst in self.instances():
            if inst.name == name:
                return inst
        known = ", ".join(i.name for i in self.instances())
        raise TopologyError(f"no instance {name!r} in this stack; running: {known}")

    def all_ports(self) -> list[tuple[str, int]]:
        """Every port the stack listens on, with what listens there."""
        ports = [("postgres", self.pg_port), ("mailsink", self.smtp_relay_port)]
        for b in self.kafka_brokers():
            ports += [(b.name, b.port), (f"{b.name} controller", b.controller_port)]
        ports += [(i.name, i.port) for i in self.instances() if i.port is not None]
        ports += [(f"{i.name} metrics", i.prometheus_port) for i in self.instances()
                  if i.prometheus_port is not None]
        return ports

    # -- addresses ----------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.kafka_brokers())

    @property
    def database_url(self) -> str:
        return f"postgresql://bsm:bsm@{HOST}:{self.pg_port}/bsm"

    def urls(self, service: str) -> list[str]:
        return [f"http://{HOST}:{i.port}" for i in self.instances(service)]

    def smtp_inbounds(self) -> list[str]:
        return [f"{HOST}:{i.port}" for i in self.instances("alias")]

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.replication_factor >= 3 else 1

    def describe(self) -> str:
        parts = [f"port offset {self.port_offset}",
                 f"{self.brokers} Kafka broker{'s' if self.brokers > 1 else ''}"]
        scaled = [f"{n}={c}" for n, c in self.scale.items() if c > 1]
        parts.append("scale " + (",".join(scaled) if scaled else "1 of each"))
        return ", ".join(parts)

    def env(self) -> dict[str, str]:
        """The addresses ``.stack/env`` publishes (instance 1 under the usual names, every
        instance under the plural names)."""
        gateway, metrics = self.urls("gateway"), self.urls("metrics")
        inbound = self.smtp_inbounds()
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "BSM_DATABASE_URL": self.database_url,
            "BSM_GATEWAY_URL": gateway[0],
            "BSM_METRICS_URL": metrics[0],
            "BSM_SMTP_INBOUND": inbound[0],
            "BSM_SMTP_RELAY": f"{HOST}:{self.smtp_relay_port}",
            "BSM_GATEWAY_HTTP_PORT": str(self.instances("gateway")[0].port),
            "BSM_METRICS_HTTP_PORT": str(self.instances("metrics")[0].port),
            "BSM_GATEWAY_URLS": ",".join(gateway),
            "BSM_METRICS_URLS": ",".join(metrics),
            "BSM_SMTP_INBOUNDS": ",".join(inbound),
            "BSM_KAFKA_BROKER_COUNT": str(self.brokers),
            "BSM_STACK_SCALE": format_scale(self.scale),
        }

    # -- record -------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"port_offset": self.port_offset, "brokers": self.brokers,
                           "scale": dict(self.scale)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Topology:
        data = json.loads(text)
        return cls(port_offset=int(data.get("port_offset", 0)),
                   brokers=int(data.get("brokers", 1)),
                   scale=parse_scale(format_scale(data.get("scale") or {})))


def resolve(environ: Mapping[str, str] | None = None, recorded: Topology | None = None) -> Topology:
    """The topology to use: each knob from the environment when it is set (an empty value
    means the default), else as recorded by the last ``up``, else the default."""
    environ = os.environ if environ is None else environ
    base = recorded or Topology()
    offset = parse_offset(environ[ENV_PORT_OFFSET]) if ENV_PORT_OFFSET in environ \
        else base.port_offset
    brokers = parse_brokers(environ[ENV_BROKERS]) if ENV_BROKERS in environ else base.brokers
    scale = parse_scale(environ[ENV_SCALE]) if ENV_SCALE in environ else dict(base.scale)
    return Topology(port_offset=offset, brokers=brokers, scale=scale)


def read_recorded(path: Path) -> Topology | None:
    try:
        return Topology.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as exc:
        raise TopologyError(f"{path} is unreadable ({exc}); delete it to start from the "
                            "defaults") from None
