"""The web message center: static files served by the gateway (no external CDN) under a strict
Content-Security-Policy, and the pages of signed mail links."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from bsm_shared.contract.payloads import REPORT_REASON_LABELS, REPORT_REASONS

STATIC = Path(__file__).parent / "static"

#: No inline script or style, nothing from another origin: message HTML (sanitized server
#: side with nh3) cannot run code or load a tracking pixel even if the sanitizer missed one.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
#: Swagger UI (``/docs``) comes from the ``swagger-ui-bundle-v2`` package, served from here
#: with an external start script, so the docs live under the same strict policy.
DOCS_TITLE = "bsm gateway — API"


def mount(app: FastAPI) -> None:
    app.mount("/app", StaticFiles(directory=STATIC, html=True), name="web")
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        # FastAPI's own page loads Swagger UI from a CDN with an inline script; this one
        # loads the packaged copy and starts it from /app/docs.js.
        return HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{escape(DOCS_TITLE)}</title>"
            "<link rel=stylesheet href=/docs/assets/swagger-ui.css></head><body>"
            "<div id=swagger-ui data-openapi=/openapi.json></div>"
            "<script src=/docs/assets/swagger-ui-bundle.js></script>"
            "<script src=/app/docs.js></script></body></html>")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

_LABELS = {"no-response-needed": ("Mark as “no response needed”",
                                  "The message is marked: it needs no response."),
           "report": ("Report this message", "Thank you: the message is reported.")}


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
            f"</title><link rel=stylesheet href=/app/app.css></head><body class=link-page>"
            f"<main><h1>{escape(title)}</h1>{body}</main></body></html>")


def link_page(action: str, token: str, *, invalid: bool = False) -> str:
    """The confirming page: a GET never changes anything (mail scanners open links). A report
    asks for a reason from the fixed list (E4, ``REPORT_REASONS``) and, for ``other``, words;
    ``invalid``: the form came back without them (said above the form)."""
    title, _ = _LABELS[action]
    fields = ""
    if action == "report":
        options = "".join(f"<label><input type=radio name=reason value={escape(r)} required> "
                          f"{escape(REPORT_REASON_LABELS[r])}</label>" for r in REPORT_REASONS)
        fields = (f"<fieldset><legend>Why?</legend>{options}</fieldset>"
                  "<label>In your own words (needed for “something else”) "
                  "<textarea name=text maxlength=1000></textarea></label>")
    warning = ("<p role=alert>Choose a reason; for “something else”, say what is wrong.</p>"
               if invalid else "")
    return _page(title, f"{warning}<form method=post action=/v1/links/{escape(token)}>{fields}"
                        f"<button type=submit>{escape(title)}</button></form>")


def link_done(action: str) -> str:
    return _page(_LABELS[action][1], "<p><a href=/app/>Open the message center</a></p>")
