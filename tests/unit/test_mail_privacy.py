"""Property: whatever a party writes, no real address of either party reaches the relayed raw
message (door: parse + scrub; delivery: compose from the event)."""

from datetime import UTC, datetime
from email.message import EmailMessage

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bsm_alias import mail
from bsm_delivery import core as delivery
from bsm_shared.contract.payloads import PolicyChecked
from tests.mail_support import all_text

DOMAIN = "marketplace.example"
SELLER_ALIAS, BUYER_ALIAS = "s" * 16 + "@" + DOMAIN, "b" * 16 + "@" + DOMAIN

local = st.from_regex(r"[a-z][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True)
domain = st.from_regex(r"[a-z][a-z0-9-]{1,12}\.(com|es|example|co\.uk)", fullmatch=True)
address = st.builds(lambda l, d: f"{l}@{d}", local, domain).filter(
    lambda a: DOMAIN not in a and ".." not in a)
name = st.from_regex(r"[A-Z][a-z]{2,10} [A-Z][a-z]{2,12}", fullmatch=True)
filler = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


def styles(addr: str, who: str) -> list[str]:
    """The ways mail clients put an address into quoted text and signatures."""
    return [addr, addr.upper(), f"<{addr}>", f'"{who}" <{addr}>', f"{who} [mailto:{addr}]",
            f"mailto:{addr}", f"{who} &lt;{addr}&gt;", f'<a href="mailto:{addr}">{who}</a>']


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(seller=address, buyer=address, envelope=address, who=name, data=st.data(),
       pieces=st.lists(filler, min_size=1, max_size=6), html=st.booleans())
def test_no_real_address_of_either_party_survives_the_relay(
    seller, buyer, envelope, who, data, pieces, html
):
    envelope = data.draw(st.sampled_from([seller, envelope]))
    quoted = data.draw(st.lists(
        st.sampled_from(styles(seller, who) + styles(buyer, "Ana") + styles(envelope, who)),
        min_size=1, max_size=8))
    body = " ".join(p + " " + q for p, q in zip(pieces * 8, quoted))
    raw = EmailMessage()
    raw["From"] = f"{who} <{envelope}>"
    raw["To"] = BUYER_ALIAS
    raw["Subject"] = f"Re: pedido {data.draw(st.sampled_from(['', seller, buyer]))}"
    raw.set_content(body)
    if html:
        raw.add_alternative(f"<html><head><meta name=x></head><body><p>{body}</p></body></html>",
                            subtype="html")
    parsed = mail.parse(raw.as_bytes())
    addresses, names = mail.identity_map(
        envelope_sender=envelope, header_from=parsed.header_from, sender_real=seller,
        recipient_real=buyer, sender_alias=SELLER_ALIAS, recipient_alias=BUYER_ALIAS,
        public_name="Muebles Sol")
    now = datetime(2026, 11, 21, tzinfo=UTC)
    checked = PolicyChecked(
        message_id="m1", channel="email", sender={"party_id": "s1"},
        recipient={"address": BUYER_ALIAS}, subject=mail.scrub(parsed.subject, addresses, names),
        text=mail.scrub(parsed.text or "", addresses, names),
        html=mail.scrub(parsed.html, addresses, names) if parsed.html else None,
        submitted_at=now, relationship_id="r1", conversation_id="c1", sender_party_id="s1",
        recipient_party_id="b1", sender_role="seller", recipient_role="buyer",
        sender_alias=SELLER_ALIAS, recipient_alias=BUYER_ALIAS,
        sender_display_name="Muebles Sol", conversation_started_by="buyer",
        verdict="approved", checked_at=now)
    relayed = all_text(delivery.compose(checked, sender_name="Muebles Sol", domain=DOMAIN, now=now).as_bytes())
    for real in {seller, buyer, envelope}:
        assert real.lower() not in relayed


@settings(max_examples=100, deadline=None)
@given(seller=address, buyer=address, who=name, pieces=st.lists(filler, min_size=1, max_size=4))
def test_a_text_attachment_is_scrubbed_like_the_body_and_a_binary_one_kept_as_sent(
    seller, buyer, who, pieces
):
    assume(seller.lower() != buyer.lower())
    addresses, names = mail.identity_map(
        envelope_sender=seller, header_from=[(who, seller)], sender_real=seller,
        recipient_real=buyer, sender_alias=SELLER_ALIAS, recipient_alias=BUYER_ALIAS,
        public_name="Muebles Sol")
    note = " ".join(p + " " + s for p, s in zip(pieces * 4, styles(seller, who) + [buyer]))
    scrubbed = mail.scrub_text_attachment(note.encode(), "text/plain", addresses, names).decode()
    pdf = b"%PDF-1.4 " + seller.encode()
    assert seller not in scrubbed.lower() and buyer not in scrubbed.lower()
    assert SELLER_ALIAS in scrubbed
    assert mail.scrub_text_attachment(pdf, "application/pdf", addresses, names) == pdf
