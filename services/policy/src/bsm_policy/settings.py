"""Settings of the policy service (prefix ``BSM_POLICY_``; common keys without prefix)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bsm_shared.runtime.settings import ServiceSettings


class PolicySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_POLICY_", extra="ignore")

    order_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a message about an unknown order waits for a late order event "
        "before it is stopped as `unknown_order`.",
    )
