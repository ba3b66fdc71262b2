"""Properties of the rulebook that must hold for any text (Hypothesis)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsm_policy import engine
from bsm_policy.content import sanitize_html
from tests.factories import addressed

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ORDER = engine.OrderFacts("o-1", "buyer-1", "seller-1", "shipped")
CTX = engine.Context(order=ORDER, seller=engine.SellerFacts("seller-1"),
                     buyer=engine.BuyerFacts("buyer-1", region="ES"))

#: Regions with a mobile example number (phonenumbers ships one per region).
REGIONS = sorted(
    r for r in phonenumbers.SUPPORTED_REGIONS
    if phonenumbers.example_number_for_type(r, phonenumbers.PhoneNumberType.MOBILE) is not None
)
#: Words of any of the six languages, without digits (a digit next to a number changes it).
WORDS = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu"), max_codepoint=0x17F),
    min_size=1, max_size=12,
)
PROSE = st.lists(WORDS, max_size=25).map(" ".join)


def from_seller(text: str | None = None, html: str | None = None) -> object:
    return addressed(
        sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"},
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", contact_reason="unexpected_problem",
        conversation_started_by="seller", text=text, html=html, submitted_at=NOW,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(region=st.sampled_from(REGIONS), before=PROSE, after=PROSE,
       fmt=st.sampled_from([phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                            phonenumbers.PhoneNumberFormat.E164]))
def test_c4_a_formatted_phone_number_of_any_region_inside_any_text_is_found(
    region, before, after, fmt
):
    number = phonenumbers.format_number(
        phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE), fmt)
    text = f"{before} {number} {after}".strip()
    decision = engine.decide(from_seller(text=text), CTX)
    start = text.index(number)
    spans = [(v.span.start, v.span.end) for v in decision.violations if v.code == "phone_number"]
    assert any(s <= start and start + len(number) <= e + 1 for s, e in spans), (text, spans)


@settings(max_examples=150, deadline=None)
@given(region=st.sampled_from(["ES", "FR", "IT", "PT", "DE", "US", "GB", "MX", "BR"]),
       before=PROSE, after=PROSE)
def test_c4_a_nationally_formatted_number_of_the_buyers_region_is_found(region, before, after):
    number = phonenumbers.format_number(
        phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE),
        phonenumbers.PhoneNumberFormat.NATIONAL)
    text = f"{before} {number} {after}".strip()
    ctx = dataclasses.replace(CTX, buyer=engine.BuyerFacts("buyer-1", region=region))
    decision = engine.decide(from_seller(text=text), ctx)
    assert "phone_number" in [v.code for v in decision.violations], text


HTML_PIECES = st.sampled_from([
    "<p>", "</p>", "<b>", "</b>", "<i>", "<br>", "<div style='color:red;position:fixed'>",
    "</div>", "<a href='https://x.example/a'>", "<a href='javascript:alert(1)'>", "</a>",
    "<img src='cid:logo' alt='logo' width='1'>", "<script>", "</script>", "<table><tr><td>",
    "</td></tr></table>", "<span onclick='x()'>", "</span>", "<!-- c -->", "&amp;", "&lt;",
    "<", ">", "\"", "'", "<style>p{}</style>", "<font color='red' size='9'>", "<marquee>",
])
HTML = st.lists(st.one_of(HTML_PIECES, WORDS), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(html=HTML)
def test_c5_sanitising_is_idempotent(html):
    once = sanitize_html(html)
    assert sanitize_html(once) == once


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(PROSE, st.text(max_size=300)), html=st.one_of(st.none(), HTML))
def test_c11_no_message_is_both_approved_and_carrying_violations(text, html):
    decision = engine.decide(from_seller(text=text or "x", html=html), CTX)
    assert (decision.verdict == "approved") == (not decision.violations)
    for v in decision.violations:
        assert v.rule == engine.RULES[v.code] and v.detail and v.remedy
        if v.span is not None and v.span.start is not None:
            field = {"text": text or "x", "html": html or "", "subject": "Where is my order?"}.get(
                v.span.field)
            if field is not None:
                assert 0 <= v.span.start <= v.span.end <= len(field)
