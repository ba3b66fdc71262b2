import os
from datetime import UTC, datetime, timedelta

import pytest

from bsm_shared.runtime.links import ActionToken, LinkError, make_token, read_token

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_link_token_round_trips_and_refuses_forgery_and_expiry():
    key = os.urandom(32)
    token = ActionToken("report", "m-1", "b-1", NOW + timedelta(days=30))
    text = make_token(key, token)
    assert read_token(key, text, now=NOW) == ActionToken(
        "report", "m-1", "b-1", datetime.fromtimestamp(int(token.expires_at.timestamp()), UTC))
    with pytest.raises(LinkError, match="not issued"):
        read_token(os.urandom(32), text, now=NOW)
    with pytest.raises(LinkError, match="expired"):
        read_token(key, text, now=NOW + timedelta(days=31))
    with pytest.raises(LinkError, match="malformed"):
        read_token(key, "garbage", now=NOW)
