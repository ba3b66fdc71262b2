"""Selling Partner API Messaging v1 compatibility (``/messaging/v1``): the paths and shapes of
Amazon's published model, on bsm's pipeline. An integrator changes the base URL and keeps its
client code: the token goes in ``x-amz-access-token`` (or ``Authorization: Bearer``).

Where Amazon answers an empty action list or an opaque 403, bsm names the rule and the reason
(``errors`` beside the empty list; the error's ``details`` holds bsm's code and rule). A
typed message the rules would stop is refused at the door (``403``/``400``, one error per
violation naming its rule, code and span) instead of answering ``201`` and bouncing later.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .. import core, policy
from ..access import Principal
from ..errors import ApiError
from ..models import AttachmentIn, FileName, SendMessage
from ..service import Gateway
from .deps import Caller

HAL = "application/hal+json"


class SpAttachment(BaseModel):
    uploadDestinationId: str = Field(description="bsm: the attachment's sha256 from "
                                     "`POST /v1/attachments`.")
    fileName: FileName = Field(description="Name shown to the buyer (made one safe line, at "
                               "most 255 characters: `POST /v1/attachments` answers it).")


class SpMessage(BaseModel):
    """The union of the typed requests' fields (each type uses its own subset)."""

    model_config = ConfigDict(extra="ignore")
    text: str | None = Field(default=None, min_length=1, max_length=2000, description="Text.")
    attachments: list[SpAttachment] | None = Field(default=None, max_length=5,
                                                   description="Attachments.")
    coverageStartDate: AwareDatetime | None = Field(default=None, description="Warranty.")
    coverageEndDate: AwareDatetime | None = Field(default=None, description="Warranty.")


#: Fields each typed message accepts (and which must be present).
_REQUIRES: dict[str, str] = {"invoice": "attachments", "legalDisclosure": "attachments",
                             "warranty": "attachments"}
_SUBJECTS = {
    "confirmCustomizationDetails": "Customization details for your order",
    "confirmDeliveryDetails": "Delivery details for your order",
    "legalDisclosure": "Legal disclosure about your order",
    "confirmOrderDetails": "Details of your order",
    "confirmServiceDetails": "Service details for your order",
    "warranty": "Warranty information for your order",
    "digitalAccessKey": "Your digital access key",
    "unexpectedProblem": "An unexpected problem with your order",
    "invoice": "Invoice for your order",
}


#: Longest `text` each typed message takes (Amazon's model: most 2000, customization 800,
#: digital access keys 400).
_TEXT_MAX: dict[str, int] = {"confirmCustomizationDetails": 800, "confirmDeliveryDetails": 2000,
                             "confirmOrderDetails": 2000, "confirmServiceDetails": 2000,
                             "digitalAccessKey": 400, "unexpectedProblem": 2000}
#: Types that take attachments (those in `_REQUIRES` need at least one).
_ATTACHING = ("confirmCustomizationDetails", "legalDisclosure", "warranty", "digitalAccessKey",
              "invoice")


def request_schema(kind: str) -> dict[str, Any]:
    """The JSON schema (draft 4, as the model's ``Schema`` says) of a typed message's body, as
    bsm accepts it: the fields of Amazon's ``Create…Request`` with bsm's limits."""
    props: dict[str, Any] = {}
    if kind in _TEXT_MAX:
        props["text"] = {"type": "string", "minLength": 1, "maxLength": _TEXT_MAX[kind],
                         "description": "The text to the buyer, in the buyer's language "
                         "(GetAttributes); no HTML, no email addresses or phone numbers."}
    if kind in _ATTACHING:
        props["attachments"] = {
            "type": "array", "maxItems": 5, "minItems": 1 if _REQUIRES.get(kind) else 0,
            "description": "Files uploaded with `POST /v1/attachments`.",
            "items": {"type": "object", "required": ["uploadDestinationId", "fileName"],
                      "properties": {
                          "uploadDestinationId": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                                                  "description": "The upload's sha256."},
                          "fileName": {"type": "string", "minLength": 1,
                                       "description": "Name shown to the buyer: made one safe "
                                       "line of at most 255 characters."}}}}
    if kind == "warranty":
        for name in ("coverageStartDate", "coverageEndDate"):
            props[name] = {"type": "string", "format": "date-time",
                           "description": "Warranty coverage (RFC 3339 with a zone)."}
    return {"$schema": "http://json-schema.org/draft-04/schema#", "title": kind,
            "type": "object", "properties": props, "required": [_REQUIRES.get(kind, "text")]}


