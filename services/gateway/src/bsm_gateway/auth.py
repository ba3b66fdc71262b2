"""Bearer tokens and roles.

A token is an HS256 JWT signed with ``BSM_GATEWAY_TOKEN_KEY`` (PyJWT): ``sub`` is the party id,
``role`` one of :data:`ROLES`. The platform's identity service issues them in production; in
the local stack ``bsm token PARTY_ID --role …`` (and :func:`issue_token` in tests) does.

This module says who a request comes from; what that :class:`~.access.Principal` may do is
decided in :mod:`.access` and nowhere else.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from .access import REACHED, ROLES, Principal, Role  # noqa: F401 - re-exported

ISSUER = "bsm"
AUDIENCE = "bsm-gateway"


class AuthError(Exception):
    """The request carries no usable token (401) — the message says why."""


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
