"""The web message center follows the user's language (Playwright driving Debian's Chromium on
the running stack): a French-speaking buyer gets the page in French from her locale and starts
a conversation about her order; every one of the six languages renders the page with no key
missing (a missing key is a console error)."""

from __future__ import annotations

import json

import httpx
import pytest

from bsm_gateway import web
from tests import gateway_support as g
from tests.e2e.web_support import (
    PHONE, axe_problems, fits, open_page, sent_from_page, shot, token)
from tests.factories import uid
from tests.stack import platform_event


@pytest.fixture
async def french_pair(kafka, env) -> dict[str, str]:
    buyer, seller, order = "buyer-" + uid(), "seller-" + uid(), "order-" + uid()
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": buyer, "role": "buyer", "email": f"claire.{uid()}@mail.example",
        "display_name": "Claire", "locale": "fr-FR", "marketplace": "FR"}, buyer), buyer)
    await kafka.publish("bsm.parties", platform_event("PartyRegistered", {
        "party_id": seller, "role": "seller", "email": f"ventes.{uid()}@meubles.example",
        "display_name": "Meubles Soleil", "locale": "fr-FR", "marketplace": "FR"}, seller),
        seller)
    await kafka.publish("bsm.orders", platform_event("OrderPlaced", {
        "order_id": order, "buyer_id": buyer, "seller_id": seller,
        "placed_at": g.now().isoformat(), "items": [{"sku": "chaise"}]}, order), order)
    return {"buyer": buyer, "seller": seller, "order": order}


def catalog(lang: str) -> dict[str, str]:
    return json.loads((web.STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


async def test_a_french_buyer_gets_the_page_in_french_and_writes_about_her_order(
    env, french_pair, browser
):
    url, order = env["BSM_GATEWAY_URL"], french_pair["order"]
    buyer = g.auth(env, french_pair["buyer"], "buyer")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/me", headers=buyer),
                           lambda r: r.json()["locale"] == "fr-FR", timeout=30)
    page, problems = await open_page(
        browser, f"{url}/app/#token={token(env, french_pair['buyer'], 'buyer')}", lang=None,
        viewport=PHONE)
    await page.wait_for_selector("#pages:not([hidden])")
    title, lang = await page.inner_text("#title"), await page.get_attribute("html", "lang")
    await page.click('#pages button[data-page="compose"]')
    await page.fill("#compose-order-id", order)
    await page.press("#compose-order-id", "Enter")
    await page.wait_for_selector("#compose:not([hidden])")
    reasons_shown = await page.is_visible("#reasons")  # a buyer gives no contact reason
    await page.fill("#compose-subject", "Ma chaise")
    await page.fill("#compose-text", "Bonjour, quand ma chaise arrivera-t-elle ?")
    await page.wait_for_selector("#lint-summary:has-text('Aucun problème')")
    axe = await axe_problems(page)
    phone_fits = await fits(page)
    await shot(page, "web-buyer-fr-compose-390px")
    await page.click("#compose-send")
    sent = await sent_from_page(page, url, buyer, "message")
    await page.click('#pages button[data-page="messages"]')
    await page.wait_for_selector("#list li:has-text('Ma chaise')")
    listed = await page.inner_text("#list li:has-text('Ma chaise')")
    await shot(page, "web-buyer-fr-messages-390px")

    assert (title, lang) == ("Vos messages", "fr")
    assert reasons_shown is False
    assert sent["order_id"] == order and sent["text"].startswith("Bonjour")
    # The seller's business name, as her mail shows it (not its party id).
    assert "Vendeur Meubles Soleil" in listed and f"Commande {order}" in listed
    assert not axe, axe
    assert phone_fits
    assert not problems, problems


@pytest.mark.parametrize("lang", ["en", "es", "fr", "it", "pt", "de"])
async def test_the_page_is_whole_in_each_language(env, browser, lang: str):
    url = env["BSM_GATEWAY_URL"]
    words = catalog(lang)
    page, problems = await open_page(
        browser, f"{url}/app/#token={token(env, 'seller-' + uid())}", lang=lang)
    await page.wait_for_selector("#pages:not([hidden])")
    await page.wait_for_selector("#list li")
    nav = await page.eval_on_selector_all("#pages button:not([hidden])",
                                          "els => els.map(e => e.textContent)")
    views = await page.eval_on_selector_all("#views button:not([hidden])",
                                            "els => els.map(e => e.textContent)")
    empty = await page.inner_text("#list li")
    await page.click('#pages button[data-page="metrics"]')
    await page.wait_for_selector('#metrics-table tr[data-window="7d"]')
    window = await page.inner_text('#metrics-table tr[data-window="7d"] th')
    await shot(page, f"web-seller-metrics-{lang}")

    assert await page.inner_text("#title") == words["title.seller"]
    assert nav == [words[k] for k in ("nav.messages", "nav.compose", "nav.templates",
                                      "nav.metrics", "nav.settings")]
    assert views == [words[f"view.{v}"] for v in ("response_needed", "sent",
                                                  "no_response_needed", "all")]
    assert empty == words["inbox.empty"] and window == words["window.7d"]
    assert await page.get_attribute("html", "lang") == lang
    assert not problems, problems
