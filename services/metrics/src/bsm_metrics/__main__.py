"""``python -m bsm_metrics``: run the metrics service (HTTP + consumers)."""

from __future__ import annotations

import uvicorn

from bsm_shared.runtime.logging import configure_logging

from .app import create_app
from .settings import MetricsSettings


def main() -> None:
    settings = MetricsSettings()  # type: ignore[call-arg]
    configure_logging("metrics", settings.log_level, settings.mail_domain)
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port,
        log_config=None, access_log=False, loop=settings.event_loop,
    )


if __name__ == "__main__":
    main()
