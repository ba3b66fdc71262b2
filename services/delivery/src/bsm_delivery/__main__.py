"""``python -m bsm_delivery``: run the delivery service with settings from the environment."""

from __future__ import annotations

from bsm_shared.runtime import loop
from bsm_shared.runtime.logging import configure_logging

from .app import create_app
from .settings import DeliverySettings


def main() -> None:
    settings = DeliverySettings()  # type: ignore[call-arg]
    configure_logging("delivery", settings.log_level, settings.mail_domain)
    loop.run(create_app(settings).run(), settings.event_loop)


if __name__ == "__main__":
    main()
