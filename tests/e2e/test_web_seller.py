"""The seller's message center in a real browser (Playwright driving Debian's Chromium) on the
running stack, in the seller's own language (Spanish here): contacting a buyer from an order
with the reasons the order allows, live lint with the violations marked in the draft, an
attachment; the inbox with the buyer, the order, the 24-hour clock, new messages without a
reload, a forgiving order search and keyboard use; axe-core finds no serious or critical
problem, and a 390 px wide phone needs no horizontal scrolling."""

from __future__ import annotations

import httpx

from tests import gateway_support as g
from tests.e2e.test_gateway_flow import pair  # noqa: F401 - fixture
from tests.e2e.test_web_record_and_settings import delivered_message
from tests.e2e.web_support import (
    PHONE, axe_problems, fits, open_page, sent_from_page, shot, token)

PHONE_NUMBER = "+34 612 345 678"


async def test_a_seller_contacts_a_buyer_who_opted_out_with_an_allowed_reason_and_live_lint(
    env, pair, browser  # noqa: F811
):
    url, order = env["BSM_GATEWAY_URL"], pair["order"]
    seller, buyer = g.auth(env, pair["seller"]), g.auth(env, pair["buyer"], "buyer")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await http.put(f"/v1/buyers/{pair['buyer']}/preferences", headers=buyer,
                       json={"unsolicited_opt_out": True})
        options = (await g.eventually(
            lambda: http.get(f"/v1/orders/{order}/contact-options", headers=seller),
            lambda r: r.status_code == 200 and r.json()["buyer_opted_out"], timeout=30)).json()

    page, problems = await open_page(browser, f"{url}/app/#token={token(env, pair['seller'])}",
                                     lang=None)
    await page.wait_for_selector("#pages:not([hidden])")
    title = await page.inner_text("#title")
    await page.click('#pages button[data-page="compose"]')
    await page.fill("#compose-order-id", f"  {order} ")
    await page.press("#compose-order-id", "Enter")
    await page.wait_for_selector("#compose:not([hidden]) #reason-list .reason")
    shown = await page.eval_on_selector_all("#reason-list .reason", """els => els.map(e => [
        e.dataset.reason, e.querySelector('input').disabled,
        [...e.querySelectorAll('.why-not li')].map(li => li.dataset.rule)])""")
    opted_out = await page.inner_text("#compose-optout")
    await page.check("#reason-additional_information_required")
    limit = await page.inner_text("#compose-limit")
    await page.fill("#compose-subject", "Retraso en su pedido")
    draft = f"Hay un retraso. Llámeme al {PHONE_NUMBER}, por favor."
    await page.type("#compose-text", draft, delay=5)
    await page.wait_for_selector("#draft-marks mark[data-code='phone_number']")
    marked = await page.inner_text("#draft-marks mark[data-code='phone_number']")
    listed = await page.inner_text("#lint-list")
    count = await page.inner_text("#compose-count")
    axe_with_problems = await axe_problems(page)
    await shot(page, "web-seller-compose-lint")
    # The seller takes the number out: the draft is clean, and goes with an attachment.
    await page.fill("#compose-text", "Necesitamos confirmar su dirección; le adjunto el aviso.")
    await page.wait_for_function(
        "() => document.querySelector('#lint-list').children.length === 0"
        " && document.querySelector('#lint-summary').textContent !== ''")
    marks_after = await page.locator("#draft-marks mark").count()
    await page.set_input_files("#compose-files", files=[{
        "name": "aviso.txt", "mimeType": "text/plain", "buffer": b"Retraso: 2 dias\n"}])
    await page.click("#compose-send")
    sent = await sent_from_page(page, url, seller, "mensaje")

    phone, phone_problems = await open_page(
        browser, f"{url}/app/#token={token(env, pair['seller'])}", lang=None, viewport=PHONE)
    await phone.wait_for_selector("#pages:not([hidden])")
    await phone.click('#pages button[data-page="compose"]')
    await phone.fill("#compose-order-id", order)
    await phone.press("#compose-order-id", "Enter")
    await phone.wait_for_selector("#compose:not([hidden]) #reason-list .reason")
    phone_fits = await fits(phone)
    await shot(phone, "web-seller-compose-390px")

    by_reason = {r["reason"]: r for r in options["reasons"]}
    assert title == "Centro de mensajes"  # the seller's locale is es-ES
    assert [s[0] for s in shown] == [r["reason"] for r in options["reasons"]]
    for reason, disabled, rules in shown:  # greyed exactly when unavailable, with the rule
        assert disabled is not by_reason[reason]["available"]
        assert rules == [w["rule"] for w in by_reason[reason]["why_not"]]
    assert "no desea mensajes no solicitados" in opted_out
    assert "2000 caracteres" in limit or "2.000 caracteres" in limit
    assert marked == PHONE_NUMBER
    assert "C4" in listed and PHONE_NUMBER in listed
    assert count.startswith(f"{len(draft)} de 2")
    assert marks_after == 0
    assert sent["contact_reason"] == "additional_information_required"
    assert [a["filename"] for a in sent["attachments"]] == ["aviso.txt"]
    assert not axe_with_problems, axe_with_problems
    assert phone_fits
    assert not problems and not phone_problems, problems + phone_problems


