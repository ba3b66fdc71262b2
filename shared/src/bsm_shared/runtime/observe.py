"""What makes a stuck service visible: the runtime's Prometheus metrics.

Every service's runtime counts what it applied, dead-lettered and retried, and keeps gauges of
its consumer lag, its outbox (pending rows, age of the oldest unpublished one, rows that failed
for good) and its parked (deferred) events. The metrics service serves them on its ``/metrics``
(behind its scrape token); the others, the gateway included (its API is public), on
``BSM_<SERVICE>_PROMETHEUS_PORT`` when it is set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RuntimeMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.applied = Counter("bsm_events_applied", "Events whose effects were committed",
                               ["consumer"], registry=r)
        self.duplicates = Counter("bsm_events_duplicate",
                                  "Redelivered events dropped by processed_events",
                                  ["consumer"], registry=r)
        self.dead_letters = Counter(
            "bsm_dead_letters", "Events sent to a dead-letter topic, by error code",
            ["consumer", "topic", "code"], registry=r)
        self.retries = Counter(
            "bsm_retries", "Transient failures retried (batch, sweep, outbox, worker)",
            ["consumer", "kind"], registry=r)
        self.retry_attempt = Gauge(
            "bsm_retry_attempt", "Consecutive failed attempts of the work in hand (0: healthy)",
            ["consumer", "kind"], registry=r)
        self.lag = Gauge("bsm_consumer_lag", "Records not yet committed by this instance's "
                         "consumer group member, per assigned partition",
                         ["group", "topic", "partition"], registry=r)
        self.outbox_pending = Gauge("bsm_outbox_pending", "Outbox rows not yet published",
                                    ["schema"], registry=r)
        self.outbox_oldest = Gauge(
            "bsm_outbox_oldest_unpublished_seconds",
            "Age of the oldest outbox row not yet published (0 when none)", ["schema"],
            registry=r)
        self.outbox_published = Counter("bsm_outbox_published", "Outbox rows published",
                                        ["schema"], registry=r)
        self.outbox_failed = Counter(
            "bsm_outbox_failed", "Outbox rows Kafka refused for good (kept, marked failed)",
            ["schema"], registry=r)
        self.deferred = Gauge("bsm_deferred_pending", "Events parked for a late prerequisite",
                              ["schema"], registry=r)
        self.batch_events = Histogram(
            "bsm_batch_events", "Records per consumed batch (small batches at moderate load pay "
            "the per-batch work, a transaction, a publish and an offset commit, per event)",
            ["consumer"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500), registry=r)
        self.pruned = Counter("bsm_rows_pruned", "Rows removed by the retention rules",
                              ["schema", "table"], registry=r)
