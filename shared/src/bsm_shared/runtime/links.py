"""Signed action links in mail ("no response needed", "report", E2/E4).

A link carries a compact token: ``<base64url(payload)>.<base64url(HMAC-SHA256)>`` where the
payload is ``action|message_id|party_id|expires_unix``. The delivery service puts links into
the mails it relays (:func:`action_url`); the gateway verifies them (both hold
``BSM_LINK_KEY``). A token names one action on one message for one party and expires; it
carries no personal data.

Only the canonical spelling of a token is accepted: unpadded base64url (RFC 4648 §5) whose
decoding encodes back to the same text, a payload of exactly four fields with the expiry as
plain decimal digits. Base64 decoders are lenient (extra ``=``, ``+``/``/`` of the standard
alphabet, ignored trailing bits), so without this one link would have many spellings that all
verify — a token must be one string, like the signature it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ACTIONS = frozenset({"no-response-needed", "report"})

#: The unpadded base64url alphabet; anything else (``=``, ``+``, ``/``, spaces) is not ours.
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
#: The expiry as :func:`make_token` writes it.
_DIGITS = re.compile(r"0|[1-9][0-9]{0,11}")
#: The latest expiry a token may name (the end of year 9999; later ones are not dates).
_MAX_EXPIRY = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
#: A token is short: four fields and a 32-byte MAC; more is not a token of ours.
MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True)
class ActionToken:
    action: str
    message_id: str
    party_id: str
    expires_at: datetime


class LinkError(ValueError):
    """A link token is malformed, forged or expired (the message says which)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Decode the canonical spelling only: the alphabet checked first, then the round trip
    (which refuses non-zero trailing bits, the last way to spell the same bytes twice)."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if _b64(data) != text:
        raise ValueError("not the canonical spelling")
    return data


def make_token(key: bytes, token: ActionToken) -> str:
    if token.action not in ACTIONS:
        raise ValueError(f"unknown action {token.action!r}")
    for part in (token.message_id, token.party_id):
        if "|" in part or not part:
            raise ValueError("ids are non-empty and cannot contain '|'")
    expires = int(token.expires_at.timestamp())
    if not 0 <= expires <= _MAX_EXPIRY:
        raise ValueError("the expiry is not a date a link can carry")
    payload = "|".join([token.action, token.message_id, token.party_id, str(expires)]).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def action_url(base_url: str, key: bytes, token: ActionToken) -> str:
    """The link a mail carries: the gateway's confirming page of ``token``."""
    return f"{base_url.rstrip('/')}/v1/links/{quote(make_token(key, token), safe='')}"


#: An action link as :func:`action_url` writes it, wherever it stands (a quoted reply).
_ACTION_LINK = re.compile(r"https?://[^\s\"'<>]{1,512}?/v1/links/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: What stands in a quoted reply where the recipient's link was.
LINK_REMOVED = "[link removed]"


def strip_action_links(text: str) -> str:
    """``text`` without the action links of any mail we sent (each replaced by
    :data:`LINK_REMOVED`). A link is its recipient's capability: one quoted in a reply from a
    mail client would otherwise travel to the other party, who could mark or report as them."""
    if "/v1/links/" not in text:
        return text
    return _ACTION_LINK.sub(LINK_REMOVED, text)


def read_token(key: bytes, text: str, *, now: datetime) -> ActionToken:
    """The token's content, if it is genuine, canonical and not expired."""
    if len(text) > MAX_TOKEN_CHARS or text.count(".") != 1:
        raise LinkError("malformed link")
    payload_b64, mac_b64 = text.split(".")
    try:
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except ValueError as exc:
        raise LinkError("malformed link") from exc
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise LinkError("this link was not issued by the marketplace")
    # Genuine from here on: what follows guards against our own (or an old) issuer's mistakes,
    # so that even then the answer is a refusal, never a crash.
    try:
        fields = payload.decode("utf-8").split("|")
    except UnicodeDecodeError as exc:
        raise LinkError("malformed link") from exc
    if len(fields) != 4:
        raise LinkError("malformed link")
    action, message_id, party_id, expires = fields
    if action not in ACTIONS or not message_id or not party_id:
        raise LinkError("malformed link")
    if not _DIGITS.fullmatch(expires) or int(expires) > _MAX_EXPIRY:
        raise LinkError("malformed link: the expiry is not a date")
    expires_at = datetime.fromtimestamp(int(expires), UTC)
    if now >= expires_at:
        raise LinkError("this link has expired; use the message center instead")
    return ActionToken(action, message_id, party_id, expires_at)


class LinkSettings(BaseSettings):
    """What a service that puts links into mail needs (delivery): the shared key and where the
    gateway's link pages are for the people who click them."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    link_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BSM_LINK_KEY", "link_key"),
        description="Base64 of the HMAC key of link tokens (the gateway verifies with the same "
        "key). Without it mail goes out without action links.")
    link_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BSM_LINK_BASE_URL", "BSM_GATEWAY_URL", "link_base_url"),
        description="The gateway's public base URL, as recipients reach it (`BSM_LINK_BASE_URL`;"
        " the local stack's `BSM_GATEWAY_URL` otherwise).")
    link_valid_days: float = Field(
        default=30.0, gt=0, le=3650,
        validation_alias=AliasChoices("BSM_LINK_VALID_DAYS", "link_valid_days"),
        description="How long a mail's links work.")


@dataclass(frozen=True)
class LinkIssuer:
    """Makes the links of one mail (delivery's adapter; the composer only places them)."""

    key: bytes
    base_url: str
    valid_for: timedelta

    @classmethod
    def from_settings(cls, settings: LinkSettings) -> "LinkIssuer | None":
        """None when the key or the base URL is not configured: mail then carries no links."""
        if settings.link_key is None or not settings.link_base_url:
            return None
        return cls(base64.b64decode(settings.link_key.get_secret_value()),
                   settings.link_base_url, timedelta(days=settings.link_valid_days))

    @classmethod
    def from_environment(cls) -> "LinkIssuer | None":
        return cls.from_settings(LinkSettings())

    def urls(self, message_id: str, party_id: str, actions: Iterable[str], *,
             now: datetime) -> dict[str, str]:
        """action → link for ``party_id`` on ``message_id``; an id a token cannot carry gets
        no links (the message center still offers the actions)."""
        expires = now + self.valid_for
        try:
            return {a: action_url(self.base_url, self.key,
                                  ActionToken(a, message_id, party_id, expires))
                    for a in actions}
        except ValueError:
            return {}
