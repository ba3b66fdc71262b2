"""Settings of the alias service (prefix ``BSM_ALIAS_``; common keys without prefix)."""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bsm_shared.runtime.settings import ServiceSettings


class AliasSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_ALIAS_", extra="ignore")

    pii_key: SecretStr = Field(
        description="Base64 of the 32-byte key that wraps each party's data key (no default)."
    )
    party_wait_seconds: float = Field(
        default=10.0, ge=0, description="How long a message waits for a late party registration."
    )

    def pii_key_bytes(self) -> bytes:
        return base64.b64decode(self.pii_key.get_secret_value())
