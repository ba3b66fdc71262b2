"""Bounce notices (D1, D1b): who gets one, in which language, saying rule, why and what to do."""

from datetime import UTC, datetime

import pytest

from bsm_delivery import notices
from bsm_shared.contract.payloads import Bounced

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def bounce(**kw) -> Bounced:
    values = dict(message_id="m1", stage="policy", reason_code="phone_number", rule="C4",
                  explanation="El mensaje contiene un número de teléfono.",
                  remedy="Quita el número de teléfono.", bounced_at=NOW, sender_party_id="s1")
    values.update(kw)
    return Bounced(**values)


@pytest.mark.parametrize("locale, subject", [
    ("en-US", "Your message was not delivered"), ("es-ES", "Tu mensaje no se ha entregado"),
    ("fr-FR", "Votre message n'a pas été remis"), ("it-IT", "Il tuo messaggio non è stato consegnato"),
    ("pt-BR", "A sua mensagem não foi entregue"), ("de-DE", "Ihre Nachricht wurde nicht zugestellt"),
    ("ja-JP", "Your message was not delivered"),
])
def test_the_notice_is_in_the_senders_language_with_english_as_fallback(locale, subject):
    mail = notices.notice_mail(bounce(), to="x@shop.example", locale=locale,
                               domain="marketplace.example", now=NOW)
    assert mail["Subject"] == subject


def test_the_notice_names_the_rule_the_reason_and_what_to_do_and_threads_to_the_message():
    mail = notices.notice_mail(bounce(), to="x@shop.example", locale="es-ES",
                               domain="marketplace.example", now=NOW)
    body = mail.get_content()
    assert "Regla: C4" in body and "Motivo: El mensaje contiene" in body
    assert "Qué puedes hacer: Quita el número" in body
    assert mail["In-Reply-To"] == "<m1@marketplace.example>"
    assert mail["Auto-Submitted"] == "auto-generated"


def test_no_notice_for_an_unknown_or_unregistered_sender():
    assert not notices.wants_notice(bounce(sender_party_id=None), sender_registered=False,
                                    sender_role=None, seller_opted_out=False)
    assert not notices.wants_notice(bounce(), sender_registered=False, sender_role=None,
                                    seller_opted_out=False)


def test_a_seller_who_turned_opt_out_notices_off_gets_none_for_opt_outs_but_others_still():
    opt_out = bounce(reason_code="buyer_opted_out", rule="C6")
    assert not notices.wants_notice(opt_out, sender_registered=True, sender_role="seller",
                                    seller_opted_out=True)
    assert notices.wants_notice(bounce(), sender_registered=True, sender_role="seller",
                                seller_opted_out=True)
    assert notices.wants_notice(opt_out, sender_registered=True, sender_role="seller",
                                seller_opted_out=False)
