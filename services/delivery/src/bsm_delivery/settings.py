"""Settings of the delivery service (prefix ``BSM_DELIVERY_``; common keys without prefix)."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bsm_shared.runtime.settings import DEFAULT_SMTP_CONNECTIONS, ServiceSettings


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
        default=DEFAULT_SMTP_CONNECTIONS, ge=1, le=64,
        description="SMTP connections a worker batch uses at once (mails in flight).",
    )

    verp_key: SecretStr | None = Field(
        default=None,
        description="Base64 of the HMAC key of VERP return paths (`bounces+<id>.<exp>.<mac>@`). "
        "Without it the envelope sender is plain `bounces@<domain>`.",
    )
    verp_valid_days: float = Field(
        default=14.0, gt=0, description="How long a return path accepts bounce reports."
    )
    dkim_key: SecretStr | None = Field(
        default=None,
        description="Base64 of the PEM RSA private key that DKIM-signs outgoing mail for the "
        "marketplace domain. Without it mail goes out unsigned.",
    )
    dkim_selector: str = Field(default="bsm1", description="DKIM selector (`<sel>._domainkey`).")
    blob_dir: str = Field(
        default=".stack/blobs",
        validation_alias=AliasChoices("BSM_BLOB_DIR", "bsm_blob_dir", "blob_dir"),
        description="The attachments' blob store (by sha256), shared with the alias service's "
        "mail door and the gateway: relayed mail carries the attachments.",
    )

    transit_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BSM_DELIVERY_TRANSIT_KEY", "BSM_TRANSIT_KEY"),
        description="Base64 of the key that opens sealed seller settings (the customer-service "
        "address of bounce notices). Without it a sealed one is ignored.",
    )

    @field_validator("dkim_key")
    @classmethod
    def _an_rsa_private_key(cls, value: SecretStr | None) -> SecretStr | None:
        """A key that cannot sign is a configuration error at start, not a bounce a mail."""
        if value is not None:
            from . import dkim_sign  # cryptography loads only when a key is configured

            try:
                dkim_sign.private_key(base64.b64decode(value.get_secret_value()))
            except (ValueError, TypeError) as exc:  # TypeError: a key behind a password
                raise ValueError(f"not the base64 of a PEM RSA private key: {exc}") from None
        return value

    def transit_key_bytes(self) -> bytes | None:
        return base64.b64decode(self.transit_key.get_secret_value()) if self.transit_key else None

    def verp_key_bytes(self) -> bytes | None:
        return base64.b64decode(self.verp_key.get_secret_value()) if self.verp_key else None

    def dkim_key_pem(self) -> bytes | None:
        return base64.b64decode(self.dkim_key.get_secret_value()) if self.dkim_key else None

    def pii_key_bytes(self) -> bytes:
        return base64.b64decode(self.pii_key.get_secret_value())

    def relay_address(self) -> tuple[str, int]:
        host, _, port = self.smtp_relay.rpartition(":")
        return host, int(port)
