"""C3 in every seller message (issue 12, item 1): marketing, coupons, cross-selling and review
pressure are refused in replies as in proactive messages, in the six languages; an incentive
for a review is refused whatever words it uses. And what is not marketing stays allowed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bsm_policy import engine
from bsm_policy.i18n import language_of
from tests.factories import addressed

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CTX = engine.Context(
    order=engine.OrderFacts("o-1", "buyer-1", "seller-1", "delivered", delivered_at=NOW),
    seller=engine.SellerFacts("seller-1"), buyer=engine.BuyerFacts("buyer-1", region="ES"),
)
LOCALES = {"en": "en-US", "es": "es-ES", "fr": "fr-FR", "it": "it-IT", "pt": "pt-PT", "de": "de-DE"}


def reply(text: str, lang: str = "en", *, sender: str = "seller") -> engine.Decision:
    """A reply in a conversation the buyer started (not proactive: no contact reason)."""
    other = "buyer" if sender == "seller" else "seller"
    msg = addressed(
        sender={"party_id": f"{sender}-1"}, recipient={"party_id": f"{other}-1"},
        sender_party_id=f"{sender}-1", recipient_party_id=f"{other}-1", sender_role=sender,
        recipient_role=other, in_reply_to="m-0", conversation_started_by="buyer",
        contact_reason=None, subject="Re: su pedido", text=text, submitted_at=NOW,
        sender_locale=LOCALES[lang])
    return engine.decide(msg, CTX)


def stops(decision: engine.Decision, text: str) -> list[tuple[str, str]]:
    return [(v.code, text[v.span.start:v.span.end]) for v in decision.violations
            if v.span and v.span.start is not None]


# The messages, delivered as replies before.
SAVE20 = "Use code SAVE20 for 20% off your next purchase of our other products!"
SCONTO = "Approfitta dello sconto del 20% sul tuo prossimo acquisto nel nostro negozio!"


def test_c3_a_coupon_code_and_a_discount_on_the_next_purchase_are_refused_in_a_reply():
    decision = reply(SAVE20)
    assert decision.verdict == "rejected"
    assert stops(decision, SAVE20) == [
        ("coupon", "Use code"), ("marketing", "20% off"), ("marketing", "next purchase"),
        ("cross_selling", "other products")]
    assert {v.rule for v in decision.violations} == {"C3"}


def test_c3_an_italian_discount_on_the_next_purchase_is_refused_in_a_reply():
    decision = reply(SCONTO, "it")
    assert stops(decision, SCONTO) == [("marketing", "sconto del 20%"),
                                       ("marketing", "prossimo acquisto")]
    [first, *_] = decision.violations
    assert first.detail.startswith("Marketing e promozioni non sono consentiti")


MARKETING_IN_REPLIES = [
    ("en", "Sorry for the delay! Enter the code WINTER at checkout to save 15% next time.",
     "coupon", "Enter the code"),
    ("es", "Disculpe el retraso. Le ofrecemos un descuento del 15% en su próxima compra.",
     "marketing", "descuento del 15%"),
    ("fr", "Désolé pour le retard : profitez d'une remise de 10 % sur votre prochain achat.",
     "marketing", "prochain achat"),
    ("it", "Ci scusi per il ritardo, usi il codice ESTATE per il suo prossimo acquisto.",
     "coupon", "usi il codice"),
    ("pt", "Pedimos desculpa. Use o código VERAO e tenha um desconto de 10% na próxima compra.",
     "coupon", "Use o código"),
    ("de", "Entschuldigung! Mit dem Code SOMMER sparen Sie bei Ihrem nächsten Einkauf.",
     "coupon", "Mit dem Code"),
    ("es", "La silla ya está en camino. Visite nuestra tienda para ver otros productos.",
     "cross_selling", "otros productos"),
    ("de", "Die Lieferung kommt morgen. Bitte geben Sie uns 5 Sterne.",
     "positive_review_request", "5 Sterne"),
]


@pytest.mark.parametrize("lang,text,code,phrase", MARKETING_IN_REPLIES)
def test_c3_marketing_coupons_cross_selling_and_review_pressure_are_refused_in_replies_in_each_language(
    lang, text, code, phrase
):
    decision = reply(text, lang)
    assert (code, phrase) in stops(decision, text)
    [v] = [v for v in decision.violations if v.code == code and phrase in v.detail]
    assert v.rule == "C3" and v.remedy
    assert language_of(LOCALES[lang]) == lang


INCENTIVES = [
    # the review first, the incentive after — and the other way round
    ("en", "Leave us a 5-star review … and get 10% off!",
     "Leave us a 5-star review … and get 10% off"),
    ("en", "Leave us a review and we'll send you a $10 gift card.",
     "Leave us a review and we'll send you a $10"),
    ("en", "Get a full refund when you write a review of the lamp!",
     "refund when you write a review"),
    ("es", "Si nos deja una reseña, le regalamos un cojín.", "deja una reseña, le regalamos"),
    ("es", "Te devolvemos 10 € si valoras el producto.", "10 € si valoras el producto"),
    ("fr", "Laissez-nous un avis et recevez un bon d'achat de 10 €.",
     "Laissez-nous un avis et recevez un bon d'achat"),
    ("it", "Lasciaci una recensione e ti rimborsiamo la spedizione.",
     "Lasciaci una recensione e ti rimborsiamo"),
    ("pt", "Deixe uma avaliação e receba um brinde na encomenda seguinte.",
     "Deixe uma avaliação e receba um brinde"),
    ("de", "Sie erhalten 10 € zurück, wenn Sie das Produkt bewerten.",
     "10 € zurück, wenn Sie das Produkt bewerten"),
    ("de", "Für eine ehrliche Bewertung schenken wir Ihnen eine Tasse.",
     "ehrliche Bewertung schenken"),
]


@pytest.mark.parametrize("lang,text,span", INCENTIVES)
def test_c3_an_incentive_for_a_review_is_refused_whatever_words_and_order_it_uses(
    lang, text, span
):
    decision = reply(text, lang)
    assert ("review_incentive", span) in stops(decision, text)
    [v] = [v for v in decision.violations if v.code == "review_incentive"]
    assert v.rule == "C3" and v.span.field == "text"


def test_c3_an_incentive_for_a_review_is_refused_in_a_proactive_review_request_too():
    text = "¿Qué tal la silla? Si nos deja su opinión, le enviamos un vale de descuento."
    msg = addressed(
        sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"},
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", contact_reason="unexpected_problem",
        conversation_started_by="seller", subject="Su opinión", text=text, submitted_at=NOW,
        sender_locale="es-ES")
    assert "review_incentive" in [v.code for v in engine.decide(msg, CTX).violations]


NOT_MARKETING = [
    ("en", "20% of the package was damaged, so we will refund you in full."),
    ("en", "We will review your refund request and reply within two days."),
    ("en", "We refunded you. Please leave an honest review if you like."),
    ("en", "Your order has been shipped; the tracking number is 1Z999AA10123456784."),
    ("en", "I'll make sure your next order ships in a stronger box."),
    ("es", "Le reembolsaremos los 149,90 € en cuanto recibamos la devolución."),
    ("es", "Vamos a valorar el daño y le reembolsaremos el importe. Vale, gracias."),
    ("fr", "Sans avis de passage, nous vous rembourserons le colis."),
    ("it", "Il 20% dei pezzi è arrivato rotto: le rimborsiamo l'intero importo."),
    ("pt", "O reembolso de 30 € foi feito; a avaliação dos danos está concluída."),
    ("de", "Nach Bewertung des Schadens erstatten wir Ihnen 20 €."),
]


@pytest.mark.parametrize("lang,text", NOT_MARKETING)
def test_c3_refunds_percentages_and_reviews_of_a_case_in_a_reply_are_not_marketing(lang, text):
    assert reply(text, lang).violations == ()


@pytest.mark.parametrize("text", [SAVE20, SCONTO, "Leave us a 5-star review and get 10% off!"])
def test_c3_a_buyer_may_write_what_sellers_may_not(text):
    assert reply(text, sender="buyer").verdict == "approved"
