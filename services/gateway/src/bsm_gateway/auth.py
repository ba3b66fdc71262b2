"""Bearer tokens and roles.

A token is an HS256 JWT signed with ``BSM_GATEWAY_TOKEN_KEY`` (PyJWT): ``sub`` is the party id,
``role`` one of :data:`ROLES`. The platform's identity service issues them in production; in
the local stack ``bsm token PARTY_ID --role …`` (and :func:`issue_token` in tests) does.

What each role may do is decided here and nowhere else (:class:`Principal`'s methods), so the
routes only ask.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

import jwt

Role = Literal["seller", "buyer", "dispute", "operator"]
ROLES: tuple[str, ...] = get_args(Role)
ISSUER = "bsm"
AUDIENCE = "bsm-gateway"
#: The read model's status of a message that reached its recipient (a provider's later bounce
#: report of the email copy keeps it: the message is in the recipient's message center).
REACHED = "delivered"


class AuthError(Exception):
    """The request carries no usable token (401) — the message says why."""


@dataclass(frozen=True)
class Principal:
    party_id: str
    role: Role

    @property
    def is_party(self) -> bool:
        """A buyer or seller: sees and writes only their own conversations."""
        return self.role in ("seller", "buyer")

    @property
    def reads_everything(self) -> bool:
        return self.role == "dispute"

    def may_read(self, *party_ids: str | None) -> bool:
        """May open a conversation between these parties (which of its messages it shows is
        :meth:`may_see_message`'s answer)."""
        return self.reads_everything or (self.is_party and self.party_id in party_ids)

    def may_see_message(self, sender: str | None, recipient: str | None, status: str) -> bool:
        """May see one message — in any view, quote, count or download: its sender always;
        its recipient only once it reached them (``delivered``); the dispute team always.

        A message that did not reach its recipient — stopped by the alias stage or the policy
        (a phone number, her own opt-out, a stranger naming her as recipient), failed in
        delivery, or still on its way — does not exist for the recipient: showing it would
        deliver what the rules refused. (``readmodel.visible_sql`` is this rule in SQL.)"""
        if self.reads_everything:
            return True
        if not self.is_party:
            return False
        return self.party_id == sender or (self.party_id == recipient and status == REACHED)


def issue_token(
    key: bytes, party_id: str, role: str = "seller", *, now: datetime | None = None,
    ttl: timedelta = timedelta(hours=12),
) -> str:
    """A bearer token for ``party_id`` acting as ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not party_id or len(party_id) > 128:
        raise ValueError("a party id has 1 to 128 characters")
    issued = now or datetime.now(UTC)
    claims = {"sub": party_id, "role": role, "iss": ISSUER, "aud": AUDIENCE,
              "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, key, algorithm="HS256")


def read_token(key: bytes, token: str) -> Principal:
    """The principal a genuine, unexpired token names (or :class:`AuthError`)."""
    try:
        claims = jwt.decode(
            token, key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("the token has expired; get a new one") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("the token is not valid: it was not issued by the platform") from exc
    role = claims.get("role")
    sub = claims.get("sub")
    if role not in ROLES or not isinstance(sub, str) or not sub:
        raise AuthError("the token names no known role or party")
    return Principal(party_id=sub, role=role)


def token_key_from_environment(start: Path | None = None) -> bytes:
    """``BSM_GATEWAY_TOKEN_KEY`` from the environment or, in a checkout with the local stack
    up, from ``.stack/secrets.env`` (for ``bsm token``)."""
    value = os.environ.get("BSM_GATEWAY_TOKEN_KEY")
    if not value:
        here = start or Path.cwd()
        for folder in (here, *here.parents):
            secrets = folder / ".stack" / "secrets.env"
            if secrets.is_file():
                for line in secrets.read_text().splitlines():
                    name, sep, raw = line.partition("=")
                    if sep and name.strip() == "BSM_GATEWAY_TOKEN_KEY":
                        value = raw.strip().strip("'\"")
                break
    if not value:
        raise LookupError("BSM_GATEWAY_TOKEN_KEY is not set and no .stack/secrets.env holds it")
    return base64.b64decode(value)
