"""Who may do what (:mod:`bsm_gateway.access`): one table every route asks, and refusals that
name the rule's code and who may; the inbox's paging cursor refuses what it did not give."""

from datetime import UTC, datetime

import pytest

from bsm_gateway import access
from bsm_gateway.access import Principal
from bsm_gateway.errors import ApiError
from bsm_gateway.service.inbox import cursor_of, position

SELLER, BUYER = Principal("s-1", "seller"), Principal("b-1", "buyer")
DISPUTE, OPERATOR = Principal("d-1", "dispute"), Principal("o-1", "operator")


def refusal(who: Principal, action: access.Action, owner: str | None = None) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        access.require(who, action, owner)
    return caught.value.status, caught.value.code


def test_parties_write_and_the_dispute_team_only_reads():
    for action in ("send", "mark_or_report", "lint", "upload"):
        access.require(SELLER, action)
        access.require(BUYER, action)
        assert refusal(DISPUTE, action) == (403, "role_cannot_write")
    access.require(DISPUTE, "read_conversations")
    assert refusal(OPERATOR, "read_conversations") == (403, "role_cannot_read")


def test_a_seller_reads_its_own_settings_and_figures_and_an_operator_anyones():
    for action in ("read_seller_settings", "change_seller_settings", "read_response_times",
                   "read_quota"):
        access.require(SELLER, action, "s-1")
        access.require(OPERATOR, action, "s-1")
        assert refusal(SELLER, action, "s-2") == (403, "not_allowed")
        assert refusal(BUYER, action, "b-1") == (403, "not_allowed")


def test_only_sellers_use_templates_and_only_operators_erase_or_lift():
    access.require(SELLER, "use_templates")
    assert refusal(BUYER, "use_templates") == (403, "role_cannot_use_templates")
    for action in ("erase_party", "lift_restriction"):
        access.require(OPERATOR, action)
        assert refusal(DISPUTE, action) == (403, "not_allowed")


def test_a_refusal_names_the_callers_role():
    with pytest.raises(ApiError, match="The dispute role cannot send messages"):
        access.require(DISPUTE, "send")


def test_every_action_has_a_rule():
    assert set(access.RULES) == set(access.Action.__args__)  # type: ignore[attr-defined]


def test_a_cursor_names_its_position_and_anything_else_is_refused():
    when = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert position(cursor_of(when, "c-1")) == (when, "c-1")
    for bad in ("", "not base64!", "e30", cursor_of(when, "c")[:-3],
                "WyIyMDI2LTExLTAxVDEyOjAwOjAwIiwiYyJd"):  # a time without a zone
        with pytest.raises(ApiError) as caught:
            position(bad)
        assert (caught.value.status, caught.value.code) == (422, "invalid_cursor")
