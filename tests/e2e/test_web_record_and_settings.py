"""The rest of the web message center in a real browser (Playwright driving Debian's Chromium)
on the running stack: the dispute desk's order timeline with each event's verification and the
"as it stood at…" slider; the seller's response-time chart, a reply with an attachment and
the settings; the buyer's messages apart from platform notifications and the opt-out; the API
docs served without any other host. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests import gateway_support as g
from tests.e2e.test_gateway_flow import pair  # noqa: F401 - fixture
from tests.factories import uid
from tests.stack import platform_event



def token(env: dict[str, str], party: str, role: str = "seller") -> str:
    return g.auth(env, party, role)["Authorization"].split()[1]


async def open_page(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    """A page (in English) that records console errors and every URL it requests."""
    context = await browser.new_context()
    await context.add_init_script("localStorage.setItem('bsm-lang', 'en')")
    page = await context.new_page()
    problems: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requested.append(r.url))
    await page.goto(url)
    return page, problems, requested


async def delivered_message(http: httpx.AsyncClient, headers: dict[str, str],
                            body: dict[str, Any], status: str = "delivered") -> str:
    sent = await http.post("/v1/messages", headers=headers, json=body)
    assert sent.status_code == 202, sent.text
    mid = sent.json()["message_id"]
    await g.eventually(lambda: http.get(f"/v1/messages/{mid}", headers=headers),
                       lambda r: r.status_code == 200
                       and r.json()["outcome"]["status"] == status, timeout=30)
    return mid


async def test_the_dispute_desk_marks_each_event_verified_or_not_and_the_slider_shows_the_past(
    env, kafka, pair, browser, expect  # noqa: F811
):
    from tests.factories import policy_checked

    expect.dead_letter("unsigned", topic="bsm.messages.policy-checked.dlq", match="forged-")

    g.ARTIFACTS.mkdir(exist_ok=True)
    url, order = env["BSM_GATEWAY_URL"], pair["order"]
    dispute = g.auth(env, "trust-" + uid(), "dispute")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": order},
                                            headers=g.auth(env, pair["seller"])),
                           lambda r: r.status_code == 200)
        await delivered_message(http, g.auth(env, pair["buyer"], "buyer"),
                                {"order_id": order, "subject": "Silla", "text": "¿Cuándo llega?"})
        # Someone with write access to Kafka fakes policy's approval (unsigned).
        mid = "forged-" + uid()
        data = policy_checked(
            message_id=mid, order_id=order, sender_party_id=pair["buyer"],
            recipient_party_id=pair["seller"], sender={"party_id": pair["buyer"]},
            recipient={"party_id": pair["seller"]}).model_dump(mode="json")
        forged = json.loads(platform_event("PolicyChecked", data, mid))
        forged["producer"] = "policy"
        await kafka.publish("bsm.messages.policy-checked", json.dumps(forged).encode(), mid)
        record = await g.eventually(
            lambda: http.get(f"/v1/orders/{order}/timeline", headers=dispute),
            lambda r: r.status_code == 200
            and any(e["message_id"] == mid for e in r.json()["events"])
            and any(e["type"] == "Delivered" for e in r.json()["events"]), timeout=30)
    events = record.json()["events"]
    first_instant = events[0]["occurred_at"]

    page, problems, requested = await open_page(
        browser, f"{url}/app/#token={dispute['Authorization'].split()[1]}")
    await page.wait_for_selector('#pages button[data-page="timeline"]')
    await page.click('#pages button[data-page="timeline"]')
    await page.fill("#timeline-order", order)
    await page.click("#timeline-form button")
    await page.wait_for_selector('li.tl-event[data-verification="not_verified"]')
    shown = await page.eval_on_selector_all(
        "#timeline li.tl-event", "els => els.map(e => [e.querySelector('.tl-type').textContent,"
        " e.querySelector('.tl-producer').textContent, e.dataset.verification,"
        " e.querySelector('.mark').textContent])")
    await page.screenshot(path=str(g.ARTIFACTS / "web-dispute-timeline.png"), full_page=True)
    # The slider's first stop: the order as it stood at its first event.
    await page.focus("#as-of")
    await page.keyboard.press("Home")
    await page.wait_for_function(
        "n => document.querySelectorAll('#timeline li.tl-event').length === n",
        arg=sum(1 for e in events if e["occurred_at"] == first_instant))
    past = await page.eval_on_selector_all("#timeline .tl-type", "els => els.map(e => e.textContent)")
    summary = await page.inner_text("#timeline-summary")
    await page.screenshot(path=str(g.ARTIFACTS / "web-dispute-timeline-past.png"), full_page=True)

    buyer, _, _ = await open_page(browser, f"{url}/app/#token={token(env, pair['buyer'], 'buyer')}")
    await buyer.wait_for_selector("#list li[data-conversation]")
    buyer_sees_timeline = await buyer.is_visible('#pages button[data-page="timeline"]')

    assert [s[0] for s in shown] == [e["type"] for e in events]  # time order, as recorded
    assert [s[1] for s in shown] == [f"by {e['producer']}" for e in events]
    for row, event in zip(shown, events, strict=True):
        verification, mark = row[2], row[3]
        if event["message_id"] == mid:  # the forgery
            assert verification == "not_verified" and mark.startswith("✘ NOT VERIFIED")
            assert "forged" in mark
        elif event["producer"] == "platform":  # the platform's own events come unsigned
            assert (verification, mark) == ("unsigned", "unsigned")
        else:
            assert (verification, mark) == ("verified", "✔ verified"), (row, event)
    assert {r[0] for r in shown} >= {"OrderPlaced", "MessageSubmitted", "MessageAddressed",
                                     "PolicyChecked", "Delivered"}
    assert past == [e["type"] for e in events if e["occurred_at"] == first_instant]
    assert "as it stood at" in summary
    assert buyer_sees_timeline is False
    assert all(u.startswith(url) for u in requested), requested
    assert not problems, problems


async def test_a_seller_replies_with_an_attachment_and_sees_response_times_as_a_chart(
    env, pair, browser  # noqa: F811
):
    g.ARTIFACTS.mkdir(exist_ok=True)
    url = env["BSM_GATEWAY_URL"]
    seller = g.auth(env, pair["seller"])
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": pair["order"]},
                                            headers=seller), lambda r: r.status_code == 200)
        await delivered_message(http, g.auth(env, pair["buyer"], "buyer"), {
            "order_id": pair["order"], "subject": "Factura", "text": "¿Me envía la factura?"})

    page, problems, _ = await open_page(browser, f"{url}/app/#token={token(env, pair['seller'])}")
    await page.click("#list li:has-text('Factura')")
    await page.fill("#reply-text", "Aquí tiene la factura.")
    await page.set_input_files("#reply-files", files=[{
        "name": "factura.txt", "mimeType": "text/plain",
        "buffer": "Factura 2026-001: 1 silla, 49,00 EUR\n".encode()}])
    await page.click("#reply button[type=submit]")
    await page.wait_for_selector("#status:has-text('Sent (message')")
    status = await page.inner_text("#status")
    reply_id = status.split("message ")[1].split(",")[0]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        reply = await g.eventually(lambda: http.get(f"/v1/messages/{reply_id}", headers=seller),
                                   lambda r: r.json()["outcome"]["status"] == "delivered",
                                   timeout=30)
    await page.click("#list li:has-text('Factura')")
    await page.wait_for_selector(f'li[data-message="{reply_id}"] .attachments li')
    listed = await page.inner_text(f'li[data-message="{reply_id}"] .attachments')
    await page.screenshot(path=str(g.ARTIFACTS / "web-seller-attachment.png"), full_page=True)
    async with page.expect_download() as downloading:
        await page.click(f'li[data-message="{reply_id}"] .attachments button')
    saved = await (await downloading.value).path()
    sha = reply.json()["attachments"][0]["sha256"]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        by_buyer = await http.get(f"/v1/messages/{reply_id}/attachments/{sha}",
                                  headers=g.auth(env, pair["buyer"], "buyer"))
        by_stranger = await http.get(f"/v1/messages/{reply_id}/attachments/{sha}",
                                     headers=g.auth(env, "seller-" + uid()))
        wrong_file = await http.get(f"/v1/messages/{reply_id}/attachments/{'0' * 64}",
                                    headers=seller)

    # The answer reaches the record within seconds: reload the page until it counts.
    for _ in range(40):
        await page.click('#pages button[data-page="metrics"]')
        await page.wait_for_selector('#metrics-table tr[data-window="7d"]')
        if (await page.inner_text('#metrics-table tr[data-window="7d"] td:nth-child(4)')) == "1":
            break
        await page.wait_for_timeout(500)
    bars = await page.eval_on_selector_all(
        "#chart-late rect.chart-bar", "els => els.map(e => [e.dataset.window, e.dataset.value])")
    average = await page.get_attribute('#chart-average rect.chart-bar[data-window="7d"]',
                                       "data-value")
    row = await page.eval_on_selector_all('#metrics-table tr[data-window="7d"] > *',
                                          "els => els.map(e => e.textContent)")
    labels = await page.eval_on_selector_all("#chart-late .chart-value",
                                             "els => els.map(e => e.textContent)")
    await page.screenshot(path=str(g.ARTIFACTS / "web-seller-response-times.png"), full_page=True)

    [attachment] = reply.json()["attachments"]
    assert attachment["filename"] == "factura.txt" and attachment["content_type"] == "text/plain"
    assert "factura.txt" in listed
    invoice = "Factura 2026-001: 1 silla, 49,00 EUR\n".encode()
    assert open(saved, "rb").read() == invoice  # the seller's own copy, from the browser
    assert by_buyer.status_code == 200 and by_buyer.content == invoice  # the recipient's
    assert by_buyer.headers["x-content-type-options"] == "nosniff"
    assert by_buyer.headers["content-disposition"] == (
        "attachment; filename=\"factura.txt\"; filename*=utf-8''factura.txt")
    assert by_stranger.status_code == 404 and wrong_file.status_code == 404
    from tests.e2e.test_message_path import sink_mail

    [mailed] = list((await sink_mail(env, reply_id)).iter_attachments())  # answerable by mail
    assert (mailed.get_filename(), mailed.get_content().encode()) == ("factura.txt", invoice)
    assert wrong_file.json()["error"] == "attachment_not_found"
    assert [b[0] for b in bars] == ["7d", "30d", "90d"]
    assert bars[0][1] == "0" and labels[0] == "0.0%"  # answered within 24 h: nothing late
    assert 0 <= float(average) < 120
    assert row[:4] == ["7 days", "1", "1", "1"]  # buyer messages, counted, answered
    assert not problems, problems


async def test_a_buyer_sees_seller_messages_apart_from_platform_notices_and_opts_out(
    env, pair, browser  # noqa: F811
):
    g.ARTIFACTS.mkdir(exist_ok=True)
    url = env["BSM_GATEWAY_URL"]
    buyer, seller = g.auth(env, pair["buyer"], "buyer"), g.auth(env, pair["seller"])
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/templates", params={"order_id": pair["order"]},
                                            headers=seller), lambda r: r.status_code == 200)
        question = await delivered_message(http, buyer, {
            "order_id": pair["order"], "subject": "Color", "text": "¿Hay otro color?"})
        await delivered_message(http, seller, {"in_reply_to": question, "text": "Sí, en negro."})
        stopped = await delivered_message(http, buyer, {
            "order_id": pair["order"], "subject": "Formulario",  # active HTML: refused (C5)
            "html": "<p>Rellene esto:</p><form><input name=x></form>"}, status="bounced")
        bounce = (await http.get(f"/v1/messages/{stopped}", headers=buyer)).json()

    page, problems, _ = await open_page(browser, f"{url}/app/#token={token(env, pair['buyer'], 'buyer')}")
    await page.wait_for_selector(f'#notice-list li[data-message="{stopped}"]')
    notice = await page.inner_text(f'#notice-list li[data-message="{stopped}"]')
    await page.click("#list li:has-text('Color')")
    await page.wait_for_selector("#messages li.from-seller")
    from_seller = await page.inner_text("#messages li.from-seller .body")
    list_heading = await page.inner_text("#list-heading")
    in_list = await page.inner_text("#list")
    in_notices = await page.inner_text("#notice-list")
    await page.screenshot(path=str(g.ARTIFACTS / "web-buyer-messages-and-notices.png"),
                          full_page=True)

    await page.click('#pages button[data-page="settings"]')
    was_opted_out = await page.is_checked("#set-optout")
    await page.check("#set-optout")
    await page.click("#buyer-settings button[type=submit]")
    await page.wait_for_selector("#status:has-text('Preferences saved')")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        me = await g.eventually(lambda: http.get("/v1/me", headers=buyer),
                                lambda r: r.json()["unsolicited_opt_out"] is True, timeout=30)

    assert bounce["outcome"]["bounce"]["explanation"] in notice
    assert "was not delivered" in notice and "Formulario" in notice
    assert from_seller == "Sí, en negro." and list_heading == "Messages with sellers"
    assert "Color" in in_list and "Color" not in in_notices and "negro" not in in_notices
    assert was_opted_out is False and me.json()["unsolicited_opt_out"] is True
    assert not problems, problems


async def test_a_seller_turns_messaging_off_and_sets_address_lists_that_travel_sealed_and_come_back(
    env, kafka, pair, browser  # noqa: F811
):
    g.ARTIFACTS.mkdir(exist_ok=True)
    url = env["BSM_GATEWAY_URL"]
    seller = g.auth(env, pair["seller"])
    address = f"ventas.{uid()}@sol.example"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get("/v1/me", headers=seller),
                           lambda r: r.json()["messaging_enabled"] is True)
    page, problems, _ = await open_page(browser, f"{url}/app/#token={token(env, pair['seller'])}")
    await page.click('#pages button[data-page="settings"]')
    await page.wait_for_selector("#seller-settings[data-loaded]")
    was_on = await page.is_checked("#set-messaging")
    await page.uncheck("#set-messaging")
    await page.fill("#set-authorized", f"{address}\n")
    await page.screenshot(path=str(g.ARTIFACTS / "web-seller-settings.png"), full_page=True)
    await page.click("#seller-settings button[type=submit]")
    await page.wait_for_function("() => document.getElementById('status').textContent !== ''")
    saved = await page.inner_text("#status")
    assert saved.startswith("Settings saved"), saved  # else the page says what went wrong
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        me = await g.eventually(lambda: http.get("/v1/me", headers=seller),
                                lambda r: r.json()["messaging_enabled"] is False, timeout=30)
    [event] = await kafka.collect(
        "bsm.parties", lambda e: e["type"] == "SellerSettingsChanged"
        and e["data"]["seller_id"] == pair["seller"])

    assert was_on is True and me.json()["messaging_enabled"] is False
    assert event["data"]["messaging_enabled"] is False
    assert len(event["data"]["authorized_senders"]) == 1
    assert "blocked_senders" not in event["data"] or event["data"]["blocked_senders"] is None
    assert address not in json.dumps(event)  # sealed for the alias service, never plaintext

    # The seller sees the current settings when coming back (opened for them only).
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await g.eventually(lambda: http.get(f"/v1/sellers/{pair['seller']}/settings",
                                            headers=seller),
                           lambda r: r.json()["authorized_senders"] == [address], timeout=30)
        other = await http.get(f"/v1/sellers/{pair['seller']}/settings",
                               headers=g.auth(env, "seller-" + uid()))
    await page.click('#pages button[data-page="messages"]')
    await page.click('#pages button[data-page="settings"]')
    await page.wait_for_selector("#seller-settings[data-loaded]")
    shown = await page.input_value("#set-authorized")
    still_off = await page.is_checked("#set-messaging")
    # Saving again without touching the lists sends no list: nothing is replaced unseen.
    await page.check("#set-messaging")
    await page.click("#seller-settings button[type=submit]")
    await page.wait_for_selector("#status:has-text('Settings saved')")
    events = await kafka.collect(
        "bsm.parties", lambda e: e["type"] == "SellerSettingsChanged"
        and e["data"]["seller_id"] == pair["seller"], count=2)
    second = [e for e in events if e["data"]["messaging_enabled"] is True]
    assert shown.strip() == address and still_off is False
    assert len(second) == 1 and second[0]["data"].get("authorized_senders") is None
    assert other.status_code == 403
    assert not problems, problems


async def test_the_api_docs_load_swagger_ui_from_the_gateway_alone(env, browser):
    url = env["BSM_GATEWAY_URL"]
    page, problems, requested = await open_page(browser, f"{url}/docs")
    await page.wait_for_selector(".swagger-ui .info .title:has-text('bsm gateway')")
    await page.wait_for_selector(
        ".opblock-summary-path[data-path='/v1/orders/{order_id}/timeline']")
    await page.screenshot(path=str(g.ARTIFACTS / "web-docs.png"))
    assert requested and all(u.startswith(url) for u in requested), requested
    assert not [p for p in problems if "Content Security Policy" in p], problems
