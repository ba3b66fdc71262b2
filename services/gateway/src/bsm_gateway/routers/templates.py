"""Templates (E5): a seller's own and the platform's, in the buyer's language."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

from typing import Annotated

from fastapi import APIRouter, Query

from .. import access
from ..models import Template, TemplateIn
from ..service import Gateway
from .deps import Caller


def router(gw: Gateway) -> APIRouter:
    r = APIRouter(tags=["templates"])

    @r.get("/v1/templates", response_model=list[Template],
           summary="Your templates and the platform's, in the buyer's language",
           description="With `order_id` (the order's buyer's marketplace language) or "
           "`locale`, every template comes in that language when it has it; otherwise in "
           "English, else the language it was written in, with `fell_back: true` and "
           "`requested_language` saying so.")
    async def templates(who: Caller, order_id: Annotated[str | None, Query(
            max_length=128, description="Render templates in this order's buyer's "
            "language.")] = None, locale: Annotated[str | None, Query(
            max_length=35, description="…or in this locale.")] = None) -> list[Template]:
        access.require(who, "use_templates")
        return await gw.templates.list(who, order_id, locale)

    @r.post("/v1/templates", response_model=Template, status_code=201,
            summary="Save one of your templates (one text per language)")
    async def save_template(body: TemplateIn, who: Caller) -> Template:
        access.require(who, "use_templates")
        return await gw.templates.create(who, body)

    @r.put("/v1/templates/{template_id}", response_model=Template,
           summary="Change one of your templates (every field at once)",
           description="Replaces the name and every language's text in one step: a reader "
           "sees the old template or the new one, never a mix. The id stays. Platform "
           "templates cannot be changed (`404`).",
           responses={404: {"description": "No template of yours with this id "
                            "(`template_not_found`)."}})
    async def update_template(template_id: str, body: TemplateIn, who: Caller) -> Template:
        access.require(who, "use_templates")
        return await gw.templates.replace(who, template_id, body)

    @r.delete("/v1/templates/{template_id}", status_code=204,
              summary="Delete one of your templates")
    async def delete_template(template_id: str, who: Caller) -> None:
        await gw.templates.delete(who, template_id)

    return r
