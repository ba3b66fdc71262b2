"""The dispute desk and the operators' pages in a real browser (Playwright driving Debian's
Chromium) on the running stack: timeline entries that show what happened (the message as sent,
its HTML as source text and never rendered, the policy's violations, the bounce, the report's
reason, who marked "no response needed"), slider stops that tell events apart, an error that
clears the previous order; an operator lifts a restriction, opts a buyer out, erases a party
after a confirmation that names it, and reads the report statistics. axe-core finds no serious
or critical problem on any of these pages."""

from __future__ import annotations

import httpx

from tests import gateway_support as g
from tests.e2e.test_gateway_flow import pair  # noqa: F401 - fixture
from tests.e2e.test_web_record_and_settings import delivered_message
from tests.e2e.web_support import PHONE, axe_problems, fits, open_page, shot, token
from tests.factories import uid


async def test_the_dispute_desk_shows_what_each_event_says_and_an_error_clears_the_order(
    env, pair, browser  # noqa: F811
):
    url, order = env["BSM_GATEWAY_URL"], pair["order"]
    buyer, seller = g.auth(env, pair["buyer"], "buyer"), g.auth(env, pair["seller"])
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": order},
                                            headers=seller), lambda r: r.status_code == 200)
        stopped = await delivered_message(http, buyer, {
            "order_id": order, "subject": "Formulario",
            "html": "<p>Hola</p><script>alert(1)</script>"}, status="bounced")
        question = await delivered_message(http, buyer, {
            "order_id": order, "subject": "Gracias", "text": "Gracias por todo."})
        marked = await http.post(f"/v1/messages/{question}/no-response-needed", headers=seller)
        answer = await delivered_message(http, seller, {"in_reply_to": question,
                                                        "text": "¡A usted!"})
        reported = await http.post(f"/v1/messages/{answer}/reports", headers=buyer,
                                   json={"reason": "spam"})
        assert marked.status_code == 202 and reported.status_code == 202, reported.text
        dispute = g.auth(env, "trust-" + uid(), "dispute")
        record = (await g.eventually(
            lambda: http.get(f"/v1/orders/{order}/timeline", headers=dispute),
            lambda r: r.status_code == 200 and {"Reported", "ResponseNotNeeded", "Bounced"}
            <= {e["type"] for e in r.json()["events"]}, timeout=30)).json()

    page, problems = await open_page(
        browser, f"{url}/app/#token={dispute['Authorization'].split()[1]}")
    await page.click('#pages button[data-page="timeline"]')
    await page.fill("#timeline-order", order)
    await page.press("#timeline-order", "Enter")
    await page.wait_for_selector('#timeline li[data-type="Reported"]')
    submitted = await page.inner_text(
        f'#timeline li[data-type="MessageSubmitted"]:has-text("Formulario") .tl-html')
    scripts = await page.locator("#timeline script").count()
    rejected = await page.eval_on_selector_all(
        '#timeline li[data-type="PolicyChecked"] .tl-violations li',
        "els => els.map(e => e.dataset.rule)")
    bounce = await page.inner_text(f'#timeline li[data-type="Bounced"]')
    report = await page.inner_text('#timeline li[data-type="Reported"] .tl-details')
    mark = await page.inner_text('#timeline li[data-type="ResponseNotNeeded"] .tl-details')
    labels = []
    stops = int(await page.get_attribute("#as-of", "max")) + 1
    await page.focus("#as-of")
    await page.keyboard.press("Home")
    for _ in range(stops):
        labels.append(await page.get_attribute("#as-of", "aria-valuetext"))
        await page.keyboard.press("ArrowRight")
    axe = await axe_problems(page)
    await shot(page, "web-dispute-timeline-details")
    # Another order that cannot be shown: nothing of the previous one stays on screen.
    await page.fill("#timeline-order", "no-such-order-" + uid())
    await page.press("#timeline-order", "Enter")
    await page.wait_for_function("() => document.getElementById('status').textContent !== ''")
    left = await page.locator("#timeline li").count()
    slider_hidden = await page.is_hidden("#timeline-slider")

    phone, phone_problems = await open_page(
        browser, f"{url}/app/#token={dispute['Authorization'].split()[1]}", viewport=PHONE)
    await phone.click('#pages button[data-page="timeline"]')
    await phone.fill("#timeline-order", order)
    await phone.press("#timeline-order", "Enter")
    await phone.wait_for_selector('#timeline li[data-type="Reported"]')
    phone_fits = await fits(phone)
    await shot(phone, "web-dispute-timeline-390px")

    bounced = next(e for e in record["events"] if e["type"] == "Bounced")
    assert submitted == "<p>Hola</p><script>alert(1)</script>"  # as sent, shown as text
    assert scripts == 0
    assert "C5" in rejected
    assert bounced["event"]["data"]["explanation"] in bounce and "C5" in bounce
    assert "Spam or advertising" in report and pair["buyer"] in report
    assert pair["seller"] in mark
    assert len(labels) == stops and len(set(labels)) == stops  # every stop told apart
    assert all(f"of {stops}:" in label for label in labels)
    assert left == 0 and slider_hidden
    assert not axe, axe
    assert phone_fits
    assert not [p for p in problems if "404" not in p], problems  # the unknown order's 404
    assert not phone_problems, phone_problems


