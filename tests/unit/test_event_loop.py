"""The services' event loop (``BSM_EVENT_LOOP``): uvloop by default, asyncio's own on request."""

import asyncio

import pytest

from bsm_shared.runtime import loop
from bsm_shared.runtime.settings import ServiceSettings


def _loop_module_seen(choice: str) -> str:
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    loop.run(main(), choice)  # type: ignore[arg-type]
    return seen[0]


def test_a_service_runs_on_uvloop_unless_asyncio_is_asked_for():
    assert _loop_module_seen("uvloop").startswith("uvloop")
    assert _loop_module_seen("asyncio").startswith("asyncio")


def test_the_loop_is_read_from_bsm_event_loop_and_anything_else_is_refused(monkeypatch):
    from pydantic import ValidationError

    common = {"BSM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "signing_key": "x"}
    assert ServiceSettings(**common).event_loop == "uvloop"
    monkeypatch.setenv("BSM_EVENT_LOOP", "asyncio")
    assert ServiceSettings(**common).event_loop == "asyncio"
    monkeypatch.setenv("BSM_EVENT_LOOP", "trio")
    with pytest.raises(ValidationError, match="event_loop|BSM_EVENT_LOOP"):
        ServiceSettings(**common)
