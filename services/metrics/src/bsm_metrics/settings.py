"""Settings of the metrics service (prefix ``BSM_METRICS_``; common keys without prefix)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bsm_shared.quota import DailyLimitSettings
from bsm_shared.runtime.settings import ServiceSettings


class MetricsSettings(ServiceSettings, DailyLimitSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_METRICS_", extra="ignore")

    http_host: str = Field(default="127.0.0.1", description="HTTP listen address.")
    http_port: int = Field(default=18081, description="HTTP port of the read API.")
    token: SecretStr = Field(
        min_length=16,
        description="The service credential (`BSM_METRICS_TOKEN`): every request but `/health` "
        "must carry it as `Authorization: Bearer …` (the gateway's proxy, `bsm dispute`). No "
        "default: `make up` generates one into `.stack/secrets.env`.",
    )
    scrape_token: SecretStr | None = Field(
        default=None, min_length=16,
        description="Optional second credential that opens `/metrics` only "
        "(`BSM_METRICS_SCRAPE_TOKEN`): for a Prometheus server, which then need not hold "
        "the token that reads timelines.",
    )
    db_runtime_role: str = Field(
        default="bsm_record_writer",
        description="The role the service works as: it may INSERT into the archive, never "
        "UPDATE, DELETE or TRUNCATE it (G1).",
    )
