"""Platform templates in six languages; message HTML sanitized (attachment types:
``test_attachment_types.py``)."""

import pytest

from bsm_gateway.app import sanitize
from bsm_gateway.i18n import PLATFORM_TEMPLATES, Catalogs, language_of


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load()


def test_every_platform_template_is_translated_into_all_six_languages(catalogs):
    assert catalogs.languages() == ["de", "en", "es", "fr", "it", "pt"]
    for name, (subject, text) in PLATFORM_TEMPLATES.items():
        for lang in ("es", "fr", "it", "pt", "de"):
            rendered = catalogs.render(name, lang)
            assert rendered.subject != subject and rendered.text != text, (name, lang)


def test_the_buyers_locale_picks_the_language_and_unknown_ones_fall_back_to_english(catalogs):
    assert catalogs.render("order_shipped", "pt-BR").subject == "A sua encomenda foi enviada"
    assert language_of("ja-JP") == "en" and language_of("not a locale!") == "en"
    assert catalogs.render("order_shipped", "ja-JP").subject == "Your order has shipped"


def test_message_html_loses_scripts_handlers_and_remote_images():
    clean = sanitize('<p onclick="x()">Hi<script>alert(1)</script>'
                     '<img src="https://track.example/p.gif"><a href="https://a.example">a</a></p>')
    assert "script" not in clean and "onclick" not in clean and "<img" not in clean
    assert 'rel="noopener noreferrer"' in clean and "<p>" in clean
