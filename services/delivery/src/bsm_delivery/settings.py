"""Settings of the delivery service (prefix ``BSM_DELIVERY_``; common keys without prefix)."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bsm_shared.runtime.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_DELIVERY_", extra="ignore")

    pii_key: SecretStr = Field(
        description="Base64 of the 32-byte key that wraps each party's data key (no default)."
    )
    smtp_relay: str = Field(
        default="127.0.0.1:12526",
        validation_alias=AliasChoices("BSM_DELIVERY_SMTP_RELAY", "BSM_SMTP_RELAY"),
        description="host:port of the outbound SMTP relay (the local mail sink in the stack).",
    )
    max_attempts: int = Field(default=8, ge=1, description="Delivery attempts before bouncing.")
    first_retry_seconds: float = Field(default=5.0, gt=0, description="First retry delay.")
    batch_size: int = Field(default=200, ge=1, le=1000, description="Mails per worker batch.")
    smtp_connections: int = Field(
        default=4, ge=1, le=64, description="SMTP connections a worker batch uses at once."
    )

    def pii_key_bytes(self) -> bytes:
        return base64.b64decode(self.pii_key.get_secret_value())

    def relay_address(self) -> tuple[str, int]:
        host, _, port = self.smtp_relay.rpartition(":")
        return host, int(port)
