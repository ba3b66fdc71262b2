"""The web message center in a real browser (Playwright driving Debian's Chromium) on the
running stack: the seller's inbox, search by order id, a reply from a template in the buyer's
language; the buyer's *Your messages* and a report. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations


import httpx

from tests import gateway_support as g
from tests.e2e.test_gateway_flow import pair  # noqa: F401 - fixture
from tests.e2e.web_support import axe_problems, open_page



async def test_seller_answers_from_the_inbox_with_a_template_and_the_buyer_reports_it(
    env, pair, browser  # noqa: F811
):
    g.ARTIFACTS.mkdir(exist_ok=True)
    url = env["BSM_GATEWAY_URL"]
    buyer_token = g.auth(env, pair["buyer"], "buyer")["Authorization"].split()[1]
    seller_token = g.auth(env, pair["seller"])["Authorization"].split()[1]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": pair["order"]},
                                            headers={"Authorization": f"Bearer {seller_token}"}),
                           lambda r: r.status_code == 200)
        sent = await http.post("/v1/messages", headers={"Authorization": f"Bearer {buyer_token}"},
                               json={"order_id": pair["order"], "subject": "¿Dónde está mi silla?",
                                     "html": "<p>Hola, <b>¿cuándo</b> llega?</p>"})
        question = sent.json()["message_id"]
        thanks = (await http.post(
            "/v1/messages", headers={"Authorization": f"Bearer {buyer_token}"},
            json={"order_id": pair["order"], "subject": "Gracias", "text": "¡Gracias!"},
        )).json()["message_id"]
        await g.eventually(lambda: http.get(f"/v1/messages/{question}",
                                            headers={"Authorization": f"Bearer {buyer_token}"}),
                           lambda r: r.json()["outcome"]["status"] == "delivered", timeout=30)

    page, problems = await open_page(browser, f"{url}/app/#token={seller_token}")
    await page.wait_for_selector("#list li[data-conversation]")
    assert await page.get_attribute('#views button[data-filter="response_needed"]',
                                    "aria-pressed") == "true"
    await page.fill("#order-search", pair["order"])
    await page.click("#search button")
    await page.click("#list li:has-text('silla')")
    await page.wait_for_selector(f'li[data-message="{question}"]')
    body = await page.inner_html(f'li[data-message="{question}"] .body')
    await page.select_option("#template", "platform:order_shipped")
    drafted = await page.input_value("#reply-text")
    await page.screenshot(path=str(g.ARTIFACTS / "web-seller-thread.png"), full_page=True)
    await page.click("#reply button[type=submit]")
    await page.wait_for_selector("#status:has-text('Sent')")
    title = await page.title()
    # The other message needs no answer: mark it from its thread.
    await page.click('#views button[data-filter="all"]')
    await page.wait_for_selector("#list li:has-text('Gracias')")
    await page.click("#list li:has-text('Gracias')")
    await page.click(f'li[data-message="{thanks}"] button.mark')
    await page.wait_for_selector("#status:has-text('no response needed')")

    buyer, buyer_problems = await open_page(browser, f"{url}/app/#token={buyer_token}")
    await buyer.wait_for_selector("#list li[data-conversation]")
    heading = await buyer.inner_text("#title")
    await buyer.click("#list li:has-text('silla')")
    reply = buyer.locator("#messages li:not(.mine)")
    for _ in range(60):
        if await reply.count():
            break
        await buyer.wait_for_timeout(500)
        await buyer.click("#list li:has-text('silla')")
    reply_id = await reply.first.get_attribute("data-message")
    # A dialog with the fixed reasons (E4), never window.prompt (open_page fails on one).
    await reply.locator("button.report").click()
    await buyer.wait_for_selector("#report-dialog[open] #report-other")
    dialog_axe = await axe_problems(buyer)
    await buyer.check("#report-other")
    await buyer.click("#report-form button[type=submit]")
    refused_without_text = await buyer.inner_text("#report-error")
    await buyer.fill("#report-text", "No me gusta este mensaje")
    await buyer.click("#report-form button[type=submit]")
    await buyer.wait_for_selector("#status:has-text('Reported')")
    await buyer.screenshot(path=str(g.ARTIFACTS / "web-buyer-report.png"), full_page=True)

    assert "<b>¿cuándo</b>" in body and title == "Message center"
    assert drafted.startswith("Hola,") and "su pedido está en camino" in drafted
    assert heading == "Your messages"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        marked = await g.eventually(
            lambda: http.get(f"/v1/messages/{thanks}",
                             headers={"Authorization": f"Bearer {seller_token}"}),
            lambda r: r.json()["response_not_needed"], timeout=30)
        reported = await g.eventually(
            lambda: http.get(f"/v1/messages/{reply_id}", headers={
                "Authorization": f"Bearer {buyer_token}"}),
            lambda r: r.json()["reported"], timeout=30)
    assert marked.json()["response_not_needed"] is True
    assert reported.json()["reported"] is True
    assert refused_without_text == "Say in a few words what is wrong."
    assert not dialog_axe, dialog_axe
    assert not problems and not buyer_problems, problems + buyer_problems
