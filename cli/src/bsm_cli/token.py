"""``bsm token PARTY_ID [--role seller|buyer|dispute|operator]``: print a bearer token for the
gateway (local stack and tests; in production the platform's identity service issues them).

The key is ``BSM_GATEWAY_TOKEN_KEY`` from the environment or the checkout's
``.stack/secrets.env``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bsm_gateway.auth import ROLES, issue_token, token_key_from_environment


def token(
    party_id: Annotated[str, typer.Argument(help="The party the token names.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")] = "seller",
    hours: Annotated[int, typer.Option("--hours", min=1, max=24 * 30,
                                       help="Validity in hours.")] = 12,
) -> None:
    """Print a bearer token for PARTY_ID acting as ROLE."""
    from datetime import timedelta

    if role not in ROLES:
        typer.echo(f"Unknown role {role!r}; one of: {', '.join(ROLES)}.", err=True)
        raise typer.Exit(2)
    try:
        key = token_key_from_environment()
    except LookupError as exc:
        typer.echo(f"{exc}. Is the stack up (`make up`)?", err=True)
        raise typer.Exit(2) from None
    typer.echo(issue_token(key, party_id, role, ttl=timedelta(hours=hours)))
