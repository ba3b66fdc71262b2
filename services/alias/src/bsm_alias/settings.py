"""Settings of the alias service (prefix ``BSM_ALIAS_``; common keys without prefix)."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bsm_shared.contract.limits import MAX_MAIL_BYTES
from bsm_shared.runtime.settings import ServiceSettings


class AliasSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_ALIAS_", extra="ignore")

    pii_key: SecretStr = Field(
        description="Base64 of the 32-byte key that wraps each party's data key (no default)."
    )
    party_wait_seconds: float = Field(
        default=10.0, ge=0, description="How long a message waits for a late party registration."
    )

    transit_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("BSM_ALIAS_TRANSIT_KEY", "BSM_TRANSIT_KEY"),
        description="Base64 of the 32-byte key that opens sealed seller settings "
        "(`bsm_shared.runtime.transit`). Without it, sealed authorized/blocked senders are "
        "ignored (logged), plaintext ones still apply.",
    )
    smtp_inbound: str = Field(
        default="",
        validation_alias=AliasChoices("BSM_ALIAS_SMTP_INBOUND", "BSM_SMTP_INBOUND"),
        description="host:port the mail door listens on (empty: no door, e.g. in tests of the "
        "consumer alone).",
    )
    blob_dir: str = Field(
        default=".stack/blobs",
        validation_alias=AliasChoices("BSM_ALIAS_BLOB_DIR", "BSM_BLOB_DIR"),
        description="Folder of the local blob store (attachments by SHA-256).",
    )
    max_message_bytes: int = Field(
        default=MAX_MAIL_BYTES, ge=1024, le=MAX_MAIL_BYTES,
        description="Largest mail the door accepts in the SMTP dialogue (the `SIZE` it "
        "announces; `552 5.3.4` above it): `bsm_shared.contract.limits.MAX_MAIL_BYTES` unless "
        "lowered. What a mail holds is then judged against the contract's limits (docs/mail.md).",
    )
    spf_timeout_seconds: float = Field(default=5.0, gt=0, description="SPF and DKIM DNS timeout.")
    dns_zone: str = Field(
        default="",
        description="A zone file (RFC 1035 master format) whose records answer every DNS lookup "
        "of the door's SPF and DKIM checks instead of the network; a name it does not hold has "
        "no records. Empty (production): the real DNS. The local stack sets it to "
        "`.stack/dns.zone`, where the `.example` documentation domains allow loopback by SPF.",
    )
    verp_key: SecretStr | None = Field(
        default=None,
        description="Base64 of the HMAC key of VERP return paths: the same value as "
        "`BSM_DELIVERY_VERP_KEY`. The door accepts bounce reports only at a return path whose "
        "MAC verifies with it; without it every report is refused (550 5.7.1).",
    )

    def verp_key_bytes(self) -> bytes | None:
        return base64.b64decode(self.verp_key.get_secret_value()) if self.verp_key else None

    def transit_key_bytes(self) -> bytes | None:
        if self.transit_key is None:
            return None
        return base64.b64decode(self.transit_key.get_secret_value())

    def inbound_address(self) -> tuple[str, int] | None:
        if not self.smtp_inbound:
            return None
        host, _, port = self.smtp_inbound.rpartition(":")
        return host or "127.0.0.1", int(port)

    def pii_key_bytes(self) -> bytes:
        return base64.b64decode(self.pii_key.get_secret_value())
