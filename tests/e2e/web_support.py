"""What the browser tests of the web message center share: a page in a chosen language and
width that records console errors and every request, axe-core (from the
``axe-playwright-python`` package, MPL-2.0 axe.min.js inside) run on the page as it is, and
full-page screenshots under the git-ignored ``test-artifacts/``."""

from __future__ import annotations

from typing import Any

from tests import gateway_support as g

PHONE = {"width": 390, "height": 844}


async def open_page(browser: Any, url: str, *, lang: str | None = "en",
                    viewport: dict[str, int] | None = None) -> tuple[Any, list[str]]:
    """A page at ``url``; ``lang`` fixes the UI language (as the language menu would; ``None``
    leaves it to the user's locale). Console errors (a missing catalog key is one) and
    ``window.prompt``/``alert`` dialogs are collected as problems."""
    context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    if lang:
        await context.add_init_script(f"localStorage.setItem('bsm-lang', '{lang}')")
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"window dialog: {d.message}"), d.dismiss()))
    await page.goto(url)
    return page, problems


async def axe_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


async def fits(page: Any) -> bool:
    """Nothing wider than the window: no horizontal scrolling."""
    return await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


async def shot(page: Any, name: str) -> None:
    g.ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(g.ARTIFACTS / f"{name}.png"), full_page=True)


def token(env: dict[str, str], party: str, role: str = "seller") -> str:
    return g.auth(env, party, role)["Authorization"].split()[1]


async def sent_from_page(page: Any, url: str, headers: dict[str, str], word: str) -> Any:
    """The message the page just reported sent (``… (<word> <id>, …``), once delivered."""
    import httpx

    await page.wait_for_selector(f"#status:has-text('({word} ')")
    sent_id = (await page.inner_text("#status")).split(f"{word} ")[1].split(",")[0]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return (await g.eventually(lambda: http.get(f"/v1/messages/{sent_id}", headers=headers),
                                   lambda r: r.status_code == 200
                                   and r.json()["outcome"]["status"] == "delivered",
                                   timeout=30)).json()
