"""The web message center: static files served by the gateway (no external CDN) under a strict
Content-Security-Policy, and the pages of signed mail links."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

#: No inline script or style, nothing from another origin: message HTML (sanitized server
#: side with nh3) cannot run code or load a tracking pixel even if the sanitizer missed one.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
#: FastAPI's interactive docs load Swagger UI from its CDN with an inline bootstrap script;
#: only those two pages get this looser policy.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
            "https://fastapi.tiangolo.com; object-src 'none'; frame-ancestors 'none'")


def mount(app: FastAPI) -> None:
    app.mount("/app", StaticFiles(directory=STATIC, html=True), name="web")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        docs = request.url.path in ("/docs", "/redoc", "/docs/oauth2-redirect")
        response.headers["Content-Security-Policy"] = DOCS_CSP if docs else CSP
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


def link_page(action: str, token: str) -> str:
    """The confirming page: a GET never changes anything (mail scanners open links)."""
    title, _ = _LABELS[action]
    reason = ("<label>Why? <textarea name=reason maxlength=1000 required></textarea></label>"
              if action == "report" else "")
    return _page(title, f"<form method=post action=/v1/links/{escape(token)}>{reason}"
                        f"<button type=submit>{escape(title)}</button></form>")


def link_done(action: str) -> str:
    return _page(_LABELS[action][1], "<p><a href=/app/>Open the message center</a></p>")
