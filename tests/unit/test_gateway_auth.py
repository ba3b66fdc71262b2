"""Bearer tokens: who they name, and which tokens are refused."""

import os
from datetime import UTC, datetime, timedelta

import pytest

from bsm_gateway.auth import AuthError, Principal, issue_token, read_token, \
    token_key_from_environment

KEY = os.urandom(32)


def test_a_token_names_its_party_and_role():
    assert read_token(KEY, issue_token(KEY, "seller-1", "seller")) == Principal("seller-1",
                                                                                "seller")


def test_a_token_signed_with_another_key_is_refused():
    with pytest.raises(AuthError, match="not issued"):
        read_token(KEY, issue_token(os.urandom(32), "seller-1"))


def test_an_expired_token_is_refused():
    old = issue_token(KEY, "b", "buyer", now=datetime.now(UTC) - timedelta(days=2),
                      ttl=timedelta(hours=1))
    with pytest.raises(AuthError, match="expired"):
        read_token(KEY, old)


def test_an_unknown_role_is_never_issued():
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(KEY, "p", "admin")


def test_parties_read_only_their_own_the_dispute_role_reads_all_operators_read_none():
    assert Principal("s", "seller").may_read("b", "s")
    assert not Principal("s", "seller").may_read("b", "other")
    assert Principal("t", "dispute").may_read("b", "s")
    assert not Principal("o", "operator").may_read("b", "s")
    assert not Principal("t", "dispute").is_party


def test_the_key_is_read_from_the_stack_secrets_file_when_the_environment_has_none(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("BSM_GATEWAY_TOKEN_KEY", raising=False)
    (tmp_path / ".stack").mkdir()
    (tmp_path / ".stack" / "secrets.env").write_text(
        "# keys\nBSM_GATEWAY_TOKEN_KEY='AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert token_key_from_environment(nested) == bytes(range(32))


def test_a_message_is_seen_by_its_sender_always_and_by_its_recipient_only_once_delivered():
    from bsm_gateway.auth import Principal

    sender, recipient = Principal("s-1", "seller"), Principal("b-1", "buyer")
    for status in ("submitted", "addressed", "delivered", "bounced"):
        assert sender.may_see_message("s-1", "b-1", status), status
        assert recipient.may_see_message("s-1", "b-1", status) == (status == "delivered"), status
        assert Principal("x", "dispute").may_see_message("s-1", "b-1", status), status
        assert not Principal("b-1", "operator").may_see_message("s-1", "b-1", status), status
        assert not Principal("b-2", "buyer").may_see_message("s-1", "b-1", status), status
    # A recipient that is unknown (None) matches nobody.
    assert not Principal("b-1", "buyer").may_see_message("s-1", None, "delivered")
