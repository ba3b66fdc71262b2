"""What every router needs from a request: the caller (:mod:`..auth`'s bearer token, or the
same token in Amazon's ``x-amz-access-token`` header) and the service layer."""

# No `from __future__ import annotations`: FastAPI must see the Annotated aliases.

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..access import Principal

bearer = HTTPBearer(auto_error=False, description="`bsm token PARTY_ID --role …` prints one.")
amz_token = APIKeyHeader(name="x-amz-access-token", auto_error=False,
                         description="SP-API clients: the same token in Amazon's header.")


async def caller(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    amz: Annotated[str | None, Depends(amz_token)],
) -> Principal:
    return request.app.state.gateway.principal(cred.credentials if cred else amz)


async def optional_caller(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    return request.app.state.gateway.principal(cred.credentials) if cred else None


Caller = Annotated[Principal, Depends(caller)]
OptionalCaller = Annotated[Principal | None, Depends(optional_caller)]
