"""Signed action links in notification mail ("no response needed", "report", E2/E4).

A link carries a compact token: ``<base64url(payload)>.<base64url(HMAC-SHA256)>`` where the
payload is ``action|message_id|party_id|expires_unix``. The delivery service puts links into
the mails it sends; the gateway verifies them (both hold ``BSM_LINK_KEY``). A token names one
action on one message for one party and expires; it carries no personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

ACTIONS = frozenset({"no-response-needed", "report"})


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
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, token: ActionToken) -> str:
    if token.action not in ACTIONS:
        raise ValueError(f"unknown action {token.action!r}")
    for part in (token.message_id, token.party_id):
        if "|" in part:
            raise ValueError("ids cannot contain '|'")
    payload = "|".join(
        [token.action, token.message_id, token.party_id, str(int(token.expires_at.timestamp()))]
    ).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(key: bytes, text: str, *, now: datetime) -> ActionToken:
    """The token's content, if it is genuine and not expired."""
    try:
        payload_b64, mac_b64 = text.split(".", 1)
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except ValueError as exc:
        raise LinkError("malformed link") from exc
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise LinkError("this link was not issued by the marketplace")
    try:
        action, message_id, party_id, expires = payload.decode().split("|")
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except ValueError as exc:
        raise LinkError("malformed link") from exc
    if now >= expires_at:
        raise LinkError("this link has expired; use the message center instead")
    return ActionToken(action, message_id, party_id, expires_at)
