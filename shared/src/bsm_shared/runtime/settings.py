"""Settings every service shares, read from the environment (only in a composition root).

Common keys have no prefix (they are the keys ``.stack/env`` writes); a service's own keys have
its prefix, e.g. ``BSM_ALIAS_SIGNING_KEY``. Secrets are ``SecretStr`` and have no default.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..contract.signing import Signer, Verifier, load_private_key
from ..topics import TopicNames
from .keyring import Keyring
from .loop import EventLoop


#: SMTP connections delivery's worker uses at once by default (``BSM_DELIVERY_SMTP_CONNECTIONS``):
#: mails in flight, each waiting for the relay's ``250``, which a relay gives only once the mail
#: is on its disk. With 4, the stack's sink (an fsync a mail) held end-to-end throughput to
#: ≈ 115 msg/s on a box with CPU to spare; 16 gave ≈ 160 (``make bench``). Postfix's own client
#: opens up to 20 per destination. Also the chaos checker's bound: at most this many mails sent
#: again per delivery kill (one in flight per connection).
DEFAULT_SMTP_CONNECTIONS = 16


def _common(name: str) -> Any:
    return AliasChoices(name, name.lower())


class ServiceSettings(BaseSettings):
    """Base for each service's settings class (which sets ``env_prefix``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=_common("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers.",
    )
    database_url: SecretStr = Field(
        validation_alias=_common("BSM_DATABASE_URL"),
        description="PostgreSQL URL; the service keeps its tables in its own schema.",
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=_common("BSM_TOPIC_PREFIX"),
        description="Prefix of every topic and consumer group (isolated copies of the system).",
    )
    mail_domain: str = Field(
        default="marketplace.example",
        validation_alias=_common("BSM_MAIL_DOMAIN"),
        description="The marketplace mail domain aliases live at.",
    )
    trusted_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        validation_alias=_common("BSM_TRUSTED_KEYS"),
        description='JSON {"producer": ["<base64 Ed25519 public key>", ...]}.',
    )
    signing_key: SecretStr = Field(
        description="Base64 of the service's 32-byte Ed25519 private key (no default)."
    )
    db_schema: str = Field(default="", description="PostgreSQL schema (default: the service name).")
    db_pool_size: int = Field(default=5, ge=1, le=50, description="Connection pool size.")
    db_runtime_role: str = Field(
        default="",
        description="If set, the service's connections work as this (NOLOGIN) role after the "
        "migrations ran as the login role: least privilege at run time.",
    )
    log_level: str = Field(default="INFO", description="Log level.")
    event_loop: EventLoop = Field(
        default="uvloop",
        validation_alias=_common("BSM_EVENT_LOOP"),
        description="The event loop the service runs on: `uvloop` (libuv; the loop's own work "
        "is a fraction of asyncio's) or `asyncio` (the standard library's, to rule uvloop out "
        "when chasing a problem).",
    )
    prometheus_port: int = Field(
        default=0, ge=0, le=65535,
        description="Serve the runtime's Prometheus metrics on this port (0: not served; the "
        "services with an HTTP API serve them on their own `/metrics`).",
    )
    startup_wait_seconds: float = Field(
        default=120.0, ge=0,
        description="How long a starting service waits for PostgreSQL to accept connections "
        "before it gives up (exits).",
    )
    max_event_retries: int = Field(
        default=5, ge=1,
        description="Attempts of one event failing with a transient error while the database "
        "answers, before it is dead-lettered (`retries_exhausted`).",
    )
    fetch_max_wait_ms: int = Field(
        default=100, ge=1, le=500,
        description="Consumer linger, while events flow (batches less than twice this apart): "
        "how long the broker may hold a fetch to gather `fetch_min_bytes` before it answers "
        "with what it has. Per-batch work (a transaction, a publish, an offset commit, a fetch "
        "over every assigned partition) costs the same for one event as for fifty; without "
        "linger a moderate load arrives one or two events at a time and pays it per event "
        "(make bench at 60 msg/s: 32 ms of CPU a message and p99 1.3 s without, 25 ms and "
        "p99 0.5 s with 100 ms). After a second without a batch, fetches answer at the first "
        "record again, so a lone message is not held (`bsm_shared.runtime.kafka.FetchLinger`).",
    )
    fetch_min_bytes: int = Field(
        default=16384, ge=1,
        description="Consumer linger: the bytes a lingering fetch waits for, at most "
        "`fetch_max_wait_ms` (10 to 25 events); under load it answers as soon as they are "
        "there.",
    )
    outbox_retention_hours: float = Field(
        default=168.0, gt=0, description="How long published outbox rows are kept."
    )
    processed_retention_days: float = Field(
        default=30.0, gt=0,
        description="How long processed event ids are kept (redeliveries older than this would "
        "apply twice).",
    )
    keyring_key: SecretStr | None = Field(
        default=None,
        validation_alias=_common("BSM_KEYRING_KEY"),
        description="Base64 of the 32-byte key-encryption key of the party keyring "
        "(`bsm_shared.runtime.keyring`); required by the services that seal or open personal "
        "data in events (alias, policy, delivery, gateway).",
    )

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    def topics(self) -> TopicNames:
        return TopicNames(prefix=self.topic_prefix)

    def signer(self, producer: str) -> Signer:
        return Signer(producer, load_private_key(self.signing_key.get_secret_value()))

    def verifier(self) -> Verifier:
        return Verifier.from_b64(self.trusted_keys)

    def keyring(self) -> Keyring:
        """The party keyring; a clear error when its key is missing (a secret has no default)."""
        if self.keyring_key is None:
            raise ValueError(
                "BSM_KEYRING_KEY is not set: this service seals or opens personal data in "
                "events and needs the keyring's key (the local stack writes it to "
                ".stack/secrets.env)"
            )
        return Keyring(base64.b64decode(self.keyring_key.get_secret_value()))
