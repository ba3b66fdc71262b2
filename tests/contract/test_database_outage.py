"""A PostgreSQL that is down is an outage (retried, a 503) whichever way it is reached: over
its Unix socket the socket file is gone while the server is stopped, and connecting raises
FileNotFoundError, which the services must not take for an event's missing file."""

from __future__ import annotations

import asyncpg
import pytest

from bsm_shared.runtime.db import create_pool, is_transient


async def test_a_server_whose_unix_socket_is_gone_is_a_transient_connection_refusal(tmp_path):
    dsn = f"postgresql://bsm:bsm@/bsm?host={tmp_path}&port=15432"  # no server there
    with pytest.raises(FileNotFoundError):  # what asyncpg itself raises
        await asyncpg.connect(dsn)
    with pytest.raises(ConnectionRefusedError) as refused:
        await create_pool(dsn, size=1)
    assert is_transient(refused.value)
    assert not is_transient(FileNotFoundError(2, "an attachment's blob"))
