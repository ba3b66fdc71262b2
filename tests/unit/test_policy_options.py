"""Ask before sending: the eligibility and lint calls the gateway makes (no message is sent)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bsm_policy import engine
from bsm_shared.contract.payloads import AttachmentRef

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PENDING = engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending",
                            categories=frozenset({"furniture"}))


def test_c1_contact_options_before_the_order_is_complete_offer_unexpected_problem_not_return():
    options = engine.contact_options(PENDING, engine.SellerFacts("seller-1"),
                                     engine.BuyerFacts("buyer-1"), now=NOW)
    assert options.can_message and not options.buyer_opted_out
    assert "unexpected_problem" in options.available
    assert "schedule_delivery" in options.available
    assert "return_information" not in options.available
    [ret] = [r for r in options.reasons if r.reason == "return_information"]
    assert [v.code for v in ret.why_not] == ["reason_not_available_for_status"] and ret.why_not[0].remedy


def test_c6_contact_options_say_the_buyer_opted_out_and_which_reasons_still_reach_them():
    options = engine.contact_options(PENDING, None, engine.BuyerFacts("buyer-1", opted_out=True),
                                     now=NOW, locale="de-DE")
    assert options.buyer_opted_out
    assert "unexpected_problem" in options.available
    assert "confirm_order_details" not in options.available
    [cod] = [r for r in options.reasons if r.reason == "confirm_order_details"]
    assert not cod.delivered_despite_opt_out
    assert [v.code for v in cod.why_not] == ["buyer_opted_out"]
    assert "Käufer" in cod.why_not[0].detail


def test_c2_c10_contact_options_close_everything_after_the_window_or_under_a_restriction():
    done = replace(PENDING, status="completed", completed_at=NOW - timedelta(days=40))
    late = engine.contact_options(done, None, None, now=NOW)
    assert not late.can_message and late.available == []
    assert [v.code for v in late.blocked_by] == ["proactive_window_closed"]
    restricted = engine.SellerFacts("seller-1", restriction=engine.Restriction(
        "restricted", NOW - timedelta(days=1), NOW + timedelta(days=4)))
    options = engine.contact_options(PENDING, restricted, None, now=NOW)
    assert [v.code for v in options.blocked_by] == ["seller_restricted"]


def test_c11_lint_returns_every_violation_a_draft_would_get_without_sending_it():
    draft = engine.Draft(sender_role="seller", contact_reason="invoice", order_id="o-1",
                         text="Factura adjunta; dudas al 612 34 56 78 📞", sender_locale="es-ES")
    shipped = replace(PENDING, status="shipped")
    violations = engine.lint(draft, engine.Context(order=shipped,
                                                   buyer=engine.BuyerFacts("b", region="ES")),
                             now=NOW)
    assert [v.code for v in violations] == ["phone_number", "emoji", "attachment_required"]
    assert all(v.detail and v.remedy for v in violations)
    pdf = AttachmentRef(sha256="f" * 64, size=10, filename="f.pdf", content_type="application/pdf")
    clean = replace(draft, text="Le adjunto la factura del pedido.", attachments=(pdf,))
    assert engine.lint(clean, engine.Context(order=shipped), now=NOW) == []


def test_c1_lint_without_the_order_judges_the_content_only():
    draft = engine.Draft(sender_role="seller", contact_reason="unexpected_problem",
                         order_id="o-unknown", text="Escríbame a ana@correo.example.es")
    assert [v.code for v in engine.lint(draft, engine.Context(), now=NOW)] == ["email_address"]