def router(gw: Gateway) -> APIRouter:
    r = APIRouter(prefix="/messaging/v1", tags=["Selling Partner API Messaging v1"])
    Markets = Annotated[list[str] | None, Query(
        alias="marketplaceIds", max_length=1, description="Accepted for compatibility.")]

    async def seller_order(who: Principal, order_id: str) -> Any:
        return await gw.seller_order(who, order_id)

    async def available(who: Principal, order: Any) -> tuple[list[str], list[core.Refusal]]:
        """The SP-API types whose contact reason the rule library allows now (on the facts
        policy decides with, C7 included); otherwise the reasons, each naming its rule (what
        Amazon leaves as an empty list)."""
        options, _ = await gw.contact_options(who, order, "en-US")
        names = [t for t, reason in core.SP_TYPES.items() if reason in options.available]
        refusals = [core.Refusal(v.rule, v.code, v.detail + (f" {v.remedy}" if v.remedy else ""))
                    for v in options.blocked_by]
        if not names and not refusals:
            refusals = [core.Refusal(v.rule, v.code, v.detail)
                        for r in options.reasons if r.reason in core.SP_TYPES.values()
                        for v in r.why_not[:1]][:3]
        return names, refusals

    def qs(markets: list[str] | None) -> str:
        return f"?marketplaceIds={markets[0]}" if markets else ""

    @r.get("/orders/{amazonOrderId}", summary="getMessagingActionsForOrder",
           responses={200: {"content": {HAL: {}}}})
    async def actions(amazonOrderId: str, who: Caller, markets: Markets = None) -> Any:
        order = await seller_order(who, amazonOrderId)
        names, refusals = await available(who, order)
        base = f"/messaging/v1/orders/{amazonOrderId}"
        q = qs(markets)
        body: dict[str, Any] = {
            "_links": {"self": {"href": base + q},
                       "actions": [{"href": f"{base}/messages/{n}{q}", "name": n}
                                   for n in names]},
            "_embedded": {"actions": [
                {"_links": {"self": {"href": f"{base}/messages/{n}{q}", "name": n},
                            "schema": {"href": f"{base}/messages/{n}/schema", "name": n}},
                 "payload": {"name": n}} for n in names]},
        }
        if refusals:
            body["errors"] = [{"code": "Unauthorized", "message": f.message,
                               "details": f"{f.code} (rule {f.rule})"} for f in refusals]
        return JSONResponse(body, media_type=HAL)

    @r.get("/orders/{amazonOrderId}/attributes", summary="GetAttributes")
    async def attributes(amazonOrderId: str, who: Caller, markets: Markets = None) -> Any:
        order = await seller_order(who, amazonOrderId)
        return {"buyer": {"locale": order["buyer_locale"] or "en-US"}}

    def typed(kind: str) -> None:
        async def send(amazonOrderId: str, who: Caller,
                       body: Annotated[SpMessage, Body()], markets: Markets = None) -> Any:
            await seller_order(who, amazonOrderId)
            text = body.text or ""
            if kind == "warranty" and (body.coverageStartDate or body.coverageEndDate):
                text += (f"\n\nWarranty coverage: {body.coverageStartDate or '—'} – "
                         f"{body.coverageEndDate or '—'}").strip()
            try:
                message = SendMessage(
                    order_id=amazonOrderId,
                    contact_reason=core.SP_TYPES[kind],  # type: ignore[arg-type]
                    subject=_SUBJECTS[kind], text=text or None, channel="api",
                    attachments=[AttachmentIn(sha256=a.uploadDestinationId, filename=a.fileName)
                                 for a in body.attachments or []],
                )
            except ValidationError as exc:
                raise ApiError(400, "invalid_request", "; ".join(
                    e["msg"] for e in exc.errors())) from None
            # The door refuses at once what the rules would stop (an integrator has no other
            # channel to learn why): the policy library's eligibility and lint, the one path
            # of `POST /v1/messages:lint`; 403 when sending is not allowed now, 400 when the
            # content must change; one error per violation (rule, code, span). Policy still
            # decides on what is sent.
            found, _ = await gw.violations(who, message)
            if found:
                raise policy.refusal(found)
            need = _REQUIRES.get(kind, "text")
            if need == "text" and not body.text:
                raise ApiError(400, "text_required", f"A {kind} message needs `text`.")
            if need == "attachments" and not body.attachments:
                raise ApiError(400, "attachments_required",
                               f"A {kind} message needs `attachments`.")
            limit = _TEXT_MAX.get(kind)
            if body.text and limit and len(body.text) > limit:
                raise ApiError(400, "text_too_long",
                               f"A {kind} message's text has at most {limit} characters.")
            if body.attachments and kind not in _ATTACHING:
                raise ApiError(400, "attachments_not_accepted",
                               f"A {kind} message takes no attachments.")
            message_id = await gw.submit(who, message)
            # Amazon answers 201 with an empty body; bsm adds where to follow the outcome.
            return JSONResponse({"x-bsm-message-id": message_id}, status_code=201,
                                headers={"Location": f"/v1/messages/{message_id}"})

        r.add_api_route(f"/orders/{{amazonOrderId}}/messages/{kind}", send, methods=["POST"],
                        summary=kind, status_code=201, name=kind)

        async def schema(amazonOrderId: str, who: Caller, markets: Markets = None) -> Any:
            await seller_order(who, amazonOrderId)  # the action's links are the order seller's
            return {"_links": {"self": {"href": f"/messaging/v1/orders/{amazonOrderId}/messages/"
                                        f"{kind}/schema"}},
                    "payload": request_schema(kind)}

        r.add_api_route(f"/orders/{{amazonOrderId}}/messages/{kind}/schema", schema,
                        methods=["GET"], summary=f"{kind}: the JSON schema of its body",
                        name=f"{kind}_schema")

    for kind in core.SP_TYPES:
        typed(kind)
    return r
