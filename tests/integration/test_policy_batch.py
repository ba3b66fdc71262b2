"""Policy decides a batch on preloaded facts (issue 14, set-based loading): everything below is
published before the service starts, so it arrives as one batch; what the batch itself changes
(an order placed, quota slots taken, a seller restricted by its strikes) must show in the
decisions that follow in the same batch."""

from __future__ import annotations

from datetime import timedelta

from bsm_policy.app import create_runtime
from bsm_policy.settings import PolicySettings
from tests.factories import uid
from tests.integration.test_policy_rulebook_service import REPLY, SUBMITTED, World, codes
from tests.stack import running


async def test_one_batch_sees_the_order_it_places_and_the_quota_slots_it_takes(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", daily_limit_base=3, daily_limit_factor=0)
    w = World(kafka, prefix, env)
    buyer = "buyer-" + uid()
    oid = await w.order(buyer)  # in the same batch as the message about it
    about_order = await w.message(buyer=buyer, seller_sends=False, order_id=oid,
                                  text="¿Cuándo sale mi silla?")
    # Seller replies to five buyers: three slots a day (C7).
    replies = [await w.message(buyer="buyer-" + uid(), seller_sends=True, text="Sale mañana.",
                               **REPLY) for _ in range(5)]
    async with running(create_runtime(settings)):
        out = await w.checked(about_order, *replies)
    assert out[about_order]["verdict"] == "approved"
    assert [out[r]["verdict"] for r in replies].count("approved") == 3
    assert all(codes(out[r]) == [("C7", "daily_limit_reached")]
               for r in replies if out[r]["verdict"] == "rejected")


async def test_one_batch_sees_the_restriction_its_own_strikes_cause(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", sanction_strikes=2)
    w = World(kafka, prefix, env)
    striker = "buyer-" + uid()
    oid = await w.order(striker)
    # Two violations, then a clean message, all proactive (a restricted seller may still
    # reply), one buyer (one key: in this order): the strikes restrict the seller before the
    # clean message is decided.
    bad = [await w.message(buyer=striker, seller_sends=True, order_id=oid,
                           text=f"Llámeme al +34 612 34 56 7{i}, por favor.",
                           submitted_at=SUBMITTED + timedelta(minutes=i)) for i in range(2)]
    clean = await w.message(buyer=striker, seller_sends=True, text="Su envío se retrasa.",
                            order_id=oid, submitted_at=SUBMITTED + timedelta(minutes=5))
    async with running(create_runtime(settings)):
        out = await w.checked(*bad, clean)
    assert all(("C4", "phone_number") in codes(out[b]) for b in bad)
    assert codes(out[clean]) == [("C10", "seller_restricted")]
