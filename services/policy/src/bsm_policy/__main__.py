"""``python -m bsm_policy``: run the policy service with settings from the environment."""

from __future__ import annotations

from bsm_shared.runtime import loop
from bsm_shared.runtime.logging import configure_logging

from .app import create_app
from .settings import PolicySettings


def main() -> None:
    settings = PolicySettings()  # type: ignore[call-arg]
    configure_logging("policy", settings.log_level, settings.mail_domain)
    loop.run(create_app(settings).run(), settings.event_loop)


if __name__ == "__main__":
    main()
