"""Platform templates (E5) in the buyer's language: gettext catalogs, compiled with Babel.

The catalogs are the ``.po`` files under ``locale/<lang>/LC_MESSAGES/templates.po`` (source
language English). They are compiled in memory at start (Babel's ``read_po`` + ``write_mo``)
so no build step or binary file is needed; a language without a catalog falls back to
English.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
#: The marketplace languages (platform templates' catalogs, sellers' own templates).
Language = Literal["en", "es", "fr", "it", "pt", "de"]
LANGUAGES: tuple[str, ...] = get_args(Language)


def _(text: str) -> str:
    """Marks platform-written text for extraction (``pybabel extract -k _``)."""
    return text


#: name → (subject, text): the platform-written text of each platform template.
PLATFORM_TEMPLATES: dict[str, tuple[str, str]] = {
    "order_shipped": (
        _("Your order has shipped"),
        _("Hello,\n\nyour order is on its way. You can follow the delivery from your order "
          "page.\n\nThank you for your purchase."),
    ),
    "more_information": (
        _("We need some information to complete your order"),
        _("Hello,\n\nto complete your order we need a detail from you. Please answer this "
          "message.\n\nThank you."),
    ),
    "delivery_problem": (
        _("A problem with the delivery of your order"),
        _("Hello,\n\nthere is a problem with the delivery of your order. We are working on it "
          "and will write to you again shortly.\n\nWe apologise for the inconvenience."),
    ),
}


@dataclass(frozen=True)
class Rendered:
    name: str
    locale: str
    subject: str
    text: str
    requested: str = "en"
    fell_back: bool = False


def requested_language(locale: str) -> str:
    """The language a locale asks for (``es-ES`` → ``es``, ``ja-JP`` → ``ja``), supported or
    not (``en`` when the locale cannot be read)."""
    try:
        return Locale.parse(locale.replace("-", "_")).language
    except (ValueError, TypeError, UnknownLocaleError):
        return "en"


def language_of(locale: str) -> str:
    """``es-ES`` → ``es``; unknown or unsupported → ``en``."""
    lang = requested_language(locale)
    return lang if lang in LANGUAGES else "en"


@dataclass(frozen=True)
class Choice:
    """Which of a template's texts a buyer gets: the one in their language, else English,
    else the template's own language — and whether that was a fallback (shown, never
    silent)."""

    language: str
    requested: str
    fell_back: bool


def choose(available: Iterable[str], locale: str, own: str = "en") -> Choice:
    """E5: the text for a buyer whose marketplace locale is ``locale``, among the languages a
    template has (``own``: the one it was written in)."""
    have = set(available)
    wanted = requested_language(locale)
    for lang in (wanted, "en", own):
        if lang in have:
            return Choice(lang, wanted, lang != wanted)
    return Choice(own, wanted, own != wanted)


class Catalogs:
    def __init__(self, translations: dict[str, gettext.NullTranslations]) -> None:
        self._t = translations

    @classmethod
    def load(cls, root: Path = LOCALE_DIR) -> "Catalogs":
        out: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for lang in LANGUAGES[1:]:
            po = root / lang / "LC_MESSAGES" / "templates.po"
            if not po.is_file():
                continue
            with po.open("rb") as f:
                catalog = read_po(f, locale=lang)
            buf = io.BytesIO()
            write_mo(buf, catalog)
            buf.seek(0)
            out[lang] = gettext.GNUTranslations(buf)
        return cls(out)

    def languages(self) -> list[str]:
        return sorted(self._t)

    def render(self, name: str, locale: str) -> Rendered:
        choice = choose(self._t, locale)
        t = self._t[choice.language]
        subject, text = PLATFORM_TEMPLATES[name]
        return Rendered(name, choice.language, t.gettext(subject), t.gettext(text),
                        choice.requested, choice.fell_back)

    def render_all(self, locale: str) -> list[Rendered]:
        return [self.render(name, locale) for name in PLATFORM_TEMPLATES]