async def test_the_inbox_shows_buyer_order_and_clock_updates_itself_and_works_by_keyboard(
    env, pair, browser  # noqa: F811
):
    url, order = env["BSM_GATEWAY_URL"], pair["order"]
    buyer = g.auth(env, pair["buyer"], "buyer")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": order},
                                            headers=g.auth(env, pair["seller"])),
                           lambda r: r.status_code == 200)
        await delivered_message(http, buyer, {"order_id": order, "subject": "Primera",
                                              "text": "¿Llega mañana?"})

    page, problems = await open_page(browser, f"{url}/app/#token={token(env, pair['seller'])}")
    await page.wait_for_selector("#list li[data-conversation]")
    first = await page.inner_text("#list li:has-text('Primera')")
    clock = await page.get_attribute("#list li:has-text('Primera') .clock", "data-left-ms")
    # A new message arrives while the page is open: it appears without a reload.
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await delivered_message(http, buyer, {"order_id": order, "subject": "Segunda",
                                              "text": "¿Y el color?"})
    await page.wait_for_selector("#list li:has-text('Segunda')", timeout=30000)
    announced = await page.inner_text("#status")
    # Search ignores case and surrounding spaces.
    await page.fill("#order-search", f"  {order.upper()}  ")
    await page.press("#order-search", "Enter")
    await page.wait_for_selector("#search-clear:not([hidden])")
    found = await page.eval_on_selector_all("#list li[data-conversation]",
                                            "els => els.length")
    # Keyboard only: Tab to the first conversation, Enter opens it, focus moves to the thread.
    await page.focus("#search-clear")
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "document.activeElement.closest('#list li')?.dataset.conversation")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#thread:not([hidden]) #messages li")
    thread_focused = await page.evaluate("document.activeElement.id")
    axe_inbox = await axe_problems(page)
    await shot(page, "web-seller-inbox")

    phone, phone_problems = await open_page(
        browser, f"{url}/app/#token={token(env, pair['seller'])}", viewport=PHONE)
    await phone.wait_for_selector("#list li[data-conversation]")
    await phone.click("#list li:has-text('Segunda')")
    await phone.wait_for_selector("#thread:not([hidden]) #messages li")
    phone_fits = await fits(phone)
    axe_phone = await axe_problems(phone)
    await shot(phone, "web-seller-inbox-390px")

    # The buyer's display name, as the seller's mail shows it (not the party id).
    assert "Buyer Ana" in first and f"Order {order}" in first
    assert "left to respond" in first
    assert 23 * 3600_000 < int(clock) <= 24 * 3600_000
    assert "New messages" in announced
    assert found == 2
    assert focused is not None and thread_focused == "thread"
    assert not axe_inbox, axe_inbox
    assert phone_fits and not axe_phone, axe_phone
    assert not problems and not phone_problems, problems + phone_problems


async def test_a_seller_writes_a_template_in_two_languages_edits_it_and_the_buyer_gets_hers(
    env, pair, browser  # noqa: F811
):
    url, order = env["BSM_GATEWAY_URL"], pair["order"]
    seller = g.auth(env, pair["seller"])
    page, problems = await open_page(browser, f"{url}/app/#token={token(env, pair['seller'])}")
    await page.click('#pages button[data-page="templates"]')
    await page.wait_for_selector("#tpl-list li.empty")
    await page.fill("#tpl-name", "Delay")
    await page.select_option("#tpl-main", "en")
    await page.fill("#tpl-subject-en", "A short delay")
    await page.fill("#tpl-text-en", "Your order leaves tomorrow.")
    await page.fill("#tpl-text-es", "Su pedido sale mañana.")
    await page.click("#tpl-form button[type=submit]")
    await page.wait_for_selector("#tpl-list li:has-text('Delay')")
    await page.fill("#tpl-name", "Only English")
    await page.fill("#tpl-text-en", "Thank you.")
    await page.click("#tpl-form button[type=submit]")
    await page.wait_for_selector("#tpl-list li:has-text('Only English')")
    # Edit: the Spanish text changes; the edited template replaces the old one.
    await page.click("#tpl-list li:has-text('Delay') button.tpl-edit")
    await page.wait_for_function("() => document.getElementById('tpl-text-es').value !== ''")
    loaded_es = await page.input_value("#tpl-text-es")
    await page.fill("#tpl-text-es", "Su pedido sale mañana por la mañana.")
    await page.click("#tpl-form button[type=submit]")
    await page.wait_for_selector("#status:has-text('saved')")
    names = await page.eval_on_selector_all("#tpl-list li strong",
                                            "els => els.map(e => e.textContent)")
    axe = await axe_problems(page)
    await shot(page, "web-seller-templates")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for_buyer = (await http.get("/v1/templates", params={"order_id": order},
                                    headers=seller)).json()
    # In the compose view of the buyer's order (es-ES), each template says its language.
    await page.click('#pages button[data-page="compose"]')
    await page.fill("#compose-order-id", order)
    await page.press("#compose-order-id", "Enter")
    await page.wait_for_selector("#compose:not([hidden])")
    options = await page.eval_on_selector_all(
        "#compose-template option", "els => els.map(e => [e.textContent, e.dataset.fellBack])")
    delay = next(x for x in for_buyer if x["name"] == "Delay")
    await page.select_option("#compose-template", delay["template_id"])
    drafted = await page.input_value("#compose-text")

    own = [x for x in for_buyer if x["kind"] == "own"]
    assert loaded_es == "Su pedido sale mañana."
    assert sorted(names) == ["Delay", "Only English"] and len(own) == 2
    assert delay["locale"] == "es" and not delay["fell_back"]
    assert drafted == "Su pedido sale mañana por la mañana."
    assert ["Delay (Spanish)", "false"] in options
    assert ["Only English (only in English: not in the buyer's language)", "true"] in options
    assert not axe, axe
    assert not problems, problems
