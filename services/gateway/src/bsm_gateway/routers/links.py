"""Signed links from notification mail (E2, E4 from the email itself): a page that asks
first (a GET changes nothing), and the action on POST."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from bsm_shared.runtime import links

from .. import web
from ..access import Principal
from ..errors import ApiError
from ..models import Report
from ..service import Gateway


def router(gw: Gateway) -> APIRouter:
    r = APIRouter(tags=["links"])

    def link_token(token: str) -> links.ActionToken:
        try:
            return links.read_token(gw.settings.link_key_bytes(), token, now=gw.rt.clock())
        except links.LinkError as exc:
            raise ApiError(400, "invalid_link", str(exc)) from None

    @r.get("/v1/links/{token}", response_class=HTMLResponse,
           summary="Confirm an action from a mail link (no change on GET)")
    async def link_page(token: str) -> HTMLResponse:
        action = link_token(token)
        return HTMLResponse(web.link_page(action.action, token))

    @r.post("/v1/links/{token}", response_class=HTMLResponse,
            summary="Carry out the action a mail link names",
            description="Reports take the form fields `reason` (one of the fixed list) and "
            "`text` (required with `other`); a form without them is shown again, saying "
            "what is missing (`422`).")
    async def link_do(token: str,
                      reason: Annotated[str | None, Form(max_length=64)] = None,
                      text: Annotated[str | None, Form(max_length=1000)] = None) -> HTMLResponse:
        action = link_token(token)
        report = None
        if action.action == "report":
            try:
                report = Report.model_validate({"reason": reason, "text": text})
            except ValidationError:
                return HTMLResponse(web.link_page(action.action, token, invalid=True),
                                    status_code=422)
        row = await gw.message_row(action.message_id)
        role = (row["sender_role"] and ("buyer" if row["sender_role"] == "seller" else "seller")
                if row is not None else "buyer")
        # The signed link names the party (the message's recipient): it acts as that party.
        who = Principal(party_id=action.party_id, role=role)  # type: ignore[arg-type]
        await gw.act_on_message(who, action.message_id, action.action, report)
        return HTMLResponse(web.link_done(action.action))

    return r
