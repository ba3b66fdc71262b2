"""Settings of the policy service (prefix ``BSM_POLICY_``; common keys without prefix)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from bsm_shared.quota import DailyLimitSettings
from bsm_shared.runtime.settings import ServiceSettings


class PolicySettings(ServiceSettings, DailyLimitSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_POLICY_", extra="ignore")

    order_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a message about an unknown order waits for a late order event "
        "before it is stopped as `unknown_order`.",
    )
    blob_dir: str = Field(
        default="",
        validation_alias=AliasChoices("BSM_BLOB_DIR", "blob_dir"),
        description="The attachment blob store (files named by sha256), where readable: GIF "
        "attachments are judged animated or not from their frames (C4). Empty: not read.",
    )
    sanction_strikes: int = Field(
        default=3, ge=1,
        description="Rejected seller messages (C2–C5, C9) within the window that move the "
        "seller one step up the sanction ladder (C10).",
    )
    sanction_window_days: int = Field(
        default=30, ge=1, description="The window strikes are counted in (C10)."
    )
    sanction_restriction_days: list[int] = Field(
        default=[5, 30],
        description="Length in days of each restriction step; the step after the last is a "
        "suspension until an operator lifts it (C10).",
    )
