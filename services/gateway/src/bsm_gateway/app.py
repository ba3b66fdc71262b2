"""Composition root of the gateway: the HTTP door for people and integrators.

* Authentication: bearer JWTs (:mod:`.auth`); who may do what: :mod:`.access`, asked by every
  route.
* Routes: one router per resource (:mod:`.routers`): messages, conversations, orders,
  templates, attachments, settings, operators, mail links, the record (through the metrics
  service) and the Selling Partner API Messaging v1 door; the web message center (:mod:`.web`).
* Reads and writes: the service layer (:mod:`.service`). Reads come from the gateway's own
  read model (:mod:`.readmodel`, with parties' names, :mod:`.names`), fed by its consumer;
  every write is an event the gateway signs and publishes through the outbox. It never writes
  another service's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from uuid import UUID

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from uuid6 import uuid7

from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.topics import Group

from . import door, metrics_client, web
from .errors import install
from .names import Names
from .readmodel import INPUTS, ReadModel, migrations
from .routers import (
    attachments, conversations, links, messages, operators, orders, records, settings as
    settings_routes, spapi, templates,
)
from .routers.attachments import UPLOAD_PATH
from .routers.messages import strict as _strict  # noqa: F401 - re-exported (tests)
from .service import PRODUCER, Gateway, sanitize  # noqa: F401 - re-exported
from .settings import GatewaySettings

__all__ = ["PRODUCER", "UPLOAD_PATH", "Gateway", "create_app", "sanitize"]


def create_app(
    settings: GatewaySettings, *, new_id: Callable[[], UUID] = uuid7,
    metrics: metrics_client.MetricsClient | None = None, **kwargs: object
) -> FastAPI:
    keyring = settings.keyring()
    rm = ReadModel(settings.db_schema or PRODUCER, keyring)
    names = Names(rm.s, keyring, rm.writes)
    rt = ServiceRuntime(
        name=PRODUCER, settings=settings, group=Group.GATEWAY, inputs=INPUTS,
        migrations=[*migrations(rm.s), *keyring.migrations()],
        handlers=lambda _rt: names.with_names(rm.handlers()),
        hooks=lambda _rt: rm,  # set-based writes (:mod:`.writes`)
        **kwargs,  # type: ignore[arg-type]
    )
    metrics = metrics or metrics_client.MetricsClient.from_environment()
    gw = Gateway(settings, rt, rm, new_id, metrics, names)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        await rt.broker.start()
        await rt.start_background()
        try:
            yield
        finally:
            await rt.stop_background()
            await metrics.aclose()
            await rt.broker.stop()
            await rt.stop()

    app = FastAPI(
        title="bsm gateway",
        version="0.2.0",
        description="Buyer–seller messaging: send, read and answer messages, as a party "
        "(seller or buyer), the dispute team (read-only) or an operator. Authenticate with "
        "`Authorization: Bearer <token>`. Errors are `{\"error\", \"detail\", …}`; under "
        "`/messaging/v1` (Selling Partner API compatibility) `{\"errors\": [{\"code\", "
        "\"message\", \"details\"}]}`.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local files by `web.mount` (no CDN)
        # The door (`.door`): no text that no stage can store gets past routing.
        dependencies=[Depends(door.refuse_unstorable)],
    )
    app.state.runtime = rt
    app.state.gateway = gw  # the routers' dependencies (`.routers.deps`) find it here
    install(app)
    # ... and no body larger than any valid request of its route is read.
    app.add_middleware(door.Door, larger_bodies={
        UPLOAD_PATH: settings.max_attachment_bytes + door.MULTIPART_OVERHEAD_BYTES})

    @app.get("/health", summary="Liveness and readiness", tags=["service"])
    async def health() -> dict[str, str]:
        return {"status": "ok" if rt.pool is not None else "starting", "service": PRODUCER}

    for router in (messages.router(gw), conversations.router(gw), links.router(gw),
                   orders.router(gw), templates.router(gw), attachments.router(gw),
                   settings_routes.router(gw), operators.router(gw), spapi.router(gw),
                   records.router(metrics)):
        app.include_router(router)
    web.mount(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")

    return app
