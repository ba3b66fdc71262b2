"""Signed VERP return paths: ``bounces+<message id>.<expiry>.<mac>@<domain>``.

A bounce report from the recipient's provider comes back to the envelope sender; the return
path names the message, and an HMAC over the message id and the expiry makes it unforgeable,
so nobody can attach a bounce to a message they did not receive, and after the expiry
(``verp_valid_days``) a report is refused instead of acted on. Delivery writes return paths
(key ``BSM_DELIVERY_VERP_KEY``), the alias service's mail door reads them (key
``BSM_ALIAS_VERP_KEY``, the same value): both use this module. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

PREFIX = "bounces"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class VerpError(ValueError):
    """A return path that is not ours, forged, or expired (the message says which)."""


class VerpExpired(VerpError):
    """A genuine return path whose expiry has passed (the door answers differently)."""


def _mac(key: bytes, message_id: str, expires: str) -> str:
    digest = hmac.new(key, f"{message_id}|{expires}".encode(), hashlib.sha256).digest()
    # 56 bits in lowercase base32 (some MTAs fold the case of local parts): with a uuid
    # message id the local part stays within RFC 5321's 64 octets; guessing a MAC online
    # against the door's rate of SMTP dialogues is out of reach at 2^56.
    return base64.b32encode(digest[:7]).decode().rstrip("=").lower()


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def return_path(key: bytes, message_id: str, expires_at: datetime, domain: str) -> str:
    """The envelope sender for one message (falls back to no VERP for ids unfit for it)."""
    if not _SAFE_ID.match(message_id):
        raise VerpError("message id cannot travel in a local part")
    expires = _b36(int(expires_at.timestamp()))
    return f"{PREFIX}+{message_id}.{expires}.{_mac(key, message_id, expires)}@{domain}"


def read_return_path(key: bytes, address: str, *, domain: str, now: datetime) -> str:
    """The message id a bounce report at ``address`` belongs to, if genuine and not expired."""
    local, _, at = address.strip().rpartition("@")
    if at.lower() != domain.lower() or not local.lower().startswith(PREFIX + "+"):
        raise VerpError("not a marketplace return path")
    try:
        message_id, expires, mac = local[len(PREFIX) + 1:].rsplit(".", 2)
        expires_at = datetime.fromtimestamp(int(expires.lower(), 36), UTC)
    except (ValueError, OverflowError, OSError) as exc:  # an absurd expiry overflows the clock
        raise VerpError("malformed return path") from exc
    # An MTA may fold the local part's case: the MAC and expiry are lowercase by construction;
    # a message id that no longer matches as written is tried lowercased (our ids are).
    for candidate in dict.fromkeys((message_id, message_id.lower())):
        if hmac.compare_digest(mac.lower(), _mac(key, candidate, expires.lower())):
            message_id = candidate
            break
    else:
        raise VerpError("return path not issued by the marketplace")
    if now >= expires_at:
        raise VerpExpired("return path expired")
    return message_id
