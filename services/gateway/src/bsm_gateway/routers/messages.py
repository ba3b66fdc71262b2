"""Messages: send (optionally validated first), read one, mark it *no response needed* (E2),
report it (E4), and lint a draft against the rule library."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

from bsm_shared.contract import payloads as p

from .. import access, policy
from ..access import Principal
from ..errors import ApiError
from ..models import Accepted, ActionAccepted, MessageView, Report, SendMessage
from ..service import Gateway
from .deps import Caller, OptionalCaller

SEND_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token."},
    403: {"description": "The role cannot send."},
    404: {"description": "The order or answered message is not yours."},
    413: {"description": "Over a size limit (`body_too_large`, `attachments_too_large`, "
          "`message_too_large`, `request_too_large`), with `limit` and `size`; nothing "
          "was sent."},
    422: {"description": "Invalid request, with each problem named (`unstorable_text`: "
          "U+0000 or a lone surrogate, with the field and the character)."},
    503: {"description": "The event log is unavailable; nothing was sent."},
}

VALIDATE_RESPONSES = {**SEND_RESPONSES, 422: {"description": (
    SEND_RESPONSES[422]["description"] + " With `?validate=true` (or `Prefer: "
    "handling=strict`): `policy_violations` with every violation the rules find "
    "(`violations`: rule, code, span, detail — the explanation — and remedy); nothing was "
    "sent.")}}


def strict(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``handling=strict``."""
    return any(part.strip().lower().replace(" ", "") == "handling=strict"
               for part in (prefer or "").replace(";", ",").split(","))


class DevPrincipal(Principal):
    """The walking skeleton's unauthenticated sender (local stack only): any role."""

    def __init__(self, party_id: str) -> None:
        object.__setattr__(self, "party_id", party_id)
        object.__setattr__(self, "role", "seller")

    @property
    def is_party(self) -> bool:
        return False


def router(gw: Gateway) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/messages", status_code=202, response_model=Accepted, tags=["messages"],
            summary="Send a message (new conversation or reply)", responses=VALIDATE_RESPONSES,
            description="Without validation the message is accepted and checked on its way "
            "(its outcome follows at `GET /v1/messages/{id}`). With `?validate=true`, or the "
            "header `Prefer: handling=strict` (RFC 7240), the gateway first runs the policy "
            "library's checks — the same as `POST /v1/messages:lint` — and refuses at once "
            "with `422 policy_violations` and every violation, sending nothing. The policy "
            "service still decides on the message that is sent.")
    async def send(body: SendMessage, who: OptionalCaller,
                   validate: Annotated[bool, Query(
                       description="Refuse at once (422, every violation) what the rules "
                       "would stop; send nothing then.")] = False,
                   prefer: Annotated[str | None, Header(
                       description="`handling=strict` (RFC 7240): as `validate=true`.")] = None,
                   ) -> Any:
        if who is None:
            if not (gw.settings.dev_unauthenticated and body.sender_party_id):
                raise ApiError(401, "unauthenticated",
                               "Send a bearer token (`Authorization: Bearer …`).")
            # Local stack only (BSM_GATEWAY_DEV_UNAUTHENTICATED): the body names the sender.
            who = DevPrincipal(body.sender_party_id)
        else:
            access.require(who, "send")
            access.require_sender(who, body.sender_party_id)
        if validate or strict(prefer):
            found, _ = await gw.violations(who, body)
            if found:
                raise policy.refusal(found, status=422)
        message_id = await gw.submit(who, body)
        return Accepted(message_id=message_id, status="accepted",
                        detail="The message is being checked and delivered; its outcome "
                        f"(Delivered or Bounced) follows at GET /v1/messages/{message_id}.")

    @r.get("/v1/messages/{message_id}", response_model=MessageView, tags=["messages"],
           summary="One message with its outcome")
    async def get_message(message_id: str, who: Caller) -> MessageView:
        row = await gw.readable_message(who, message_id)
        return gw.message_view(row, who, await gw.visible_parent(who, row))

    @r.post("/v1/messages/{message_id}/no-response-needed", status_code=202,
            response_model=ActionAccepted, tags=["messages"],
            summary="Mark a received message: no response needed (E2)")
    async def no_response_needed(message_id: str, who: Caller) -> ActionAccepted:
        return await gw.act_on_message(who, message_id, "no-response-needed")

    @r.post("/v1/messages/{message_id}/reports", status_code=202,
            response_model=ActionAccepted, tags=["messages"],
            summary="Report a received message with a reason (E4)",
            description="The reason is one of " + ", ".join(
                f"`{x}` ({p.REPORT_REASON_LABELS[x]})" for x in p.REPORT_REASONS)
            + "; `other` needs `text`. Only a message that reached you can be reported: "
            "any other answers `404`, as if it did not exist.")
    async def report(message_id: str, body: Report, who: Caller) -> ActionAccepted:
        return await gw.act_on_message(who, message_id, "report", body)

    @r.get("/v1/report-reasons", tags=["messages"],
           summary="The reasons a report may give (E4): the one fixed list")
    async def report_reasons() -> dict[str, Any]:
        return {"reasons": [{"reason": x, "label": p.REPORT_REASON_LABELS[x],
                             "needs_text": x == "other"} for x in p.REPORT_REASONS]}

    @r.post("/v1/messages:lint", tags=["policy"],
            summary="The violations a draft would get, sending nothing")
    async def lint(body: SendMessage, who: Caller) -> dict[str, Any]:
        access.require(who, "lint")
        violations, quota = await gw.violations(who, body)
        return {"ok": not violations, "violations": violations,
                "not_judged": policy.not_judged(quota) if who.role == "seller" else []}

    return r
