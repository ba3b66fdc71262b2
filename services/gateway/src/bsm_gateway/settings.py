"""Settings of the gateway (prefix ``BSM_GATEWAY_``; common keys without prefix)."""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bsm_shared.contract.limits import MAX_ATTACHMENT_BYTES
from bsm_shared.runtime.settings import ServiceSettings


def _key(secret: SecretStr) -> bytes:
    return base64.b64decode(secret.get_secret_value())


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BSM_GATEWAY_", extra="ignore")

    http_host: str = Field(default="127.0.0.1", description="HTTP listen address.")
    http_port: int = Field(default=18080, description="HTTP port.")
    token_key: SecretStr = Field(
        description="Base64 of the 32-byte key bearer tokens (HS256 JWTs) are signed with."
    )
    link_key: SecretStr = Field(
        validation_alias=AliasChoices("BSM_LINK_KEY", "bsm_link_key", "link_key"),
        description="Base64 key of the signed action links in notification mail (shared with "
        "delivery).",
    )
    blob_dir: str = Field(
        default=".stack/blobs",
        validation_alias=AliasChoices("BSM_BLOB_DIR", "bsm_blob_dir", "blob_dir"),
        description="Where attachments are stored, by sha256.",
    )
    dev_unauthenticated: bool = Field(
        default=False,
        description="Local stack only: accept `POST /v1/messages` without a token when the body "
        "names `sender_party_id` (the walking skeleton's callers). Never in production.",
    )
    max_attachment_bytes: int = Field(
        default=MAX_ATTACHMENT_BYTES, gt=0, le=MAX_ATTACHMENT_BYTES,
        description="Largest file one upload may be (bytes); at most, and by default, what one "
        "message may carry (`bsm_shared.contract.limits.MAX_ATTACHMENT_BYTES`). Lower only to "
        "test the limit.")

    def token_key_bytes(self) -> bytes:
        return _key(self.token_key)

    def link_key_bytes(self) -> bytes:
        return _key(self.link_key)
