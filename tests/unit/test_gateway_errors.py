"""The gateway's answer when something it needs is away (PostgreSQL restarting, Kafka
unreachable): a 503 that says nothing was changed and when to try again — never a 500 that
claims a bug, since every write is one transaction (the outbox) and changed nothing."""

import logging

import asyncpg
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from bsm_gateway.errors import install


def app_raising(exc: BaseException, *, raise_app_exceptions: bool = False) -> AsyncClient:
    app = FastAPI()
    install(app)

    @app.post("/v1/messages")
    async def send() -> None:
        raise exc

    @app.post("/messaging/v1/orders/o-1/messages/invoice")
    async def sp() -> None:
        raise exc

    return AsyncClient(transport=ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
                       base_url="http://gw")


async def test_a_database_restart_answers_503_with_retry_after_in_the_error_shape():
    client = app_raising(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    response = await client.post("/v1/messages")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"
    assert "nothing was changed" in response.json()["detail"]


async def test_a_lost_connection_answers_503_in_the_sp_api_shape_under_messaging():
    response = await app_raising(ConnectionResetError()).post(
        "/messaging/v1/orders/o-1/messages/invoice")
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "ServiceUnavailable"


async def test_a_bug_is_still_a_500_that_says_so(expect):
    expect.error("unhandled error on POST /v1/messages", logger="bsm.gateway")
    response = await app_raising(KeyError("x")).post("/v1/messages")
    assert response.status_code == 500 and response.json()["error"] == "internal_error"


async def test_an_outage_is_answered_and_done_not_raised_again_for_the_server_to_log():
    """A handler for Exception answers and then raises again, and uvicorn logged every
    PostgreSQL restart as "Exception in ASGI application" with a traceback; an outage is a
    warning, answered with 503, and ends there."""
    for exc in (asyncpg.exceptions.CannotConnectNowError("not yet accepting connections"),
                ConnectionRefusedError(), TimeoutError()):
        client = app_raising(exc, raise_app_exceptions=True)
        response = await client.post("/v1/messages")  # would raise if the server saw it
        assert response.status_code == 503, exc


async def test_an_os_error_that_is_not_the_networks_is_still_a_500(expect):
    expect.error("unhandled error on POST /v1/messages", logger="bsm.gateway")
    response = await app_raising(PermissionError(13, "denied")).post("/v1/messages")
    assert response.status_code == 500 and response.json()["error"] == "internal_error"


async def test_the_shared_outage_handlers_give_any_api_its_own_503_with_retry_after():
    """What the metrics service (the record and the figures) registers too."""
    from fastapi.responses import JSONResponse

    from bsm_shared.runtime.http import answer_outages

    app = FastAPI()
    answer_outages(app, lambda _: JSONResponse({"error": "unavailable"}, status_code=503),
                   logging.getLogger("test"))

    @app.get("/v1/x")
    async def x() -> None:
        raise asyncpg.exceptions.CannotConnectNowError("recovering")

    client = AsyncClient(transport=ASGITransport(app=app), base_url="http://m")
    response = await client.get("/v1/x")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