async def test_an_operator_lifts_opts_out_erases_after_naming_the_party_and_reads_reports(
    env, pair, browser  # noqa: F811
):
    url = env["BSM_GATEWAY_URL"]
    operator = token(env, "ops-" + uid(), "operator")
    victim = "buyer-" + uid()
    page, problems = await open_page(browser, f"{url}/app/#token={operator}")
    await page.click('#pages button[data-page="operator"]')
    axe_operator = await axe_problems(page)
    await page.fill("#op-lift-seller", pair["seller"])
    await page.fill("#op-lift-reason", "appeal accepted")
    await page.click("#op-lift button[type=submit]")
    await page.wait_for_selector("#status:has-text('Restriction of')")
    await page.fill("#op-buyer-id", pair["buyer"])
    await page.check("#op-buyer-optout")
    await page.click("#op-optout button[type=submit]")
    await page.wait_for_selector("#status:has-text('is opted out')")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        me = await g.eventually(lambda: http.get("/v1/me", headers=g.auth(env, pair["buyer"],
                                                                           "buyer")),
                                lambda r: r.json()["unsolicited_opt_out"] is True, timeout=30)
    # Erasure asks first, naming the party, and goes only once its id is typed.
    await page.fill("#op-erase-party", victim)
    await page.fill("#op-erase-reason", "DSR-42")
    await page.click("#op-erase button[type=submit]")
    await page.wait_for_selector("#erase-dialog[open]")
    asked = await page.inner_text("#erase-text")
    blocked = await page.is_disabled("#erase-go")
    axe_dialog = await axe_problems(page)
    await shot(page, "web-operator-erase-confirm")
    await page.fill("#erase-confirm", victim)
    await page.click("#erase-go")
    await page.wait_for_selector("#status:has-text('is erased')")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        again = await http.post(f"/v1/parties/{victim}/erasure",
                                headers={"Authorization": f"Bearer {operator}"},
                                json={"reason": "check"})
    await page.click('#pages button[data-page="reports"]')
    await page.wait_for_selector("#op-reports-out > *")
    reports = await page.inner_text("#op-reports-out")
    axe_reports = await axe_problems(page)
    await shot(page, "web-operator-reports")

    assert victim in asked and blocked is True
    assert me.json()["unsolicited_opt_out"] is True
    assert again.json()["status"] == "already_erased"
    assert "By reason" in reports or "not available" in reports, reports
    assert not axe_operator and not axe_dialog and not axe_reports, (
        axe_operator + axe_dialog + axe_reports)
    assert not problems, problems
