"""The rulebook (C1–C11), rule by rule, with real texts in the marketplaces' languages.

Each table row is a message a seller could really write; the test name says which rule it
proves. The engine is pure, so these tests need no broker and no database.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bsm_policy import engine
from bsm_policy.content import sanitize_html
from bsm_policy.i18n import LANGUAGES, catalog
from bsm_shared.contract.payloads import AttachmentRef
from tests.factories import addressed

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ORDER = engine.OrderFacts("o-1", "buyer-1", "seller-1", "shipped",
                          categories=frozenset({"furniture"}))
LOCALES = {"en": "en-US", "es": "es-ES", "fr": "fr-FR", "it": "it-IT", "pt": "pt-PT", "de": "de-DE"}
REGIONS = {"en": "US", "es": "ES", "fr": "FR", "it": "IT", "pt": "PT", "de": "DE"}


def ctx(order=ORDER, *, region="US", seller=None, buyer=None, **over) -> engine.Context:
    return engine.Context(
        order=order, seller=seller or engine.SellerFacts("seller-1"),
        buyer=buyer or engine.BuyerFacts("buyer-1", region=region), **over,
    )


def from_seller(**over):
    base = dict(
        sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"},
        sender_party_id="seller-1", recipient_party_id="buyer-1", sender_role="seller",
        recipient_role="buyer", contact_reason="unexpected_problem",
        conversation_started_by="seller", subject="Su pedido", submitted_at=NOW,
        sender_display_name="Muebles Sol",
    )
    base.update(over)
    return addressed(**base)


def codes(decision: engine.Decision) -> list[str]:
    return [v.code for v in decision.violations]


def found(decision: engine.Decision, code: str, text: str) -> list[str]:
    return [text[v.span.start:v.span.end] for v in decision.violations
            if v.code == code and v.span and v.span.start is not None]


# ---------------------------------------------------------------------------------------------
# C4 — phone numbers, in every language, national (the buyer's region) and international
# ---------------------------------------------------------------------------------------------

PHONES = [
    ("en", "Please call me on (415) 555-2671 so we can arrange a new delivery date.",
     "(415) 555-2671"),
    ("es", "Hola, para coordinar la entrega llámeme al 612 34 56 78, por favor.", "612 34 56 78"),
    ("fr", "Vous pouvez me joindre au 06 12 34 56 78 pour fixer la livraison.", "06 12 34 56 78"),
    ("it", "Mi può chiamare al 347 123 4567 per concordare la consegna.", "347 123 4567"),
    ("pt", "Pode ligar-me para o 912 345 678 para combinarmos a entrega.", "912 345 678"),
    ("de", "Rufen Sie mich unter 0151 23456789 an, dann klären wir die Lieferung.",
     "0151 23456789"),
    ("es", "Si lo prefiere, escríbame por WhatsApp al +44 7911 123456.", "+44 7911 123456"),
    ("fr", "Mon portable en Belgique : +32 470 12 34 56, merci.", "+32 470 12 34 56"),
]


@pytest.mark.parametrize("lang,text,number", PHONES)
def test_c4_finds_phone_numbers_in_each_language_national_and_international(lang, text, number):
    decision = engine.decide(from_seller(text=text, sender_locale=LOCALES[lang]),
                             ctx(region=REGIONS[lang]))
    assert decision.verdict == "rejected"
    assert found(decision, "phone_number", text) == [number]
    [v] = [v for v in decision.violations if v.code == "phone_number"]
    assert v.rule == "C4" and v.span.field == "text" and v.remedy


def test_c4_finds_a_spanish_mobile_number_written_with_spaces():
    text = "Le llamo mañana; mi móvil es 6 1 2 3 4 5 6 7 8 no, mejor: 612 345 678."
    decision = engine.decide(from_seller(text=text), ctx(region="ES"))
    assert "612 345 678" in found(decision, "phone_number", text)


def test_c4_does_not_take_dates_prices_or_the_order_number_for_phone_numbers():
    text = ("Su pedido 402-7713294-1182736 (149,90 €) llegará el 24/11/2026 en lugar del "
            "21.11.2026; disculpe las molestias.")
    decision = engine.decide(from_seller(text=text), ctx(region="ES"))
    assert decision.verdict == "approved", codes(decision)


# ---------------------------------------------------------------------------------------------
# C4 — email addresses, plain and obfuscated, but not the platform's own aliases
# ---------------------------------------------------------------------------------------------

EMAILS = [
    ("en", "For anything else write to me directly: john.smith@gmail.com", "john.smith@gmail.com"),
    ("en", "My address is anna [at] example [dot] com if the portal fails.",
     "anna [at] example [dot] com"),
    ("es", "Mejor escríbeme a juan.perez arroba gmail punto com y lo vemos.",
     "juan.perez arroba gmail punto com"),
    ("it", "Mi scriva a mario.rossi chiocciola libero punto it per i dettagli.",
     "mario.rossi chiocciola libero punto it"),
    ("fr", "Écrivez-moi à jean.dupont arobase orange point fr pour la suite.",
     "jean.dupont arobase orange point fr"),
    ("pt", "Envie as fotos para joao.silva arroba sapo ponto pt, obrigado.",
     "joao.silva arroba sapo ponto pt"),
    ("de", "Schicken Sie das Foto bitte an max.mustermann at gmx punkt de.",
     "max.mustermann at gmx punkt de"),
]


@pytest.mark.parametrize("lang,text,address", EMAILS)
def test_c4_finds_email_addresses_plain_and_obfuscated_in_each_language(lang, text, address):
    decision = engine.decide(from_seller(text=text, sender_locale=LOCALES[lang]), ctx())
    assert found(decision, "email_address", text) == [address]


def test_c4_the_platforms_own_aliases_quoted_in_a_reply_are_not_email_addresses():
    text = ("El envío sale hoy.\n\n> El 20/11, bbbbbbbbbbbbbbb2@marketplace.example escribió:\n"
            "> ¿Cuándo sale mi pedido?")
    decision = engine.decide(from_seller(text=text), ctx())
    assert "email_address" not in codes(decision)


def test_c4_an_english_sentence_with_at_is_not_an_email_address():
    text = ("The courier will be at your door at 10 am; the depot is at the north gate. "
            "We can also meet at home. It is easier.")
    decision = engine.decide(from_seller(text=text, sender_locale="en-GB"), ctx())
    assert decision.verdict == "approved", codes(decision)


# ---------------------------------------------------------------------------------------------
# C4 — links, emojis, opt-out links; C3 — what sellers may not send
# ---------------------------------------------------------------------------------------------


def test_c4_a_link_is_refused_when_the_reason_allows_none():
    text = "Antes de enviarlo, confirme la medida en https://muebles-sol.es/medidas, gracias."
    decision = engine.decide(from_seller(text=text, contact_reason="confirm_order_details",
                                         subject="Medidas"),
                             ctx(engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending")))
    assert found(decision, "link", text) == ["https://muebles-sol.es/medidas"]


def test_c4_a_secure_link_the_reason_allows_goes_through_and_an_insecure_one_does_not():
    ok = "Puede elegir el nuevo día de entrega en https://reparto.example.es/cita/881."
    bad = "Puede elegir el nuevo día de entrega en http://reparto.example.es/cita/881."
    assert engine.decide(from_seller(text=ok), ctx()).verdict == "approved"
    assert codes(engine.decide(from_seller(text=bad), ctx())) == ["insecure_link"]


def test_c4_an_opt_out_link_is_refused_even_when_links_are_allowed():
    text = "Para no recibir más mensajes, darse de baja aquí: https://muebles-sol.es/baja"
    assert "opt_out_link" in codes(engine.decide(from_seller(text=text), ctx()))


@pytest.mark.parametrize("text,emoji", [
    ("Your parcel is running two days late 📦, sorry about that.", "📦"),
    ("Su pedido llega el lunes 👍", "👍"),
    ("Nous avons un souci avec la couleur 👨‍👩‍👧 du modèle.", "👨‍👩‍👧"),
])
def test_c4_finds_emojis_including_joined_sequences(text, emoji):
    decision = engine.decide(from_seller(text=text), ctx())
    assert found(decision, "emoji", text) == [emoji]


PHRASES = [
    ("coupon", "es", "Como compensación, use el cupón VERANO10 en su próxima compra.", "cupón"),
    ("coupon", "de", "Mit dem Gutscheincode HERBST erhalten Sie beim nächsten Kauf mehr.",
     "Gutscheincode"),
    ("marketing", "fr", "Le retard est réglé. Profitez aussi de nos soldes d'hiver !", "soldes"),
    ("marketing", "en", "The delay is fixed. Don't miss our Black Friday deals!", "Black Friday"),
    ("cross_selling", "it", "Il ritardo è risolto. Visita il nostro negozio per altri prodotti.",
     "Visita il nostro negozio"),
    ("cross_selling", "pt", "O atraso está resolvido. Veja também os nossos outros produtos.",
     "outros produtos"),
    ("positive_review_request", "pt", "Se gostou, deixe-nos uma avaliação positiva.",
     "avaliação positiva"),
    ("positive_review_request", "de", "Bitte geben Sie uns 5 Sterne, das hilft uns sehr.",
     "5 Sterne"),
    ("positive_review_request", "en", "Please leave us a five-star review on the site.",
     "five-star"),
    ("review_incentive", "es", "Le devolvemos 5 € a cambio de una reseña del producto.",
     "a cambio de una reseña"),
    ("review_incentive", "fr", "Un cadeau vous attend en échange d'un avis sur le produit.",
     "en échange d'un avis"),
]


@pytest.mark.parametrize("code,lang,text,phrase", PHRASES)
def test_c3_finds_marketing_coupons_cross_selling_and_review_pressure_in_each_language(
    code, lang, text, phrase
):
    decision = engine.decide(from_seller(text=text, sender_locale=LOCALES[lang]), ctx())
    assert phrase in found(decision, code, text)
    assert {v.rule for v in decision.violations if v.code == code} == {"C3"}


@pytest.mark.parametrize("lang,text", [
    ("es", "¡Muchas gracias por su compra! Un saludo, Muebles Sol"),
    ("de", "Vielen Dank für Ihre Bestellung! Mit freundlichen Grüßen, Muebles Sol"),
    ("fr", "Merci pour votre commande ! Cordialement, Muebles Sol"),
    ("it", "Grazie mille per il suo ordine! Cordiali saluti"),
    ("pt", "Muito obrigado pela sua compra! Cumprimentos"),
    ("en", "Thank you so much for your order! Kind regards, the team"),
])
def test_c3_a_thank_you_only_message_is_refused_in_each_language(lang, text):
    decision = engine.decide(from_seller(text=text, sender_locale=LOCALES[lang]), ctx())
    assert "thank_you_only" in codes(decision)


def test_c3_thanks_inside_a_message_with_real_content_is_fine():
    text = ("Gracias por su compra. La silla sale del almacén el lunes porque el barniz necesita "
            "un día más de secado; le llegará el miércoles.")
    assert engine.decide(from_seller(text=text), ctx()).verdict == "approved"


@pytest.mark.parametrize("text", [
    "Su pedido ha sido enviado. Gracias.",
    "Il suo ordine è stato spedito oggi.",
    "Ihre Bestellung wurde versandt.",
])
def test_c3_order_and_shipping_confirmations_are_refused(text):
    order = engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending")
    decision = engine.decide(from_seller(text=text, contact_reason="confirm_order_details"),
                             ctx(order))
    assert "order_confirmation" in codes(decision)


def test_c3_a_buyer_may_write_what_the_seller_guidelines_forbid_to_sellers():
    msg = addressed(text="Gracias 🙂 llámame al 612 34 56 78 si hace falta", submitted_at=NOW)
    assert engine.decide(msg, ctx(region="ES")).verdict == "approved"


# ---------------------------------------------------------------------------------------------
# C4/C5 — HTML: allow-list, tracking pixels, hidden images, logos in links, animated GIFs
# ---------------------------------------------------------------------------------------------


def gif(frames: int) -> bytes:
    """A minimal valid GIF with ``frames`` 1×1 images."""
    head = b"GIF89a" + (1).to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00" * 2
    frame = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + b"\x00\x00" * 2
             + (1).to_bytes(2, "little") * 2 + b"\x00" + b"\x02\x02\x44\x01\x00")
    return head + frame * frames + b"\x3b"


def test_c4_html_tracking_pixel_hidden_image_linked_logo_and_remote_image_are_each_named():
    html = ('<p>Su pedido se retrasa.</p>'
            '<a href="https://muebles-sol.es"><img src="cid:logo" alt="Muebles Sol"></a>'
            '<img src="https://t.example/o.gif" width="1" height="1">'
            '<img src="cid:x" style="display:none">')
    decision = engine.decide(from_seller(text=None, html=html), ctx())
    by_code = {v.code: v.span.element for v in decision.violations}
    assert set(by_code) == {"linked_image", "tracking_pixel", "remote_image", "hidden_image"}
    assert by_code["linked_image"] == '<img src="cid:logo" alt="Muebles Sol">'
    assert all(v.span.field == "html" for v in decision.violations)


def test_c4_an_inline_animated_gif_is_judged_by_its_frames_not_its_name():
    import base64
    still = base64.b64encode(gif(1)).decode()
    moving = base64.b64encode(gif(3)).decode()
    html = (f'<p>Así queda el grabado:</p><img src="data:image/gif;base64,{still}" alt="a">'
            f'<img src="data:image/gif;base64,{moving}" alt="b">')
    decision = engine.decide(from_seller(text=None, html=html), ctx())
    [v] = decision.violations
    assert v.code == "animated_gif" and "alt=\"b\"" in v.span.element


def test_c4_an_animated_gif_attachment_is_judged_from_the_file():
    att = AttachmentRef(sha256="a" * 64, size=2000, filename="foto.jpg", content_type="image/gif")
    msg = from_seller(text="Le adjunto una foto del daño en la caja.",
                      contact_reason="additional_information_required", attachments=[att])
    assert engine.decide(msg, ctx(), gif_frames={"a" * 64: 1}).verdict == "approved"
    assert codes(engine.decide(msg, ctx(), gif_frames={"a" * 64: 12})) == ["animated_gif"]


def test_c4_attachments_of_other_types_or_over_10_mb_are_refused():
    zipped = AttachmentRef(sha256="b" * 64, size=100, filename="f.zip",
                           content_type="application/zip")
    big = AttachmentRef(sha256="c" * 64, size=11 * 1024 * 1024, filename="f.pdf",
                        content_type="application/pdf")
    msg = from_seller(text="Adjunto documentos.", contact_reason="additional_information_required",
                      attachments=[zipped, big])
    assert codes(engine.decide(msg, ctx())) == ["attachment_type_not_allowed",
                                                "attachments_too_large"]


def test_c5_scripts_and_forms_reject_the_message_and_name_the_element():
    html = '<p>Confirme aquí</p><form action="https://x.example"><input name="iban"></form>'
    decision = engine.decide(from_seller(text=None, html=html), ctx())
    assert [(v.rule, v.span.element) for v in decision.violations] == [
        ("C5", '<form action="https://x.example">'), ("C5", '<input name="iban">')]


def test_c5_styles_outside_the_allow_list_are_removed_and_allowed_ones_kept():
    html = '<p style="color: red; position: absolute; font-weight: bold">Hola</p><marquee>x</marquee>'
    out = sanitize_html(html)
    assert "position" not in out and "color:red" in out.replace(" ", "")
    assert "font-weight" in out and "marquee" not in out


# ---------------------------------------------------------------------------------------------
# C1/C2/C3 — the registry: availability, windows, text limits, attachments
# ---------------------------------------------------------------------------------------------


def test_c1_before_the_order_is_complete_return_information_is_not_available():
    order = engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending")
    decision = engine.decide(from_seller(text="Le explico cómo devolverlo.",
                                         contact_reason="return_information"), ctx(order))
    assert codes(decision) == ["reason_not_available_for_status"]
    assert "pending" in decision.violations[0].detail


@pytest.mark.parametrize("reason,order,code", [
    ("schedule_service", ORDER, "reason_not_available_for_category"),
    ("confirm_customization", engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending"),
     "reason_needs_custom_item"),
    ("confirm_order_details", engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending",
                                                fulfilment="platform"),
     "reason_not_available_for_fulfilment"),
])
def test_c1_a_reason_is_available_only_for_the_registrys_categories_items_and_fulfilment(
    reason, order, code
):
    decision = engine.decide(from_seller(text="Necesitamos concretar un detalle.",
                                         contact_reason=reason), ctx(order))
    assert code in codes(decision)


def test_c1_a_seller_starting_a_conversation_needs_a_reason_but_a_reply_does_not():
    assert codes(engine.decide(from_seller(text="Hola", contact_reason=None), ctx())) == [
        "contact_reason_required"]
    reply = from_seller(text="Sale mañana.", contact_reason=None, in_reply_to="m-0",
                        conversation_started_by="buyer")
    assert engine.decide(reply, ctx()).verdict == "approved"


def test_c2_proactive_messages_only_within_30_days_after_completion():
    done = engine.OrderFacts("o-1", "buyer-1", "seller-1", "completed",
                             completed_at=NOW - timedelta(days=31))
    late = engine.decide(from_seller(text="Un problema con la garantía del pedido."), ctx(done))
    assert codes(late) == ["proactive_window_closed"]
    inside = dataclasses.replace(done, completed_at=NOW - timedelta(days=29))
    assert engine.decide(from_seller(text="Un problema con la garantía."), ctx(inside)).verdict \
        == "approved"
    reply = from_seller(text="Claro, se lo cambiamos.", in_reply_to="m-0",
                        conversation_started_by="buyer", contact_reason=None)
    assert engine.decide(reply, ctx(done)).verdict == "approved"


def test_c2_review_requests_only_in_the_registrys_window_after_delivery():
    def order(days):
        return engine.OrderFacts("o-1", "buyer-1", "seller-1", "delivered",
                                 delivered_at=NOW - timedelta(days=days))
    msg = from_seller(text="¿Nos contaría qué le ha parecido la silla? Su opinión sincera nos "
                      "ayuda.", contact_reason="review_request")
    assert codes(engine.decide(msg, ctx(order(2)))) == ["review_request_outside_window"]
    assert engine.decide(msg, ctx(order(10))).verdict == "approved"
    # 40 days after delivery: past the review window, and past C2's 30 days too.
    assert codes(engine.decide(msg, ctx(order(40)))) == ["review_request_outside_window",
                                                         "proactive_window_closed"]


def test_c3_text_limits_follow_the_sp_api_model():
    reg = engine.registry()
    assert {r: reg.reasons[r].text_limit for r in
            ("digital_access_key", "confirm_customization", "unexpected_problem")} == {
        "digital_access_key": 400, "confirm_customization": 800, "unexpected_problem": 2000}
    text = "Su clave de acceso: ABCD-EFGH. " + "x" * 400
    decision = engine.decide(from_seller(text=text, contact_reason="digital_access_key"), ctx())
    [v] = decision.violations
    assert (v.code, v.span.start, v.span.end) == ("text_too_long", 400, len(text))


def test_c3_an_invoice_needs_its_attachment_and_only_documents():
    bare = from_seller(text="Le envío la factura.", contact_reason="invoice", subject="Factura")
    assert codes(engine.decide(bare, ctx())) == ["attachment_required"]
    pdf = AttachmentRef(sha256="d" * 64, size=40_000, filename="factura.pdf",
                        content_type="application/pdf")
    photo = AttachmentRef(sha256="e" * 64, size=40_000, filename="x.png", content_type="image/png")
    assert engine.decide(engine_msg := from_seller(text="Adjunto la factura.",
                                                   contact_reason="invoice",
                                                   attachments=[pdf]), ctx()).verdict == "approved"
    assert engine_msg.attachments
    mixed = from_seller(text="Adjunto la factura.", contact_reason="invoice",
                        attachments=[pdf, photo])
    assert codes(engine.decide(mixed, ctx())) == ["attachment_kind_not_allowed"]


# ---------------------------------------------------------------------------------------------
# C6 — opt-out and its exceptions; C7 daily limit; C8 vacation; C9; C10 sanctions
# ---------------------------------------------------------------------------------------------

OPTED_OUT = engine.BuyerFacts("buyer-1", opted_out=True)


def test_c6_a_non_essential_message_to_an_opted_out_buyer_stops_and_says_how_to_send_an_essential_one():
    msg = from_seller(text="¿Le ha llegado bien la silla?", contact_reason="confirm_order_details",
                      sender_locale="es-ES")
    order = engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending")
    decision = engine.decide(msg, ctx(order, buyer=OPTED_OUT))
    [v] = decision.violations
    assert (v.rule, v.code) == ("C6", "buyer_opted_out")
    assert "[Important]" in v.remedy and "additional_information_required" in v.remedy


@pytest.mark.parametrize("over,order", [
    (dict(contact_reason="unexpected_problem"), ORDER),
    (dict(contact_reason="confirm_order_details", subject="[Important] Falta el número de portal"),
     engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending")),
    (dict(contact_reason=None, in_reply_to="m-0", conversation_started_by="buyer"), ORDER),
    (dict(contact_reason="confirm_order_details"),
     engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending", wine=True)),
    (dict(contact_reason="confirm_order_details"),
     engine.OrderFacts("o-1", "buyer-1", "seller-1", "pending", handmade=True)),
])
def test_c6_essential_important_replies_and_handmade_or_wine_orders_reach_an_opted_out_buyer(
    over, order
):
    msg = from_seller(text="Necesitamos el número de portal para la entrega.", **over)
    assert engine.decide(msg, ctx(order, buyer=OPTED_OUT)).verdict == "approved"


def test_c7_a_seller_at_the_daily_limit_is_stopped_naming_the_limit():
    # The formula itself: bsm_shared.quota (tests/unit/test_quota.py), shared with the record.
    full = engine.SellerFacts("seller-1", daily_limit=650, sent_today=650)
    decision = engine.decide(from_seller(text="El envío se retrasa un día."), ctx(seller=full))
    [v] = decision.violations
    assert (v.rule, v.code) == ("C7", "daily_limit_reached") and "650" in v.detail


def test_c8_new_buyers_cannot_start_a_conversation_while_messaging_is_off_existing_ones_can():
    off = engine.SellerFacts("seller-1", messaging_enabled=False)
    question = addressed(text="¿Tienen esta mesa en blanco?", order_id=None, submitted_at=NOW)
    assert codes(engine.decide(question, ctx(None, seller=off))) == ["seller_messaging_off"]
    assert engine.decide(question, ctx(None, seller=off, known_buyer=True)).verdict == "approved"


def test_c8_merchant_fulfilled_sellers_start_with_messaging_on_platform_fulfilled_off():
    assert engine.SellerFacts("s").messaging_on
    assert not engine.SellerFacts("s", fulfilment="platform").messaging_on
    assert engine.SellerFacts("s", fulfilment="platform", messaging_enabled=True).messaging_on


def test_c9_a_seller_writing_to_a_seller_is_stopped():
    msg = from_seller(text="¿Colaboramos?", recipient_role="seller", order_id=None,
                      contact_reason="unexpected_problem")
    assert "seller_to_seller" in codes(engine.decide(msg, ctx(None)))


def test_c10_a_restricted_seller_cannot_send_proactive_messages_until_the_restriction_ends():
    until = NOW + timedelta(days=5)
    seller = engine.SellerFacts("seller-1", restriction=engine.Restriction(
        "restricted", NOW - timedelta(days=1), until))
    decision = engine.decide(from_seller(text="El envío se retrasa.", sender_locale="fr-FR"),
                             ctx(seller=seller))
    [v] = decision.violations
    assert (v.rule, v.code) == ("C10", "seller_restricted")
    assert until.isoformat(timespec="minutes") in v.detail and "jusqu'au" in v.detail
    reply = from_seller(text="Sí, sale hoy.", in_reply_to="m-0", conversation_started_by="buyer",
                        contact_reason=None)
    assert engine.decide(reply, ctx(seller=seller)).verdict == "approved"
    later = from_seller(text="El envío se retrasa.", submitted_at=until + timedelta(minutes=1))
    assert engine.decide(later, ctx(seller=seller)).verdict == "approved"


def test_c10_a_suspension_lasts_until_lifted():
    seller = engine.SellerFacts("seller-1", restriction=engine.Restriction(
        "suspended", NOW - timedelta(days=90), None))
    assert codes(engine.decide(from_seller(text="Hola, un problema."), ctx(seller=seller))) == [
        "seller_suspended"]


def test_c10_only_what_the_seller_wrote_counts_towards_sanctions():
    assert engine.decide(from_seller(text="Llámeme al 612 34 56 78."), ctx(region="ES")).sanctionable
    full = engine.SellerFacts("seller-1", daily_limit=600, sent_today=600)
    assert not engine.decide(from_seller(text="Hola, un retraso."), ctx(seller=full)).sanctionable


# ---------------------------------------------------------------------------------------------
# C11 — every stop explained, in the sender's language, all violations listed
# ---------------------------------------------------------------------------------------------


def test_c11_every_code_is_explained_with_a_remedy_in_all_six_languages():
    for code, entry in catalog().items():
        assert set(entry) >= set(LANGUAGES), code
        for lang in LANGUAGES:
            detail, remedy = entry[lang]
            assert detail and remedy, (code, lang)
    assert set(catalog()) == set(engine.RULES)


@pytest.mark.parametrize("lang,word", [("en", "Phone"), ("es", "teléfono"), ("fr", "téléphone"),
                                       ("it", "telefono"), ("pt", "telefone"), ("de", "Telefon")])
def test_c11_the_explanation_is_in_the_senders_language(lang, word):
    decision = engine.decide(from_seller(text="Tel. +34 612 34 56 78", sender_locale=LOCALES[lang]),
                             ctx())
    [v] = decision.violations
    assert word.lower() in v.detail.lower()


def test_c11_a_message_breaking_several_rules_lists_every_violation_with_span_and_remedy():
    text = ("¡Gracias! 😀 Llámeme al 612 34 56 78 o escriba a ana arroba gmail punto com y "
            "use el cupón SOL10.")
    decision = engine.decide(from_seller(text=text, sender_locale="es-ES"), ctx(region="ES"))
    assert sorted(codes(decision)) == ["coupon", "email_address", "emoji", "phone_number"]
    for v in decision.violations:
        assert v.rule and v.detail and v.remedy and v.span is not None
        assert 0 <= v.span.start < v.span.end <= len(text)


def test_c1_the_registry_holds_every_contact_reason_of_the_contract_and_only_those():
    from typing import get_args

    from bsm_shared.contract.payloads import ContactReason

    assert set(engine.registry().reasons) == set(get_args(ContactReason))
    essential = {r for r, rule in engine.registry().reasons.items() if rule.essential}
    assert essential == {"unexpected_problem", "additional_information_required",
                         "confirm_customization", "schedule_delivery", "schedule_service",
                         "legal_disclosure"}


def test_c4_gif_frames_are_counted_from_the_file_structure():
    from bsm_policy.content import gif_frame_count

    assert [gif_frame_count(gif(n)) for n in (1, 2, 7)] == [1, 2, 7]
    assert gif_frame_count(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40) == 0
    assert gif_frame_count(gif(3)[:40]) <= 3  # truncated files do not crash the decision


def test_a_message_with_thousands_of_violations_lists_the_first_ones_and_its_decision_fits_kafka():
    """Issue 10: 200 KB of phone numbers gave one violation each — an event far larger than a
    Kafka record, so the message had no outcome. The first ones of each code are listed."""
    from bsm_shared.contract import PolicyCheckedEvent
    from bsm_shared.contract.limits import MAX_BODY_BYTES
    from bsm_shared.contract.payloads import PolicyChecked
    from bsm_shared.contract.wire import build_event, to_wire

    line = "Call 612 345 678 or mail ana at gmail dot com. "
    msg = from_seller(text=(line * (MAX_BODY_BYTES // len(line)))[:MAX_BODY_BYTES])
    decision = engine.decide(msg, ctx(region="ES"))
    assert decision.verdict == "rejected"
    per_code = {c: codes(decision).count(c) for c in set(codes(decision))}
    assert per_code["phone_number"] == engine.MAX_LISTED_PER_CODE
    assert len(decision.violations) <= engine.MAX_LISTED
    data = PolicyChecked.model_validate({**msg.model_dump(), "verdict": decision.verdict,
                                         "violations": list(decision.violations),
                                         "checked_at": NOW})
    event = build_event(PolicyCheckedEvent, data, event_id=__import__("uuid").uuid4(),
                        occurred_at=NOW, producer="policy", correlation_id=msg.message_id)
    assert to_wire(event, None)  # within MAX_EVENT_BYTES, or it raises EventTooLarge


def test_html_that_sanitising_would_make_too_large_to_travel_is_refused_naming_the_size():
    """Sanitising escapes text into entities (``<`` → ``&lt;``): 200 KB of ``<`` would become a
    decision far over a Kafka record. The message is refused, explained, and its HTML left out
    of the decision."""
    from bsm_shared.contract.limits import MAX_BODY_BYTES, MAX_SANITIZED_BODY_BYTES

    msg = from_seller(text=None, html="<p>" + "<" * (MAX_BODY_BYTES - 10) + "</p>",
                      sender_locale="es-ES")
    decision = engine.decide(msg, ctx())
    assert "message_too_large" in codes(decision) and decision.html is None
    [v] = [v for v in decision.violations if v.code == "message_too_large"]
    assert v.rule == "C3" and str(MAX_SANITIZED_BODY_BYTES) in v.detail
    assert v.detail.startswith("Una vez saneado") and "adjunto" in v.remedy


# ---------------------------------------------------------------------------------------------
# Order status semantics (issue 12): completion means delivery; windows from delivery when
# known, else completion; events in any order.
# ---------------------------------------------------------------------------------------------

D = timedelta(days=1)
PLACED = NOW - 60 * D


def folded(*changes: tuple[str, datetime]) -> engine.OrderFacts:
    order = dataclasses.replace(ORDER, status="pending", placed_at=PLACED)
    for status, at in changes:
        order = engine.fold_status(order, status, at)
    return order


SEQUENCES = [
    # (what the platform published, in arrival order) → (status, delivered_at, completed_at)
    ([("shipped", NOW - 20 * D), ("delivered", NOW - 15 * D), ("completed", NOW - 10 * D)],
     ("completed", NOW - 15 * D, NOW - 10 * D)),
    ([("shipped", NOW - 20 * D), ("completed", NOW - 10 * D)],  # no separate delivery
     ("completed", None, NOW - 10 * D)),
    ([("completed", NOW - 10 * D), ("delivered", NOW - 15 * D), ("shipped", NOW - 20 * D)],
     ("completed", NOW - 15 * D, NOW - 10 * D)),  # out of order: the latest change wins
    ([("delivered", NOW - 15 * D), ("returned", NOW - 5 * D)],
     ("returned", NOW - 15 * D, None)),
    ([("delivered", NOW - 15 * D), ("delivered", NOW - 14 * D)],  # a repeat keeps the first
     ("delivered", NOW - 15 * D, None)),
]


@pytest.mark.parametrize("changes, expected", SEQUENCES)
def test_status_changes_fold_to_the_latest_status_and_the_first_delivery_and_completion(
    changes, expected
):
    order = folded(*changes)
    assert (order.status, order.delivered_at, order.completed_at) == expected


@pytest.mark.parametrize("changes, allowed", [
    ([("completed", NOW - 10 * D)], True),  # completion without delivery: 10 days after
    ([("delivered", NOW - 10 * D), ("completed", NOW - 2 * D)], True),
    ([("delivered", NOW - 40 * D), ("completed", NOW - 2 * D)], False),  # 40 days after delivery
    ([("delivered", NOW - 2 * D)], False),  # too early (5–30 days)
    ([("shipped", NOW - 10 * D)], False),
])
def test_a_review_request_counts_from_delivery_when_known_else_from_completion(changes, allowed):
    decision = engine.decide(
        from_seller(contact_reason="review_request",
                    text="¿Nos dejaría una opinión sincera sobre su compra?"),
        ctx(order=folded(*changes)))
    assert ("review_request_outside_window" not in codes(decision)
            and "reason_not_available_for_status" not in codes(decision)) == allowed, codes(decision)


def test_a_reason_available_after_delivery_is_available_for_a_completed_order():
    order = folded(("completed", NOW - 3 * D))  # the platform sent no `delivered`
    decision = engine.decide(
        from_seller(contact_reason="schedule_service", text="¿Qué día le viene bien el montaje?"),
        ctx(order=order))
    assert "reason_not_available_for_status" not in codes(decision)


@pytest.mark.parametrize("changes, closed", [
    ([("delivered", NOW - 31 * D), ("completed", NOW - 5 * D)], True),  # 31 days from delivery
    ([("delivered", NOW - 29 * D)], False),  # delivered, not completed: the window runs too
    ([("completed", NOW - 31 * D)], True),  # completion without a delivery event
    ([("shipped", NOW - 60 * D)], False),  # not received yet: no window
])
def test_c2_the_proactive_window_counts_from_delivery_when_known_else_from_completion(
    changes, closed
):
    decision = engine.decide(
        from_seller(contact_reason="unexpected_problem", text="Hay un problema con su pedido."),
        ctx(order=folded(*changes)))
    assert ("proactive_window_closed" in codes(decision)) == closed, codes(decision)
