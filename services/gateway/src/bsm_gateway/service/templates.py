"""Templates (E5): a seller's own — the gateway's own data, no other service needs them — and
the platform's (gettext catalogs, :mod:`..i18n`), each in the buyer's language when it has it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import i18n
from ..access import Principal
from ..errors import ApiError
from ..models import Template, TemplateIn

if TYPE_CHECKING:
    from .gateway import Gateway


def own_template(r: Any, locale: str | None) -> Template:
    """A seller's template in the buyer's language (E5): the text in ``locale``'s language,
    else English, else the template's own — and the answer says which, and whether it fell
    back. Without a locale: the template's own language."""
    raw = r["texts"]
    texts = (json.loads(raw) if isinstance(raw, str) else raw) or {}
    own = r["language"] or "en"
    texts.setdefault(own, {"subject": r["subject"], "text": r["text"]})
    choice = i18n.choose(texts, locale or own, own)
    chosen = texts[choice.language]
    return Template(template_id=r["template_id"], kind="own", name=r["name"],
                    locale=choice.language,
                    requested_language=choice.requested if locale else None,
                    fell_back=choice.fell_back if locale else False,
                    languages=sorted(texts), subject=chosen["subject"], text=chosen["text"])


class Templates:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.catalogs = i18n.Catalogs.load()

    def _missing(self, template_id: str) -> ApiError:
        return ApiError(404, "template_not_found", f"No template {template_id} of yours.")

    async def list(self, who: Principal, order_id: str | None,
                   locale: str | None) -> list[Template]:
        if order_id is not None:
            order = await self.gw.order(order_id)
            if order is None or order["seller_id"] != who.party_id:
                raise ApiError(404, "order_not_found", f"No order {order_id} of yours.")
            locale = order["buyer_locale"] or "en-US"
        rows = await self.gw.pool.fetch(
            f"SELECT * FROM {self.gw.s}.templates WHERE seller_id = $1 ORDER BY created_at",
            who.party_id)
        own = [own_template(r, locale) for r in rows]
        return own + [Template(template_id=f"platform:{t.name}", kind="platform", name=t.name,
                               locale=t.locale, subject=t.subject, text=t.text,
                               requested_language=t.requested if locale else None,
                               fell_back=t.fell_back if locale else False,
                               languages=self.catalogs.languages())
                      for t in self.catalogs.render_all(locale or "en-US")]

    async def create(self, who: Principal, body: TemplateIn) -> Template:
        texts = {lang: t.model_dump() for lang, t in body.texts().items()}
        row = await self.gw.pool.fetchrow(
            f"""INSERT INTO {self.gw.s}.templates (template_id, seller_id, name, subject, text,
                created_at, language, texts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                RETURNING *""",
            str(self.gw.new_id()), who.party_id, body.name, body.subject, body.text,
            self.gw.rt.clock(), body.language, json.dumps(texts))
        return own_template(row, None)

    async def replace(self, who: Principal, template_id: str, body: TemplateIn) -> Template:
        """Every field at once, in one statement (a reader sees the old template or the new,
        never half of each); the id and creation time stay."""
        texts = {lang: t.model_dump() for lang, t in body.texts().items()}
        row = await self.gw.pool.fetchrow(
            f"""UPDATE {self.gw.s}.templates SET name = $3, subject = $4, text = $5,
                language = $6, texts = $7 WHERE template_id = $1 AND seller_id = $2
                RETURNING *""",
            template_id, who.party_id, body.name, body.subject, body.text, body.language,
            json.dumps(texts))
        if row is None:
            raise self._missing(template_id)
        return own_template(row, None)

    async def delete(self, who: Principal, template_id: str) -> None:
        done = await self.gw.pool.execute(
            f"DELETE FROM {self.gw.s}.templates WHERE template_id = $1 AND seller_id = $2",
            template_id, who.party_id)
        if done == "DELETE 0":
            raise self._missing(template_id)
